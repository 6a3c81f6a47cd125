"""Where a training step's time goes: TensorFlow profiler trace of the trainer's step, op time per category.

    python -m benchmarks.profile_step [--rows lp,lp_le_lt_lb_ca] [--precisions f32,bf16] [--steps 3]

For each row and precision (f32, or bf16 = the mixed_bfloat16 policy that --mixed_precision uses on a CPU)
the trainer's own train_step runs under tf.function at batch 20 x 224 x 224 (warm-up first); the profiler
(tf.profiler.experimental) records ``--steps`` steps; every executed op ("name:type" events of TF's
executor threads) is put in one category by its type and name scope:

  conv        Conv2D forward and both backward kernels of the net (oneDNN's _MklNative* included)
  batch_norm  everything under a ``bn`` scope (Keras' unfused moments, mul/add, their gradients) or a
              FusedBatchNorm* kernel; casts excluded (see cast)
  loss_p/e/t  each task loss forward and backward (the trainer's ``loss_<task>`` scopes): e = the Sobel
              net, t = the texture Gram matrices
  weighting   GB's per-task norms on layer5 and the LB/GB weight formulas (``task_weighting`` scope)
  cast        every Cast op (mixed precision, Keras BN's casts to float32)
  s2d_d2s     SpaceToDepth / DepthToSpace of the net and their gradients
  clip        the global residual's add and clip, and their gradients
  relu        Relu / ReluGrad
  add         skip-connection adds and the gradient sums (AddN) of tensors used twice
  optimizer   Adam's update
  other       everything else (metric updates, ...)

Ops of the two executor threads overlap, so the op times add up to more than the wall time; each
category's ms per step is its share of the summed op time times the measured wall time per step.
Prints a table per run; last line: {"runs": {"<row>/<precision>": {"ms_per_step": T,
"categories": {cat: ms}, "shares": {cat: fraction}}}}.
"""

from __future__ import annotations

import collections
import glob
import os
import re
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks.common import median_seconds, print_json, synthetic_batch  # noqa: E402
from experiments.config import load_flagfile, row_flagfile  # noqa: E402
from experiments.training import build_trainer, resolve_runtime  # noqa: E402

CATEGORIES = ("conv", "batch_norm", "loss_p", "loss_e", "loss_t", "weighting", "cast", "s2d_d2s", "clip",
              "relu", "add", "optimizer", "other")
PRECISIONS = {"f32": "float32", "bf16": "mixed_bfloat16"}

flags.DEFINE_list("rows", ["lp", "lp_le_lt_lb_ca"], "Table I rows to profile.")
flags.DEFINE_list("precisions", ["f32", "bf16"], "f32 and/or bf16 (mixed_bfloat16).")
flags.DEFINE_integer("steps", 3, "Profiled steps per run.")
flags.DEFINE_integer("batch_size", 20, "Batch size.")
flags.DEFINE_integer("crop_size", 224, "Patch size.")
FLAGS = flags.FLAGS

_BN_SCOPE = re.compile(r"(^|/)bn(_\d+)?/")


def categorize(event: str) -> str | None:
    """The category of one executor event "op_name:OpType"; None for events that are not ops."""
    if ":" not in event or "::" in event:  # executor bookkeeping (ExecutorState::Process spans its ops)
        return None
    name, op_type = event.rsplit(":", 1)
    if op_type == "Cast":
        return "cast"
    for task in ("p", "e", "t", "vgg"):
        if f"loss_{task}/" in name:
            return "loss_" + task if task != "vgg" else "loss_e"
    if "task_weighting/" in name:
        return "weighting"
    if name.startswith("adam/") or "/adam/" in name:
        return "optimizer"
    if "FusedBatchNorm" in op_type or _BN_SCOPE.search(name):
        return "batch_norm"
    if "Conv2D" in op_type and "Depthwise" not in op_type:
        return "conv"
    if op_type in ("SpaceToDepth", "DepthToSpace"):
        return "s2d_d2s"
    if "global_residual" in name:
        return "clip"
    if op_type in ("Relu", "ReluGrad", "_MklRelu", "_MklReluGrad"):
        return "relu"
    if op_type in ("AddN", "AddV2", "Add", "Assign", "AssignAdd") or "tmp_var" in name:
        return "add"
    return "other"


def op_seconds(logdir: str) -> collections.Counter:
    """Seconds per category summed over the op events of TF's executor threads in a profiler log."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not paths:
        raise RuntimeError(f"{logdir}: the profiler wrote no .xplane.pb")
    space = xplane_pb2.XSpace()
    with open(paths[0], "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU") and not plane.name.startswith("/device:"):
            continue
        names = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith("tf_Compute") and not plane.name.startswith("/device:"):
                continue
            for event in line.events:
                cat = categorize(names[event.metadata_id].name)
                if cat:
                    totals[cat] += event.duration_ps * 1e-12
    return totals


def profile_run(row: str, precision: str, rainy, clean) -> dict:
    keras.mixed_precision.set_global_policy(PRECISIONS[precision])
    try:
        config = resolve_runtime(load_flagfile(row_flagfile(row)))
        trainer = build_trainer(config, steps_per_epoch=23)
        step = tf.function(trainer.train_step, jit_compile=bool(config.jit_compile))
        run = lambda: step((rainy, clean))["loss"].numpy()  # noqa: E731
        wall = median_seconds(run, FLAGS.steps, 3)
        with tempfile.TemporaryDirectory() as logdir:
            tf.profiler.experimental.start(logdir)
            for _ in range(FLAGS.steps):
                run()
            tf.profiler.experimental.stop()
            totals = op_seconds(logdir)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    summed = sum(totals.values())
    shares = {c: totals[c] / summed for c in CATEGORIES}
    result = {"ms_per_step": 1e3 * wall, "op_ms_per_step": 1e3 * summed / FLAGS.steps,
              "categories": {c: 1e3 * wall * shares[c] for c in CATEGORIES}, "shares": shares}
    print(f"\n{row} / {precision}: {1e3 * wall:.0f} ms per step (ops sum to {result['op_ms_per_step']:.0f} ms "
          "over both executor threads)", flush=True)
    print("| category | ms/step | share |\n|---|---|---|")
    for c in sorted(CATEGORIES, key=lambda c: -shares[c]):
        print(f"| {c} | {result['categories'][c]:.0f} | {100 * shares[c]:.1f}% |")
    return result


def main(argv):
    del argv
    rainy, clean = synthetic_batch(FLAGS.batch_size, FLAGS.crop_size)
    runs = {f"{row}/{p}": profile_run(row, p, rainy, clean) for row in FLAGS.rows for p in FLAGS.precisions}
    print_json({"runs": runs})


if __name__ == "__main__":
    app.run(main)
