"""A loaded de-raining model applied to uint8 RGB images: the one code path of ``derain`` (photos), its
videos and the web page, so that all three give the same bytes for the same image and model.

    d = Derainer.load(model_dir=pretrained.model_dir("menet-lb-multiscale"))
    out = d.derain(rainy)                    # H x W x 3 uint8 -> H x W x 3 uint8
    outs = d.derain_batch(frames)            # B x H x W x 3 uint8, one net call when no tiles are needed

Tiles (``tile``, ``tile_overlap``; exact for CA nets from a model directory, in two passes) and the rain
scale (``rain_scale``: a number >= 1 or ``"auto"``, :func:`menet_tf.inference.derain_at_scale`) are those of
``experiments.derain``, whose flags document them. ``self_ensemble=True`` de-rains each image four times, flipped
(:func:`menet_tf.inference.self_ensemble`), and returns the mean.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from typing import Callable

import numpy as np

__all__ = ["Derainer", "Plan", "set_self_ensemble", "to_uint8"]


def to_uint8(image) -> np.ndarray:
    """float 0..255 -> uint8, rounded half to even and clipped (what every output of the project gets)."""
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class Plan:
    """How one image of a size is de-rained: at which rain scale, at which net input size, in how many
    tiles (``tiles`` = 1: whole) and attention windows (``windows``: the first pass of exact CA tiles), all
    ``passes`` times (4 with the self-ensemble, else 1)."""

    scale: float
    net_height: int
    net_width: int
    use_tiles: bool
    windows: int
    tiles: int
    passes: int = 1

    @property
    def net_calls(self) -> int:
        """Net calls for one image: what ``progress`` of :meth:`Derainer.derain` counts to."""
        return self.passes * (self.windows + self.tiles)


def set_self_ensemble(derainer, on: bool) -> None:
    """Switch the self-ensemble of a loaded de-rainer (a :class:`Derainer`, or both nets of a
    :class:`menet_tf.auto.AutoDerainer`) for its next input."""
    for d in (derainer.light, derainer.heavy) if hasattr(derainer, "rule") else (derainer,):
        d.self_ensemble = bool(on)


def _checked_rain_scale(rain_scale) -> str:
    text = str(rain_scale)
    if text != "auto" and not float(text) >= 1:
        raise ValueError(f"rain_scale={rain_scale}: give a number >= 1 or 'auto'")
    return text


class Derainer:
    def __init__(self, fn: Callable, net, multiple: int, radius: int, channel_attention: bool,
                 description: str, tile: int = 1024, tile_overlap: int = -1, rain_scale: str | float = "1",
                 jit_compile: bool = False, self_ensemble: bool = False):
        from menet_tf import inference

        self.fn, self.net, self.multiple, self.radius = fn, net, int(multiple), int(radius)
        self.self_ensemble = bool(self_ensemble)
        if self.self_ensemble:
            description += ", self-ensemble of 4 flips"
        self.channel_attention, self.description, self.jit_compile = bool(channel_attention), description, jit_compile
        self.two_pass = self.channel_attention and net is not None  # exact CA tiles need the Keras net's layers
        self.rain_scale = _checked_rain_scale(rain_scale)
        if tile < 0:
            raise ValueError(f"tile={tile}: must be >= 0 (0 = whole image)")
        if tile_overlap < -1:
            raise ValueError(f"tile_overlap={tile_overlap}: must be >= 0, or -1 (auto)")
        self.tile = tile // self.multiple * self.multiple
        if tile and self.tile == 0:
            raise ValueError(f"tile={tile} is smaller than the net's multiple ({self.multiple})")
        self.overlap = (inference.auto_overlap(self.radius, self.multiple) if tile_overlap < 0
                        else inference.round_up(tile_overlap, self.multiple))
        if self.tile and self.tile < 2 * self.overlap:
            raise ValueError(f"tile={self.tile} must be at least twice the tile overlap ({self.overlap}): raise "
                             "the tile or lower the overlap")
        if self.tile and self.two_pass and self.tile < 2 * inference.CA_MARGIN + self.multiple:
            raise ValueError(f"tile={self.tile}: exact tiles with channel attention need a tile >= "
                             f"{2 * inference.CA_MARGIN + self.multiple}")

    @classmethod
    def load(cls, model_dir: str | None = None, saved_model: str | None = None, mixed_precision: bool = False,
             jit_compile: bool = False, **tiling) -> "Derainer":
        """From a model directory (a shipped model's too: :func:`menet_tf.pretrained.model_dir`) or an
        exported SavedModel (whose precision and XLA were fixed at export)."""
        from menet_tf import export, inference, pretrained
        from menet_tf.model import load_net, read_config, required_multiple

        if (model_dir is None) == (saved_model is None):
            raise ValueError("give exactly one of model_dir and saved_model")
        if model_dir is not None:
            policy = inference.configure_precision(mixed_precision)
            config = read_config(model_dir)
            net = load_net(model_dir)
            ca = bool(config.get("channel_attention", False))
            multiple = required_multiple(ca)
            fn = inference.padded_fn(net, multiple, jit_compile=jit_compile)
            radius = inference.receptive_radius(int(config.get("num_res_blocks", 8)))
            shipped = os.path.dirname(os.path.abspath(model_dir)) == pretrained.PRETRAINED_DIR
            source = f"shipped model {os.path.basename(os.path.abspath(model_dir))}" if shipped else model_dir
            desc = f"{source} ({config.get('num_res_blocks')} blocks, CA {ca}, {policy}, XLA {jit_compile})"
            return cls(fn, net, multiple, radius, ca, desc, jit_compile=jit_compile, **tiling)
        if mixed_precision or jit_compile:
            raise ValueError("mixed precision / XLA apply to a model directory; a SavedModel's are fixed at export")
        import tensorflow as tf

        loaded = tf.saved_model.load(saved_model)
        signature = loaded.signatures[export.SIGNATURE_FLOAT]
        info = export.read_export_info(saved_model) or {}
        # without the info file, assume the most demanding net (16 blocks, CA)
        multiple = int(info.get("required_multiple", 16))
        radius = int(info.get("receptive_radius", inference.receptive_radius(16)))
        ca = bool(info.get("global_channel_attention", True))

        def fn(images):
            return signature(images=images)["derained"]

        fn._keep = loaded  # the signature needs its SavedModel object alive
        return cls(fn, None, multiple, radius, ca, f"{saved_model} (SavedModel, multiple {multiple}, CA {ca})",
                   **tiling)

    def at_rain_scale(self, rain_scale: str | float) -> "Derainer":
        """This de-rainer (the same loaded net) at another rain scale: a number >= 1 or ``"auto"``."""
        other = copy.copy(self)
        other.rain_scale = _checked_rain_scale(rain_scale)
        return other

    # -- planning -------------------------------------------------------------------------------------

    def scale_for(self, height: int, width: int) -> float:
        from menet_tf import inference

        return inference.auto_rain_scale(height, width) if self.rain_scale == "auto" else float(self.rain_scale)

    def plan(self, height: int, width: int) -> Plan:
        from menet_tf import inference

        scale = self.scale_for(height, width)
        h, w = (height, width) if scale <= 1 else (max(1, round(height / scale)), max(1, round(width / scale)))
        use_tiles = bool(self.tile and (h > self.tile or w > self.tile))
        windows, tiles = inference.tiled_calls(h, w, self.tile, self.overlap, self.two_pass) if use_tiles else (0, 1)
        passes = len(inference.SELF_ENSEMBLE_FLIPS) if self.self_ensemble else 1
        return Plan(scale, h, w, use_tiles, windows, tiles, passes)

    def tiling_text(self) -> str:
        """One line on the tiling, as ``derain`` prints it."""
        from menet_tf import inference

        if not self.tile:
            return "tiles: off (whole images)"
        ca_local = self.channel_attention and not self.two_pass
        if ca_local:
            exact = ""
        elif inference.default_margin(self.overlap) >= self.radius:
            exact = " (exact: margin >= receptive radius" + ("; channel attention in two passes)" if self.two_pass else ")")
        else:
            exact = " (approximate: overlap below 2 x receptive radius + ramp)"
        text = f"tiles: <= {self.tile} px, overlap {self.overlap}, receptive radius {self.radius}{exact}"
        if ca_local:
            text += ("\nnote: a SavedModel's tiles use tile-local channel attention, so they are approximate "
                     "(--tile=0 or --model_dir for exact)")
        return text

    # -- running --------------------------------------------------------------------------------------

    def run_whole(self, image) -> np.ndarray:
        """The net on one whole H x W x 3 image (uint8 or float 0..255): float32 H x W x 3."""
        return self.run_batch(np.asarray(image, np.float32)[None])[0]

    def run_batch(self, images) -> np.ndarray:
        out = self.fn(np.asarray(images, np.float32))
        return np.asarray(out.numpy() if hasattr(out, "numpy") else out, np.float32)

    def derain(self, rainy, progress: Callable[[int, int], None] | None = None, exact_float: bool = False,
               after_tiles: Callable[[np.ndarray, np.ndarray], None] | None = None) -> np.ndarray:
        """De-rain one H x W x 3 uint8 image: uint8 (float32 0..255 with ``exact_float``). ``progress(done,
        total)`` counts net calls (attention windows and tiles, over all passes of the self-ensemble);
        ``after_tiles(net input, tiled float output)`` sees each tiled result (``derain --compare_whole``)."""
        from menet_tf import inference

        rainy = np.asarray(rainy)
        if self.self_ensemble:
            passes = len(inference.SELF_ENSEMBLE_FLIPS)

            def one_pass(flipped, k):
                tick = None if progress is None else (lambda done, total: progress(k * total + done, passes * total))
                return self._derain_once(flipped, tick, True, after_tiles)

            out = inference.self_ensemble(one_pass, rainy)
            return out if exact_float else to_uint8(out)
        return self._derain_once(rainy, progress, exact_float, after_tiles)

    def _derain_once(self, rainy, progress, exact_float: bool, after_tiles) -> np.ndarray:
        from menet_tf import inference

        p = self.plan(*rainy.shape[:2])
        small = None if p.scale <= 1 else inference.shrink_for_rain_scale(rainy, p.scale)
        floats = exact_float or p.scale > 1 or after_tiles is not None

        def run_net(image):
            if not p.use_tiles:
                out = self.run_whole(image)
                if progress is not None:
                    progress(1, 1)
                return out if floats else to_uint8(out)
            out = inference.derain_tiled(
                self.net if self.net is not None else self.fn, image, tile=self.tile, overlap=self.overlap,
                multiple=self.multiple, jit_compile=self.jit_compile, out_dtype=np.float32 if floats else np.uint8,
                progress=progress)
            if after_tiles is not None:
                after_tiles(image, out)
            return out

        if p.scale > 1:
            out = inference.derain_at_scale(run_net, rainy, p.scale, small=small)
        else:
            out = run_net(rainy)
        if exact_float:
            return np.asarray(out, np.float32)
        return out if out.dtype == np.uint8 else to_uint8(out)

    def derain_batch(self, frames) -> np.ndarray:
        """B x H x W x 3 uint8 -> B x H x W x 3 uint8: one net call for the batch (one per flip with the
        self-ensemble) when the frames need no tiles and no rain scale (else frame by frame, as :meth:`derain`)."""
        from menet_tf import inference

        frames = np.asarray(frames)
        p = self.plan(*frames.shape[1:3])
        if p.scale <= 1 and not p.use_tiles:
            if self.self_ensemble:
                return to_uint8(inference.self_ensemble(lambda flipped, k: self.run_batch(flipped), frames, batch=True))
            return to_uint8(self.run_batch(frames))
        return np.stack([self.derain(f) for f in frames])
