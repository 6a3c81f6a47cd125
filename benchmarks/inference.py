"""De-raining one 481 x 321 image (batch 1) against the convolution peak of the same dtype, same run.

    python -m benchmarks.inference [--runs 20] [--warmup 3] [--variants shallow,shallow_ca]
                                   [--jit_compile] [--mixed_policy auto]

For each variant (shallow: 8 blocks; shallow_ca: 8 blocks + channel attention) and precision (f32; bf16 =
the mixed policy that --mixed_precision uses: mixed_bfloat16 on a CPU, mixed_float16 on a GPU) it times
``menet_tf.inference.derain_image`` -- reflect padding to 484 x 324 (496 x 336 with CA), the net in
inference mode (BN folded into the convolutions by TF's graph optimiser), the crop back, the output
fetched -- and divides the net's forward conv FLOPs at the padded size by the time.

Last line: {"conv_gflops_f32": P32, "conv_gflops_bf16": P16, "size": "481x321", "mixed_policy": ...,
"variants": {"shallow": {"f32": {"ms_per_image": T, "gflops": G, "fraction_of_conv_peak": F}, "bf16":
{...}}, "shallow_ca": {...}}}.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks.common import conv_forward_flops, conv_gflops, median_seconds, print_json  # noqa: E402
from experiments.training import has_gpu, mixed_precision_policy  # noqa: E402
from menet_tf.inference import derain_image, pad_to_multiple  # noqa: E402
from menet_tf.model import build_derain_net, required_multiple  # noqa: E402

VARIANTS = {"shallow": (8, False), "shallow_ca": (8, True), "deep_ca": (16, True)}

flags.DEFINE_list("variants", ["shallow", "shallow_ca"], f"Subset of {', '.join(VARIANTS)}.")
flags.DEFINE_integer("runs", 20, "Timed images per configuration (median).")
flags.DEFINE_integer("warmup", 3, "Untimed images first.")
flags.DEFINE_integer("width", 481, "Image width.")
flags.DEFINE_integer("height", 321, "Image height.")
flags.DEFINE_bool("jit_compile", None, "XLA (default: on with a GPU, off on CPU).")
flags.DEFINE_string("mixed_policy", "auto", "auto (mixed_bfloat16 on CPU, mixed_float16 on GPU), or a policy.")
FLAGS = flags.FLAGS


def time_variant(name: str, policy: str, image: np.ndarray, jit: bool, peak: float) -> dict:
    keras.mixed_precision.set_global_policy(policy)
    try:
        blocks, ca = VARIANTS[name]
        keras.utils.set_random_seed(0)
        net = build_derain_net(num_res_blocks=blocks, channel_attention=ca)
        multiple = required_multiple(ca)
        seconds = median_seconds(lambda: derain_image(net, image, multiple, jit), FLAGS.runs, FLAGS.warmup)
        padded = pad_to_multiple(image[None].astype(np.float32), multiple).shape
        flops = conv_forward_flops(net, padded)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    gflops = flops / seconds / 1e9
    result = {"ms_per_image": 1e3 * seconds, "gflops": gflops, "fraction_of_conv_peak": gflops / peak}
    print(f"{name:11s} {policy:15s} {result['ms_per_image']:7.1f} ms/image  {gflops:7.1f} GFLOP/s "
          f"({100 * result['fraction_of_conv_peak']:.0f}% of the conv peak)", flush=True)
    return result


def main(argv):
    del argv
    bad = [v for v in FLAGS.variants if v not in VARIANTS]
    if bad:
        raise app.UsageError(f"--variants: unknown {bad}; choose from {', '.join(VARIANTS)}")
    policy = mixed_precision_policy() if FLAGS.mixed_policy == "auto" else FLAGS.mixed_policy
    half = keras.mixed_precision.Policy(policy).compute_dtype
    jit = has_gpu() if FLAGS.jit_compile is None else FLAGS.jit_compile
    image = np.random.default_rng(0).integers(0, 256, (FLAGS.height, FLAGS.width, 3)).astype(np.uint8)
    peaks = {"f32": conv_gflops("float32"), "bf16": conv_gflops(half)}
    print(f"conv peak: float32 {peaks['f32']:.1f}, {half} {peaks['bf16']:.1f} GFLOP/s", flush=True)
    policies = {"f32": "float32", "bf16": policy}
    variants = {v: {p: time_variant(v, policies[p], image, jit, peaks[p]) for p in policies} for v in FLAGS.variants}
    print_json({"conv_gflops_f32": peaks["f32"], "conv_gflops_bf16": peaks["bf16"], "mixed_policy": policy,
                "jit_compile": jit, "size": f"{FLAGS.width}x{FLAGS.height}", "batch": 1, "variants": variants})


if __name__ == "__main__":
    app.run(main)
