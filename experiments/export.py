r"""Export a trained model directory as a SavedModel (and optionally TFLite) that needs only TensorFlow.

    python -m experiments.export --model_dir=runs/menet_gb --export_dir=exports/menet_gb [--tflite]
    python -m experiments.export --model=menet-lb-rain100l --export_dir=exports/menet_lb   # a shipped model

Signatures (``tf.saved_model.load(export_dir).signatures[...]``):
  serve / serving_default:   images float32 [B, H, W, 3] 0..255, any B, H, W
  serve_uint8:               images uint8   [B, H, W, 3]
  serve_self_ensemble(_uint8): the same inputs; the mean over 4 flips (derain's default for photos), 4x the work
all -> {"derained": float32 0..255, "derained_uint8": uint8}, same size as the input (reflect padding to
the net's multiple and the crop back happen inside the graph). ``--tflite`` also writes
``export_dir/menet.tflite`` (the ``serve`` signature, dynamic shape). After writing, the command reloads
the export with plain ``tf.saved_model.load``, prints the signatures and checks the export (and the
TFLite file) against the Keras net on a 67 x 45 image.

GPU deployment: ``--jit_compile`` marks the serving functions for XLA; ``--mixed_precision`` builds the
net under ``mixed_float16`` (GPU present) or ``mixed_bfloat16`` (CPU only) before loading the weights.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from experiments import cliutil

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "trained model directory (config.json + net.weights.h5)")
flags.DEFINE_string("model", None, "a shipped model by name (menet_tf.pretrained.names()) instead of --model_dir")
flags.DEFINE_string("export_dir", None, "where to write the SavedModel (must not exist, or be empty, unless --overwrite)")
flags.DEFINE_bool("tflite", False, "also write export_dir/menet.tflite")
flags.DEFINE_bool("overwrite", False, "replace an existing, non-empty export_dir")
flags.DEFINE_bool("jit_compile", False, "compile the serving functions with XLA")
flags.DEFINE_bool("mixed_precision", False, "mixed_float16 on GPU / mixed_bfloat16 on CPU (computes in 16 bits)")
flags.mark_flags_as_required(["export_dir"])



def usage_error(message: str):
    """Bad flags: one line on stderr, exit status 2, before any work."""
    cliutil.usage_error("experiments.export", message)

def _check_flags() -> None:
    if FLAGS.tflite and FLAGS.mixed_precision:
        usage_error("--tflite needs float32 weights and compute: TFLite has no bfloat16/float16 compute kernels (drop --mixed_precision)")
    if not FLAGS.model_dir and not FLAGS.model:
        usage_error("give --model_dir (a trained model directory) or --model=NAME (a shipped model)")
    FLAGS.model_dir = cliutil.resolve_model("experiments.export", FLAGS.model_dir, FLAGS.model)
    problem = cliutil.model_dir_problem(FLAGS.model_dir)
    if problem:
        usage_error(problem)
    d = FLAGS.export_dir
    if os.path.exists(d) and not os.path.isdir(d):
        usage_error(f"--export_dir={d} exists and is not a directory")
    if os.path.isdir(d) and os.listdir(d) and not FLAGS.overwrite:
        usage_error(f"--export_dir={d} is not empty (pass --overwrite to replace it)")


def main(argv):
    if len(argv) > 1:
        usage_error(f"unexpected arguments: {' '.join(argv[1:])}")
    _check_flags()
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # TF's SavedModel writer logs every asset at INFO

    import numpy as np
    import tensorflow as tf

    from menet_tf import export, inference
    from menet_tf.model import load_net, read_config

    policy = inference.configure_precision(FLAGS.mixed_precision)
    config = read_config(FLAGS.model_dir)
    try:
        net = load_net(FLAGS.model_dir)
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"error: cannot load {FLAGS.model_dir}: {e}")
    # --overwrite: the new folder replaces the old one only once it is complete (menet_tf.atomic)
    info = export.export_saved_model(net, FLAGS.export_dir, config, jit_compile=FLAGS.jit_compile)
    print(f"wrote SavedModel {FLAGS.export_dir} (net {info['net_config']}, multiple {info['required_multiple']}, policy {policy})")
    print(export.describe_signatures(FLAGS.export_dir))

    # self-check on an odd size: plain tf.saved_model.load against the Keras net
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1, 45, 67, 3), dtype=np.uint8)
    reference = inference.derain_image(net, image, info["required_multiple"])
    loaded = tf.saved_model.load(FLAGS.export_dir)
    got = loaded.signatures[export.SIGNATURE_UINT8](images=tf.constant(image))["derained"].numpy()
    diff = float(np.abs(got - reference).max())
    if policy == "float32":
        ok = diff <= 1e-3
        print(f"check: serve_uint8 on 45x67 vs Keras net, max |diff| = {diff:.2e} (0..255; must be <= 1e-3)")
    else:  # 16-bit rounding differs between XLA and the non-XLA kernels: informational only
        ok = True
        print(f"check: serve_uint8 on 45x67 vs Keras net, max |diff| = {diff:.2e} (0..255; {policy}, informational)")
    ensemble_reference = inference.self_ensemble(
        lambda flipped, k: inference.derain_image(net, flipped, info["required_multiple"]), image, batch=True)
    got = loaded.signatures[export.SIGNATURE_ENSEMBLE_UINT8](images=tf.constant(image))["derained"].numpy()
    ediff = float(np.abs(got - ensemble_reference).max())
    ok = ok and (policy != "float32" or ediff <= 1e-3)
    print(f"check: serve_self_ensemble_uint8 on 45x67 vs the mean of the Keras net over 4 flips, max |diff| = "
          f"{ediff:.2e} ({'must be <= 1e-3' if policy == 'float32' else policy + ', informational'})")
    if FLAGS.tflite:
        path = os.path.join(FLAGS.export_dir, export.TFLITE_FILE)
        try:
            size = export.export_tflite(FLAGS.export_dir, path)
        except Exception as e:  # noqa: BLE001 - the converter raises many types
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            print(f"TFLite conversion failed: {type(e).__name__}: {first[:500]}", file=sys.stderr)
            sys.exit(1)
        got = export.run_tflite(path, image)
        tdiff = float(np.abs(got - reference).max())
        print(f"wrote TFLite {path} ({size / 1e6:.2f} MB, signature 'serve', dynamic [B,H,W,3] float32)")
        print(f"check: TFLite on 45x67 vs Keras net, max |diff| = {tdiff:.2e} (0..255)")
        ok = ok and tdiff <= 1e-2
    if not ok:
        sys.exit("error: the export does not reproduce the Keras net")


def console():
    """The ``menet-export`` console script (setup.cfg entry point): the same as ``python -m experiments.export``."""
    app.run(main)


if __name__ == "__main__":
    console()
