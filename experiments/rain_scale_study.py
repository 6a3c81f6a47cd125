r"""Does de-raining at a scale matched to the streaks help when a photo's streaks are larger than the
training data's? Measured on clean photos the models never saw, with rain rendered s times larger.

    python -m experiments.rain_scale_study --clean_dir=../shared/data/BSDS500_test --num_images=40 \
        --scales=1,2,3,4 --output_dir=runs/rain_scale_study

For each rain scale s: light rain (``menet_tf.synthesis``, the Rain100L-like style) rendered with
``scaled_style("light", s)`` on each clean photo (seed = image index), then PSNR/SSIM (standard protocol:
uint8, Y channel) of the rainy input, of the model run on the photo as is (``--rain_scale=1``), and of
the model run at the matched scale (``--rain_scale=s``, ``menet_tf.inference.derain_at_scale``), and, as
a check of the guess, at ``s`` read wrong by a factor of 1.5 either way. Writes ``study.json`` and
``study.md`` into --output_dir; the last line of the output is the JSON.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from experiments import cliutil

FLAGS = flags.FLAGS
flags.DEFINE_string("clean_dir", None, "clean photos (not in any training set), e.g. ../shared/data/BSDS500_test")
flags.DEFINE_integer("num_images", 40, "the first N photos of --clean_dir (sorted by name)")
flags.DEFINE_list("scales", ["1", "2", "3", "4"], "rain scales s (streaks s times longer and wider)")
flags.DEFINE_string("model_dir", None, "a trained model directory")
flags.DEFINE_string("model", None, "a shipped model (default: the default one)")
flags.DEFINE_string("style", "light", "rain style of menet_tf.synthesis")
flags.DEFINE_string("output_dir", None, "where study.json and study.md go")
flags.mark_flags_as_required(["clean_dir", "output_dir"])


def main(argv):
    if len(argv) > 1:
        cliutil.usage_error("experiments.rain_scale_study", f"unexpected arguments: {' '.join(argv[1:])}")
    model_dir = cliutil.resolve_model("experiments.rain_scale_study", FLAGS.model_dir, FLAGS.model, default=True)
    scales = [float(s) for s in FLAGS.scales]
    import numpy as np
    import tensorflow as tf

    from menet_tf import atomic, inference, metrics, synthesis
    from menet_tf.model import load_net, read_config, required_multiple
    from menet_tf.progress import progress_bar

    net = load_net(model_dir)
    fn = inference.padded_fn(net, required_multiple(bool(read_config(model_dir).get("channel_attention"))))

    def derain(x):
        return fn(tf.constant(x[None], tf.float32)).numpy()[0]

    paths = synthesis.list_clean_images(FLAGS.clean_dir)[: FLAGS.num_images]
    from menet_tf.imageio import read_image

    cleans = [read_image(p) for p in paths]
    methods = {"input": None, "as is (rain_scale 1)": lambda s: 1.0, "matched (rain_scale s)": lambda s: s,
               "s / 1.5": lambda s: s / 1.5, "s x 1.5": lambda s: s * 1.5}
    rows = []
    for s in scales:
        style = synthesis.scaled_style(FLAGS.style, s)
        scores = {m: [] for m in methods}
        bar = progress_bar(len(cleans), unit_name="image")
        for i, clean in enumerate(cleans):
            rainy = synthesis.add_rain(clean, style, synthesis.image_rng(i, os.path.basename(paths[i])))
            for m, pick in methods.items():
                out = rainy if pick is None else metrics.quantize(inference.derain_at_scale(derain, rainy, pick(s)))
                scores[m].append(metrics.standard_psnr_ssim(out, clean))
            bar.update(i + 1)
        row = {"rain_scale": s}
        for m in methods:
            arr = np.asarray(scores[m], dtype=np.float64)
            row[m] = {"psnr": float(arr[:, 0].mean()), "ssim": float(arr[:, 1].mean())}
        rows.append(row)
        print(f"s={s:g}: " + ", ".join(f"{m} {row[m]['psnr']:.2f}" for m in methods), flush=True)
    report = {"model_dir": model_dir, "clean_dir": os.path.abspath(FLAGS.clean_dir), "num_images": len(cleans),
              "style": FLAGS.style, "protocol": "standard (uint8, Y channel)", "rows": rows}
    lines = ["| rain scale s | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for row in rows:
        lines.append(f"| {row['rain_scale']:g} | " + " | ".join(
            f"{row[m]['psnr']:.2f} / {row[m]['ssim']:.3f}" for m in methods) + " |")
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    atomic.write_text(os.path.join(FLAGS.output_dir, "study.md"), "\n".join(lines) + "\n")
    atomic.write_text(os.path.join(FLAGS.output_dir, "study.json"), json.dumps(report, indent=2))
    print("\n".join(lines))
    print(json.dumps(report))


def console():
    app.run(main)


if __name__ == "__main__":
    console()
