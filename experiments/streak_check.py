r"""Check the no-reference streak measure (``menet_tf.streaks``) against ground truth on a paired set.

    python -m experiments.streak_check --data_dir=runs/rain100l_half/test \
        --models=menet-lb-rain100l,menet-lb-varied,runs/style_study/light
    python -m experiments.streak_check --data_dir=runs/heavy_test --models=menet-lb-heavy \
        --extra_dirs="PReNet rain100h=runs/prenet/rain100h/heavy_test"      # a peer's outputs ranked too

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
flags.DEFINE_list("models", [], "shipped model names or model directories (two or more, with --extra_dirs)")
flags.DEFINE_list("extra_dirs", None, "LABEL=FOLDER,...: outputs another tool made for these pairs (e.g. "
                  "experiments.prenet_peer), <rainy stem>.png each, ranked with the models")
flags.DEFINE_integer("max_pairs", None, "only the first N pairs", lower_bound=1)
flags.mark_flags_as_required(["data_dir"])


def main(argv):
    if len(argv) > 1:
        cliutil.usage_error("experiments.streak_check", f"unexpected arguments: {' '.join(argv[1:])}")
    extras = cliutil.extra_dirs("experiments.streak_check", FLAGS.extra_dirs)
    if len(FLAGS.models) + len(extras) < 2:
        cliutil.usage_error("experiments.streak_check", "--models needs two or more models to rank")
    import numpy as np
    from scipy.stats import spearmanr

    from experiments import evaluation
    from menet_tf import metrics, streaks
    from menet_tf.imageio import read_image
    from menet_tf.pairs import find_pairs

    dirs = cliutil.resolve_models("experiments.streak_check", FLAGS.models)
    try:
        pairs = find_pairs(FLAGS.data_dir)[: FLAGS.max_pairs]
        data = [(read_image(r), read_image(c)) for r, c in pairs]
    except (ValueError, OSError) as e:  # DataError and ImageError name the folder or the file
        raise SystemExit(f"error: {e}") from None
    references = [streaks.streak_energy(r) for r, _ in data]  # each rainy image's, measured once
    result = {"data_dir": FLAGS.data_dir, "num_pairs": len(data),
              "clean_removed": float(np.mean([streaks.fraction_removed(r, c, reference=ref)
                                              for (r, c), ref in zip(data, references)])), "models": {}}
    print(f"{len(data)} pairs; the clean images remove {result['clean_removed']:.1%} of the rainy images' streak energy")
    sources = [(label, d, None) for label, d in zip(FLAGS.models, dirs)] + [(label, None, f) for label, f in extras]
    for label, d, folder in sources:
        predict = evaluation.load_predictor(model_dir=d)[0] if d is not None else None
        removed, psnr = [], []
        for (r, c), ref, (rainy_path, _) in zip(data, references, pairs):
            if predict is None:
                try:
                    out = cliutil.extra_output(folder, rainy_path, r.shape)
                except ValueError as e:
                    raise SystemExit(f"error: {e}") from None
            else:
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
