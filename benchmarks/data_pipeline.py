"""Training-pipeline throughput per --cache mode, against the training step's, on real Rain100L.

    python -m benchmarks.data_pipeline [--data_dir ../shared/data/Rain100L] [--steps 5]

For each cache mode (menet_tf.patch_source: memory, disk, none) it builds the patch source (decoding and
checking every pair once; disk also writes its .npy files) and times the first epoch (that included) and
a second one of menet_tf.patch_source.make_source_epoch_dataset (batch 20, the (seed, epoch)
permutation), in patches per second; also the landed pipeline (menet_tf.data.make_patches: all crops
cut once into uint8 arrays, then make_epoch_dataset) as before; and, in the same run, the training
step's patches per second (batch 20, 224x224, row lp_le_lt_lb_ca, float32). Last line:
{"pipeline_patches_per_s_first": A, "pipeline_patches_per_s_cached": B, "train_patches_per_s": C,
 "ratio_cached": B/C, "modes": {mode: {"first_patches_per_s": F, "later_patches_per_s": L,
 "ratio_later": L/C}}}.
"""

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from benchmarks.common import SHARED_DATA, median_seconds, print_json  # noqa: E402
from experiments.config import load_flagfile, row_flagfile  # noqa: E402
from experiments.training import build_trainer, resolve_runtime  # noqa: E402
from menet_tf import data, patch_source  # noqa: E402

flags.DEFINE_string("data_dir", os.path.join(SHARED_DATA, "Rain100L"), "Paired data to read.")
flags.DEFINE_integer("batch_size", 20, "Batch size.")
flags.DEFINE_integer("crop_size", 224, "Patch size.")
flags.DEFINE_integer("steps", 5, "Timed training steps (median).")
flags.DEFINE_string("row", "lp_le_lt_lb_ca", "Table I row whose training step is timed.")
flags.DEFINE_list("modes", list(patch_source.CACHE_MODES), "Cache modes to time.")
FLAGS = flags.FLAGS


def epoch_seconds(dataset) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    for rainy, _ in dataset:
        n += int(rainy.shape[0])
    return time.perf_counter() - t0, n


def main(argv):
    del argv
    if not os.path.isdir(FLAGS.data_dir):
        raise app.UsageError(f"--data_dir: {FLAGS.data_dir}: no such directory")
    t0 = time.perf_counter()
    rainy, clean, _ = data.make_patches(FLAGS.data_dir, FLAGS.crop_size)
    num_patches = len(rainy)
    epoch = lambda e: data.make_epoch_dataset(rainy, clean, FLAGS.batch_size, 0, e, e + 1)  # noqa: E731
    _, n_first = epoch_seconds(epoch(0))
    first_s = time.perf_counter() - t0  # the first epoch includes decoding and cutting every patch
    cached_s, n_cached = epoch_seconds(epoch(1))
    batch = next(iter(epoch(2)))
    print(f"landed pipeline: {num_patches} patches; first epoch {n_first} in {first_s:.2f} s, cached {n_cached} "
          f"in {cached_s:.3f} s", flush=True)

    modes = {}
    with tempfile.TemporaryDirectory() as cache:
        for mode in FLAGS.modes:
            t0 = time.perf_counter()
            source = patch_source.make_patch_source(FLAGS.data_dir, FLAGS.crop_size, mode, cache_dir=cache)
            ds = lambda e: patch_source.make_source_epoch_dataset(source, FLAGS.batch_size, 0, e, e + 1)  # noqa: E731
            _, n1 = epoch_seconds(ds(0))
            first = time.perf_counter() - t0
            later, n2 = epoch_seconds(ds(1))
            modes[mode] = {"first_patches_per_s": n1 / first, "later_patches_per_s": n2 / later}
            print(f"--cache={mode}: first epoch {n1} patches in {first:.2f} s, later {n2} in {later:.2f} s", flush=True)

    config = resolve_runtime(load_flagfile(row_flagfile(FLAGS.row)))
    trainer = build_trainer(config, steps_per_epoch=23)
    step = tf.function(trainer.train_step, jit_compile=bool(config.jit_compile))
    step_s = median_seconds(lambda: step(batch)["loss"].numpy(), FLAGS.steps, 2)
    train_pps = FLAGS.batch_size / step_s
    print(f"training step ({FLAGS.row}, float32): {1e3 * step_s:.0f} ms per batch of {FLAGS.batch_size}", flush=True)
    for m in modes.values():
        m["ratio_later"] = m["later_patches_per_s"] / train_pps
    cached_pps = n_cached / cached_s
    print_json({
        "pipeline_patches_per_s_first": n_first / first_s,
        "pipeline_patches_per_s_cached": cached_pps,
        "train_patches_per_s": train_pps,
        "ratio_cached": cached_pps / train_pps,
        "modes": modes,
    })


if __name__ == "__main__":
    app.run(main)
