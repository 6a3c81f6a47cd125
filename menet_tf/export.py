"""Export a trained de-raining net as a self-contained SavedModel (and optionally TFLite).

The SavedModel needs only TensorFlow to load (no menet_tf, no Keras custom objects): the graph holds
the reflect padding, the net and the crop. Signatures (``tf.saved_model.load(d).signatures[name]``):

  ``serve`` (also ``serving_default``): images float32 [B, H, W, 3], values 0..255, any B, H, W.
  ``serve_uint8``: images uint8 [B, H, W, 3], any B, H, W.

  ``serve_self_ensemble`` / ``serve_self_ensemble_uint8``: the same inputs; the mean of the net over four
  flips of each image (as is, mirrored, upside down, turned half), each flipped back: the self-ensemble
  that ``derain`` applies to photos by default (``menet_tf.inference.self_ensemble``), four times the work.

All return ``{"derained": float32 [B, H, W, 3] in 0..255, "derained_uint8": uint8 (rounded)}``, of
the input's size: the graph reflect-pads the bottom/right edges (of each flip) to the net's multiple (4; 16
with channel attention), runs the net in inference mode and crops back (``menet_tf.inference``).

A ``menet_export.json`` beside ``saved_model.pb`` records the net config, the multiple, the receptive
radius (for tiling) and the signatures; ``experiments.derain --saved_model`` reads it.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import tensorflow as tf

from menet_tf import atomic, inference
from menet_tf.model import required_multiple

SIGNATURE_FLOAT = "serve"
SIGNATURE_UINT8 = "serve_uint8"
SIGNATURE_ENSEMBLE = "serve_self_ensemble"
SIGNATURE_ENSEMBLE_UINT8 = "serve_self_ensemble_uint8"
EXPORT_INFO_FILE = "menet_export.json"
TFLITE_FILE = "menet.tflite"
IMAGE_SPEC = [None, None, None, 3]


def _serving_fns(net: keras.Model, multiple: int, jit_compile: bool = False):
    """(serve, serve_uint8, serve_self_ensemble, serve_self_ensemble_uint8) as tf.functions."""

    def once(x):
        shape = tf.shape(x)
        y = net(inference.pad_to_multiple(x, multiple), training=False)
        y = tf.cast(y[:, : shape[1], : shape[2], :], tf.float32)
        return tf.clip_by_value(y, 0.0, 255.0)

    def outputs(y):
        return {"derained": y, "derained_uint8": tf.cast(tf.round(y), tf.uint8)}

    def derain(images):
        return outputs(once(tf.cast(images, tf.float32)))

    def derain_self_ensemble(images):
        x = tf.cast(images, tf.float32)
        total = None
        for flip in inference.SELF_ENSEMBLE_FLIPS:  # axes of one image; + 1 for the batch axis, in the same order
            axes = [a + 1 for a in flip]
            y = tf.reverse(once(tf.reverse(x, axes)), axes) if axes else once(x)
            total = y if total is None else total + y
        return outputs(total / float(len(inference.SELF_ENSEMBLE_FLIPS)))

    def fn(body, dtype):
        return tf.function(body, input_signature=[tf.TensorSpec(IMAGE_SPEC, dtype, name="images")],
                           jit_compile=jit_compile)

    return (fn(derain, tf.float32), fn(derain, tf.uint8), fn(derain_self_ensemble, tf.float32),
            fn(derain_self_ensemble, tf.uint8))


def export_saved_model(
    net: keras.Model,
    export_dir: str,
    config: dict,
    jit_compile: bool = False,
    verbose: bool = False,
) -> dict:
    """Write ``net`` to ``export_dir`` as a SavedModel with the ``serve``/``serve_uint8`` signatures.

    config: the net config (``menet_tf.model.net_config``: num_res_blocks, channel_attention,
    ca_variant). Returns the info dict also written to ``export_dir/menet_export.json``.
    """
    multiple = required_multiple(bool(config.get("channel_attention", False)))
    serve, serve_uint8, ensemble, ensemble_uint8 = _serving_fns(net, multiple, jit_compile)
    archive = keras.export.ExportArchive()
    archive.track(net)
    archive.add_endpoint(SIGNATURE_FLOAT, serve)  # first endpoint: also "serving_default"
    archive.add_endpoint(SIGNATURE_UINT8, serve_uint8)
    archive.add_endpoint(SIGNATURE_ENSEMBLE, ensemble)
    archive.add_endpoint(SIGNATURE_ENSEMBLE_UINT8, ensemble_uint8)
    info = {
        "format": "menet-tf SavedModel",
        "net_config": {k: config[k] for k in ("num_res_blocks", "channel_attention", "ca_variant") if k in config},
        "required_multiple": multiple,
        "receptive_radius": inference.receptive_radius(int(config.get("num_res_blocks", 8))),
        "global_channel_attention": bool(config.get("channel_attention", False)),
        "compute_dtype": keras.mixed_precision.global_policy().compute_dtype,
        "jit_compile": bool(jit_compile),
        "signatures": {
            SIGNATURE_FLOAT: {"input": "images float32 [B,H,W,3] 0..255", "outputs": _OUTPUTS},
            "serving_default": {"alias_of": SIGNATURE_FLOAT},
            SIGNATURE_UINT8: {"input": "images uint8 [B,H,W,3]", "outputs": _OUTPUTS},
            SIGNATURE_ENSEMBLE: {"input": "images float32 [B,H,W,3] 0..255", "outputs": _OUTPUTS,
                                 "computes": "the mean over 4 flips (menet_tf.inference.self_ensemble)"},
            SIGNATURE_ENSEMBLE_UINT8: {"input": "images uint8 [B,H,W,3]", "outputs": _OUTPUTS,
                                       "computes": "the mean over 4 flips (menet_tf.inference.self_ensemble)"},
        },
        "tensorflow_version": tf.__version__,
    }
    # the folder appears whole (SavedModel and info file) or not at all: written under a temporary name
    with atomic.atomic_path(export_dir) as tmp:
        archive.write_out(tmp, verbose=verbose)
        with open(os.path.join(tmp, EXPORT_INFO_FILE), "w") as f:
            json.dump(info, f, indent=2)
    return info


_OUTPUTS = {"derained": "float32 [B,H,W,3] 0..255", "derained_uint8": "uint8 [B,H,W,3]"}


def read_export_info(export_dir: str) -> dict | None:
    path = os.path.join(export_dir, EXPORT_INFO_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def describe_signatures(export_dir: str) -> str:
    """Load ``export_dir`` with plain ``tf.saved_model.load`` and describe every signature."""
    loaded = tf.saved_model.load(export_dir)
    lines = []
    for name in sorted(loaded.signatures):
        fn = loaded.signatures[name]
        inputs = fn.structured_input_signature[1]
        lines.append(f"signature {name!r}:")
        for key, spec in sorted(inputs.items()):
            lines.append(f"  input  {key}: {spec.dtype.name} {_shape(spec.shape)}")
        for key, spec in sorted(fn.structured_outputs.items()):
            lines.append(f"  output {key}: {spec.dtype.name} {_shape(spec.shape)}")
    return "\n".join(lines)


def _shape(shape) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape.as_list()) + "]"


def export_tflite(export_dir: str, tflite_path: str) -> int:
    """Convert the SavedModel's ``serve`` signature (float32 images, dynamic B, H, W) to TFLite.

    Only ``serve`` is converted: TF 2.21's converter, given several signature keys, keeps just one
    (renamed ``serving_default``), so a uint8 caller casts to float32 first. Returns the size in bytes.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(export_dir, signature_keys=[SIGNATURE_FLOAT])
    data = converter.convert()
    with atomic.atomic_write(tflite_path, "wb") as f:
        f.write(data)
    return len(data)


def run_tflite(tflite_path: str, images: np.ndarray) -> np.ndarray:
    """Run a TFLite export's ``serve`` signature on a batch [B, H, W, 3] (any size, 0..255); returns
    the float32 ``derained`` output. (``tf.lite.Interpreter`` is deprecated in favour of LiteRT's
    ``ai_edge_litert``, whose interpreter has the same API; it is not a dependency here.)"""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        interpreter = tf.lite.Interpreter(model_path=tflite_path)
    runner = interpreter.get_signature_runner(SIGNATURE_FLOAT)
    # the signature runner resizes the dynamic input to the given shape before invoking
    out = runner(images=np.asarray(images, dtype=np.float32))
    return np.asarray(out["derained"])
