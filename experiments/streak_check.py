r"""Check the no-reference streak measure (``menet_tf.streaks``) against ground truth on a paired set.

    python -m experiments.streak_check --data_dir=runs/rain100l_half/test \
        --models=menet-lb-rain100l,menet-lb-varied,runs/style_study/light

On real photos there is no clean image, so ``experiments.gallery`` ranks models by the fraction of the
rainy photo's streak energy they remove. This command tells whether that ranking means anything: on
pairs with a clean image it prints, per model (shipped names or model directories), the mean fraction
removed and the mean PSNR (standard protocol), the fraction the clean images themselves remove, and the
Spearman rank correlation of the two over the models; then one JSON line.
"""

from __future__ import annotations

import json

from absl import app, flags

from experiments import cliutil

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "a paired data set (any layout menet_tf.pairs.find_pairs reads)")
flags.DEFINE_list("models", None, "shipped model names or model directories (two or more)")
flags.DEFINE_integer("max_pairs", None, "only the first N pairs", lower_bound=1)
flags.mark_flags_as_required(["data_dir", "models"])


def main(argv):
    if len(argv) > 1:
        cliutil.usage_error("experiments.streak_check", f"unexpected arguments: {' '.join(argv[1:])}")
    if len(FLAGS.models) < 2:
        cliutil.usage_error("experiments.streak_check", "--models needs two or more models to rank")
    import numpy as np
    from scipy.stats import spearmanr

    from experiments import evaluation
    from menet_tf import metrics, streaks
    from menet_tf.imageio import read_image
    from menet_tf.pairs import find_pairs

    dirs = cliutil.resolve_models("experiments.streak_check", FLAGS.models)
    try:
        data = [(read_image(r), read_image(c)) for r, c in find_pairs(FLAGS.data_dir)[: FLAGS.max_pairs]]
    except (ValueError, OSError) as e:  # DataError and ImageError name the folder or the file
        raise SystemExit(f"error: {e}") from None
    references = [streaks.streak_energy(r) for r, _ in data]  # each rainy image's, measured once
    result = {"data_dir": FLAGS.data_dir, "num_pairs": len(data),
              "clean_removed": float(np.mean([streaks.fraction_removed(r, c, reference=ref)
                                              for (r, c), ref in zip(data, references)])), "models": {}}
    print(f"{len(data)} pairs; the clean images remove {result['clean_removed']:.1%} of the rainy images' streak energy")
    for label, d in zip(FLAGS.models, dirs):
        predict, _, _ = evaluation.load_predictor(model_dir=d)
        removed, psnr = [], []
        for (r, c), ref in zip(data, references):
            out = metrics.quantize(predict(r[None].astype(np.float32))[0])
            removed.append(streaks.fraction_removed(r, out, reference=ref))
            psnr.append(metrics.psnr(out, c))
        result["models"][label] = {"removed": float(np.mean(removed)), "psnr": float(np.mean(psnr))}
        print(f"{label}: streak energy removed {np.mean(removed):.1%}, PSNR {np.mean(psnr):.2f} dB", flush=True)
    rows = list(result["models"].values())
    rho = spearmanr([m["removed"] for m in rows], [m["psnr"] for m in rows])
    result["spearman"] = float(rho.statistic)
    print(f"Spearman rank correlation of streak energy removed and PSNR over the {len(rows)} models: {rho.statistic:.2f}")
    print(json.dumps(result), flush=True)


def console():
    app.run(main)


if __name__ == "__main__":
    console()
