"""How much rain-streak-like structure an image holds, without a clean reference: for real rainy photos.

Real photos have no ground truth, so models are compared on them by eye, which is noisy. This measure
makes the comparison a number: rain streaks are thin, bright lines, all close to one direction, so an
image's *streak energy* is the strongest, over directions up to 30 degrees from vertical, of the mean
positive response of a bright-line detector averaged along that direction:

  1. Y = 0.299 R + 0.587 G + 0.114 B (0..255), rotated so that the direction tested is vertical;
  2. bright thin line across: Y - (Y two pixels left + Y two pixels right) / 2;
  3. coherence along the streak: a ``length``-pixel running mean down the columns;
  4. the mean of the positive part over the interior (``margin`` pixels off every border, which the
     rotation fills by reflection), and the largest over the directions.

Background structure that is oriented and bright-thin (poles, stripes, folds) counts too, so the number
compares versions of **one** photo (rainy vs de-rained by several models): the fraction of the rainy
photo's streak energy a model removes (:func:`fraction_removed`). Texture that a model smooths away
lowers it as well, so read it beside the pictures.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["streak_energy", "fraction_removed"]


def _luma(image) -> np.ndarray:
    a = np.asarray(image, np.float64)
    if a.ndim == 3:
        a = 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    if a.ndim != 2:
        raise ValueError(f"expected an H x W (x 3) image, got shape {np.shape(image)}")
    return a


DEFAULT_ANGLES = tuple(float(a) for a in range(-30, 31, 5))  # degrees from vertical


def streak_energy(image, angles=DEFAULT_ANGLES, length: int = 15, margin: int = 20) -> tuple[float, float]:
    """(energy, angle): the streak energy of ``image`` (H x W x 3 or H x W, 0..255) and the direction
    of ``angles`` where it is largest, in degrees from vertical (positive: the top of the streak leans
    right, as in ``menet_tf.synthesis.streak_kernel``)."""
    y = _luma(image)
    if min(y.shape) <= 2 * margin + length:
        raise ValueError(f"image {y.shape} too small for margin {margin} and length {length}")
    best = (-1.0, 0.0)
    for angle in angles:
        # ndimage.rotate turns the content counter-clockwise by `angle`: a streak whose top leans right
        # by `angle` becomes vertical
        r = ndimage.rotate(y, float(angle), reshape=False, order=1, mode="reflect")
        line = r - 0.5 * (np.roll(r, 2, axis=1) + np.roll(r, -2, axis=1))
        along = ndimage.uniform_filter1d(line, length, axis=0)
        e = float(np.maximum(along, 0.0)[margin:-margin, margin:-margin].mean())
        if e > best[0]:
            best = (e, float(angle))
    return best


def fraction_removed(rainy, derained, reference: tuple[float, float] | None = None, **kwargs) -> float:
    """1 - streak energy of ``derained`` / that of ``rainy``, both measured in the rainy photo's
    direction of largest energy. ``reference``: ``streak_energy(rainy, **kwargs)`` when already known
    (several outputs of one rainy image), so that it is not measured again."""
    e_rainy, angle = reference if reference is not None else streak_energy(rainy, **kwargs)
    e_out, _ = streak_energy(derained, **dict(kwargs, angles=(angle,)))
    return 1.0 - e_out / e_rainy if e_rainy > 0 else 0.0
