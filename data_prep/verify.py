"""Check a paired de-raining data set before training.

    python -m data_prep.verify DIR [--crop_size 224] [--rainy_glob 'rain/*.png' --clean_glob 'gt/*.png']

Reports the layout found, the pair count, the image sizes, the duplicate backgrounds (pairs whose clean
images are pixel-identical: keep them on one side of a split) and every problem (missing partners,
stray files, corrupt or truncated images, size mismatches, images smaller than the crop), each naming
its file. Exit status 0 when there is no problem, 1 otherwise.
"""

from __future__ import annotations

from absl import app, flags

FLAGS = flags.FLAGS


def _define_flags() -> None:
    flags.DEFINE_string("data_dir", None, "The data set folder (or give it as the positional argument).")
    flags.DEFINE_string("rainy_glob", None, "Glob of the rainy images, relative to the folder (with --clean_glob).")
    flags.DEFINE_string("clean_glob", None, "Glob of the clean images, relative to the folder (with --rainy_glob).")
    flags.DEFINE_integer("crop_size", 224, "Report images smaller than this crop (0: no check).")
    flags.DEFINE_bool("progress", True, "Show a progress bar (keras.utils.Progbar) while reading the images.")


def main(argv):
    from data_prep.common import verify_data

    dirs = ([FLAGS.data_dir] if FLAGS.data_dir else []) + list(argv[1:])
    if len(dirs) != 1:
        raise app.UsageError("give one data folder: python -m data_prep.verify DIR (or --data_dir DIR)")
    report = verify_data(dirs[0], FLAGS.rainy_glob, FLAGS.clean_glob, FLAGS.crop_size, progress=FLAGS.progress)
    print(report.text(), flush=True)
    return 1 if report.problems else 0


if __name__ == "__main__":
    _define_flags()
    app.run(main)
