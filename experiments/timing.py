r"""Table III's harness: seconds per image for the MENET variants, on CPU and (where present) GPU.

    python -m experiments.timing                       # all variants, sizes, batches, XLA on and off
    python -m experiments.timing --variants=shallow --sizes=224x224 --batch_sizes=1 --xla=off --runs=10
    python -m experiments.timing --model=menet-lb-rain100l --sizes=481x321 --batch_sizes=1 --xla=off

For every (device, variant, size, batch, XLA) the forward pass -- reflect padding to the net's multiple,
the net in inference mode, the crop back, exactly as ``menet_tf.inference`` de-rains an image -- runs
``--warmup`` times, then ``--runs`` timed times (each synchronised by fetching one output value); the
result is the median (and min) over runs of seconds / batch. Nets are randomly initialised: the time does
not depend on the weights. Sizes are W x H; 481x321 is not a multiple of 4 (16 with CA) and is timed
padded (484x324, or 496x336 with CA), as inference does. Progress goes to stderr; the last line of
stdout is one JSON object.

Variants: shallow (8 blocks, no CA), shallow_ca (8 blocks + CA), deep_ca (16 blocks + CA); or, instead of
--variants, one trained net: --model_dir (a model directory) or --model=NAME (a shipped model). Paper
Table III: 0.6578 s (CPU) and 0.0030 s (GPU) per 224 x 224 image.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time

from absl import app, flags

from experiments import cliutil

VARIANTS = {"shallow": (8, False), "shallow_ca": (8, True), "deep_ca": (16, True)}
PAPER_TABLE3 = {"cpu_s_per_224": 0.6578, "gpu_s_per_224": 0.0030}

FLAGS = flags.FLAGS
flags.DEFINE_list("variants", list(VARIANTS), f"comma-separated subset of {', '.join(VARIANTS)}")
flags.DEFINE_list("sizes", ["224x224", "481x321"], "comma-separated W x H sizes")
flags.DEFINE_list("batch_sizes", ["1", "16"], "comma-separated batch sizes")
flags.DEFINE_enum("xla", "both", ["both", "on", "off"], "time with XLA (jit_compile) on, off, or both")
flags.DEFINE_integer("runs", 20, "timed runs per configuration (the median is reported)")
flags.DEFINE_integer("warmup", 3, "untimed runs first (tracing, XLA compilation, allocator warm-up)")
flags.DEFINE_enum("device", "all", ["cpu", "gpu", "all"], "cpu, gpu, or all = CPU and every present GPU (the first)")
flags.DEFINE_bool("mixed_precision", False, "mixed_float16 on GPU / mixed_bfloat16 on CPU")
flags.DEFINE_integer("seed", 0, "seed for the random weights and inputs")
flags.DEFINE_string("model_dir", None, "time this trained model directory's net instead of --variants")
flags.DEFINE_string("model", None, "time this shipped model (menet_tf.pretrained.names()) instead of --variants")



def usage_error(message: str):
    """Bad flags: one line on stderr, exit status 2, before any work."""
    cliutil.usage_error("experiments.timing", message)

def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        usage_error(f"--sizes: {text!r} is not W x H (e.g. 481x321)")
    if w <= 0 or h <= 0:
        usage_error(f"--sizes: {text!r} must be positive")
    return w, h


def _check_flags():
    FLAGS.model_dir = cliutil.resolve_model("experiments.timing", FLAGS.model_dir, FLAGS.model)
    if FLAGS.model_dir:
        problem = cliutil.model_dir_problem(FLAGS.model_dir)
        if problem:
            usage_error(problem)
    bad = [v for v in FLAGS.variants if v not in VARIANTS]
    if bad or not FLAGS.variants:
        usage_error(f"--variants: unknown {bad}; choose from {', '.join(VARIANTS)}")
    sizes = [parse_size(s) for s in FLAGS.sizes]
    try:
        batches = [int(b) for b in FLAGS.batch_sizes]
    except ValueError:
        usage_error(f"--batch_sizes: {FLAGS.batch_sizes} are not integers")
    if not batches or min(batches) < 1:
        usage_error("--batch_sizes must be positive integers")
    if FLAGS.runs < 1 or FLAGS.warmup < 0:
        usage_error("--runs must be >= 1 and --warmup >= 0")
    if not sizes:
        usage_error("--sizes is empty")
    return sizes, batches


def time_config(net, multiple, device, size, batch, xla, runs, warmup, seed):
    import tensorflow as tf

    from menet_tf import inference

    w, h = size
    with tf.device(device):
        images = tf.random.stateless_uniform([batch, h, w, 3], seed=[seed, batch], maxval=255.0)

        @tf.function(jit_compile=xla)
        def forward(x):
            y = net(inference.pad_to_multiple(x, multiple), training=False)
            return tf.cast(y[:, :h, :w, :], tf.float32)

        def once():
            t0 = time.perf_counter()
            out = forward(images)
            out[0, 0, 0, 0].numpy()  # waits for the whole batch (data dependency), copies one value
            return time.perf_counter() - t0

        for _ in range(warmup):
            once()
        times = [once() / batch for _ in range(runs)]
    return times


def main(argv):
    if len(argv) > 1:
        usage_error(f"unexpected arguments: {' '.join(argv[1:])}")
    sizes, batches = _check_flags()
    import keras
    import tensorflow as tf

    from menet_tf import inference
    from menet_tf.model import build_derain_net, load_net, read_config, required_multiple

    gpus = tf.config.list_physical_devices("GPU")
    if FLAGS.device == "gpu" and not gpus:
        usage_error("--device=gpu: TensorFlow sees no GPU here")
    devices = []
    if FLAGS.device in ("cpu", "all"):
        devices.append(("cpu", "/CPU:0"))
    if FLAGS.device in ("gpu", "all") and gpus:
        devices.append(("gpu", "/GPU:0"))
    xla_modes = {"both": [False, True], "on": [True], "off": [False]}[FLAGS.xla]

    gpu_names = []
    for g in gpus:
        details = tf.config.experimental.get_device_details(g)
        gpu_names.append(details.get("device_name", g.name))
    report = {
        "device": {"cpu": cliutil.cpu_description(), "gpu": gpu_names or "not present"},
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or "default (all cores)",
        "results": [],
        "paper_table3": PAPER_TABLE3,
        "notes": [
            "seconds_per_image_median: median over runs of (seconds per forward pass) / batch, after warm-up",
            "each forward pass = reflect-pad to the net's multiple (4; 16 with CA), the net (inference mode), crop",
            "sizes are W x H; padded_size is what the net ran on",
            "randomly initialised nets (--variants; --model_dir/--model load trained ones): timing does not depend on the weights",
        ],
    }
    for dev_name, dev in devices:
        policy = inference.configure_precision(FLAGS.mixed_precision, dev_name)
        for variant in ([FLAGS.model or os.path.basename(os.path.normpath(FLAGS.model_dir))] if FLAGS.model_dir
                        else FLAGS.variants):
            if FLAGS.model_dir:  # the trained net of a model directory (a shipped one with --model)
                config = read_config(FLAGS.model_dir)
                blocks, ca = int(config.get("num_res_blocks", 8)), bool(config.get("channel_attention", False))
                with tf.device(dev):
                    net = load_net(FLAGS.model_dir)
            else:
                blocks, ca = VARIANTS[variant]
                keras.utils.set_random_seed(FLAGS.seed)
                with tf.device(dev):
                    net = build_derain_net(blocks, channel_attention=ca)
            multiple = required_multiple(ca)
            for size in sizes:
                padded = [inference.round_up(size[0], multiple), inference.round_up(size[1], multiple)]
                for batch in batches:
                    for xla in xla_modes:
                        label = f"{dev_name} {variant} {size[0]}x{size[1]} batch {batch} XLA {'on' if xla else 'off'}"
                        print(f"timing {label} ...", file=sys.stderr, flush=True)
                        try:
                            times = time_config(net, multiple, dev, size, batch, xla, FLAGS.runs, FLAGS.warmup, FLAGS.seed)
                        except (tf.errors.ResourceExhaustedError, tf.errors.InternalError) as e:
                            print(f"  failed: {type(e).__name__}", file=sys.stderr)
                            report["results"].append({"variant": variant, "size": f"{size[0]}x{size[1]}", "batch": batch,
                                                      "xla": xla, "device": dev_name, "error": type(e).__name__})
                            continue
                        med = statistics.median(times)
                        print(f"  {med:.4f} s/image (min {min(times):.4f})", file=sys.stderr, flush=True)
                        report["results"].append({
                            "variant": variant,
                            "num_res_blocks": blocks,
                            "channel_attention": ca,
                            "size": f"{size[0]}x{size[1]}",
                            "padded_size": f"{padded[0]}x{padded[1]}",
                            "batch": batch,
                            "xla": xla,
                            "device": dev_name,
                            "precision": policy,
                            "seconds_per_image_median": round(med, 6),
                            "seconds_per_image_min": round(min(times), 6),
                            "runs": len(times),
                            "warmup": FLAGS.warmup,
                        })
    print(json.dumps(report))


def console():
    """The ``menet-timing`` console script (setup.cfg entry point): the same as ``python -m experiments.timing``."""
    app.run(main)


if __name__ == "__main__":
    console()
