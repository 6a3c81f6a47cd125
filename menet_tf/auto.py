"""``--model=auto``: one shipped model for light rain, one for heavy rain, and a measured rule that picks one
per photo.

The rule: de-rain with the heavy-rain model and measure how much it took away, the mean over the photo
of the luma it removed (:func:`rain_amount`, grey levels; rain only brightens, so only what got darker
counts). With the ``extra`` measure (the shipped rule's) the light model's amount is subtracted
(:func:`extra_rain`): real heavy rain is faint per pixel, so the heavy model alone removes about as much
from a real downpour as from benchmark light rain, while what it removes *beyond* the light model tells
them apart. Above the threshold the photo has heavy rain and keeps the heavy model's output; below it,
the light model's (light rain and photos without rain). The pair and the threshold are in
``menet_tf/pretrained/auto.json``, with the training pairs the threshold was fitted on
(``experiments.fit_auto``; never a test set) and how often it chose right on held-out sets.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

__all__ = ["AUTO", "AUTO_FILE", "MEASURES", "AutoDerainer", "AutoRule", "best_threshold", "extra_rain",
           "measure_amount", "rain_amount", "rule"]

AUTO = "auto"
AUTO_FILE = "auto.json"
# measure -> what it is (auto.json's "measure"; a file without one, or with the old sentence, is "heavy")
MEASURES = {
    "heavy": "menet_tf.auto.rain_amount of the heavy model's output (mean luma removed, grey levels)",
    "extra": "menet_tf.auto.extra_rain: the heavy model's rain amount minus the light model's (grey levels)",
}


def rain_amount(rainy, derained) -> float:
    """Mean over the image of max(0, luma(rainy) - luma(derained)), grey levels 0..255 (BT.601 luma)."""
    w = np.array([0.299, 0.587, 0.114], np.float32)
    diff = np.asarray(rainy, np.float32) @ w - np.asarray(derained, np.float32) @ w
    return float(np.maximum(diff, 0.0).mean())


def extra_rain(rainy, light_out, heavy_out) -> float:
    """What the heavy model removes beyond the light one: rain_amount(rainy, heavy_out) - rain_amount(rainy,
    light_out), grey levels (negative when the light model removes more)."""
    return rain_amount(rainy, heavy_out) - rain_amount(rainy, light_out)


def measure_amount(measure: str, rainy, light_out, heavy_out) -> float:
    """One image's amount by ``measure`` (a key of :data:`MEASURES`; ``light_out`` is unused, and may be None,
    for ``heavy``)."""
    if measure == "extra":
        return extra_rain(rainy, light_out, heavy_out)
    return rain_amount(rainy, heavy_out)


def best_threshold(light, heavy) -> tuple[float, int]:
    """(threshold, errors) fitted on training amounts: the midpoint of the gap between sorted amounts that
    puts the fewest training images on the wrong side (light above it, heavy at or below it); among equals,
    the widest gap (experiments.fit_auto)."""
    values = np.sort(np.concatenate([np.asarray(light, float), np.asarray(heavy, float)]))
    best = None
    for lo, hi in zip(values[:-1], values[1:]):
        if hi <= lo:
            continue
        t = (lo + hi) / 2
        errors = int((np.asarray(light) > t).sum() + (np.asarray(heavy) <= t).sum())
        key = (errors, -(hi - lo))
        if best is None or key < best[0]:
            best = (key, t, errors)
    if best is None:
        raise ValueError("need at least two different amounts to fit a threshold")
    return float(best[1]), best[2]


@dataclasses.dataclass(frozen=True)
class AutoRule:
    light: str
    heavy: str
    threshold: float
    card: dict
    measure: str = "heavy"

    def is_heavy(self, amount: float) -> bool:
        return amount > self.threshold

    @property
    def needs_light(self) -> bool:
        """Whether the measure needs the light model's output too."""
        return self.measure == "extra"

    def amount(self, rainy, light_out, heavy_out) -> float:
        """The rule's measure of one image (:func:`measure_amount`)."""
        return measure_amount(self.measure, rainy, light_out, heavy_out)


def rule(path: str | None = None) -> AutoRule:
    """The shipped rule (``menet_tf/pretrained/auto.json``); ValueError naming the file when absent or bad."""
    from menet_tf import pretrained

    path = path or os.path.join(pretrained.PRETRAINED_DIR, AUTO_FILE)
    try:
        with open(path) as f:
            card = json.load(f)
        measure = card.get("measure", "heavy")
        measure = "heavy" if measure == MEASURES["heavy"] else measure  # files written before "extra" existed
        r = AutoRule(card["light"], card["heavy"], float(card["threshold"]), card, measure)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: no usable auto rule ({e})") from None
    if r.measure not in MEASURES:
        raise ValueError(f"{path}: unknown measure {r.measure!r} (use one of {', '.join(MEASURES)})")
    for name in (r.light, r.heavy):
        if name not in pretrained.names():
            raise ValueError(f"{path}: names {name!r}, which is not a shipped model")
    return r


class AutoDerainer:
    """The :class:`menet_tf.derainer.Derainer` interface over the two models of a rule: ``derain`` picks per
    image, ``derain_batch`` per batch (by the batch's mean amount, so a video's frames are not split
    between the two within a batch). ``last_choice`` says what the last call picked."""

    def __init__(self, light, heavy, auto_rule: AutoRule):
        self.light, self.heavy, self.rule = light, heavy, auto_rule
        self.last_choice: str | None = None
        self.last_amount: float | None = None
        what = f"removes, beyond what {auto_rule.light} does," if auto_rule.needs_light else "removes"
        self.description = (f"auto: {auto_rule.light} or, for heavy rain (the heavy model {what} more than "
                            f"{auto_rule.threshold:.1f} grey levels on average), {auto_rule.heavy}")

    @classmethod
    def load(cls, auto_rule: AutoRule | None = None, **options) -> "AutoDerainer":
        from menet_tf import pretrained
        from menet_tf.derainer import Derainer

        auto_rule = auto_rule or rule()
        return cls(Derainer.load(model_dir=pretrained.model_dir(auto_rule.light), **options),
                   Derainer.load(model_dir=pretrained.model_dir(auto_rule.heavy), **options), auto_rule)

    # the parts of the Derainer interface that describe the run are the light model's (the two are alike)
    def __getattr__(self, name):
        if name in ("tile", "overlap", "multiple", "radius", "channel_attention", "two_pass",
                    "tiling_text", "plan", "run_whole", "scale_for"):
            return getattr(self.light, name)
        raise AttributeError(name)

    @property
    def rain_scale(self) -> str:
        return self.light.rain_scale

    @rain_scale.setter
    def rain_scale(self, value) -> None:  # both models run at the same rain scale
        self.light.rain_scale = self.heavy.rain_scale = str(value)

    def derain(self, rainy, progress=None, exact_float=False, after_tiles=None):
        from menet_tf.derainer import to_uint8

        def run_light():
            return self.light.derain(rainy, progress=progress, exact_float=exact_float, after_tiles=after_tiles)

        heavy = self.heavy.derain(rainy, progress=progress)
        light = run_light() if self.rule.needs_light else None
        measured = to_uint8(light) if light is not None and exact_float else light  # as fitted: uint8 outputs
        self.last_amount = self.rule.amount(rainy, measured, heavy)
        if self.rule.is_heavy(self.last_amount):
            self.last_choice = self.rule.heavy
            return heavy.astype(np.float32) if exact_float else heavy
        self.last_choice = self.rule.light
        return run_light() if light is None else light

    def derain_batch(self, frames):
        heavy = self.heavy.derain_batch(frames)
        light = self.light.derain_batch(frames) if self.rule.needs_light else None
        self.last_amount = float(np.mean([self.rule.amount(f, None if light is None else light[i], h)
                                          for i, (f, h) in enumerate(zip(frames, heavy))]))
        if self.rule.is_heavy(self.last_amount):
            self.last_choice = self.rule.heavy
            return heavy
        self.last_choice = self.rule.light
        return self.light.derain_batch(frames) if light is None else light
