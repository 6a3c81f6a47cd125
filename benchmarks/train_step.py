"""Median training-step time per Table I row at batch 20 x 224 x 224, in float32 and under the mixed
policy, against the convolution peak of each dtype measured in the same run.

    python -m benchmarks.train_step [--rows ...] [--runs 10] [--warmup 3] [--batch_size 20] [--crop_size 224]
                                    [--jit_compile] [--mixed_policy auto|mixed_bfloat16|mixed_float16]

Last line (one JSON object):
  matmul_gflops       float32 2048^2 matmul GFLOP/s
  conv_gflops_f32     the "conv peak": a 3x3 conv 64->64 (no bias, SAME) forward on (20, 56, 56, 64), float32
  conv_gflops_bf16    the same conv in the mixed policy's compute dtype (bfloat16 on a CPU, float16 on a GPU)
  rows                {row: {"ms_per_step": T, "model_gflops": G}} in float32
  rows_bf16           {row: {"ms_per_step": T}} under the mixed policy (what --mixed_precision trains with)
  gb_over_fixed, lb_over_fixed              lp_le_gb, lp_le_lb step time / lp_le_fixed's (float32)
  gb_over_fixed_bf16, lb_over_fixed_bf16    the same under the mixed policy
  mfu_fixed           lp_le_fixed float32 model GFLOP/s / matmul_gflops
  mfu_fixed_conv      lp_le_fixed float32 model GFLOP/s / conv_gflops_f32
  mfu_fixed_bf16      lp_le_fixed mixed-policy model GFLOP/s / conv_gflops_bf16
  mixed_policy, jit_compile, device
model_gflops = forward conv FLOPs x 3 (forward + the two backward convolutions) per step. The step is the
trainer's own train_step under tf.function (XLA per --jit_compile, default off on CPU, on with a GPU).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks.common import (  # noqa: E402
    CONV_SHAPE, conv_forward_flops, conv_gflops, matmul_gflops, median_seconds, print_json, synthetic_batch)
from experiments.config import load_flagfile, row_flagfile  # noqa: E402
from experiments.training import has_gpu, mixed_precision_policy, resolve_runtime, build_trainer  # noqa: E402

ROWS = ("lp", "lp_le_fixed", "lp_le_gb", "lp_le_lb", "lp_le_lt_gb_ca", "lp_le_lt_lb_ca")

flags.DEFINE_list("rows", list(ROWS), "Table I rows to time.")
flags.DEFINE_integer("runs", 10, "Timed steps per row (median).")
flags.DEFINE_integer("warmup", 3, "Untimed steps per row (tracing, allocation).")
flags.DEFINE_integer("batch_size", 20, "Batch size.")
flags.DEFINE_integer("crop_size", 224, "Patch size.")
flags.DEFINE_bool("jit_compile", None, "XLA (default: on with a GPU, off on CPU).")
flags.DEFINE_string("mixed_policy", "auto", "Mixed policy of rows_bf16: auto (mixed_bfloat16 on CPU, "
                    "mixed_float16 on GPU, as --mixed_precision), mixed_bfloat16 or mixed_float16.")
flags.DEFINE_bool("float32", True, "Also time the rows in float32 (rows, mfu_fixed_conv).")
FLAGS = flags.FLAGS


def time_row(row: str, rainy, clean, policy: str) -> dict:
    keras.mixed_precision.set_global_policy(policy)
    try:
        config = resolve_runtime(load_flagfile(row_flagfile(row)))
        if FLAGS.jit_compile is not None:
            config.jit_compile = FLAGS.jit_compile
        trainer = build_trainer(config, steps_per_epoch=23)
        step = tf.function(trainer.train_step, jit_compile=bool(config.jit_compile))
        seconds = median_seconds(lambda: step((rainy, clean))["loss"].numpy(), FLAGS.runs, FLAGS.warmup)
        flops = 3 * conv_forward_flops(trainer.net, rainy.shape)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    result = {"ms_per_step": 1e3 * seconds, "model_gflops": flops / 1e9}
    print(f"{row:16s} {policy:15s} {result['ms_per_step']:8.1f} ms/step  {flops / seconds / 1e9:7.1f} GFLOP/s",
          flush=True)
    return result


def ratios(rows: dict, suffix: str, peak: float) -> dict:
    out = {}
    fixed = rows.get("lp_le_fixed")
    if fixed is None:
        return out
    for name, row in (("gb", "lp_le_gb"), ("lb", "lp_le_lb")):
        if row in rows:
            out[f"{name}_over_fixed{suffix}"] = rows[row]["ms_per_step"] / fixed["ms_per_step"]
    out["model_gflops_per_s" + suffix] = fixed["model_gflops"] / (fixed["ms_per_step"] / 1e3)
    out["peak"] = peak
    return out


def main(argv):
    del argv
    policy = mixed_precision_policy() if FLAGS.mixed_policy == "auto" else FLAGS.mixed_policy
    half = keras.mixed_precision.Policy(policy).compute_dtype
    rainy, clean = synthetic_batch(FLAGS.batch_size, FLAGS.crop_size)
    gflops = matmul_gflops()
    conv_f32, conv_half = conv_gflops("float32"), conv_gflops(half)
    print(f"matmul 2048^2 float32: {gflops:.1f} GFLOP/s; conv 3x3 64->64 {CONV_SHAPE}: float32 {conv_f32:.1f}, "
          f"{half} {conv_half:.1f} GFLOP/s", flush=True)
    out = {"matmul_gflops": gflops, "conv_gflops_f32": conv_f32, "conv_gflops_bf16": conv_half,
           "mixed_policy": policy, "jit_compile": FLAGS.jit_compile, "device": "gpu" if has_gpu() else "cpu"}
    if FLAGS.float32:
        rows = {row: time_row(row, rainy, clean, "float32") for row in FLAGS.rows}
        out["rows"] = rows
        r = ratios(rows, "", conv_f32)
        out.update({k: v for k, v in r.items() if k.endswith("_over_fixed")})
        if "model_gflops_per_s" in r:
            out["mfu_fixed"] = r["model_gflops_per_s"] / gflops
            out["mfu_fixed_conv"] = r["model_gflops_per_s"] / conv_f32
    rows_half = {row: time_row(row, rainy, clean, policy) for row in FLAGS.rows}
    out["rows_bf16"] = {row: {"ms_per_step": r["ms_per_step"]} for row, r in rows_half.items()}
    r = ratios(rows_half, "_bf16", conv_half)
    out.update({k: v for k, v in r.items() if k.endswith("_over_fixed_bf16")})
    if "model_gflops_per_s_bf16" in r:
        out["mfu_fixed_bf16"] = r["model_gflops_per_s_bf16"] / conv_half
    print_json(out)


if __name__ == "__main__":
    app.run(main)
