"""Synthetic rain: render motion-blurred rain streaks onto clean images, O = clip(B + R, 0, 255).

The renderer follows the usual recipe of synthetic de-raining sets (Rain100L/H were made the same way
in Photoshop): per rain layer,

  1. sparse random seeds: each pixel of a canvas slightly larger than the image becomes a drop with a
     small probability (the layer's density), with a random brightness;
  2. motion blur: the seeds are convolved with a line kernel of the layer's length and width, rotated
     to the layer's angle (antialiased, with ends fading out), so every drop becomes a slanted streak;
  3. a slight Gaussian blur softens the streaks;
  4. the layer is scaled to its brightness; layers add up into the rain map R (grey: the same R is
     added to R, G and B), and O = round(clip(B + R, 0, 255)) half up, so rain only brightens: O >= B.

Three styles (lengths, widths and densities are in pixels, independent of the image size, so the rain
looks like that of the 481x321 BSD-based test sets whatever the photo's size):

  * ``light`` (like Rain100L): one direction (a small random tilt), sparse thin streaks of two length
    classes; standard-protocol Y PSNR of the rainy vs clean image about 25-30 dB per image, 27-28 dB
    on average (Rain100L inputs: 26.90 dB);
  * ``heavy`` (like Rain100H): four layers in several directions around a random main tilt, dense,
    longer, wider and brighter streaks; Y PSNR about 12-17.5 dB per image, about 15 dB on average
    (Rain100H inputs: 13.6 dB).
  * ``varied`` (like Rain100L, fitted to the rain maps O - B of its *train* half): light rain whose
    streaks differ within an image as drops at different depths do (far: short, thin, sharp, faint;
    near: long, wide, soft, sparse: four layers), and whose amount and brightness differ from image to
    image (:attr:`RainStyle.amount`, :attr:`RainStyle.intensity`). ``light`` draws every streak of a
    layer alike and the same amount of rain for every image. Y PSNR about 19-34 dB per image, 25.9 dB
    on average over the 200 BSDS500 test photos (Rain100L train half: 20.2-34.5 dB, 27.3 dB).

Transplanted rain (``synthesize_dataset(..., rain_from=DIR)``, ``data_prep.synthesize --rain_from``): no
rendering; the rain maps O - B of a paired set (e.g. a benchmark's training half) are moved onto other
clean images, enlarged by each rendering's scale, mirrored or turned, at a random place
(:func:`extract_rain`, :func:`transplant_map`). Nets trained with it remove more rain from real photos
than nets trained with any style above (docs/gallery.md).

Each image draws from its own ``numpy.random.Generator`` seeded with (seed, CRC32 of the clean file's
name, variant), so an image's rain depends only on those -- not on the order, the number of images
or parallelism -- and the same seed always writes the same bytes.

Datasets are written JORDER-flat: ``rain-001.png`` (O) next to ``norain-001.png`` (the clean image,
pixels unchanged, stored as PNG), plus ``manifest.csv`` naming the clean source of every pair.
With no clean folder the photos bundled inside the scikit-image wheel are used
(:func:`builtin_clean_images`): the project's built-in data set for the demo and the tests.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import zlib

import numpy as np
from scipy import ndimage, signal

from menet_tf.imageio import is_image_file, read_image, write_image

__all__ = [
    "DEFAULT_MIN_SIZE",
    "STYLES",
    "BUILTIN_PHOTOS",
    "LayerSpec",
    "RainStyle",
    "builtin_clean_images",
    "list_clean_images",
    "image_rng",
    "streak_kernel",
    "render_rain",
    "add_rain",
    "add_rain_map",
    "extract_rain",
    "load_rain_maps",
    "transplant_map",
    "transplant_layers",
    "rain_video",
    "synthesize_dataset",
]

log = logging.getLogger(__name__)

# The RGB photographs that ship inside the scikit-image wheel (skimage/data, no download needed), all at
# least 300 px on each side, so every one gives full 224x224 five-crops. Left out: the grey images, and
# the RGB images that are drawings rather than photos (chessboard_RGB 200x200, color, phantom, and the
# RGBA logo and horse silhouettes). motorcycle_left/right are a stereo pair of one scene: a train/test
# split of the built-in set should keep both on the same side.
BUILTIN_PHOTOS = (
    "astronaut.png",  # 512x512
    "chelsea.png",  # 451x300
    "coffee.png",  # 600x400
    "hubble_deep_field.jpg",  # 1000x872
    "ihc.png",  # 512x512
    "motorcycle_left.png",  # 741x500
    "motorcycle_right.png",  # 741x500
    "retina.jpg",  # 1411x1411
    "rocket.jpg",  # 640x427
)

DEFAULT_MIN_SIZE = 224  # the training crop size (spec section 5)


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """One rain layer; each (lo, hi) pair is drawn uniformly per image (per drop for brightness)."""

    density: tuple  # fraction of pixels that seed a drop
    length: tuple  # streak length, px
    width: tuple  # streak width, px
    brightness: tuple  # peak value added by one streak (0..255 scale)
    angle_offset: float = 0.0  # std (deg) of this layer's angle around the image's main angle
    blur_sigma: float = 0.5  # the final slight Gaussian blur


@dataclasses.dataclass(frozen=True)
class RainStyle:
    name: str
    main_angle: tuple  # the image's main tilt from vertical, degrees, drawn uniformly
    layers: tuple  # LayerSpec, rendered in order and summed
    # The amount of rain of one image: every layer's density times a factor drawn log-uniformly from this
    # range, once per image (after the main angle). (1, 1) draws nothing, so such styles render as before.
    amount: tuple = (1.0, 1.0)
    # Likewise every streak's brightness times a factor drawn log-uniformly once per image (after amount).
    intensity: tuple = (1.0, 1.0)


STYLES = {
    "light": RainStyle(
        name="light",
        main_angle=(-20.0, 20.0),
        layers=(
            # one direction: both layers share the angle (angle_offset 0), differing only in length
            LayerSpec(density=(0.0007, 0.0011), length=(35, 65), width=(1.0, 1.4),
                      brightness=(60.0, 130.0), blur_sigma=0.6),
            LayerSpec(density=(0.0004, 0.0007), length=(15, 30), width=(1.0, 1.2),
                      brightness=(40.0, 90.0), blur_sigma=0.6),
        ),
    ),
    "heavy": RainStyle(
        name="heavy",
        main_angle=(-30.0, 30.0),
        layers=(
            LayerSpec(density=(0.0010, 0.0016), length=(40, 80), width=(2.0, 3.0),
                      brightness=(90.0, 160.0), angle_offset=6.0, blur_sigma=0.9),
            LayerSpec(density=(0.0010, 0.0016), length=(30, 60), width=(1.5, 2.5),
                      brightness=(80.0, 150.0), angle_offset=10.0, blur_sigma=0.8),
            LayerSpec(density=(0.0010, 0.0016), length=(50, 90), width=(1.0, 2.0),
                      brightness=(70.0, 130.0), angle_offset=14.0, blur_sigma=0.8),
            LayerSpec(density=(0.0008, 0.0012), length=(20, 40), width=(1.0, 1.5),
                      brightness=(60.0, 110.0), angle_offset=20.0, blur_sigma=0.7),
        ),
    ),
    # Light rain whose streaks differ within one image, as drops at different depths do: far drops short,
    # thin, sharp and faint; near drops long, wide, soft and sparse. Rain100L's rain (residual O - B of its
    # train half) and real photos' rain look like this; ``light`` draws every streak of a layer alike.
    # The amount of rain varies from image to image as much as in Rain100L's train half (the fraction of
    # pixels with R > 10: 4% to 32% there). Fitted to statistics of the Rain100L *train* half's rain maps
    # only (coverage, brightness percentiles, autocorrelation length and width: docs/gallery.md).
    "varied": RainStyle(
        name="varied",
        main_angle=(-25.0, 25.0),
        amount=(0.45, 2.2),
        intensity=(0.8, 1.9),
        layers=(
            LayerSpec(density=(0.0005, 0.0010), length=(8, 20), width=(0.8, 1.1),
                      brightness=(30.0, 80.0), angle_offset=2.0, blur_sigma=0.5),
            LayerSpec(density=(0.0004, 0.0008), length=(18, 40), width=(1.0, 1.4),
                      brightness=(45.0, 110.0), angle_offset=2.0, blur_sigma=0.6),
            LayerSpec(density=(0.0003, 0.0006), length=(35, 65), width=(1.0, 1.6),
                      brightness=(55.0, 130.0), angle_offset=2.0, blur_sigma=0.8),
            LayerSpec(density=(0.00008, 0.0002), length=(50, 90), width=(1.6, 2.8),
                      brightness=(40.0, 100.0), angle_offset=3.0, blur_sigma=1.4),
        ),
    ),
}


def scaled_style(style: str | RainStyle, scale: float) -> RainStyle:
    """``style`` as if seen ``scale`` times closer: streak lengths, widths and blur times ``scale``,
    seed density divided by ``scale``^2 (the same drops per area of the scene), brightness and angles
    unchanged. ``scaled_style(s, 1)`` renders exactly like ``s``. Real photos' streaks are several times
    longer and wider than the benchmark sets' (issue 12); this renders rain at their scale."""
    st = STYLES[style] if isinstance(style, str) else style
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    layers = tuple(dataclasses.replace(
        spec, density=tuple(d / scale**2 for d in spec.density), length=tuple(v * scale for v in spec.length),
        width=tuple(v * scale for v in spec.width), blur_sigma=spec.blur_sigma * scale) for spec in st.layers)
    return dataclasses.replace(st, name=st.name if scale == 1 else f"{st.name}_x{scale:g}", layers=layers)


def builtin_clean_images() -> list:
    """Paths of the bundled RGB photos (:data:`BUILTIN_PHOTOS`) inside the installed scikit-image."""
    import skimage.data

    data_dir = os.path.dirname(os.path.abspath(skimage.data.__file__))
    paths = [os.path.join(data_dir, name) for name in BUILTIN_PHOTOS]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            "scikit-image installation lacks its bundled photos: " + ", ".join(missing))
    return paths


def list_clean_images(clean_dir: str) -> list:
    """Image files directly inside ``clean_dir``, sorted by name."""
    if not os.path.isdir(clean_dir):
        raise FileNotFoundError(f"{clean_dir}: no such directory")
    paths = sorted(os.path.join(clean_dir, f) for f in os.listdir(clean_dir)
                   if is_image_file(f) and os.path.isfile(os.path.join(clean_dir, f)))
    if not paths:
        raise FileNotFoundError(f"{clean_dir}: no image files found")
    return paths


def image_rng(seed: int, name: str, variant: int = 0) -> np.random.Generator:
    """The generator for one rendering: depends only on the seed, the clean file's base name and the
    variant index (CRC32 of the name, so it is stable across runs and platforms)."""
    key = zlib.crc32(os.path.basename(name).encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([int(seed), key, int(variant)]))


def streak_kernel(length: float, width: float, angle_deg: float) -> np.ndarray:
    """A line kernel with peak value 1: ``length`` px long, ``width`` px wide, tilted ``angle_deg``
    from vertical (positive: the top leans right). Antialiased; the brightness fades towards both
    ends (a raised-cosine profile along the streak, from 0.5 at the ends to 1 at the centre)."""
    half = max(length - 1.0, 0.0) / 2.0
    theta = math.radians(angle_deg)
    ux, uy = -math.sin(theta), math.cos(theta)  # unit vector along the streak (rows point down)
    r = int(math.ceil(half + width)) + 1
    y, x = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    along = x * ux + y * uy
    across = np.abs(-x * uy + y * ux)
    w_along = np.clip(half + 0.5 - np.abs(along), 0.0, 1.0)
    w_across = np.clip(width / 2.0 + 0.5 - across, 0.0, 1.0)
    profile = 0.75 + 0.25 * np.cos(np.pi * np.clip(along / (half + 1.0), -1.0, 1.0))
    k = w_along * w_across * profile
    return k / k.max()


def _log_uniform(rng: np.random.Generator, bounds) -> float:
    """A draw log-uniform in ``bounds`` = (lo, hi); ``lo`` itself, drawing nothing, when hi <= lo."""
    lo, hi = bounds
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if hi > lo else float(lo)


def _render_layer(shape, spec: LayerSpec, angle: float, rng: np.random.Generator,
                  amount: float = 1.0, intensity: float = 1.0) -> np.ndarray:
    h, w = shape
    length = rng.uniform(*spec.length)
    width = rng.uniform(*spec.width)
    density = rng.uniform(*spec.density) * amount
    k = streak_kernel(length, width, angle)
    kh, kw = k.shape
    # Seeds on a canvas larger by the kernel size, so that streaks entering the image from outside
    # are drawn too and the density is uniform up to the borders ('valid' convolution).
    canvas = (h + kh - 1, w + kw - 1)
    seeds = rng.random(canvas) < density
    values = np.zeros(canvas)
    values[seeds] = rng.uniform(spec.brightness[0], spec.brightness[1], size=int(seeds.sum())) * intensity
    layer = signal.fftconvolve(values, k, mode="valid")
    if spec.blur_sigma > 0:
        layer = ndimage.gaussian_filter(layer, spec.blur_sigma, mode="nearest")
    return np.maximum(layer, 0.0)  # FFT round-off can leave tiny negatives


def render_rain(shape, style: str | RainStyle, rng: np.random.Generator) -> np.ndarray:
    """The rain map R (H x W float64, >= 0, 0..255 scale) for an image of ``shape`` (H, W[, C])."""
    st = STYLES[style] if isinstance(style, str) else style
    h, w = int(shape[0]), int(shape[1])
    main = rng.uniform(*st.main_angle)
    amount = _log_uniform(rng, st.amount)
    intensity = _log_uniform(rng, st.intensity)
    rain = np.zeros((h, w))
    for spec in st.layers:
        angle = main + (rng.normal(0.0, spec.angle_offset) if spec.angle_offset else 0.0)
        rain += _render_layer((h, w), spec, angle, rng, amount, intensity)
    return rain


def _check_clean(clean) -> np.ndarray:
    b = np.asarray(clean)
    if b.dtype != np.uint8 or b.ndim != 3 or b.shape[-1] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 clean image, got {b.dtype} {b.shape}")
    return b


def add_rain_map(clean, rain) -> np.ndarray:
    """O = clip(B + R, 0, 255) as uint8 (rounded half up), for an H x W x 3 uint8 clean image B and an
    H x W rain map R (0..255 scale, the same R added to R, G and B)."""
    b = _check_clean(clean)
    r = np.asarray(rain, np.float64)
    if r.shape != b.shape[:2]:
        raise ValueError(f"rain map {r.shape} does not match the image {b.shape[:2]}")
    o = np.floor(np.minimum(b.astype(np.float64) + r[..., None], 255.0) + 0.5)
    return o.astype(np.uint8)


def add_rain(clean, style: str | RainStyle, rng: np.random.Generator) -> np.ndarray:
    """O = clip(B + R, 0, 255) as uint8 (rounded half up), for an H x W x 3 uint8 clean image B and the
    rain R rendered in ``style``."""
    b = _check_clean(clean)
    return add_rain_map(b, render_rain(b.shape, style, rng))


# ----------------------------------------------------------------------------------------------
# Transplanted rain: the rain maps of a paired data set, moved onto other clean images


def extract_rain(rainy, clean) -> np.ndarray:
    """The rain map of a pair: R = max(0, max over the colour channels of O - B), H x W uint8 (whole grey
    levels, 0.15 MB per 481x321 pair).
    Additive rain (O = clip(B + R)) is lost only where a channel clips at 255, so the largest channel
    difference is the least clipped estimate of R (data_prep.rain_stats' mean serves statistics)."""
    o, b = np.asarray(rainy, np.int16), np.asarray(clean, np.int16)
    if o.shape != b.shape or o.ndim != 3:
        raise ValueError(f"rainy {o.shape} and clean {b.shape} must be two H x W x 3 images of one size")
    return np.maximum((o - b).max(-1), 0).astype(np.uint8)


def load_rain_maps(data_dir: str, rainy_glob: str | None = None, clean_glob: str | None = None,
                   progress: bool = False) -> list:
    """(rainy file name, rain map :func:`extract_rain`) of every pair of the paired data set ``data_dir``
    (:func:`menet_tf.pairs.find_pairs`), in pair order. A pair of two sizes raises ValueError naming it."""
    from menet_tf.pairs import find_pairs

    pairs = find_pairs(data_dir, rainy_glob, clean_glob)
    if not pairs:
        raise ValueError(f"{data_dir}: no pairs to take rain from")
    bar = None
    if progress:
        from menet_tf.progress import progress_bar

        bar = progress_bar(len(pairs), unit_name="rain map")
    maps = []
    for i, (rainy_path, clean_path) in enumerate(pairs, 1):
        try:
            r = extract_rain(read_image(rainy_path), read_image(clean_path))
        except ValueError as e:
            raise ValueError(f"{rainy_path} / {clean_path}: {e}") from None
        maps.append((os.path.basename(rainy_path), r))
        if bar is not None:
            bar.update(i)
    return maps


def transplant_map(rain: np.ndarray, shape, scale: float, rng: np.random.Generator,
                   angle: float = 0.0) -> np.ndarray:
    """An H x W (``shape``) rain map cut from ``rain``: enlarged ``scale`` times (bicubic; more where
    the map would not cover the image, e.g. a landscape map on a portrait image), mirrored left-right
    with probability 1/2 (the streaks' tilt mirrored), turned by 180 degrees with probability 1/2 (the
    tilt kept), and cropped at a random place. The same generator state gives the same map.

    ``angle`` (degrees, counter-clockwise) turns the streaks by that much: a window of the enlarged map
    large enough to hold the turned H x W crop is cut, turned (bicubic) and its centre kept, so no
    corner is ever empty. ``angle=0`` cuts exactly what it always did.

    ``scale`` < 1 gives streaks finer than the source's (real photos' rain is often finer than RainTrainH's):
    the map is shrunk ``scale`` times (bicubic, antialiased) and repeated side by side (wrapped) until it
    covers the window, so the streaks are cut only where the source map's own borders meet."""
    h, w = int(shape[0]), int(shape[1])
    th = math.radians(float(angle))
    c, s_ = abs(math.cos(th)), abs(math.sin(th))
    # the window that holds the h x w crop turned by angle (one pixel of margin for the interpolation)
    wh, ww = (h, w) if angle == 0 else (int(math.ceil(h * c + w * s_)) + 2, int(math.ceil(w * c + h * s_)) + 2)
    rh, rw = rain.shape
    s = max(float(scale), wh / rh, ww / rw)
    r = np.asarray(rain, np.float32)
    from PIL import Image

    if scale < 1.0:  # finer streaks than the source's: the map shrunk, then repeated (wrapped) to cover
        small = (max(1, int(round(rw * scale))), max(1, int(round(rh * scale))))
        r = np.maximum(np.asarray(Image.fromarray(np.ascontiguousarray(r)).resize(small, Image.BICUBIC)), 0.0)
        r = np.tile(r, (-(-wh // r.shape[0]) + 1, -(-ww // r.shape[1]) + 1))
    elif s != 1.0:
        size = (max(ww, int(round(rw * s))), max(wh, int(round(rh * s))))
        r = np.maximum(np.asarray(Image.fromarray(np.ascontiguousarray(r)).resize(size, Image.BICUBIC)), 0.0)
    if rng.random() < 0.5:
        r = r[:, ::-1]
    if rng.random() < 0.5:
        r = r[::-1, ::-1]
    y0 = int(rng.integers(0, r.shape[0] - wh + 1))
    x0 = int(rng.integers(0, r.shape[1] - ww + 1))
    r = np.ascontiguousarray(r[y0:y0 + wh, x0:x0 + ww])
    if angle == 0:
        return r
    turned = np.asarray(Image.fromarray(r).rotate(float(angle), resample=Image.BICUBIC), np.float32)
    cy, cx = (wh - h) // 2, (ww - w) // 2
    return np.ascontiguousarray(np.maximum(turned[cy:cy + h, cx:cx + w], 0.0))


def transplant_layers(rain_maps: list, shape, scale: float, rng: np.random.Generator, angle: float = 0.0,
                      density: float = 1.0) -> tuple[np.ndarray, list]:
    """Denser rain from several transplanted maps: ``floor(density)`` maps, one more with probability
    ``density - floor(density)`` (at least one), each drawn uniformly from ``rain_maps`` ((name, map)
    pairs) and cut by :func:`transplant_map` at the same scale and angle, summed (capped at 255). Returns
    the map and the names of its sources. ``density=1`` draws exactly what the single-map path draws."""
    if density < 1.0:
        raise ValueError(f"density must be >= 1, got {density}")
    count = int(math.floor(density))
    if density > count and rng.random() < density - count:
        count += 1
    total, names = None, []
    for _ in range(count):
        name, rain = rain_maps[int(rng.integers(len(rain_maps)))]
        cut = transplant_map(rain, shape, scale, rng, angle)
        total = cut if total is None else total + cut
        names.append(name)
    return np.minimum(total, 255.0), names


def add_haze(rainy, haze: float, airlight: float) -> np.ndarray:
    """Rain accumulation (the veil of distant rain; Li et al., "Heavy Rain Image Restoration", CVPR 2019,
    with a uniform transmission t = 1 - ``haze``): O' = t * O + (1 - t) * A, A = ``airlight`` (grey,
    0..255), as uint8 (rounded half up), for an H x W x 3 uint8 rainy image O = clip(B + R). The clean
    target B stays haze-free, so a model trained on it removes the veil too."""
    o = np.asarray(rainy, dtype=np.float64)
    if not 0.0 <= haze < 1.0:
        raise ValueError(f"haze must be in [0, 1), got {haze}")
    return np.floor(np.clip((1.0 - haze) * o + haze * airlight, 0.0, 255.0) + 0.5).astype(np.uint8)


def variant_settings(seed: int, name: str, variant: int, scale_range=(1.0, 1.0), haze_range=None,
                     airlight_range=(200.0, 245.0)) -> tuple[float, float, float]:
    """(rain scale, haze, airlight) of one rendering, from a generator of its own (the rain's generator,
    :func:`image_rng`, is untouched, so the defaults render exactly what they always did): the scale
    log-uniform in ``scale_range``, haze and airlight uniform (haze 0 without ``haze_range``)."""
    lo, hi = scale_range
    if not 0 < lo <= hi:
        raise ValueError(f"scale_range must be 0 < lo <= hi, got {scale_range}")
    aux = image_rng(seed, name, variant + 1_000_000)
    scale = _log_uniform(aux, scale_range)
    if haze_range is None:
        return scale, 0.0, 0.0
    return scale, float(aux.uniform(*haze_range)), float(aux.uniform(*airlight_range))


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown rain style {style!r}: use one of {', '.join(sorted(STYLES))}")


def synthesize_dataset(out_dir: str, style: str, clean_dir: str | None = None, seed: int = 0,
                       max_images: int | None = None, min_size: int | None = None,
                       num_variants: int = 1, progress: bool = False, scale_range=(1.0, 1.0),
                       haze_range=None, airlight_range=(200.0, 245.0), rain_from: str | None = None,
                       rotate_range=None, density_range=None, intensity_range=None) -> list:
    """Render rain on clean images and write a JORDER-flat data set into ``out_dir``.

    Clean images: the files of ``clean_dir`` (sorted by name), or the bundled photos when it is None;
    the first ``max_images`` of them when given. Images smaller than ``min_size`` on a side (default
    :data:`DEFAULT_MIN_SIZE` = 224, the training crop; 0 keeps all) are skipped with a logged warning
    naming them. Each kept image gets ``num_variants`` renderings, pairs numbered from 1 in order
    (image-major): ``rain-NNN.png`` and ``norain-NNN.png`` (at least 3 digits). ``manifest.csv`` lists
    index, source file name, variant, style, seed, rain scale, haze and airlight.

    Real photos: ``scale_range`` draws each rendering's streak scale (:func:`scaled_style`) log-uniformly
    from it, ``haze_range`` adds rain accumulation (:func:`add_haze`) of a uniform strength from it (see
    :func:`variant_settings`). The defaults render the benchmark-scale rain of the style, no haze.

    Transplanted rain: with ``rain_from`` (a paired data set) no rain is rendered; each rendering takes
    the rain map O - B of one of its pairs (:func:`load_rain_maps`, drawn uniformly) and adds it at the
    rendering's scale (:func:`transplant_map`); ``style`` is then only recorded as ``transplant``.
    ``rotate_range`` (degrees, lo,hi) turns each transplanted map by an angle drawn uniformly from it,
    ``density_range`` (lo,hi, >= 1) sums that many maps, drawn uniformly (:func:`transplant_layers`:
    1.5 = one map or two, equally likely); both are drawn after the scale and haze from the rendering's
    own generator, so leaving them out renders exactly what it did before they existed. The manifest
    then lists each rendering's angle and density too, and every source map joined by ``+``.
    ``intensity_range`` (lo,hi, 0 < lo <= hi) multiplies each transplanted map by a factor drawn
    log-uniformly from it (after the angle and density): fainter rain than the source set's (RainTrainH's
    rain is far brighter than most real downpours); the manifest then lists it too.

    Returns the list of (rain_path, norain_path) written. Unreadable images raise
    :class:`~menet_tf.imageio.ImageError` naming the file.
    """
    rain_maps = None
    if rain_from is None and (rotate_range is not None or density_range is not None):
        raise ValueError("rotate_range and density_range move a data set's rain: give rain_from too")
    if density_range is not None and not 1.0 <= density_range[0] <= density_range[1]:
        raise ValueError(f"density_range must be 1 <= lo <= hi, got {density_range}")
    if intensity_range is not None and rain_from is None:
        raise ValueError("intensity_range scales a data set's moved rain: give rain_from too")
    if intensity_range is not None and not 0.0 < intensity_range[0] <= intensity_range[1]:
        raise ValueError(f"intensity_range must be 0 < lo <= hi, got {intensity_range}")
    if rain_from is not None:
        rain_maps, style = load_rain_maps(rain_from, progress=progress), "transplant"
    else:
        _check_style(style)
    if num_variants < 1:
        raise ValueError(f"num_variants must be >= 1, got {num_variants}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1, got {max_images}")
    min_size = DEFAULT_MIN_SIZE if min_size is None else int(min_size)
    sources = builtin_clean_images() if clean_dir is None else list_clean_images(clean_dir)
    if max_images is not None:
        sources = sources[:max_images]

    # Read everything first, so that the skipped images are known before numbering and a broken file
    # fails before anything is written.
    images = []
    for path in sources:
        img = read_image(path)
        if min(img.shape[:2]) < min_size:
            log.warning("skipping %s: %dx%d is smaller than %d px on a side",
                        path, img.shape[1], img.shape[0], min_size)
            continue
        images.append((path, img))
    if not images:
        raise ValueError(f"no clean image of at least {min_size}x{min_size} px among {len(sources)}")

    os.makedirs(out_dir, exist_ok=True)
    total = len(images) * num_variants
    digits = max(3, len(str(total)))
    bar = None
    if progress:
        from menet_tf.progress import progress_bar

        bar = progress_bar(total, unit_name="pair")
    pairs, manifest = [], []
    idx = 0
    for path, img in images:
        for variant in range(num_variants):
            idx += 1
            scale, haze, airlight = variant_settings(seed, path, variant, scale_range, haze_range, airlight_range)
            rng = image_rng(seed, path, variant)
            extra = []
            if rain_maps is None:
                rainy = add_rain(img, scaled_style(style, scale) if scale != 1.0 else style, rng)
            else:
                aux = image_rng(seed, path, variant + 2_000_000)
                angle = float(aux.uniform(*rotate_range)) if rotate_range is not None else 0.0
                density = float(aux.uniform(*density_range)) if density_range is not None else 1.0
                rain, sources = transplant_layers(rain_maps, img.shape[:2], scale, rng, angle, density)
                if intensity_range is not None:
                    intensity = _log_uniform(aux, intensity_range)
                    rain = rain * np.float32(intensity)
                rainy, source = add_rain_map(img, rain), "+".join(sources)
                if rotate_range is not None or density_range is not None:
                    extra = [f"{angle:.2f}", f"{density:.3f}"]
                if intensity_range is not None:
                    extra.append(f"{intensity:.4f}")
            if haze > 0:
                rainy = add_haze(rainy, haze, airlight)
            rain_path = os.path.join(out_dir, f"rain-{idx:0{digits}d}.png")
            norain_path = os.path.join(out_dir, f"norain-{idx:0{digits}d}.png")
            try:
                write_image(rain_path, rainy)
                write_image(norain_path, img)
            except OSError as e:
                raise OSError(f"{rain_path}: cannot write ({e})") from None
            pairs.append((rain_path, norain_path))
            manifest.append([idx, os.path.basename(path), variant, style, seed, f"{scale:.4f}", f"{haze:.4f}",
                             f"{airlight:.1f}"] + ([source] if rain_maps is not None else []) + extra)
            if bar is not None:
                bar.update(idx)
    from menet_tf.atomic import atomic_write

    with atomic_write(os.path.join(out_dir, "manifest.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "source", "variant", "style", "seed", "scale", "haze", "airlight"]
                   + (["rain_from"] if rain_maps is not None else [])
                   + (["angle", "density"] if rotate_range is not None or density_range is not None else [])
                   + (["intensity"] if intensity_range is not None else []))
        w.writerows(manifest)
    return pairs



def rain_video(clean_photo, frames: int, size=(160, 256), seed: int = 0, pan: int = 2, fall: int = 9,
               style: str | RainStyle = "light") -> tuple[np.ndarray, np.ndarray]:
    """A rainy video with ground truth: (clean, rainy) uint8 arrays of ``frames`` x H x W x 3 (``size`` = H,
    W). The clean video is a slow pan over ``clean_photo`` (``pan`` px per frame to the right); the rain is
    one tall rain map of ``style`` shifted down ``fall`` px per frame, so the streaks fall like rain and
    differ from frame to frame (what a per-frame de-rainer may flicker on)."""
    photo = _check_clean(clean_photo)
    h, w = size
    if photo.shape[0] < h or photo.shape[1] < w + pan * frames:
        raise ValueError(f"photo {photo.shape[:2]} too small for {frames} frames of {w}x{h} panning {pan} px")
    rain = render_rain((h + fall * frames, w, 3), style, np.random.default_rng(seed))
    clean = np.stack([photo[:h, pan * i:pan * i + w] for i in range(frames)])
    rainy = np.stack([add_rain_map(c, rain[(frames - i) * fall:(frames - i) * fall + h]) for i, c in enumerate(clean)])
    return clean, rainy
