"""PSNR and SSIM under the two evaluation protocols of the spec (section 7).

Standard protocol (what later de-raining papers report; in the spirit of BasicSR's metrics, with an
explicit ``test_y_channel``):
  * full images; a float prediction in 0..255 is first **quantised to uint8** (clipped to 0..255, then
    rounded half away from zero, like MATLAB's ``uint8()`` / ``im2uint8``), because the protocol
    scores the saved 8-bit output;
  * ``test_y_channel=True`` (default): both images are converted to the MATLAB ``rgb2ycbcr`` luma
    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 (R, G, B in 0..255, i.e. the coefficients of
    the 0..1 formulation), rounded to uint8 (see :func:`rgb_to_y`). ``tf.image.rgb_to_yuv`` is a
    different Y and is not used;
  * PSNR = 10 log10(255^2 / MSE) in float64 (``inf`` for identical images);
  * SSIM = the MATLAB ``ssim_index`` of Wang et al.: 11x11 Gaussian window (sigma 1.5, normalised),
    K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering (no padding: the map is (H-10) x (W-10)), and the
    mean of the map. With ``test_y_channel=False`` the RGB channels are scored one by one and the
    per-channel values averaged;
  * per image, then averaged over the images (:class:`MetricAccumulator`).

Paper protocol (produced every number in the MENET paper): :func:`paper_psnr_ssim` scores batches of
224x224 crops with ``tf.image.psnr`` / ``tf.image.ssim`` (max_val 255) on the float RGB output, not
quantised, one value per crop.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

__all__ = [
    "rgb_to_y",
    "quantize",
    "psnr",
    "ssim",
    "standard_psnr_ssim",
    "paper_psnr_ssim",
    "MetricAccumulator",
    "MetricRow",
]

# MATLAB rgb2ycbcr luma row, scaled by 1000 so that Y can be computed exactly in integers.
_Y_COEFFS_MILLI = np.array([65481, 128553, 24966], dtype=np.int64)
_Y_DENOM = 255 * 1000

_SSIM_K1 = 0.01
_SSIM_K2 = 0.03
_SSIM_SIZE = 11
_SSIM_SIGMA = 1.5
_DATA_RANGE = 255.0


def quantize(img) -> np.ndarray:
    """``img`` as uint8: uint8 passes through; other values are clipped to 0..255 and rounded half
    away from zero (MATLAB's ``uint8()``), e.g. 2.5 -> 3, 3.5 -> 4 (numpy's ``round`` would give 2, 4).
    """
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        raise ValueError("boolean image: expected uint8 or values in 0..255")
    arr = arr.astype(np.float64)
    if np.isnan(arr).any():
        raise ValueError("image contains NaN")
    return np.floor(np.clip(arr, 0.0, 255.0) + 0.5).astype(np.uint8)


def rgb_to_y(img_uint8) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` luma of an H x W x 3 RGB uint8 image, as H x W uint8 (range 16..235).

    Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, rounded half away from zero (MATLAB rounds its
    uint8 output that way). It is computed exactly in integers,
    Y = 16 + floor((65481 R + 128553 G + 24966 B + 127500) / 255000), so a value that lies exactly
    half-way is rounded up, never down by a float64 representation error.
    Float input is quantised first (see :func:`quantize`).
    """
    arr = quantize(img_uint8)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"rgb_to_y expects an H x W x 3 image, got shape {arr.shape}")
    n = arr.astype(np.int64) @ _Y_COEFFS_MILLI
    return (16 + (n + _Y_DENOM // 2) // _Y_DENOM).astype(np.uint8)


def _prepare(img1, img2, test_y_channel: bool, crop_border: int):
    """Quantise, check shapes, crop, and return float64 arrays of shape H x W x C."""
    a, b = quantize(img1), quantize(img2)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3):
        raise ValueError(f"expected an H x W, H x W x 1 or H x W x 3 image, got shape {a.shape}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    if test_y_channel and a.shape[-1] == 3:
        a, b = rgb_to_y(a)[..., None], rgb_to_y(b)[..., None]
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"nothing left to score after crop_border={crop_border}")
    return a.astype(np.float64), b.astype(np.float64)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(_DATA_RANGE**2 / mse)


def psnr(img1, img2, test_y_channel: bool = True, crop_border: int = 0) -> float:
    """Standard-protocol PSNR in dB of two images (uint8, or float in 0..255, quantised first).

    ``crop_border`` pixels are removed from each side before scoring. With ``test_y_channel`` an RGB
    pair is scored on the MATLAB luma (:func:`rgb_to_y`), otherwise on all channels together.
    Identical images give ``inf``.
    """
    a, b = _prepare(img1, img2, test_y_channel, crop_border)
    return _psnr(a, b)


def _gaussian_1d(size: int = _SSIM_SIZE, sigma: float = _SSIM_SIGMA) -> np.ndarray:
    """1-D factor of MATLAB's ``fspecial('gaussian', size, sigma)``; the 2-D window is its outer
    product with itself (both normalised to sum 1, so the factorisation is exact)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


_WINDOW_1D = _gaussian_1d()


def _filter_valid(x: np.ndarray) -> np.ndarray:
    """Separable 11x11 Gaussian filtering of a 2-D array keeping only the 'valid' part (MATLAB
    ``filter2(w, x, 'valid')``): filter over the full frame, then drop the 5-pixel margin that the
    border mode influenced (the window is symmetric, so correlation = convolution)."""
    r = (_SSIM_SIZE - 1) // 2
    y = ndimage.correlate1d(x, _WINDOW_1D, axis=0, mode="constant")
    y = ndimage.correlate1d(y, _WINDOW_1D, axis=1, mode="constant")
    return y[r:-r, r:-r]


def _ssim_2d(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape[0] < _SSIM_SIZE or a.shape[1] < _SSIM_SIZE:
        raise ValueError(f"SSIM needs at least {_SSIM_SIZE}x{_SSIM_SIZE} pixels, got {a.shape}")
    c1 = (_SSIM_K1 * _DATA_RANGE) ** 2
    c2 = (_SSIM_K2 * _DATA_RANGE) ** 2
    mu1, mu2 = _filter_valid(a), _filter_valid(b)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1 = _filter_valid(a * a) - mu1_sq
    s2 = _filter_valid(b * b) - mu2_sq
    s12 = _filter_valid(a * b) - mu12
    ssim_map = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return float(ssim_map.mean())


def ssim(img1, img2, test_y_channel: bool = True, crop_border: int = 0) -> float:
    """Standard-protocol SSIM (MATLAB ``ssim_index``: Gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03,
    L 255, 'valid' window, mean of the map). Inputs as in :func:`psnr`; without ``test_y_channel`` the
    channels are scored separately and averaged. Identical images give exactly 1.0."""
    a, b = _prepare(img1, img2, test_y_channel, crop_border)
    return float(np.mean([_ssim_2d(a[..., c], b[..., c]) for c in range(a.shape[-1])]))


def standard_psnr_ssim(pred, target, test_y_channel: bool = True, crop_border: int = 0):
    """``(psnr, ssim)`` of one image pair under the standard protocol (quantised once)."""
    a, b = _prepare(pred, target, test_y_channel, crop_border)
    s = float(np.mean([_ssim_2d(a[..., c], b[..., c]) for c in range(a.shape[-1])]))
    return _psnr(a, b), s


def paper_psnr_ssim(pred, target, batch_size: int = 50):
    """Paper protocol: per-crop PSNR and SSIM of float RGB crops (not quantised).

    ``pred`` and ``target``: N x H x W x 3 (or one H x W x 3 crop), values in 0..255 -- ``pred`` is
    the network's clipped float output. Scored with ``tf.image.psnr`` and ``tf.image.ssim``
    (max_val 255, their defaults: 11x11 Gaussian, sigma 1.5, K1 0.01, K2 0.03, valid window, mean
    over the map and the channels) in float32, ``batch_size`` crops at a time.
    Returns two float64 numpy arrays of length N (PSNR in dB, SSIM).
    """
    import tensorflow as tf  # only the paper protocol needs TensorFlow

    p = np.asarray(pred, dtype=np.float32)
    t = np.asarray(target, dtype=np.float32)
    if p.shape != t.shape:
        raise ValueError(f"pred and target differ in shape: {p.shape} vs {t.shape}")
    if p.ndim == 3:
        p, t = p[None], t[None]
    if p.ndim != 4:
        raise ValueError(f"expected N x H x W x C crops, got shape {p.shape}")
    psnrs, ssims = [], []
    for i in range(0, p.shape[0], max(1, int(batch_size))):
        pb = tf.constant(p[i : i + batch_size])
        tb = tf.constant(t[i : i + batch_size])
        psnrs.append(tf.image.psnr(pb, tb, max_val=255.0).numpy())
        ssims.append(tf.image.ssim(pb, tb, max_val=255.0).numpy())
    if not psnrs:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(psnrs).astype(np.float64), np.concatenate(ssims).astype(np.float64)


@dataclass
class MetricRow:
    name: str
    psnr: float
    ssim: float


@dataclass
class MetricAccumulator:
    """Per-image rows (name, psnr, ssim) and their means, for tables and CSV files. Example::

        acc = MetricAccumulator()                  # standard protocol, Y channel, no crop
        acc.add_images("rain-001", pred, target)   # scores one pair
        acc.add("crop-7", 31.2, 0.91)              # or adds values computed elsewhere
        acc.mean_psnr, acc.mean_ssim
        acc.write_csv("metrics.csv")
    """

    test_y_channel: bool = True
    crop_border: int = 0
    rows: list = field(default_factory=list)

    def add(self, name: str, psnr_value: float, ssim_value: float) -> MetricRow:
        row = MetricRow(str(name), float(psnr_value), float(ssim_value))
        self.rows.append(row)
        return row

    def add_many(self, names, psnr_values, ssim_values) -> None:
        names, psnr_values, ssim_values = list(names), list(psnr_values), list(ssim_values)
        if not len(names) == len(psnr_values) == len(ssim_values):
            raise ValueError("names, psnr_values and ssim_values differ in length")
        for n, p, s in zip(names, psnr_values, ssim_values):
            self.add(n, p, s)

    def add_images(self, name: str, pred, target) -> MetricRow:
        p, s = standard_psnr_ssim(pred, target, self.test_y_channel, self.crop_border)
        return self.add(name, p, s)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def mean_psnr(self) -> float:
        """Mean of the per-image PSNRs (``inf`` if any pair is identical; ``nan`` when empty)."""
        return float(np.mean([r.psnr for r in self.rows])) if self.rows else math.nan

    @property
    def mean_ssim(self) -> float:
        return float(np.mean([r.ssim for r in self.rows])) if self.rows else math.nan

    def summary(self) -> dict:
        return {"count": len(self.rows), "psnr": self.mean_psnr, "ssim": self.mean_ssim}

    def write_csv(self, path: str, include_mean: bool = True) -> None:
        """Write ``name,psnr,ssim`` rows (and a final ``mean`` row unless ``include_mean=False``)."""
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        from menet_tf.atomic import atomic_write

        with atomic_write(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["name", "psnr", "ssim"])
            for r in self.rows:
                w.writerow([r.name, f"{r.psnr:.6f}", f"{r.ssim:.6f}"])
            if include_mean and self.rows:
                w.writerow(["mean", f"{self.mean_psnr:.6f}", f"{self.mean_ssim:.6f}"])
