r"""Research tool: fit the ``--model=auto`` rule (menet_tf.auto) on training pairs and check it on held-out sets.

    T=runs/squall_train/train   # python -m data_prep.heavy_rain --make=train --recipe=squall
    python -m experiments.fit_auto --light=menet-lb-multiscale --heavy=menet-lb-squall-v4 --measure=extra \
        --light_dirs=$T/rain100l,$T/light_bsds,$T/rain_free \
        --heavy_dirs=$T/storm_bsds,$T/storm_r100l,$T/fine_bsds,$T/fine_r100l,$T/raintrainh \
        --check="Rain100L test half=light:runs/rain100l_half/test,Held-out heavy rain=heavy:runs/heavy_test,Rain100L test half clean images=free:runs/rain100l_half/test" \
        --out=menet_tf/pretrained/auto.json

For each rainy image of the training folders it measures the rain amount (--measure=heavy:
menet_tf.auto.rain_amount, what the heavy model removes; --measure=extra: menet_tf.auto.extra_rain, what it
removes beyond the light model) and takes as threshold the midpoint of the best-separating gap (the most training
images on the right side; ties: the widest gap). Then, on each --check set (kind ``light``, ``heavy``, or
``free``: the set's clean images, which must count as light), it reports how often the rule chose right.
Test sets never move the threshold. The rule, the folders, the counts and the check results go to --out.
"""

from __future__ import annotations

import json

from absl import app, flags

from experiments import cliutil
from menet_tf.auto import MEASURES

FLAGS = flags.FLAGS
flags.DEFINE_string("light", None, "the light-rain model (shipped name)")
flags.DEFINE_string("heavy", None, "the heavy-rain model (shipped name)")
flags.DEFINE_list("light_dirs", None, "training pair folders of light rain")
flags.DEFINE_list("heavy_dirs", None, "training pair folders of heavy rain")
flags.DEFINE_enum("measure", "extra", sorted(MEASURES), "what the rule thresholds (menet_tf.auto.MEASURES)")
flags.DEFINE_list("check", [], "held-out sets 'label=kind:folder', kind light, heavy or free")
flags.DEFINE_integer("max_per_dir", None, "only the first N pairs of each training folder", lower_bound=1)
flags.DEFINE_string("out", None, "where the rule goes (JSON)")
flags.mark_flags_as_required(["light", "heavy", "light_dirs", "heavy_dirs", "out"])

PROG = "experiments.fit_auto"


def main(argv):
    if len(argv) > 1:
        cliutil.usage_error(PROG, f"unexpected arguments: {' '.join(argv[1:])}")
    import numpy as np

    from menet_tf import atomic, pretrained
    from menet_tf.auto import best_threshold, measure_amount
    from menet_tf.derainer import Derainer
    from menet_tf.imageio import read_image
    from menet_tf.pairs import find_pairs
    from menet_tf.progress import progress_bar

    for name in (FLAGS.light, FLAGS.heavy):
        if name not in pretrained.names():
            cliutil.usage_error(PROG, f"{name}: not a shipped model ({', '.join(pretrained.names())})")
    heavy = Derainer.load(model_dir=pretrained.model_dir(FLAGS.heavy))
    light = Derainer.load(model_dir=pretrained.model_dir(FLAGS.light)) if FLAGS.measure == "extra" else None

    def amounts(folder, clean=False, limit=None):
        try:
            pairs = find_pairs(folder)[:limit]
        except ValueError as e:  # DataError names the folder and its problems
            raise SystemExit(f"error: {e}") from None
        bar = progress_bar(len(pairs), unit_name="image")
        out = []
        for k, (r, c) in enumerate(pairs, 1):
            try:
                image = read_image(c if clean else r)
            except ValueError as e:  # ImageError names the file
                raise SystemExit(f"error: {e}") from None
            out.append(measure_amount(FLAGS.measure, image, light.derain(image) if light else None,
                                      heavy.derain(image)))
            bar.update(k)
        return out

    train = {"light": {}, "heavy": {}}
    for kind, dirs in (("light", FLAGS.light_dirs), ("heavy", FLAGS.heavy_dirs)):
        for d in dirs:
            train[kind][d] = amounts(d, limit=FLAGS.max_per_dir)
            v = train[kind][d]
            print(f"{kind} {d}: {len(v)} images, amount {np.min(v):.2f}-{np.max(v):.2f} (median {np.median(v):.2f})",
                  flush=True)
    light_all = [a for v in train["light"].values() for a in v]
    heavy_all = [a for v in train["heavy"].values() for a in v]
    threshold, errors = best_threshold(light_all, heavy_all)
    print(f"threshold {threshold:.2f} grey levels: {errors} of {len(light_all) + len(heavy_all)} training images "
          "on the wrong side", flush=True)
    checks = []
    for item in FLAGS.check:
        label, sep, rest = item.rpartition("=")
        kind, _, folder = rest.partition(":")
        if not sep or kind not in ("light", "heavy", "free"):
            cliutil.usage_error(PROG, f"--check: {item!r} is not 'label=light|heavy|free:folder'")
        v = amounts(folder, clean=kind == "free")
        chose_heavy = [a > threshold for a in v]
        right = sum(h == (kind == "heavy") for h in chose_heavy)
        checks.append({"label": label, "kind": kind, "folder": folder, "images": len(v), "right": int(right),
                       "amount_min": float(np.min(v)), "amount_median": float(np.median(v)),
                       "amount_max": float(np.max(v))})
        print(f"{label} ({kind}): {right} of {len(v)} chosen right; amount {np.min(v):.2f}-{np.max(v):.2f}", flush=True)
    rule = {"light": FLAGS.light, "heavy": FLAGS.heavy, "threshold": threshold,
            "measure": FLAGS.measure, "measure_text": MEASURES[FLAGS.measure],
            "fitted_on": {kind: {d: {"images": len(v), "min": float(np.min(v)), "median": float(np.median(v)),
                                     "max": float(np.max(v))} for d, v in dirs.items()} for kind, dirs in train.items()},
            "training_errors": errors, "checks": checks}
    with atomic.atomic_write(FLAGS.out) as f:
        json.dump(rule, f, indent=2)
        f.write("\n")
    print(json.dumps(rule))


if __name__ == "__main__":
    app.run(main)
