"""Where the training patches come from, with memory that does not grow with the patches (``--cache``).

Patch ``p`` is crop ``p % 10`` (the order of :func:`menet_tf.data.five_crop_with_flips`: the five crops,
then the same five of the horizontally flipped image) of good pair ``p // 10`` -- exactly the patch
``menet_tf.data.make_patches`` cuts, byte for byte; the batches of epoch ``e`` gather the patches of the
same (seed, e) permutation as :func:`menet_tf.data.make_epoch_dataset`. So whatever the cache, training
sees the same bytes in the same order, and resume stays exact. The pairs are decoded and checked once
before training either way (every data problem is reported before the first step).

``memory`` (default)  keeps the decoded images (2 x H x W x 3 bytes per pair: 0.93 MB for 481 x 321)
                      and cuts each batch's crops on the fly, instead of the 10 overlapping crops per
                      side that make_patches keeps (3.0 MB per pair at 224 x 224).
``disk``              writes each decoded pair once to an uncompressed ``.npy`` file in a cache folder
                      and memory-maps only the pairs a batch needs (resident memory stays flat; the
                      operating system's page cache does the rest).
``none``              decodes the pairs a batch needs from their image files every time, in parallel
                      threads (nothing kept; slowest).
"""

from __future__ import annotations

import os
import threading
from typing import Sequence

import numpy as np

from menet_tf import data as data_lib
from menet_tf.atomic import atomic_path

CACHE_MODES = ("memory", "disk", "none")
CACHE_DIRNAME = "cache"
_NPY_HEADER_LOCK = threading.Lock()


def crop(image: np.ndarray, j: int, crop_size: int) -> np.ndarray:
    """Crop ``j`` (0..9) of ``image``, as ``five_crop_with_flips`` cuts it (a copy)."""
    t, l = data_lib.crop_offsets(image.shape[0], image.shape[1], crop_size)[j % 5]
    if j >= 5:  # the flipped image's crop at the same offset
        return np.ascontiguousarray(image[:, ::-1][t : t + crop_size, l : l + crop_size])
    return np.array(image[t : t + crop_size, l : l + crop_size])


class PatchSource:
    """The patches of the good pairs of a data set, from one of the CACHE_MODES (see the module doc)."""

    def __init__(self, pairs: Sequence[tuple[str, str]], crop_size: int, mode: str,
                 images: list | None = None, cache_files: list[str] | None = None):
        self.pairs, self.crop_size, self.mode = list(pairs), int(crop_size), mode
        self._images, self._files = images, cache_files

    def __len__(self) -> int:
        return data_lib.CROPS_PER_IMAGE * len(self.pairs)

    def pair(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The decoded (rainy, clean) uint8 images of good pair ``i``."""
        if self.mode == "memory":
            return self._images[i]
        if self.mode == "disk":
            # np.load parses the header with ast.literal_eval, which CPython 3.11 does not make thread-safe
            # ("AST constructor recursion depth mismatch" from tf.data's parallel map): one at a time
            with _NPY_HEADER_LOCK:
                both = np.load(self._files[i], mmap_mode="r")  # [2, H, W, 3]; unmapped when dropped
            return both[0], both[1]
        rainy, clean, problems = data_lib.check_pair(*self.pairs[i], crop_size=self.crop_size)
        if problems:  # the file changed since it was checked
            raise data_lib.DataError("; ".join(f"{p.path}: {p.problem}" for p in problems), problems)
        return rainy, clean

    def crops(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """(rainy, clean) uint8 [len(indices), c, c, 3] of the given patch indices, in that order; each
        pair a batch needs is loaded once."""
        indices = np.asarray(indices, np.int64)
        c, per = self.crop_size, data_lib.CROPS_PER_IMAGE
        rainy = np.empty((len(indices), c, c, 3), np.uint8)
        clean = np.empty_like(rainy)
        for i in np.unique(indices // per):
            r, cl = self.pair(int(i))
            for k in np.flatnonzero(indices // per == i):
                j = int(indices[k] % per)
                rainy[k], clean[k] = crop(r, j, c), crop(cl, j, c)
        return rainy, clean


def make_patch_source(data_dir_or_pairs, crop_size: int, mode: str = "memory", cache_dir: str | None = None,
                      skip_bad_pairs: bool = False, rainy_glob: str | None = None, clean_glob: str | None = None,
                      progress: bool = False) -> PatchSource:
    """Decode and check every pair once (``data.scan_pairs``), then keep what ``mode`` keeps.
    ``cache_dir`` (mode "disk"): where the ``pair-<i>.npy`` files go, written whole or not at all."""
    if mode not in CACHE_MODES:
        raise ValueError(f"cache mode must be one of {', '.join(CACHE_MODES)}, got {mode!r}")
    images: list | None = [] if mode == "memory" else None
    files: list[str] | None = None
    if mode == "disk":
        if not cache_dir:
            raise ValueError("the disk cache needs a cache_dir")
        os.makedirs(cache_dir, exist_ok=True)
        files = []

    def keep(i, rainy, clean):
        if images is not None:
            images.append((rainy, clean))
        elif files is not None:
            path = os.path.join(cache_dir, f"pair-{i:06d}.npy")
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, np.stack([rainy, clean]))
            files.append(path)

    scanned = data_lib.scan_pairs(data_dir_or_pairs, crop_size=crop_size, skip_bad_pairs=skip_bad_pairs,
                                  keep_images=False, progress=progress, on_pair=keep,
                                  rainy_glob=rainy_glob, clean_glob=clean_glob)
    return PatchSource(scanned.pairs, crop_size, mode, images=images, cache_files=files)


def make_source_epoch_dataset(source: PatchSource, batch_size: int, seed: int, start_epoch: int, epochs: int,
                              steps_per_epoch: int | None = None):
    """:func:`menet_tf.data.make_epoch_dataset`'s batches (same permutation of epoch e, same bytes), cut
    from ``source`` on the fly; "none" decodes in parallel threads (the decoders release the GIL)."""
    import tensorflow as tf

    indices = data_lib.epoch_indices(len(source), batch_size, seed, start_epoch, epochs, steps_per_epoch)
    c = source.crop_size

    @tf.autograph.experimental.do_not_convert
    def load(idx):
        rainy, clean = tf.numpy_function(source.crops, [idx], [tf.uint8, tf.uint8], stateful=False)
        rainy.set_shape([None, c, c, 3])
        clean.set_shape([None, c, c, 3])
        return tf.cast(rainy, tf.float32), tf.cast(clean, tf.float32)

    return indices.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
