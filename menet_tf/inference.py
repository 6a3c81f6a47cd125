"""De-raining images of any size: reflect padding to the net's multiple, and overlapping tiles.

The net (``menet_tf.model``) needs H and W to be multiples of ``required_multiple`` (4; 16 with channel
attention). :func:`pad_to_multiple` pads the bottom and right edges by *reflection* inside the graph and
:func:`derain_image` crops the output back, so any size is exact (the released code resized bicubically
instead: spec section 9).

Reflect padding and tiny images
-------------------------------
``tf.pad(mode="REFLECT")`` needs pad < size, which fails for images narrower than the padding (e.g. a 2 px
wide image padded to 16). :func:`pad_to_multiple` gathers reflected indices instead: index ``i`` of the
padded axis reads ``i mod 2(n-1)`` folded back into ``0..n-1`` (a triangle wave), i.e. *repeated*
reflection, which is exactly what ``numpy.pad(mode="reflect")`` does for any pad; a 1-pixel axis is
repeated (edge padding, the only choice there). It is graph-friendly (dynamic shapes, XLA, TFLite).

Tiles
-----
:func:`derain_tiled` de-rains overlapping tiles of at most ``tile`` x ``tile`` pixels, so the net's memory
is bounded by the tile, not the image. Tile origins are multiples of the net's multiple (the net is
translation-equivariant only for such shifts, because of space_to_depth); the last tile of a row/column
is clipped at the image edge, where it is reflect-padded exactly as the whole image would be. Adjacent
tiles share a band of ``overlap`` pixels; in it the tiles are blended with a raised-cosine ramp that
ignores ``margin`` pixels next to each tile's inner edge (where the tile's zero-padded border
contaminates the prediction) and rises over the rest, so the weights form a partition of unity.
Finished rows are written out band by band: the only image-sized arrays are the input and the output.

Without channel attention, the net is *local*: an output pixel depends on input pixels at most
:func:`receptive_radius` away (81 px for 8 residual blocks, 145 for 16). With ``margin >= radius``
every pixel that gets any weight is computed exactly as in whole-image inference, so tiled output
equals whole-image output (up to float rounding) everywhere. :func:`auto_overlap` gives the smallest
such overlap (2 * radius + a 32 px ramp, rounded up to the multiple).

With channel attention this is not possible: the CA block scales 64 feature channels by
``sigmoid(global mean over the whole image)``, so each tile sees its own mean and its output differs
from the whole image's in the tile's interior too, not just at seams. The blend hides the seams, but
the result is not whole-image inference; docs/deployment.md reports the size of the difference.
"""

from __future__ import annotations

import weakref
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

DEFAULT_TILE = 1024
#: width of the blending ramp inside an overlap band (pixels), when the band is wide enough.
DEFAULT_RAMP = 32


def round_up(x: int, multiple: int) -> int:
    return -(-int(x) // int(multiple)) * int(multiple)


def receptive_radius(num_res_blocks: int) -> int:
    """Largest |output pixel - input pixel| distance (in pixels) through which the net's local part
    (everything except CA's global mean) propagates.

    Exact interval propagation of the architecture (spec section 1), worst case over the 4 phases of an
    output pixel: space_to_depth 2 -> layer1 (3x3 at H/2) -> space_to_depth 2 -> layer2, 2 convs per
    residual block, layer3 (3x3 at H/4) -> depth_to_space -> layer4, layer5 (3x3 at H/2) ->
    depth_to_space. 81 px for 8 blocks, 145 for 16. (The CA branch's convolutions only feed the global
    mean; its x + x * a path is pointwise.)
    """
    k4 = 2 * int(num_res_blocks) + 2  # 3x3 convs at H/4: layer2, blocks, layer3
    radius = 0
    for y in range(4):
        c = y // 2  # H/2 cell of the output pixel (layer5's output, before depth_to_space)
        lo, hi = c - 2, c + 2  # layer5, layer4
        lo, hi = lo // 2 - k4, hi // 2 + k4  # to H/4; layer3, blocks, layer2
        lo, hi = 2 * lo - 1, 2 * hi + 1 + 1  # back to H/2 (2 cells per H/4 cell); layer1
        lo, hi = 2 * lo, 2 * hi + 1  # to full resolution
        radius = max(radius, y - lo, hi - y)
    return radius


def auto_overlap(radius: int, multiple: int, ramp: int = DEFAULT_RAMP) -> int:
    """The smallest overlap whose default margin is >= radius: 2 * radius + ramp, rounded up."""
    return round_up(2 * radius + ramp, multiple)


def default_margin(overlap: int, ramp: int = DEFAULT_RAMP) -> int:
    """Context pixels ignored at a tile's inner edge: the band minus a ``ramp``-wide blend, split in two
    (at least a quarter of the band on each side when the band is narrower than 2 * ramp)."""
    return max(overlap // 4, (overlap - ramp) // 2)


# ----------------------------------------------------------------------------------------- padding


def _reflect_indices(size, padded_size):
    """Indices 0..padded_size-1 folded into 0..size-1 by repeated reflection (numpy 'reflect')."""
    i = tf.range(padded_size)
    period = tf.maximum(2 * (size - 1), 1)
    m = tf.math.floormod(i, period)
    return tf.where(m < size, m, period - m)


def pad_to_multiple(x, multiple: int):
    """Reflect-pad the bottom and right of x ([H, W, C] or [B, H, W, C]) so H and W are multiples.

    Graph-friendly (dynamic shapes) and valid for any size, tiny images included (repeated reflection,
    see the module docstring); equals ``numpy.pad(x, ..., mode="reflect")`` with the pad at the end.
    """
    x = tf.convert_to_tensor(x)
    if multiple <= 1:
        return x
    shape = tf.shape(x)
    h, w = shape[-3], shape[-2]
    hp = (h + multiple - 1) // multiple * multiple
    wp = (w + multiple - 1) // multiple * multiple
    x = tf.gather(x, _reflect_indices(h, hp), axis=x.shape.rank - 3)
    return tf.gather(x, _reflect_indices(w, wp), axis=x.shape.rank - 2)


# ------------------------------------------------------------------------------ whole-image inference

_PADDED_FNS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def padded_fn(net, multiple: int, jit_compile: bool = False) -> Callable:
    """A tf.function: float32 [B, H, W, 3] (any H, W) -> reflect-pad, net(training=False), crop.

    Cached per (net, multiple, jit_compile): one trace serves every size (input_signature with None
    dims); under XLA each new shape compiles once.
    """
    key = (int(multiple), bool(jit_compile))
    cache = _PADDED_FNS.setdefault(net, {})
    if key not in cache:

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)], jit_compile=jit_compile)
        def fn(images):
            shape = tf.shape(images)
            out = net(pad_to_multiple(images, multiple), training=False)
            return tf.cast(out[:, : shape[1], : shape[2], :], tf.float32)

        cache[key] = fn
    return cache[key]


def _as_batch(image) -> tuple[np.ndarray, bool]:
    a = np.asarray(image)
    if a.ndim == 3:
        return a[None], True
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"expected an H x W x 3 image or a B x H x W x 3 batch, got shape {a.shape}")
    return a, False


def derain_image(net, image, multiple: int, jit_compile: bool = False) -> np.ndarray:
    """De-rain a whole image (H x W x 3) or batch (B x H x W x 3), uint8 or float 0..255, of any size.

    Pads (reflect) to ``multiple``, runs ``net`` in inference mode, crops back; returns float32 0..255
    of the input's shape. ``net`` is a Keras model (see :func:`padded_fn`).
    """
    batch, single = _as_batch(image)
    out = padded_fn(net, multiple, jit_compile)(tf.constant(batch, tf.float32)).numpy()
    return out[0] if single else out


# ------------------------------------------------------------------------------- precision / devices


def gpu_present() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def mixed_precision_policy(device: str | None = None) -> str:
    """The mixed policy for a device: "mixed_float16" on GPU, "mixed_bfloat16" on CPU (where float16
    has no fast kernels). device: "gpu", "cpu" or None (= GPU when one is present)."""
    on_gpu = gpu_present() if device is None else device.lower() == "gpu"
    return "mixed_float16" if on_gpu else "mixed_bfloat16"


def configure_precision(mixed_precision: bool, device: str | None = None) -> str:
    """Set Keras' global dtype policy before nets are built; returns the policy name.

    Under a mixed policy the convolutions compute in float16/bfloat16 with float32 variables (trained
    float32 weights load unchanged); the net's final GlobalResidual layer adds the residual to the
    float32 input in float32, so outputs stay float32 0..255.
    """
    import keras

    policy = mixed_precision_policy(device) if mixed_precision else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


# ------------------------------------------------------------------------------------------- tiles


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along an axis: 0, step, 2 step, ... (step = tile - overlap) until a tile reaches
    the end. Every tile is ``tile`` long except the last, clipped at ``size`` (and longer than
    ``overlap``); consecutive tiles share exactly ``overlap`` pixels."""
    step = tile - overlap
    starts = [0]
    while starts[-1] + tile < size:
        starts.append(starts[-1] + step)
    return starts


def _ramp(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * t)


def _rise(n: int, margin: int) -> np.ndarray:
    """Weights over a shared band of n pixels, rising from 0 (first ``margin`` px) to 1 (last
    ``margin`` px); the neighbour's falling weights are 1 minus these (a partition of unity)."""
    ramp = n - 2 * margin
    x = np.arange(n, dtype=np.float64)
    if ramp <= 0:
        return (x >= n / 2).astype(np.float64)
    return _ramp((x - margin + 0.5) / ramp)


def tile_weights_1d(starts: Sequence[int], index: int, size: int, tile: int, overlap: int, margin: int) -> np.ndarray:
    """Blend weights of tile ``index`` along one axis (length = the tile's clipped length)."""
    s = starts[index]
    e = min(s + tile, size)
    w = np.ones(e - s, dtype=np.float64)
    if index > 0:
        w[:overlap] *= _rise(overlap, margin)
    if index < len(starts) - 1:
        w[e - s - overlap :] *= 1.0 - _rise(overlap, margin)
    return w


def derain_tiled(
    fn: Callable,
    image,
    tile: int = DEFAULT_TILE,
    overlap: int = 208,
    multiple: int = 16,
    margin: int | None = None,
    out_dtype=np.float32,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """De-rain an H x W x 3 image (uint8 or float 0..255) tile by tile.

    fn: float32 [1, h, w, 3] -> [1, h, w, 3] de-rained 0..255, for any h, w <= tile (it pads to the
        net's multiple itself: :func:`padded_fn`, or an exported SavedModel's ``serve`` signature).
    tile, overlap: tile side and shared band width, both multiples of ``multiple``; tile >= 2 * overlap.
    multiple: the net's required multiple (tile origins are aligned to it).
    margin: pixels at a tile's inner edge given zero weight (default :func:`default_margin`).
    out_dtype: float32 (0..255) or uint8 (rounded).
    progress: called as progress(tiles_done, tiles_total).
    Never calls ``fn`` on more than tile x tile pixels; holds one band of tile rows (tile x W) in
    float32 besides the input and the output.
    """
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {a.shape}")
    tile, overlap, multiple = int(tile), int(overlap), int(multiple)
    if tile <= 0 or tile % multiple or overlap < 0 or overlap % multiple:
        raise ValueError(f"tile ({tile}) must be a positive and overlap ({overlap}) a non-negative multiple of {multiple}")
    if tile < 2 * overlap:
        raise ValueError(f"tile ({tile}) must be at least twice the overlap ({overlap})")
    margin = default_margin(overlap) if margin is None else int(margin)
    if not 0 <= 2 * margin <= overlap:
        raise ValueError(f"margin ({margin}) must be between 0 and overlap / 2 ({overlap / 2})")
    h, w = a.shape[:2]
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    wx = [tile_weights_1d(xs, j, w, tile, overlap, margin) for j in range(len(xs))]
    out = np.empty((h, w, 3), dtype=out_dtype)
    total, done = len(ys) * len(xs), 0
    band_h = min(tile, h)
    acc = np.zeros((band_h, w, 3), np.float32)
    wsum = np.zeros((band_h, w), np.float32)
    for i, y0 in enumerate(ys):
        y1 = min(y0 + tile, h)
        wy = tile_weights_1d(ys, i, h, tile, overlap, margin)
        for j, x0 in enumerate(xs):
            x1 = min(x0 + tile, w)
            patch = np.asarray(a[y0:y1, x0:x1], dtype=np.float32)[None]
            pred = fn(tf.constant(patch))
            pred = np.asarray(pred.numpy() if hasattr(pred, "numpy") else pred, dtype=np.float32)[0]
            if pred.shape != patch.shape[1:]:
                raise ValueError(f"fn returned shape {pred.shape} for a tile of shape {patch.shape[1:]}")
            wt = np.outer(wy, wx[j]).astype(np.float32)
            acc[: y1 - y0, x0:x1] += pred * wt[..., None]
            wsum[: y1 - y0, x0:x1] += wt
            done += 1
            if progress is not None:
                progress(done, total)
        # rows [y0, next start) receive no more tiles: normalise and write them; shift the band up
        y_next = ys[i + 1] if i + 1 < len(ys) else y1
        n = y_next - y0
        rows = acc[:n] / np.maximum(wsum[:n], 1e-12)[..., None]
        out[y0:y_next] = np.clip(np.round(rows), 0, 255) if np.dtype(out_dtype) == np.uint8 else rows
        acc[: band_h - n] = acc[n:].copy()
        acc[band_h - n :] = 0.0
        wsum[: band_h - n] = wsum[n:].copy()
        wsum[band_h - n :] = 0.0
    return out


def tile_count(height: int, width: int, tile: int, overlap: int) -> int:
    return len(tile_starts(height, tile, overlap)) * len(tile_starts(width, tile, overlap))


def seam_mask(height: int, width: int, tile: int, overlap: int) -> np.ndarray:
    """True on the shared bands between tiles (where more than one tile contributes)."""
    mask = np.zeros((height, width), bool)
    for axis, size in ((0, height), (1, width)):
        starts = tile_starts(size, tile, overlap)
        for s in starts[1:]:
            sl = [slice(None), slice(None)]
            sl[axis] = slice(s, min(s + overlap, size))
            mask[tuple(sl)] = True
    return mask


def describe_tiling(height: int, width: int, tile: int, overlap: int) -> str:
    ny, nx = len(tile_starts(height, tile, overlap)), len(tile_starts(width, tile, overlap))
    return f"{ny}x{nx} tiles of <= {tile} px, overlap {overlap}"


__all__ = [
    "DEFAULT_TILE",
    "configure_precision",
    "gpu_present",
    "mixed_precision_policy",
    "auto_overlap",
    "default_margin",
    "derain_image",
    "derain_tiled",
    "describe_tiling",
    "pad_to_multiple",
    "padded_fn",
    "receptive_radius",
    "round_up",
    "seam_mask",
    "tile_count",
    "tile_starts",
    "tile_weights_1d",
]
