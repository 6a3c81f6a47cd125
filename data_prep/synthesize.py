r"""Render synthetic rain on clean images into a JORDER-flat folder (rain-NNN.png + norain-NNN.png).

    python -m data_prep.synthesize --out data/syn_light --style light --seed 0
    python -m data_prep.synthesize --out data/syn_heavy --style heavy \
        --clean_dir /path/to/BSDS500_test --num_variants 2 --seed 1
    python -m data_prep.synthesize --out data/syn_real --style heavy --clean_dir /path/to/BSDS500_test \
        --num_variants 3 --scale_range 1,3 --haze_range 0,0.35 --seed 2   # real-photo-like rain
    python -m data_prep.synthesize --out data/syn_moved --rain_from /path/to/Rain100L_train \
        --clean_dir /path/to/BSDS500_test --scale_range 1,3 --seed 3   # Rain100L's own rain, enlarged
    python -m data_prep.synthesize --out data/syn_downpour --rain_from /path/to/RainTrainH_train \
        --clean_dir /path/to/clean --scale_range 1,3 --rotate_range -12,12 --density_range 1,2 \
        --intensity_range 0.25,1 --seed 4

Without --clean_dir the RGB photos bundled with scikit-image are used (the project's built-in data
set). With the 200 BSDS500 test-split photos it makes training data disjoint from Rain100L/H.
The same flags and seed always write the same bytes. See menet_tf/synthesis.py for the renderer.
"""

from __future__ import annotations

import sys
import time

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Output folder (created if missing).")
flags.DEFINE_enum("style", "light", ["light", "heavy", "varied"],
                  "light: one direction, sparse thin streaks (like Rain100L); "
                  "heavy: several directions, dense wide bright streaks (like Rain100H); "
                  "varied: light rain whose streaks differ in length, width, softness and brightness "
                  "within an image and whose amount differs between images (fitted to Rain100L's train half).")
flags.DEFINE_string("clean_dir", None,
                    "Folder of clean images; default: the photos bundled with scikit-image.")
flags.DEFINE_integer("seed", 0, "Random seed; each image's rain depends only on it, the image's "
                     "file name and the variant index.")
flags.DEFINE_integer("num_variants", 1, "Rain renderings per clean image.", lower_bound=1)
flags.DEFINE_integer("max_images", None, "Use only the first N clean images (sorted by name).",
                     lower_bound=1)
flags.DEFINE_integer("min_size", None, "Skip clean images smaller than this on a side "
                     "(default 224, the training crop; 0 keeps all).", lower_bound=0)
flags.DEFINE_list("scale_range", ["1", "1"], "lo,hi: each rendering's streak scale, log-uniform (2 = streaks "
                  "twice as long and wide, as in photos larger than the benchmark sets'; menet_tf.synthesis.scaled_style).")
flags.DEFINE_list("haze_range", None, "lo,hi: rain accumulation (haze) strength 1 - t per rendering, uniform; "
                  "default none (menet_tf.synthesis.add_haze).")
flags.DEFINE_list("airlight_range", ["200", "245"], "lo,hi: the haze's grey level, uniform.")
flags.DEFINE_string("rain_from", None, "A paired data set (e.g. a training set of real benchmark rain): render "
                    "no rain but move its rain maps O - B onto the clean images, enlarged by --scale_range "
                    "(below 1: shrunk and repeated until they cover; menet_tf.synthesis.transplant_map); "
                    "instead of --style.")
flags.DEFINE_list("rotate_range", None, "lo,hi degrees (with --rain_from): turn each moved rain map by an "
                  "angle drawn uniformly from this range (e.g. -12,12); default none.")
flags.DEFINE_list("density_range", None, "lo,hi >= 1 (with --rain_from): sum this many moved rain maps per "
                  "rendering, drawn uniformly (1,2: one map or two; denser rain); default one.")
flags.DEFINE_list("intensity_range", None, "lo,hi in (0, 4] (with --rain_from): multiply each moved rain map "
                  "by a factor drawn log-uniformly from this range (0.25,1: fainter rain); default 1.")
flags.mark_flag_as_required("out")


def _range(flag: str, values, lo_bound: float, hi_bound: float):
    try:
        lo, hi = (float(v) for v in values)
    except (TypeError, ValueError):
        raise app.UsageError(f"--{flag}: give two numbers lo,hi (got {values})") from None
    if not lo_bound <= lo <= hi <= hi_bound:
        raise app.UsageError(f"--{flag}={lo:g},{hi:g}: need {lo_bound:g} <= lo <= hi <= {hi_bound:g}")
    return lo, hi


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from menet_tf.imageio import ImageError
    from menet_tf.synthesis import synthesize_dataset

    if FLAGS.rain_from is not None and FLAGS["style"].present:
        raise app.UsageError("--rain_from takes the rain from a data set: leave out --style")
    scale_range = _range("scale_range", FLAGS.scale_range, 0.1, 16.0)
    haze_range = None if FLAGS.haze_range is None else _range("haze_range", FLAGS.haze_range, 0.0, 0.9)
    airlight_range = _range("airlight_range", FLAGS.airlight_range, 0.0, 255.0)
    if FLAGS.rain_from is None and any(r is not None for r in (FLAGS.rotate_range, FLAGS.density_range,
                                                                FLAGS.intensity_range)):
        raise app.UsageError("--rotate_range, --density_range and --intensity_range move a data set's rain: "
                             "give --rain_from too")
    rotate_range = None if FLAGS.rotate_range is None else _range("rotate_range", FLAGS.rotate_range, -45.0, 45.0)
    density_range = None if FLAGS.density_range is None else _range("density_range", FLAGS.density_range, 1.0, 8.0)
    intensity_range = None if FLAGS.intensity_range is None else _range("intensity_range", FLAGS.intensity_range,
                                                                         1e-3, 4.0)
    start = time.time()
    try:
        pairs = synthesize_dataset(FLAGS.out, FLAGS.style, clean_dir=FLAGS.clean_dir,
                                   seed=FLAGS.seed, max_images=FLAGS.max_images,
                                   min_size=FLAGS.min_size, num_variants=FLAGS.num_variants,
                                   progress=True, scale_range=scale_range, haze_range=haze_range,
                                   airlight_range=airlight_range, rain_from=FLAGS.rain_from,
                                   rotate_range=rotate_range, density_range=density_range,
                                   intensity_range=intensity_range)
    except (ImageError, FileNotFoundError, ValueError, OSError) as e:  # DataError is a ValueError
        logging.error("%s", e)
        sys.exit(1)
    logging.info("wrote %d %s-rain pairs to %s in %.1f s", len(pairs),
                 "transplanted" if FLAGS.rain_from else FLAGS.style, FLAGS.out,
                 time.time() - start)
    print(f"{len(pairs)} pairs written to {FLAGS.out}")


if __name__ == "__main__":
    app.run(main)
