r"""Heavy-rain data from what the project may use: training data, and a held-out heavy test set.

    python -m data_prep.heavy_rain --make=test  --shared=../shared/data --out=runs/heavy_test
    python -m data_prep.heavy_rain --make=train --shared=../shared/data --out=runs/heavy_train
    python -m data_prep.heavy_rain --make=train --recipe=storm --shared=../shared/data --out=runs/storm_train

The only heavy rain with ground truth here is the RainTrainH sample (Rain100H's generator): 20 pairs
whose rain maps O - B can be moved onto other clean images (:mod:`menet_tf.synthesis`, transplanted
rain). Pairs 1 and 10 are Rain100H test pairs 1 and 2 (their clean images are Rain100L's backgrounds 1
and 2): never used. The rest is split once, here, for every model:

* **held out** (``--make=test``, :data:`HELD_OUT_PAIRS`): RainTrainH pairs 16-20 as they are (written as
  pairs 051-055), plus their rain maps moved onto the 50 BSDS500 test photos of :func:`held_out_photos`
  (every fourth by sorted name), at 1-3x scale, turned by up to 12 degrees, one or two maps summed
  (pairs 001-050): 55 pairs, seed 51. Neither these rain maps nor these photos are in any training set
  made here.
* **training** (``--make=train``), in ``OUT/train`` (read as one set with ``--rainy_glob='*/rain-*'
  --clean_glob='*/norain-*'``):
    - ``raintrainh``: RainTrainH pairs 2-9 and 11-15 as they are (13 pairs);
    - ``heavy_bsds``: their rain moved onto the other 150 BSDS500 test photos, two renderings each, at
      1-3x scale, turned by up to 12 degrees, one or two maps summed (300 pairs, seed 41);
    - ``heavy_r100l``: the same on the 46 clean images of the Rain100L train half (92 pairs, seed 42);
    - ``rain100l``: the Rain100L train half itself (pairs 51-100 without 58, 69, 80, 91; 46 pairs);
    - ``light_bsds``: the Rain100L train half's own rain, enlarged 1-3x, on the 150 training photos
      (150 pairs, seed 43; the recipe of the ``menet-lb-multiscale`` default, without the held-out
      photos).
  601 pairs (``--recipe=downpour``, the default: ``menet-lb-downpour``'s data). Nothing of the Rain100L
  test half (pairs 1-50), whose clean images are also Rain100H's, is used.
* **training, storm recipe** (``--make=train --recipe=storm``): the same sources rendered more often and
  more widely, for real photos' heavy rain: ``raintrainh`` and ``rain100l`` as above; ``storm_bsds``
  and ``storm_r100l``: the 13 heavy rain maps on the 150 training photos and the 46 Rain100L train-half
  clean images, four renderings each, at 1-3x, turned by up to 25 degrees, 1 to 2.5 maps summed (600 +
  184 pairs, seeds 44 and 45), the maps on the photos made fainter by a factor log-uniform in 0.25-1
  (RainTrainH's rain, mean |O - B| 47 grey levels, is far brighter than most real downpours'; the
  Rain100L rain is 6); ``light_bsds`` as above; ``rain_free``: 96 rain-free pairs (the clean
  image as input and target: the 46 Rain100L train-half clean images and every third training photo),
  so that a long heavy-rain training keeps rain-free photos as they are. 1089 pairs.
* **training, squall recipe** (``--make=train --recipe=squall``): the storm recipe plus finer rain, for real
  photos, whose streaks are often finer than RainTrainH's (de-raining them enlarged 1.5x removed far more
  of their streak energy): ``fine_bsds`` and ``fine_r100l``, the 13 heavy rain maps at 0.4-1x (shrunk and
  repeated side by side, :func:`menet_tf.synthesis.transplant_map`), turned by up to 25 degrees, 1 to 3
  maps summed, two renderings per photo (300 + 92 pairs, seeds 46 and 47; fainter by 0.25-1 on the
  photos, as in ``storm_bsds``). 1481 pairs.

Inputs are symlinked from ``--shared`` (absolute paths), rendered pairs written as PNG; the same
command always writes the same bytes. ``OUT/sources`` holds the symlinked clean folders.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time
from typing import NamedTuple

from absl import app, flags

FLAGS = flags.FLAGS


def _define_flags() -> None:  # at run time only: tests import this module beside other tools' flags
    flags.DEFINE_enum("make", None, ["train", "test"], "What to make: the training set or the held-out heavy test set.")
    flags.DEFINE_string("shared", "../shared/data", "The shared data folder (Rain100L, RainTrainH_sample, BSDS500_test).")
    flags.DEFINE_string("out", None, "Output folder (created).")
    flags.DEFINE_enum("recipe", "downpour", sorted(RECIPES),
                      "Training-set recipe (--make=train only): downpour (menet-lb-downpour's data), storm "
                      "(more renderings, wider turns and densities, rain-free pairs) or squall (storm plus finer "
                      "rain); see the module docstring.")
    flags.mark_flags_as_required(["make", "out"])


RAINTRAINH_TRAIN_PAIRS = tuple(range(2, 10)) + tuple(range(11, 16))  # 1 and 10 are Rain100H test pairs
HELD_OUT_PAIRS = tuple(range(16, 21))
RAIN100L_TRAIN_PAIRS = tuple(i for i in range(51, 101) if i not in (58, 69, 80, 91))
SCALE_RANGE = (1.0, 3.0)
ROTATE_RANGE = (-12.0, 12.0)
DENSITY_RANGE = (1.0, 2.0)
TEST_SEED = 51
TRAIN_SEEDS = {"heavy_bsds": 41, "heavy_r100l": 42, "light_bsds": 43, "storm_bsds": 44, "storm_r100l": 45,
               "fine_bsds": 46, "fine_r100l": 47}
STORM_ROTATE_RANGE = (-25.0, 25.0)  # real photos' streaks lean more than RainTrainH's
STORM_DENSITY_RANGE = (1.0, 2.5)
STORM_VARIANTS = 4
RAIN_FREE_BSDS = 50  # of the 150 training photos, every third: rain-free pairs (B, B)
STORM_INTENSITY_RANGE = (0.25, 1.0)  # RainTrainH's rain (mean |O - B| 47 grey levels) is far brighter than real rain
FINE_SCALE_RANGE = (0.4, 1.0)  # real photos' streaks are often finer than RainTrainH's (issue 20's notes)
FINE_DENSITY_RANGE = (1.0, 3.0)  # finer rain, more of it
FINE_VARIANTS = 2


class Job(NamedTuple):
    """One moved-rain folder of a recipe: ``rain_from`` (a training folder) moved onto ``clean`` (a sources
    folder), ``variants`` renderings per photo, each at a scale log-uniform in ``scale`` (< 1: finer
    streaks than the source's), turned within ``rotate`` degrees, ``density`` maps summed, made fainter
    by a factor in ``intensity`` (None: as :func:`menet_tf.synthesis.synthesize_dataset` leaves them)."""
    folder: str
    rain_from: str
    clean: str
    variants: int
    rotate: tuple | None = None
    density: tuple | None = None
    intensity: tuple | None = None
    scale: tuple = SCALE_RANGE


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A training-set recipe: its moved-rain jobs (:class:`Job`), and whether it adds the rain-free pairs
    (``_link_rain_free``)."""
    jobs: tuple
    rain_free: bool = False


_STORM_JOBS = (Job("storm_bsds", "raintrainh", "bsds_train", STORM_VARIANTS, STORM_ROTATE_RANGE, STORM_DENSITY_RANGE,
                   STORM_INTENSITY_RANGE),
               Job("storm_r100l", "raintrainh", "rain100l_clean", STORM_VARIANTS, STORM_ROTATE_RANGE,
                   STORM_DENSITY_RANGE),
               Job("light_bsds", "rain100l", "bsds_train", 1))
RECIPES = {
    "downpour": Recipe((Job("heavy_bsds", "raintrainh", "bsds_train", 2, ROTATE_RANGE, DENSITY_RANGE),
                        Job("heavy_r100l", "raintrainh", "rain100l_clean", 2, ROTATE_RANGE, DENSITY_RANGE),
                        Job("light_bsds", "rain100l", "bsds_train", 1))),
    "storm": Recipe(_STORM_JOBS, rain_free=True),
    "squall": Recipe(_STORM_JOBS + (
        Job("fine_bsds", "raintrainh", "bsds_train", FINE_VARIANTS, STORM_ROTATE_RANGE, FINE_DENSITY_RANGE,
            STORM_INTENSITY_RANGE, FINE_SCALE_RANGE),
        Job("fine_r100l", "raintrainh", "rain100l_clean", FINE_VARIANTS, STORM_ROTATE_RANGE, FINE_DENSITY_RANGE,
            None, FINE_SCALE_RANGE)), rain_free=True),
}


def bsds_photos(shared: str) -> list:
    d = os.path.join(shared, "BSDS500_test")
    if not os.path.isdir(d):
        raise FileNotFoundError(f"{d}: no such folder (the 200 BSDS500 test photos)")
    names = sorted(n for n in os.listdir(d) if n.lower().endswith((".jpg", ".png")))
    if len(names) != 200:
        raise ValueError(f"{d}: expected the 200 BSDS500 test photos, found {len(names)}")
    return names


def held_out_photos(shared: str) -> list:
    """The 50 BSDS500 test photos kept out of all heavy-rain training: every fourth by sorted name."""
    return bsds_photos(shared)[3::4]


def training_photos(shared: str) -> list:
    held = set(held_out_photos(shared))
    return [n for n in bsds_photos(shared) if n not in held]


def _need(path: str) -> str:
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: missing")
    return os.path.abspath(path)


def _link_pairs(folder: str, src: str, numbers, fmt: str) -> None:
    os.makedirs(folder, exist_ok=True)
    for i in numbers:
        for side in ("rain", "norain"):
            name = f"{side}-{fmt.format(i)}.png"
            dst = os.path.join(folder, name)
            if not os.path.lexists(dst):
                os.symlink(_need(os.path.join(src, name)), dst)


def _link_files(folder: str, paths) -> None:
    os.makedirs(folder, exist_ok=True)
    for p in paths:
        dst = os.path.join(folder, os.path.basename(p))
        if not os.path.lexists(dst):
            os.symlink(_need(p), dst)


def _moved(out: str, rain_from: str, clean_dir: str, seed: int, variants: int, rotate_range=ROTATE_RANGE,
           density_range=DENSITY_RANGE, intensity_range=None, scale_range=SCALE_RANGE) -> int:
    from menet_tf.synthesis import synthesize_dataset

    extra = dict(rotate_range=rotate_range, density_range=density_range) if rotate_range is not None else {}
    if intensity_range is not None:
        extra["intensity_range"] = intensity_range
    pairs = synthesize_dataset(out, "light", clean_dir=clean_dir, seed=seed, num_variants=variants,
                               progress=True, scale_range=scale_range, rain_from=rain_from, **extra)
    return len(pairs)


def make_test(shared: str, out: str) -> int:
    """The held-out heavy test set (module docstring); returns its number of pairs."""
    h = os.path.join(shared, "RainTrainH_sample")
    src = os.path.join(out, "sources")
    _link_pairs(os.path.join(src, "raintrainh_heldout"), h, HELD_OUT_PAIRS, "{}")
    _link_files(os.path.join(src, "bsds_heldout"),
                [os.path.join(shared, "BSDS500_test", n) for n in held_out_photos(shared)])
    tmp = os.path.join(out, ".moved.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    n = _moved(tmp, os.path.join(src, "raintrainh_heldout"), os.path.join(src, "bsds_heldout"), TEST_SEED, 1)
    for name in os.listdir(tmp):
        os.replace(os.path.join(tmp, name), os.path.join(out, name))
    os.rmdir(tmp)
    for k, i in enumerate(HELD_OUT_PAIRS, n + 1):  # the real pairs, copied byte for byte
        for side in ("rain", "norain"):
            shutil.copyfile(os.path.join(h, f"{side}-{i}.png"), os.path.join(out, f"{side}-{k:03d}.png"))
    with open(os.path.join(src, "README.txt"), "w") as f:  # not beside the pairs: a stray file there
        f.write(f"Held-out heavy rain (python -m data_prep.heavy_rain --make=test): pairs 001-{n:03d} are the rain "
                f"of RainTrainH sample pairs 16-20 moved onto 50 BSDS500 test photos (manifest.csv), pairs "
                f"{n + 1:03d}-{n + len(HELD_OUT_PAIRS):03d} are RainTrainH sample pairs 16-20 as they are.\n")
    return n + len(HELD_OUT_PAIRS)


def make_train(shared: str, out: str, recipe: str = "downpour") -> int:
    """The heavy + light training set of ``recipe`` (module docstring) in ``out/train``; returns its
    number of pairs."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}: use one of {', '.join(sorted(RECIPES))}")
    train, src = os.path.join(out, "train"), os.path.join(out, "sources")
    _link_pairs(os.path.join(train, "raintrainh"), os.path.join(shared, "RainTrainH_sample"),
                RAINTRAINH_TRAIN_PAIRS, "{}")
    _link_pairs(os.path.join(train, "rain100l"), os.path.join(shared, "Rain100L"), RAIN100L_TRAIN_PAIRS, "{:03d}")
    _link_files(os.path.join(src, "bsds_train"),
                [os.path.join(shared, "BSDS500_test", n) for n in training_photos(shared)])
    _link_files(os.path.join(src, "rain100l_clean"),
                [os.path.join(shared, "Rain100L", f"norain-{i:03d}.png") for i in RAIN100L_TRAIN_PAIRS])
    total = len(RAINTRAINH_TRAIN_PAIRS) + len(RAIN100L_TRAIN_PAIRS)
    if RECIPES[recipe].rain_free:
        total += _link_rain_free(os.path.join(train, "rain_free"), shared)
    for job in RECIPES[recipe].jobs:
        dst = os.path.join(train, job.folder)
        if os.path.exists(os.path.join(dst, "manifest.csv")):  # finished earlier (written last)
            total += len(os.listdir(dst)) // 2
            continue
        tmp = dst + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        total += _moved(tmp, os.path.join(train, job.rain_from), os.path.join(src, job.clean), TRAIN_SEEDS[job.folder],
                        job.variants, job.rotate, job.density, job.intensity, job.scale)
        os.replace(tmp, dst)
    return total


def _link_rain_free(folder: str, shared: str) -> int:
    """Rain-free pairs (the clean image as both input and target: do no harm): the 46 clean images of the
    Rain100L train half and every third of the 150 BSDS500 training photos (50). Returns the count."""
    photos = [os.path.join(shared, "Rain100L", f"norain-{i:03d}.png") for i in RAIN100L_TRAIN_PAIRS]
    photos += [os.path.join(shared, "BSDS500_test", n) for n in training_photos(shared)[::3][:RAIN_FREE_BSDS]]
    os.makedirs(folder, exist_ok=True)
    for k, p in enumerate(photos, 1):
        ext = os.path.splitext(p)[1]
        for side in ("rain", "norain"):
            dst = os.path.join(folder, f"{side}-{k:03d}{ext}")
            if not os.path.lexists(dst):
                os.symlink(_need(p), dst)
    return len(photos)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    start = time.time()
    try:
        if FLAGS.make == "test":
            n = make_test(FLAGS.shared, FLAGS.out)
        else:
            n = make_train(FLAGS.shared, FLAGS.out, FLAGS.recipe)
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"{n} {FLAGS.make} pairs in {FLAGS.out} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
