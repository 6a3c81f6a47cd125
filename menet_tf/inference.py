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

With channel attention (CA) one pass is not enough: the CA block scales 64 feature channels by
``a = sigmoid(mean over the whole image of a 1/16-resolution map)``, so a tile run on its own sees its
own mean and differs from the whole image in its interior too. :func:`derain_tiled` given the Keras
net of a CA model therefore runs two passes (:func:`derain_tiled_ca`), both over the image reflect-padded
once to a multiple of 16 (exactly what whole-image inference pads; the padded uint8/float image is
image-sized, the net's activations stay tile-sized):

1. for windows of at most ``tile`` px whose origins are multiples of 16, the CA branch's pre-mean map
   (``ChannelAttention.pre_mean``, [1, h/16, w/16, 64]) is computed and only the cells of the window's
   *core* are summed; the cores partition the padded image's 1/16 grid, so every cell of the whole
   image's map is summed exactly once. A map cell depends on input pixels at most
   :func:`ca_receptive_radius` (46) px outside its 16 x 16 block; the CA convolutions zero-pad at the
   window border (unlike the whole image, except where the window border is the image border), so the
   cores stay ``CA_MARGIN`` (48) px away from inner window borders and each core cell is computed
   exactly as in the whole image. ``a = sigmoid(sum / number of cells)`` is then the whole image's
   attention (up to float rounding);
2. every tile runs through the net with the CA block applying that fixed ``a`` (the models of
   ``menet_tf.model.split_at_channel_attention``, which reuse the net's layers) and is blended as
   above, so the result equals whole-image inference as for nets without CA.

A bare callable ``fn`` (e.g. an exported SavedModel's signature) cannot be split: with CA its tiles
keep the tile-local mean and are approximate (docs/deployment.md measures both).
"""

from __future__ import annotations

import weakref
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

DEFAULT_TILE = 1024
#: width of the blending ramp inside an overlap band (pixels), when the band is wide enough.
DEFAULT_RAMP = 32
#: side (pixels) of a cell of channel attention's pre-mean map (two space_to_depth 2 before CA's two).
CA_CELL = 16


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


def ca_receptive_radius() -> int:
    """How far (pixels) outside its own 16 x 16 block a cell of the CA pre-mean map sees the input: 46.

    Interval propagation from a map cell c (1/16 resolution) back to the image: conv3, conv2 (3x3 at
    1/16) -> space_to_depth -> reduce2 (1x1), conv1 (3x3 at 1/8) -> space_to_depth -> reduce1 (1x1),
    layer2 (3x3 at 1/4) -> space_to_depth -> layer1 (3x3 at 1/2) -> space_to_depth: the cell depends on
    pixels 16c - 46 .. 16c + 15 + 46.
    """
    lo, hi = -2, 2  # conv3, conv2 at 1/16
    for k in (1, 1, 1, 0):  # conv1 at 1/8, layer2 at 1/4, layer1 at 1/2; none at full resolution
        lo, hi = 2 * lo - k, 2 * hi + 1 + k
    return max(-lo, hi - (CA_CELL - 1))


#: pass 1 of exact CA tiling keeps its summed cores this far (pixels) from inner window borders.
CA_MARGIN = round_up(ca_receptive_radius(), CA_CELL)  # 48


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


def _check_tiling(tile: int, overlap: int, multiple: int, margin: int | None) -> int:
    if tile <= 0 or tile % multiple or overlap < 0 or overlap % multiple:
        raise ValueError(f"tile ({tile}) must be a positive and overlap ({overlap}) a non-negative multiple of {multiple}")
    if tile < 2 * overlap:
        raise ValueError(f"tile ({tile}) must be at least twice the overlap ({overlap})")
    margin = default_margin(overlap) if margin is None else int(margin)
    if not 0 <= 2 * margin <= overlap:
        raise ValueError(f"margin ({margin}) must be between 0 and overlap / 2 ({overlap / 2})")
    return margin


def _as_image(image) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {a.shape}")
    return a


def _numpy(t) -> np.ndarray:
    return np.asarray(t.numpy() if hasattr(t, "numpy") else t, dtype=np.float32)


def _blend_tiles(predict: Callable, a: np.ndarray, out_hw: tuple[int, int], tile: int, overlap: int, margin: int,
                 out_dtype, tick: Callable[[], None]) -> np.ndarray:
    """Run ``predict`` (float32 [1, h, w, 3] -> [1, h, w, 3]) on the tiles of ``a`` and blend them; return
    the blend's top-left ``out_hw`` (a may be padded beyond it)."""
    h, w = a.shape[:2]
    oh, ow = out_hw
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    wx = [tile_weights_1d(xs, j, w, tile, overlap, margin) for j in range(len(xs))]
    out = np.empty((oh, ow, 3), dtype=out_dtype)
    band_h = min(tile, h)
    acc = np.zeros((band_h, w, 3), np.float32)
    wsum = np.zeros((band_h, w), np.float32)
    for i, y0 in enumerate(ys):
        y1 = min(y0 + tile, h)
        wy = tile_weights_1d(ys, i, h, tile, overlap, margin)
        for j, x0 in enumerate(xs):
            x1 = min(x0 + tile, w)
            patch = np.asarray(a[y0:y1, x0:x1], dtype=np.float32)[None]
            pred = _numpy(predict(tf.constant(patch)))[0]
            if pred.shape != patch.shape[1:]:
                raise ValueError(f"fn returned shape {pred.shape} for a tile of shape {patch.shape[1:]}")
            wt = np.outer(wy, wx[j]).astype(np.float32)
            acc[: y1 - y0, x0:x1] += pred * wt[..., None]
            wsum[: y1 - y0, x0:x1] += wt
            tick()
        # rows [y0, next start) receive no more tiles: normalise and write them; shift the band up
        y_next = ys[i + 1] if i + 1 < len(ys) else y1
        n = y_next - y0
        if y0 < oh:
            m = min(y_next, oh) - y0
            rows = acc[:m, :ow] / np.maximum(wsum[:m, :ow], 1e-12)[..., None]
            out[y0 : y0 + m] = np.clip(np.round(rows), 0, 255) if np.dtype(out_dtype) == np.uint8 else rows
        acc[: band_h - n] = acc[n:].copy()
        acc[band_h - n :] = 0.0
        wsum[: band_h - n] = wsum[n:].copy()
        wsum[band_h - n :] = 0.0
    return out


def _progress_ticker(progress, total: int) -> Callable[[], None]:
    done = [0]

    def tick():
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    return tick


def has_channel_attention(net) -> bool:
    """Whether a Keras net (``build_derain_net``) has the channel-attention block."""
    return any(layer.name == "channel_attention" for layer in getattr(net, "layers", ()))


def derain_tiled(
    fn,
    image,
    tile: int = DEFAULT_TILE,
    overlap: int = 208,
    multiple: int = 16,
    margin: int | None = None,
    out_dtype=np.float32,
    progress: Callable[[int, int], None] | None = None,
    jit_compile: bool = False,
) -> np.ndarray:
    """De-rain an H x W x 3 image (uint8 or float 0..255) tile by tile.

    fn: the Keras net (``build_derain_net`` / ``load_net``), or a function float32 [1, h, w, 3] ->
        [1, h, w, 3] de-rained 0..255 for any h, w <= tile that pads to the net's multiple itself
        (:func:`padded_fn`, or an exported SavedModel's ``serve`` signature).
        A Keras net *with channel attention* is tiled exactly, in two passes (:func:`derain_tiled_ca`:
        ``multiple`` must then be 16 and ``tile`` >= 2 * CA_MARGIN + 16 = 112); a Keras net without CA
        runs as ``padded_fn(net, multiple, jit_compile)``. A bare function is tiled in one pass, which is
        exact without CA (margin >= receptive radius) and approximate with CA (tile-local attention).
    tile, overlap: tile side and shared band width, both multiples of ``multiple``; tile >= 2 * overlap.
    multiple: the net's required multiple (tile origins are aligned to it).
    margin: pixels at a tile's inner edge given zero weight (default :func:`default_margin`).
    out_dtype: float32 (0..255) or uint8 (rounded).
    progress: called as progress(tiles_done, tiles_total) (both passes count, see :func:`tiled_calls`).
    jit_compile: XLA for the functions made from a Keras net (ignored for a bare function).
    Never calls the net on more than tile x tile pixels; holds one band of tile rows (tile x W) in
    float32 besides the input and the output (and, with CA, the input padded to a multiple of 16).
    """
    a = _as_image(image)
    tile, overlap, multiple = int(tile), int(overlap), int(multiple)
    import keras

    if isinstance(fn, keras.Model):
        if has_channel_attention(fn):
            map_fn, fixed_fn = ca_fns(fn, jit_compile)
            return derain_tiled_ca(map_fn, fixed_fn, a, tile=tile, overlap=overlap, multiple=multiple, margin=margin,
                                   out_dtype=out_dtype, progress=progress)
        fn = padded_fn(fn, multiple, jit_compile)
    margin = _check_tiling(tile, overlap, multiple, margin)
    h, w = a.shape[:2]
    tick = _progress_ticker(progress, tile_count(h, w, tile, overlap))
    return _blend_tiles(fn, a, (h, w), tile, overlap, margin, out_dtype, tick)


# ----------------------------------------------------------------- exact tiles with channel attention

_CA_FNS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def ca_fns(net, jit_compile: bool = False) -> tuple[Callable, Callable]:
    """(map_fn, fixed_fn) for a Keras net with channel attention, cached per (net, jit_compile):

    map_fn: float32 [B, H, W, 3] (H, W multiples of 16) -> CA's pre-mean map [B, H/16, W/16, 64];
    fixed_fn: (float32 [B, H, W, 3], attention float32 [B, 1, 1, 64]) -> de-rained [B, H, W, 3] float32,
        the net with the CA block applying the given attention.
    Both are tf.functions (one trace for every size) over ``menet_tf.model.split_at_channel_attention``'s
    models, which share the net's layers (weights loaded later into the net are seen too).
    """
    from menet_tf.model import split_at_channel_attention

    cache = _CA_FNS.setdefault(net, {})
    key = bool(jit_compile)
    if key not in cache:
        map_model, fixed_model = split_at_channel_attention(net)
        filters = fixed_model.inputs[1].shape[-1]

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)], jit_compile=jit_compile)
        def map_fn(images):
            return tf.cast(map_model(images, training=False), tf.float32)

        @tf.function(
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32), tf.TensorSpec([None, 1, 1, filters], tf.float32)],
            jit_compile=jit_compile,
        )
        def fixed_fn(images, attention):
            return tf.cast(fixed_model([images, attention], training=False), tf.float32)

        cache[key] = (map_fn, fixed_fn)
    return cache[key]


def ca_core_ranges(size: int, tile: int) -> list[tuple[int, int, int, int]]:
    """Pass-1 windows along one axis of a padded size (a multiple of 16): (start, end, core_start,
    core_end) in pixels. Windows of at most ``tile`` px start at multiples of 16 and overlap by
    2 * CA_MARGIN; a core is its window minus CA_MARGIN at each inner border (none at the image border),
    and the cores partition 0..size."""
    if size % CA_CELL or tile % CA_CELL or tile < 2 * CA_MARGIN + CA_CELL:
        raise ValueError(f"size ({size}) and tile ({tile}) must be multiples of {CA_CELL}, tile >= {2 * CA_MARGIN + CA_CELL}")
    starts = tile_starts(size, tile, 2 * CA_MARGIN)
    out = []
    for i, s in enumerate(starts):
        e = min(s + tile, size)
        c0 = s + CA_MARGIN if i > 0 else 0
        c1 = e - CA_MARGIN if i < len(starts) - 1 else size
        out.append((s, e, c0, c1))
    return out


def ca_attention_tiled(map_fn: Callable, padded: np.ndarray, tile: int, tick: Callable[[], None] | None = None) -> np.ndarray:
    """Pass 1: channel attention's ``a`` [1, 1, 1, C] (float32) of a whole padded image (H, W multiples
    of 16), from windows of at most tile x tile px: sigmoid(sum of the windows' core cells / cells)."""
    h, w = padded.shape[:2]
    rows, cols = ca_core_ranges(h, tile), ca_core_ranges(w, tile)
    total, cells = None, 0
    for y0, y1, cy0, cy1 in rows:
        for x0, x1, cx0, cx1 in cols:
            patch = np.asarray(padded[y0:y1, x0:x1], dtype=np.float32)[None]
            m = _numpy(map_fn(tf.constant(patch)))[0]
            if m.shape[:2] != ((y1 - y0) // CA_CELL, (x1 - x0) // CA_CELL):
                raise ValueError(f"map_fn returned shape {m.shape} for a window of shape {patch.shape[1:]}")
            core = m[(cy0 - y0) // CA_CELL : (cy1 - y0) // CA_CELL, (cx0 - x0) // CA_CELL : (cx1 - x0) // CA_CELL]
            part = core.sum(axis=(0, 1), dtype=np.float64)
            total = part if total is None else total + part
            cells += core.shape[0] * core.shape[1]
            if tick is not None:
                tick()
    assert cells == (h // CA_CELL) * (w // CA_CELL), "pass-1 cores must partition the map"
    mean = total / cells
    return (1.0 / (1.0 + np.exp(-mean))).astype(np.float32).reshape(1, 1, 1, -1)


def derain_tiled_ca(
    map_fn: Callable,
    fixed_fn: Callable,
    image,
    tile: int = DEFAULT_TILE,
    overlap: int = 208,
    multiple: int = 16,
    margin: int | None = None,
    out_dtype=np.float32,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Exact tiled inference of a net with channel attention, in two passes (module docstring).

    map_fn, fixed_fn: as returned by :func:`ca_fns` (any functions of those signatures; they get
    unpadded windows whose sides are multiples of 16 and at most ``tile``). The image is reflect-padded
    once to a multiple of 16, as whole-image inference does; pass 1 computes the whole image's attention
    from windows (:func:`ca_attention_tiled`), pass 2 runs and blends the tiles of the padded image with
    it, and the output is cropped back. Other arguments as in :func:`derain_tiled`.
    Under a mixed-precision policy the map's mean is taken in float64 and ``a`` is rounded to the compute
    dtype, whereas whole-image inference averages in that dtype: tiles then differ from the whole image by
    16-bit rounding (up to ~2 grey levels on a random 1-block net in bfloat16, about as much as bfloat16
    vs. float32 whole-image inference differ), not by tile-local attention.
    """
    a = _as_image(image)
    tile, overlap, multiple = int(tile), int(overlap), int(multiple)
    if multiple != CA_CELL:
        raise ValueError(f"a net with channel attention needs multiple {CA_CELL}, got {multiple}")
    margin = _check_tiling(tile, overlap, multiple, margin)
    if tile < 2 * CA_MARGIN + CA_CELL:
        raise ValueError(f"exact tiles with channel attention need tile >= {2 * CA_MARGIN + CA_CELL}, got {tile}")
    h, w = a.shape[:2]
    padded = np.pad(a, ((0, -h % CA_CELL), (0, -w % CA_CELL), (0, 0)), mode="reflect")
    n1, n2 = tiled_calls(h, w, tile, overlap, channel_attention=True)
    tick = _progress_ticker(progress, n1 + n2)
    attention = tf.constant(ca_attention_tiled(map_fn, padded, tile, tick))
    return _blend_tiles(lambda x: fixed_fn(x, attention), padded, (h, w), tile, overlap, margin, out_dtype, tick)


def tiled_calls(height: int, width: int, tile: int, overlap: int, channel_attention: bool = False) -> tuple[int, int]:
    """(pass-1 windows, pass-2 tiles) of :func:`derain_tiled` on a Keras net: (0, tiles) without channel
    attention; with it, windows of the image padded to a multiple of 16 (:func:`ca_core_ranges`)."""
    if not channel_attention:
        return 0, tile_count(height, width, tile, overlap)
    hp, wp = round_up(height, CA_CELL), round_up(width, CA_CELL)
    return len(ca_core_ranges(hp, tile)) * len(ca_core_ranges(wp, tile)), tile_count(hp, wp, tile, overlap)


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


# ------------------------------------------------------------------------------- streak scale

# Rain100L / Rain100H images are 481 x 321: the training data's streaks are drawn at that scale.
BENCHMARK_SHORT_SIDE = 321
# experiments.rain_scale_study: shrinking by 1/1.5 of the true streak scale beat shrinking by all of it
# (less background detail lost, streaks still small enough), at every scale measured.
AUTO_RAIN_SCALE_SHORT_SIDE = 481
MAX_AUTO_RAIN_SCALE = 8.0


#: the flips of the self-ensemble, as image axes (0: up-down, 1: left-right): none, left-right, up-down and both
#: (a half turn). Quarter turns are left out: they lay falling streaks on their side, which no training pair shows
#: (measured on the held-out heavy set: the 8-transform mean of menet-lb-squall-v2 falls to 17.0 dB from 24.5).
SELF_ENSEMBLE_FLIPS = ((), (1,), (0,), (0, 1))


def self_ensemble(run: Callable, image, batch: bool = False) -> np.ndarray:
    """The geometric self-ensemble: the mean of ``run`` over the flips of :data:`SELF_ENSEMBLE_FLIPS`.

    ``run(flipped, k)`` de-rains the ``k``-th flipped copy of ``image`` (H x W x 3, or B x H x W x 3 with
    ``batch``) and returns float 0..255 of its shape; each output is flipped back and the four are averaged
    in float32 (in the order of the flips). The net is not flip-equivariant (its kernels are not
    symmetric), so the four see the rain differently; their mean is what the model cards' "+ self-ensemble"
    scores measure, at four times the cost.
    """
    x = np.asarray(image)
    shift = 1 if batch else 0
    total = None
    for k, flip in enumerate(SELF_ENSEMBLE_FLIPS):
        axes = tuple(a + shift for a in flip)
        out = _numpy(run(np.ascontiguousarray(np.flip(x, axes)) if axes else x, k))
        out = np.flip(out, axes) if axes else out
        total = out if total is None else total + out
    return total / np.float32(len(SELF_ENSEMBLE_FLIPS))


def auto_rain_scale(height: int, width: int) -> float:
    """A guess of the rain scale to de-rain a photo at, from its size alone (streaks are a roughly
    constant fraction of a photo's field of view): its short side over 481 px (1.5 x the benchmark
    images' 321, the study's best reading), clamped to [1, 8]. A 481 x 321 benchmark image gets 1."""
    return float(min(max(min(height, width) / AUTO_RAIN_SCALE_SHORT_SIDE, 1.0), MAX_AUTO_RAIN_SCALE))


def shrink_for_rain_scale(image, scale: float) -> np.ndarray:
    """``image`` shrunk by ``scale`` (area averaging), float32: what :func:`derain_at_scale` runs the net on."""
    a = np.asarray(image, dtype=np.float32)
    h, w = a.shape[:2]
    small_hw = (max(1, round(h / scale)), max(1, round(w / scale)))
    return tf.image.resize(a[None], small_hw, method="area").numpy()[0]


def derain_at_scale(derain: Callable, image, scale: float, small: np.ndarray | None = None) -> np.ndarray:
    """De-rain ``image`` (H x W x 3, uint8 or float 0..255) whose streaks are ``scale`` times larger than
    the training data's: the net runs on the image shrunk by ``scale`` (area averaging, where its streaks
    have the training scale), and the rain layer it removes there (shrunk input minus its output) is
    enlarged back (bilinear) and subtracted from the full-resolution image, so the background keeps its
    full-resolution detail. ``derain``: H' x W' x 3 float32 -> H' x W' x 3 float32 (any size); ``small``:
    :func:`shrink_for_rain_scale` of the image when the caller has it already. Returns float32 0..255 of
    the image's shape; ``scale <= 1`` is ``derain(image)`` itself."""
    a = np.asarray(image, dtype=np.float32)
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {a.shape}")
    if scale <= 1.0:
        return np.asarray(derain(a), dtype=np.float32)
    h, w = a.shape[:2]
    small = shrink_for_rain_scale(a, scale) if small is None else small
    rain = small - np.asarray(derain(small), dtype=np.float32)
    rain_full = tf.image.resize(rain[None], (h, w), method="bilinear").numpy()[0]
    return np.clip(a - rain_full, 0.0, 255.0)


__all__ = [
    "DEFAULT_TILE",
    "SELF_ENSEMBLE_FLIPS",
    "self_ensemble",
    "BENCHMARK_SHORT_SIDE",
    "auto_rain_scale",
    "derain_at_scale",
    "shrink_for_rain_scale",
    "configure_precision",
    "gpu_present",
    "mixed_precision_policy",
    "auto_overlap",
    "CA_CELL",
    "CA_MARGIN",
    "ca_attention_tiled",
    "ca_core_ranges",
    "ca_fns",
    "ca_receptive_radius",
    "derain_tiled_ca",
    "has_channel_attention",
    "tiled_calls",
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
