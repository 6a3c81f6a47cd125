"""Median training-step time per Table I row at batch 20 x 224 x 224, against matmul FLOP/s.

    python -m benchmarks.train_step [--runs 10] [--warmup 3] [--batch_size 20] [--crop_size 224]

Last line: {"matmul_gflops": F, "rows": {"lp": {"ms_per_step": T, "model_gflops": G}, ...},
"gb_over_fixed": R1, "lb_over_fixed": R2, "mfu_fixed": M}. model_gflops = forward conv FLOPs x 3
(forward + two backward convolutions) per step; mfu_fixed = lp_le_fixed's model GFLOP/s / matmul GFLOP/s.
The step is the trainer's own train_step under tf.function (XLA per --jit_compile, default off on CPU).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks.common import conv_forward_flops, matmul_gflops, median_seconds, print_json  # noqa: E402
from experiments.config import load_flagfile, row_flagfile  # noqa: E402
from experiments.training import build_trainer, resolve_runtime  # noqa: E402

ROWS = ("lp", "lp_le_fixed", "lp_le_gb", "lp_le_lb", "lp_le_lt_gb_ca", "lp_le_lt_lb_ca")

flags.DEFINE_list("rows", list(ROWS), "Table I rows to time.")
flags.DEFINE_integer("runs", 10, "Timed steps per row (median).")
flags.DEFINE_integer("warmup", 3, "Untimed steps per row (tracing, allocation).")
flags.DEFINE_integer("batch_size", 20, "Batch size.")
flags.DEFINE_integer("crop_size", 224, "Patch size.")
flags.DEFINE_bool("jit_compile", None, "XLA (default: on with a GPU, off on CPU).")
FLAGS = flags.FLAGS


def time_row(row: str, rainy, clean) -> dict:
    config = resolve_runtime(load_flagfile(row_flagfile(row)))
    if FLAGS.jit_compile is not None:
        config.jit_compile = FLAGS.jit_compile
    trainer = build_trainer(config, steps_per_epoch=23)
    step = tf.function(trainer.train_step, jit_compile=bool(config.jit_compile))
    seconds = median_seconds(lambda: step((rainy, clean))["loss"].numpy(), FLAGS.runs, FLAGS.warmup)
    flops = 3 * conv_forward_flops(trainer.net, rainy.shape)
    result = {"ms_per_step": 1e3 * seconds, "model_gflops": flops / 1e9}
    print(f"{row:16s} {result['ms_per_step']:8.1f} ms/step  {flops / seconds / 1e9:7.1f} GFLOP/s", flush=True)
    return result


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    shape = (FLAGS.batch_size, FLAGS.crop_size, FLAGS.crop_size, 3)
    clean = tf.constant(rng.uniform(0, 255, shape).astype(np.float32))
    rainy = tf.clip_by_value(clean + tf.constant((rng.random(shape[:3] + (1,)) > 0.95) * 80.0, tf.float32), 0, 255)
    gflops = matmul_gflops()
    print(f"matmul 2048^2 float32: {gflops:.1f} GFLOP/s", flush=True)
    rows = {row: time_row(row, rainy, clean) for row in FLAGS.rows}
    out = {"matmul_gflops": gflops, "rows": rows}
    if "lp_le_fixed" in rows:
        fixed = rows["lp_le_fixed"]
        if "lp_le_gb" in rows:
            out["gb_over_fixed"] = rows["lp_le_gb"]["ms_per_step"] / fixed["ms_per_step"]
        if "lp_le_lb" in rows:
            out["lb_over_fixed"] = rows["lp_le_lb"]["ms_per_step"] / fixed["ms_per_step"]
        out["mfu_fixed"] = fixed["model_gflops"] / (fixed["ms_per_step"] / 1e3) / gflops
    print_json(out)


if __name__ == "__main__":
    app.run(main)
