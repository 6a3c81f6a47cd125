"""Upside-down copies of a paired data set: flipped augmentation written to disk, so that training on it stays
deterministic and resumable like training on any other folder.

    python -m data_prep.flip --data_dir=runs/squall_train/train --rainy_glob='*/rain-*' \
        --clean_glob='*/norain-*' --out=runs/squall_train/train_upside_down

Every pair that ``menet_tf.pairs.find_pairs`` finds is written flipped up-down (``--flip=ud``; ``lr`` and
``both`` also exist) under --out at the same path relative to --data_dir, as PNG, each file whole or not at
all. Why up-down: the self-ensemble (``menet_tf.inference.self_ensemble``) shows that the shipped models de-rain
upside-down photos well and that the mean with them is better, while their training (the spec's five crops
with left-right flips) never shows them one; streaks stay streaks upside down, unlike quarter turns.
"""

from __future__ import annotations

import os

from absl import app, flags

FLAGS = flags.FLAGS
FLIPS = {"ud": (0,), "lr": (1,), "both": (0, 1)}


def _define_flags() -> None:
    flags.DEFINE_string("data_dir", None, "the paired data set folder")
    flags.DEFINE_string("rainy_glob", None, "glob of the rainy images, relative to --data_dir (with --clean_glob)")
    flags.DEFINE_string("clean_glob", None, "glob of the clean images, relative to --data_dir (with --rainy_glob)")
    flags.DEFINE_enum("flip", "ud", sorted(FLIPS), "ud: upside down; lr: mirrored; both: turned half")
    flags.DEFINE_string("out", None, "where the flipped pairs go (must not be inside --data_dir)")
    flags.DEFINE_bool("progress", True, "show a progress bar")
    flags.mark_flags_as_required(["data_dir", "out"])


def flip_pairs(data_dir: str, out: str, flip: str = "ud", rainy_glob: str | None = None,
               clean_glob: str | None = None, progress: bool = False) -> int:
    """Write the flipped pairs of ``data_dir`` under ``out`` (same relative paths, PNG); returns the pair count."""
    import numpy as np

    from menet_tf.imageio import read_image, write_image
    from menet_tf.pairs import find_pairs
    from menet_tf.progress import progress_bar

    data_dir, out = os.path.abspath(data_dir), os.path.abspath(out)
    if out == data_dir or out.startswith(data_dir + os.sep):
        raise ValueError(f"--out={out} is inside --data_dir={data_dir}: the flipped pairs would be read as data")
    pairs = find_pairs(data_dir, rainy_glob, clean_glob)
    bar = progress_bar(len(pairs), unit_name="pair") if progress else None
    for i, pair in enumerate(pairs, 1):
        for path in pair:
            rel = os.path.splitext(os.path.relpath(os.path.abspath(path), data_dir))[0] + ".png"
            target = os.path.join(out, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            write_image(target, np.ascontiguousarray(np.flip(read_image(path), FLIPS[flip])))
        if bar is not None:
            bar.update(i)
    return len(pairs)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from menet_tf.pairs import DataError

    try:
        n = flip_pairs(FLAGS.data_dir, FLAGS.out, FLAGS.flip, FLAGS.rainy_glob, FLAGS.clean_glob, FLAGS.progress)
    except (ValueError, DataError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {n} pairs flipped ({FLAGS.flip}) to {FLAGS.out}", flush=True)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
