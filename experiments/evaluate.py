r"""Evaluate a de-raining model on a paired test set (spec section 7), or compare evaluated models.

    python -m experiments.evaluate --model=identity --protocol=standard --data_dir=../shared/data/Rain100L
    python -m experiments.evaluate --model_dir=runs/menet_gb --data_dir=../shared/data/Rain100L
    python -m experiments.evaluate --model=menet-lb-rain100l --data_dir=../shared/data/Rain100L
    python -m experiments.evaluate --saved_model=exports/menet_gb --data_dir=../shared/data/Rain100L
    python -m experiments.evaluate --model=menet-lb-multiscale --data_dir=runs/rain100l_half/test --rain_free
    python -m experiments.evaluate --compare=eval_identity_Rain100L,runs/menet_gb/eval_Rain100L --output_dir=figs

The model: exactly one of --model_dir (config.json + net.weights.h5), --saved_model (experiments.export),
--model=NAME (a shipped model, ``menet_tf.pretrained.names()``) and --model=identity (the rainy input
scored as the prediction: the "Input" row of every table).

--protocol: ``paper`` (10 crops of 224x224 per image, five-crop + flips; tf.image.psnr/ssim on the
clipped float RGB output, averaged over the crops), ``standard`` (whole images reflect-padded to the net's
multiple, output rounded to uint8, PSNR/SSIM on the MATLAB Y channel, averaged over the images) or
``both`` (default; one pass over the data).

Writes under --output_dir (default ``<model_dir>/eval_<dataset>``, ``<saved_model>_eval_<dataset>``,
``<NAME>_eval_<dataset>`` for a shipped model, or ``eval_identity_<dataset>``): per_image_standard.csv, per_crop_paper.csv + per_image_paper.csv,
summary.json, and the first --save_images de-rained images under images/. Prints one line per protocol,
then summary.json on one line (the last line of the output)::

    {"model": ..., "dataset": ..., "num_images": ..., "protocols": {"paper": {"dataset", "protocol",
     "num_images", "psnr", "ssim"}, "standard": {...}}, ...}

--rain_free: the do-no-harm score. The model de-rains the *clean* images of the pairs and is scored against
them (how much it changes photos without rain: blur, contrast shifts); summary.json has "rain_free": true.

--compare=DIR1,DIR2,... (evaluation output folders) runs no model: it draws, into --output_dir,
fig8_psnr_hist.png (per-image PSNR histograms), fig9_ssim_box.png (per-image SSIM boxplots) and
fig10_grid.png (rainy | each model | clean, from the saved images).

Every bad flag stops with a one-line ``error: ...`` on stderr (exit status 1) before any work.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags

from experiments import cliutil

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", None, "the paired test set folder (e.g. ../shared/data/Rain100L); required "
                    "unless --compare")
flags.DEFINE_string("rainy_glob", None, "glob of the rainy images, relative to --data_dir (with --clean_glob), "
                    "for layouts that are not recognised")
flags.DEFINE_string("clean_glob", None, "glob of the clean images, relative to --data_dir (with --rainy_glob)")
flags.DEFINE_enum("protocol", "both", ["paper", "standard", "both"], "evaluation protocol(s), spec section 7")
flags.DEFINE_string("model", "net", "net: the model of --model_dir or --saved_model; identity: score the "
                    "rainy input itself (the 'Input' row); auto: the light or the heavy shipped model, chosen per "
                    "image (menet_tf.auto); any other value: a shipped model by name (menet_tf.pretrained.names())")
flags.DEFINE_string("model_dir", None, "trained model directory (config.json + net.weights.h5)")
flags.DEFINE_string("saved_model", None, "a SavedModel written by experiments.export (serve signature)")
flags.DEFINE_string("output_dir", None, "where the CSVs, summary.json and images go (with --compare: the "
                    "figures); default <model_dir>/eval_<dataset>, <saved_model>_eval_<dataset> or "
                    "eval_identity_<dataset>")
flags.DEFINE_integer("crop_size", 224, "paper protocol crop size")
flags.DEFINE_integer("batch_size", 20, "paper protocol crops per batch")
flags.DEFINE_integer("save_images", 4, "write the first N de-rained whole images as PNG under output_dir/images/")
flags.DEFINE_string("name", None, "the model's display name in tables and figures (default: the model "
                    "folder's base name, or 'Input')")
flags.DEFINE_list("compare", None, "evaluation output folders to compare (draws the figures; runs no model)")
flags.DEFINE_enum("figure_protocol", "auto", ["auto", "standard", "paper"], "--compare: whose per-image "
                  "scores the figures show (auto: standard when every folder has it, else paper)")
flags.DEFINE_bool("skip_bad_pairs", False, "drop unreadable / mismatched pairs with a warning instead of stopping")
flags.DEFINE_bool("jit_compile", False, "compile the net with XLA (--model_dir only)")
flags.DEFINE_bool("self_ensemble", False, "score the mean of the model over 4 flips of each image (left-right, "
                  "up-down: menet_tf.inference.self_ensemble)")
flags.DEFINE_bool("progress", True, "show a progress bar over the images")
flags.DEFINE_bool("rain_free", False, "the do-no-harm score: de-rain the *clean* images of --data_dir and score "
                  "them against themselves (how much the model changes photos without rain; the identity "
                  "scores PSNR inf, SSIM 1); output folder default gets '_rainfree'")


def fail(message: str):
    """Stop with one line on stderr and exit status 1."""
    raise SystemExit("error: " + " ".join(str(message).split()))


def parse_flags(argv):
    """absl's parser, but a bad flag (unknown name, bad value, bad enum) is one ``error:`` line."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        fail(e)


def _check_compare_flags() -> list[str]:
    if FLAGS.model_dir or FLAGS.saved_model or FLAGS.model != "net":
        fail("--compare draws figures from evaluated folders and runs no model: drop --model_dir, "
             "--saved_model and --model")
    dirs = [d for d in FLAGS.compare if d.strip()]
    if not dirs:
        fail("--compare: give one or more evaluation output folders, comma-separated")
    for d in dirs:
        if not os.path.isdir(d):
            fail(f"--compare: {d}: no such directory")
        if not os.path.isfile(os.path.join(d, "summary.json")):
            fail(f"--compare: {d}: no summary.json there (not an experiments.evaluate output folder)")
    if not FLAGS.output_dir:
        fail("--compare needs --output_dir (where the figures go)")
    _check_output_dir(FLAGS.output_dir)
    return dirs


def _check_output_dir(path: str) -> None:
    from experiments.evaluation import check_writable

    try:
        check_writable(path)
    except ValueError as e:
        fail(f"--output_dir={e}")


def _check_eval_flags() -> str:
    """Validate every flag of an evaluation; returns the output folder (created and proven writable)."""
    if not FLAGS.data_dir:
        fail("--data_dir is required: the paired test set folder (e.g. --data_dir=../shared/data/Rain100L)")
    if not os.path.isdir(FLAGS.data_dir):
        fail(f"--data_dir={FLAGS.data_dir}: no such directory")
    if (FLAGS.rainy_glob is None) != (FLAGS.clean_glob is None):
        fail("--rainy_glob and --clean_glob must be given together")
    shipped = FLAGS.model not in ("net", "identity", "auto")
    sources = [f for f, on in (("--model_dir", FLAGS.model_dir), ("--saved_model", FLAGS.saved_model),
                               (f"--model={FLAGS.model}", FLAGS.model != "net")) if on]
    if len(sources) != 1:
        fail(f"give exactly one of --model_dir, --saved_model, --model=NAME and --model=identity (got "
             f"{' and '.join(sources) if sources else 'none'})")
    default_out = None
    if FLAGS.model == "auto":
        from experiments.evaluation import dataset_name
        from menet_tf import auto

        try:
            auto.rule()
        except ValueError as e:
            fail(f"--model=auto: {e}")
        default_out = f"auto_eval_{dataset_name(FLAGS.data_dir)}"
    if shipped:  # a shipped model is a model directory inside the package (read-only: results go to cwd)
        from experiments.evaluation import dataset_name
        from menet_tf import pretrained

        try:
            FLAGS.model_dir = pretrained.model_dir(FLAGS.model)
        except ValueError as e:
            fail(f"--model={FLAGS.model}: {e}")
        default_out = f"{FLAGS.model}_eval_{dataset_name(FLAGS.data_dir)}"
    if FLAGS.model_dir:
        if not os.path.isdir(FLAGS.model_dir):
            fail(f"--model_dir={FLAGS.model_dir}: no such directory")
        problem = cliutil.model_dir_problem(FLAGS.model_dir)
        if problem:
            fail(problem)
    if FLAGS.saved_model:
        if not os.path.isfile(os.path.join(FLAGS.saved_model, "saved_model.pb")):
            fail(f"--saved_model={FLAGS.saved_model}: no saved_model.pb there (not a SavedModel)")
    if FLAGS.jit_compile and not FLAGS.model_dir:
        fail("--jit_compile applies to --model_dir only (a SavedModel's XLA setting is fixed at export)")
    if FLAGS.crop_size < 1:
        fail(f"--crop_size={FLAGS.crop_size}: must be >= 1")
    if FLAGS.batch_size < 1:
        fail(f"--batch_size={FLAGS.batch_size}: must be >= 1")
    if FLAGS.save_images < 0:
        fail(f"--save_images={FLAGS.save_images}: must be >= 0")
    if FLAGS.name is not None and not FLAGS.name.strip():
        fail("--name: empty")

    from menet_tf.pairs import DataError, discover_pairs  # no TensorFlow; reads no image

    try:
        pairs = discover_pairs(FLAGS.data_dir, FLAGS.rainy_glob, FLAGS.clean_glob)
    except DataError as e:
        fail(f"--data_dir: {e}")
    if not pairs.pairs:
        fail(f"--data_dir={FLAGS.data_dir}: no pair found ({len(pairs.problems)} problem(s), e.g. "
             f"{pairs.problems[0] if pairs.problems else 'none'})")
    if pairs.problems and not FLAGS.skip_bad_pairs:
        fail(f"--data_dir={FLAGS.data_dir}: {len(pairs.problems)} problem(s) in the data set, the first: "
             f"{pairs.problems[0]} (--skip_bad_pairs drops the bad pairs with a warning)")

    from experiments.evaluation import default_output_dir

    out = FLAGS.output_dir or ((default_out or default_output_dir(FLAGS.data_dir, FLAGS.model_dir, FLAGS.saved_model))
                               + ("_rainfree" if FLAGS.rain_free else ""))
    _check_output_dir(out)
    return out


def run_compare() -> None:
    dirs = _check_compare_flags()
    from experiments import figures

    protocol = None if FLAGS.figure_protocol == "auto" else FLAGS.figure_protocol
    try:
        paths = figures.compare(dirs, FLAGS.output_dir, protocol=protocol)
    except (ValueError, FileNotFoundError) as e:
        fail(e)
    for p in paths:
        print(p)


def run_evaluation() -> None:
    output_dir = _check_eval_flags()
    from experiments import evaluation
    from menet_tf.pairs import DataError
    from menet_tf.imageio import ImageError

    suffix = evaluation.SELF_ENSEMBLE_SUFFIX if FLAGS.self_ensemble else ""  # load_predictor adds its own
    try:
        if FLAGS.model == "auto":  # per image: the rule of menet_tf.auto picks the light or the heavy model
            import numpy as np

            from menet_tf.auto import AutoDerainer

            auto_derainer = AutoDerainer.load(jit_compile=FLAGS.jit_compile, self_ensemble=FLAGS.self_ensemble)
            multiple, default_name = 1, "auto" + suffix

            def predict(images):
                batch = np.clip(np.round(np.asarray(images)), 0, 255).astype(np.uint8)
                return np.stack([auto_derainer.derain(x) for x in batch]).astype(np.float32)
        else:
            predict, multiple, default_name = evaluation.load_predictor(
                model_dir=FLAGS.model_dir, saved_model=FLAGS.saved_model, identity=FLAGS.model == "identity",
                jit_compile=FLAGS.jit_compile, self_ensemble=FLAGS.self_ensemble)
    except (ValueError, OSError) as e:
        fail(e)
    extra = {k: os.path.abspath(v) for k, v in (("model_dir", FLAGS.model_dir), ("saved_model", FLAGS.saved_model)) if v}
    try:
        summary = evaluation.evaluate_model(
            predict, FLAGS.data_dir, protocols=FLAGS.protocol, output_dir=output_dir,
            name=FLAGS.name or (default_name if FLAGS.model in ("net", "identity", "auto") else FLAGS.model + suffix),
            crop_size=FLAGS.crop_size, batch_size=FLAGS.batch_size,
            save_images=FLAGS.save_images, multiple=multiple, rainy_glob=FLAGS.rainy_glob,
            clean_glob=FLAGS.clean_glob, skip_bad_pairs=FLAGS.skip_bad_pairs, progress=FLAGS.progress,
            extra=extra, rain_free=FLAGS.rain_free)
    except (DataError, ImageError) as e:
        raise SystemExit(f"error: {e}") from None  # may list several files, one per line
    sys.stdout.flush()
    print(f"written to {output_dir}")
    for line in evaluation.format_summary(summary):
        print(line)
    print(json.dumps(summary), flush=True)


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.compare:
        run_compare()
    else:
        run_evaluation()


def console():
    """The ``menet-evaluate`` console script (setup.cfg entry point): the same as ``python -m experiments.evaluate``."""
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    console()
