"""A reproducible train/test split that keeps identical backgrounds together.

    python -m data_prep.split DIR --test_fraction 0.5 --seed 0 --out OUTDIR

Writes OUTDIR/train and OUTDIR/test as JORDER-flat folders (``rain-KEY.ext`` + ``norain-KEY.ext``,
hard links where possible, else copies) and OUTDIR/split.json listing every pair with its source files.
Pairs whose clean images are pixel-identical always land on the same side. Any data problem stops the
split before anything is written (exit status 1), unless --skip_bad_pairs.
"""

from __future__ import annotations

import sys

from absl import app, flags

FLAGS = flags.FLAGS


def _define_flags() -> None:
    flags.DEFINE_string("data_dir", None, "The data set folder (or give it as the positional argument).")
    flags.DEFINE_string("out", None, "Output folder (gets train/, test/ and split.json).")
    flags.DEFINE_float("test_fraction", 0.5, "Fraction of the pairs that goes to the test side.")
    flags.DEFINE_integer("seed", 0, "Seed of the split (same seed, same split).")
    flags.DEFINE_string("rainy_glob", None, "Glob of the rainy images, relative to the folder (with --clean_glob).")
    flags.DEFINE_string("clean_glob", None, "Glob of the clean images, relative to the folder (with --rainy_glob).")
    flags.DEFINE_bool("skip_bad_pairs", False, "Leave bad pairs out with a warning instead of stopping.")
    flags.DEFINE_bool("hardlink", True, "Hard-link the files where possible (else copy them).")
    flags.DEFINE_bool("progress", True, "Show a progress bar (keras.utils.Progbar) while reading the images.")
    flags.mark_flag_as_required("out")


def main(argv):
    from data_prep.common import split_data
    from menet_tf.pairs import DataError

    dirs = ([FLAGS.data_dir] if FLAGS.data_dir else []) + list(argv[1:])
    if len(dirs) != 1:
        raise app.UsageError("give one data folder: python -m data_prep.split DIR --out OUTDIR")
    try:
        record = split_data(dirs[0], FLAGS.out, FLAGS.test_fraction, FLAGS.seed, FLAGS.rainy_glob,
                            FLAGS.clean_glob, FLAGS.skip_bad_pairs, FLAGS.hardlink, progress=FLAGS.progress)
    except (DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    groups = record["duplicate_backgrounds"]
    print(f"layout: {record['layout']}; {record['num_pairs']} pairs -> train {len(record['train'])}, "
          f"test {len(record['test'])}; {len(groups)} duplicate-background group(s) kept together", flush=True)
    print(f"written: {FLAGS.out}/train, {FLAGS.out}/test, {FLAGS.out}/split.json", flush=True)
    return 0


if __name__ == "__main__":
    _define_flags()
    app.run(main)
