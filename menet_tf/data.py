"""The five-crop training and evaluation pipelines (spec section 5).

Finding, checking and splitting the pairs of a data folder is :mod:`menet_tf.pairs` (its layouts,
conversions and error texts are documented there); its public names are re-exported here, so
``menet_tf.data.find_pairs`` and ``menet_tf.data.DataError`` keep working.

Pipelines
---------
:func:`five_crop_with_flips` cuts the 10 crops of the paper: top-left, top-right, bottom-left,
bottom-right, centre (offsets ``round((H-c)/2)``, ``round((W-c)/2)`` with Python's banker's rounding:
481 -> 128, 321 -> 48), then the same five on the left-right flipped image.

:func:`make_train_dataset` decodes every file once (while scanning), cuts the 10 patches of every
pair as uint8 into one in-memory array (this array *is* the uint8 cache: later epochs touch no file
and no decoder), then per epoch: shuffle of all patch indices (``reshuffle_each_iteration=True``,
reproducible with ``seed``), ``batch(drop_remainder=True)``, gather + cast to float32 0..255,
``prefetch(AUTOTUNE)``. :func:`make_paper_eval_dataset` gives the same crops in order (no shuffle, no
drop); :func:`iterate_full_images` yields whole images of any size.

Memory: the patches take ``10 * c * c * 3`` bytes per pair and side (RainTrainH, 1800 pairs, c = 224:
2 x 2.7 GB), held once as TF tensors; while they are handed to TF the peak is about 1.5 times that. ``experiments.train`` does
not hold them: it cuts the crops on the fly from :mod:`menet_tf.patch_source` (``--cache=memory|disk|none``),
byte for byte the same batches as :func:`make_epoch_dataset`.
"""

from __future__ import annotations

import os
import sys
from typing import Iterator

import numpy as np

from menet_tf.imageio import read_image
from menet_tf.pairs import (  # re-exported (see __all__): the data API of earlier releases
    GLOB_LAYOUT,
    LAYOUTS,
    SIDECAR_FILES,
    DataError,
    Layout,
    PairList,
    Problem,
    ScannedPairs,
    _as_pair_list,
    check_pair,
    discover_pairs,
    duplicate_backgrounds,
    find_pairs,
    grouped_split,
    natural_key,
    scan_pairs,
)

PAPER_CROP_SIZE = 224
CROPS_PER_IMAGE = 10

__all__ = [
    # the pipelines
    "PAPER_CROP_SIZE", "CROPS_PER_IMAGE", "crop_offsets", "five_crop_with_flips", "make_patches",
    "make_train_dataset", "make_epoch_dataset", "epoch_indices", "make_paper_eval_dataset",
    "iterate_full_images",
    # re-exported from menet_tf.pairs
    "GLOB_LAYOUT", "LAYOUTS", "SIDECAR_FILES", "DataError", "Layout", "PairList", "Problem", "ScannedPairs",
    "check_pair", "discover_pairs", "duplicate_backgrounds", "find_pairs", "grouped_split", "natural_key",
    "scan_pairs",
]


# ----------------------------------------------------------------------------------------------
# Five crops with flips


def crop_offsets(height: int, width: int, crop_size: int = PAPER_CROP_SIZE) -> list[tuple[int, int]]:
    """(top, left) of the five crops: top-left, top-right, bottom-left, bottom-right, centre."""
    if height < crop_size or width < crop_size:
        raise ValueError(f"image is {width}x{height} (width x height), smaller than the "
                         f"{crop_size}x{crop_size} crop")
    b, r = height - crop_size, width - crop_size
    return [(0, 0), (0, r), (b, 0), (b, r), (round(b / 2), round(r / 2))]


def _five_crop_into(image: np.ndarray, crop_size: int, out: np.ndarray) -> None:
    offsets = crop_offsets(image.shape[0], image.shape[1], crop_size)
    flipped = np.ascontiguousarray(image[:, ::-1])  # one reversed copy; the crops then copy forwards
    for k, src in enumerate((image, flipped)):
        for j, (t, l) in enumerate(offsets):
            out[5 * k + j] = src[t : t + crop_size, l : l + crop_size]


def five_crop_with_flips(image, crop_size: int = PAPER_CROP_SIZE):
    """The 10 crops of the paper, stacked as [10, c, c, C] (see the module docstring for the order).

    ``image`` is an H x W (x C) numpy array (result: numpy, same dtype) or a tf tensor (result: tf
    tensor; the centre offset uses ``tf.round``, which also rounds half to even).
    """
    if not _is_tf_tensor(image):
        a = np.asarray(image)
        out = np.empty((CROPS_PER_IMAGE, crop_size, crop_size) + a.shape[2:], a.dtype)
        _five_crop_into(a, crop_size, out)
        return out
    return _five_crop_tf(image, crop_size)


def _is_tf_tensor(x) -> bool:
    tf = sys.modules.get("tensorflow")  # a tf tensor exists only if TensorFlow was imported
    return tf is not None and isinstance(x, (tf.Tensor, tf.Variable))


def _five_crop_tf(image, crop_size: int):
    import tensorflow as tf

    c = crop_size
    static = image.shape
    if static.rank is not None and static[0] is not None and static[1] is not None:
        crop_offsets(int(static[0]), int(static[1]), c)  # a clear ValueError for a too small image
    shape = tf.shape(image)
    b, r = shape[0] - c, shape[1] - c
    tf.debugging.assert_non_negative(tf.minimum(b, r), message=f"image smaller than the {c}x{c} crop")
    half = lambda v: tf.cast(tf.round(tf.cast(v, tf.float64) / 2.0), tf.int32)  # noqa: E731
    offsets = [(0, 0), (0, r), (b, 0), (b, r), (half(b), half(r))]
    flipped = tf.reverse(image, axis=[1])
    return tf.stack([src[t : t + c, l : l + c] for src in (image, flipped) for t, l in offsets])


# ----------------------------------------------------------------------------------------------
# Pipelines


def make_patches(data_dir_or_pairs, crop_size: int = PAPER_CROP_SIZE, skip_bad_pairs: bool = False,
                 rainy_glob: str | None = None, clean_glob: str | None = None, progress: bool = False):
    """All 10 crops of every good pair as uint8: (rainy [N*10, c, c, 3], clean [N*10, c, c, 3], scanned).

    Patch ``10 * i + j`` is crop j (order of :func:`five_crop_with_flips`) of pair ``scanned.pairs[i]``.
    Each file is decoded once; whole images are not kept.
    """
    pl = _as_pair_list(data_dir_or_pairs, rainy_glob, clean_glob)
    n_max = CROPS_PER_IMAGE * len(pl.pairs)
    rainy = np.empty((n_max, crop_size, crop_size, 3), np.uint8)
    clean = np.empty_like(rainy)

    def cut(i, r, c):
        _five_crop_into(r, crop_size, rainy[CROPS_PER_IMAGE * i : CROPS_PER_IMAGE * (i + 1)])
        _five_crop_into(c, crop_size, clean[CROPS_PER_IMAGE * i : CROPS_PER_IMAGE * (i + 1)])

    scanned = scan_pairs(pl, crop_size=crop_size, skip_bad_pairs=skip_bad_pairs, keep_images=False,
                         progress=progress, on_pair=cut)
    n = CROPS_PER_IMAGE * len(scanned.pairs)
    return rainy[:n], clean[:n], scanned


def _gather_dataset(patches: list, indices):
    """Batches of patch indices -> (rainy, clean) float32 batches gathered from the uint8 patch arrays.

    ``patches`` is a list [rainy, clean] of numpy arrays; it is emptied while converting (so that the
    numpy and the TF copies of both sides do not all live at once).
    """
    import tensorflow as tf

    r = tf.constant(patches.pop(0))
    c = tf.constant(patches.pop(0))

    @tf.autograph.experimental.do_not_convert
    def gather(idx):
        return tf.cast(tf.gather(r, idx), tf.float32), tf.cast(tf.gather(c, idx), tf.float32)

    return indices.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)


def make_train_dataset(data_dir_or_pairs, crop_size: int = PAPER_CROP_SIZE, batch_size: int = 20,
                       seed: int | None = None, skip_bad_pairs: bool = False, rainy_glob: str | None = None,
                       clean_glob: str | None = None, progress: bool = False):
    """The training pipeline: ``(dataset, num_patches)``.

    Elements are (rainy, clean) float32 0..255 of shape [batch_size, crop_size, crop_size, 3]; every
    pair gives its 10 crops (rainy and clean cut identically), ``num_patches = 10 * pairs``; an epoch
    is ``num_patches // batch_size`` batches (the last incomplete batch dropped), reshuffled over all
    patches every epoch (a fixed ``seed`` makes the sequence of epoch orders reproducible). All data
    problems raise :class:`DataError` here, before any step (see the module docstring).
    """
    import tensorflow as tf

    patches = list(make_patches(data_dir_or_pairs, crop_size, skip_bad_pairs, rainy_glob, clean_glob, progress)[:2])
    n = len(patches[0])
    if n < batch_size:
        raise DataError(f"only {n} patches, fewer than one batch of {batch_size}: an epoch would be empty")
    idx = tf.data.Dataset.range(n).shuffle(n, seed=seed, reshuffle_each_iteration=True)
    return _gather_dataset(patches, idx.batch(batch_size, drop_remainder=True)), n


def make_epoch_dataset(rainy: np.ndarray, clean: np.ndarray, batch_size: int, seed: int, start_epoch: int,
                       epochs: int, steps_per_epoch: int | None = None):
    """Training batches for epochs ``[start_epoch, epochs)`` in one dataset, for exactly resumable training.

    Epoch ``e`` visits the patches in a permutation drawn statelessly from ``(seed, e)``, so the data
    order of any epoch is the same whether training ran straight through or was stopped and resumed.
    ``rainy`` / ``clean``: uint8 patch arrays from :func:`make_patches`; each epoch yields
    ``min(len // batch_size, steps_per_epoch)`` full batches of (rainy, clean) float32 0..255.
    """
    return _gather_dataset([rainy, clean], epoch_indices(len(rainy), batch_size, seed, start_epoch, epochs,
                                                        steps_per_epoch))


def epoch_indices(n: int, batch_size: int, seed: int, start_epoch: int, epochs: int,
                  steps_per_epoch: int | None = None):
    """Batches of patch indices for epochs ``[start_epoch, epochs)``: epoch ``e`` is a permutation of
    ``range(n)`` drawn statelessly from ``(seed, e)``, cut into ``min(n // batch_size, steps_per_epoch)``
    full batches (shared by every training pipeline, see ``menet_tf.patch_source``)."""
    import tensorflow as tf

    full = n // batch_size
    if full < 1:
        raise DataError(f"only {n} patches, fewer than one batch of {batch_size}: an epoch would be empty")
    steps = min(full, steps_per_epoch or full)

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder=True).take(steps)

    return tf.data.Dataset.range(start_epoch, epochs).flat_map(one_epoch)


def make_paper_eval_dataset(data_dir_or_pairs, crop_size: int = PAPER_CROP_SIZE, batch_size: int = 20,
                            skip_bad_pairs: bool = False, rainy_glob: str | None = None,
                            clean_glob: str | None = None, progress: bool = False):
    """The paper protocol's test crops: dataset of (rainy, clean) float32 0..255 [b, c, c, 3] batches.

    10 crops per pair (order of :func:`five_crop_with_flips`), pairs in order, no shuffle, no crop
    dropped (the last batch may be smaller): ``10 * pairs`` crops in all.
    """
    import tensorflow as tf

    patches = list(make_patches(data_dir_or_pairs, crop_size, skip_bad_pairs, rainy_glob, clean_glob, progress)[:2])
    return _gather_dataset(patches, tf.data.Dataset.range(len(patches[0])).batch(batch_size))


def iterate_full_images(data_dir_or_pairs, skip_bad_pairs: bool = False, rainy_glob: str | None = None,
                        clean_glob: str | None = None) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """Yield (name, rainy uint8 H x W x 3, clean uint8) for full-image evaluation, any size.

    ``name`` is the rainy file's name without extension (e.g. ``"rain-001"``). Every pair is checked
    (decoded) when this is called, so problems raise before the first image is used; images are then
    decoded again one at a time, not all kept in memory.
    """
    scanned = scan_pairs(data_dir_or_pairs, crop_size=None, skip_bad_pairs=skip_bad_pairs, keep_images=False,
                         rainy_glob=rainy_glob, clean_glob=clean_glob)

    def gen():
        for rp, cp in scanned.pairs:
            yield os.path.splitext(os.path.basename(rp))[0], read_image(rp), read_image(cp)

    return gen()
