r"""Package a trained model directory as a shipped model (``menet_tf/pretrained/<name>/``) with its card.

    python -m experiments.ship_model --model_dir=runs/table1_seeds/models/lp_le_lt_lb_ca/seed0 \
        --name=menet-lb-rain100l --summary="MENET-LB (8 blocks + CA), Rain100L train half" \
        --training_data_file=cards/rain100l_half_data.md --commands_file=cards/rain100l_half_commands.sh \
        --train_wall_time_s=1370 --test_dirs="Rain100L test half (pairs 1-50)=runs/rain100l_half/test"
    python -m experiments.ship_model --text_only --name=menet-lb-rain100l --summary="..." \
        --training_data_file=cards/rain100l_half_data.md --commands_file=cards/rain100l_half_commands.sh

Writes, whole or not at all (a temporary folder, then a rename), ``menet_tf/pretrained/<name>/``:
``config.json`` and ``net.weights.h5`` (copied; every weight must be float32 and the file at most 6 MB),
``<name>.json`` (the card: net config, training data, commands, wall time and machine, scores on every
--test_dirs set in both protocols, the rain-free (do-no-harm) scores of every --rain_free_dirs set, each
with every image's scores in ``per_image`` (``[name, psnr, ssim]``; paper protocol: the mean of the image's
crops), the weights' sha256) and ``<name>.md`` (the same, for people). With ``--self_ensemble`` every set is
also scored (standard protocol) with the mean over four flips (``menet_tf.inference.self_ensemble``): entries
with ``"self_ensemble": true``.
Scores are measured here, by ``experiments.evaluation`` on the copied weights. The training data must be
disjoint from every test set: a test image file that is also a training file (same resolved path or same
bytes) stops the command. ``--text_only`` rewrites only the texts of a shipped model's card (e.g. its
"what it is for" once another model became the default), measuring nothing. ``--add_scores`` measures
--test_dirs / --rain_free_dirs on a shipped model's weights and adds them to its card:

    python -m experiments.ship_model --add_scores --name=menet-lb-rain100l \
        --rain_free_dirs="Rain100L test half (pairs 1-50)=runs/rain100l_half/test"
"""

from __future__ import annotations

import json
import os
import shutil
import sys

from absl import app, flags

from experiments import cliutil
from menet_tf import pretrained

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "the trained model directory (config.json + net.weights.h5)")
flags.DEFINE_string("name", None, "the shipped model's name (lower case, digits, '-')")
flags.DEFINE_string("summary", None, "one line: what the model is and what it was trained on")
flags.DEFINE_string("training_data_file", None, "Markdown text: the training data exactly (files, synthesis, seeds)")
flags.DEFINE_string("commands_file", None, "the exact commands that made the data and trained the model")
flags.DEFINE_float("train_wall_time_s", None, "training wall time in seconds")
flags.DEFINE_string("machine", None, "the training machine (default: this machine's CPU and core count)")
flags.DEFINE_list("test_dirs", None, "held-out paired test sets as 'label=folder' (comma-separated; split at "
                  "the last '=')")
flags.DEFINE_list("rain_free_dirs", None, "rain-free sets as 'label=folder' (paired folders whose *clean* images "
                  "are scored as input and target: the do-no-harm score, experiments.evaluate --rain_free)")
flags.DEFINE_list("test_protocols", ["standard", "paper"], "protocols measured on the --test_dirs sets (the "
                  "rain-free sets: standard only)")
flags.DEFINE_bool("add_scores", False, "measure --test_dirs / --rain_free_dirs on an already shipped model's "
                  "weights and add the scores to its card (a score of the same test set and protocol is "
                  "replaced); texts and weights unchanged")
flags.DEFINE_bool("self_ensemble", False, "also score every set (standard protocol) with the self-ensemble: the "
                  "mean over 4 flips of each image (experiments.evaluate --self_ensemble)")
flags.DEFINE_string("license_note", "", "where the training data's terms restrict the weights' use")
flags.DEFINE_string("output_root", None, "default: menet_tf/pretrained (the package data folder)")
flags.DEFINE_bool("overwrite", False, "replace a shipped model of the same name")
flags.DEFINE_bool("text_only", False, "rewrite the texts of an already shipped model's card (--summary, "
                  "--training_data_file, --commands_file, --license_note when given) and its .md; weights, "
                  "config, scores and sha256 are kept as they are (nothing is measured)")
flags.mark_flags_as_required(["name"])

PROG = "experiments.ship_model"


def usage_error(message: str):
    cliutil.usage_error(PROG, message)


def weight_dtypes(path: str) -> dict[str, str]:
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, str(obj.dtype)) if isinstance(obj, h5py.Dataset) else None)
    return out


def training_files(config: dict) -> list[str]:
    from menet_tf.pairs import discover_pairs

    pairs = discover_pairs(config["data_dir"], config.get("rainy_glob"), config.get("clean_glob"))
    return [p for pair in pairs.pairs for p in pair[:2]]


def check_disjoint(train: list[str], test_dirs: dict[str, str]) -> None:
    """No test image may be a training image (resolved path or identical bytes)."""
    from menet_tf.pairs import discover_pairs

    by_path = {os.path.realpath(p) for p in train}
    by_hash = {pretrained.sha256(p) for p in train}
    for label, folder in test_dirs.items():
        for pair in discover_pairs(folder).pairs:
            for p in pair[:2]:
                if os.path.realpath(p) in by_path or pretrained.sha256(p) in by_hash:
                    usage_error(f"--test_dirs {label}: {p} is also a training image of the model")


def markdown_card(card: dict) -> str:
    net = card["net_config"]
    lines = [f"# {card['name']}", "", card["summary"], "",
             "```bash",
             f"python -m experiments.derain --model={card['name']} --input=photo.jpg --output_dir=out",
             "```",
             f"In Python: `menet_tf.pretrained.load({card['name']!r})` returns the Keras net.", "",
             "## Net", "",
             f"{net.get('num_res_blocks')} residual blocks, channel attention {net.get('channel_attention')} "
             f"({net.get('ca_variant', 'released')} variant); float32 weights, {card['weights_bytes'] / 1e6:.2f} MB, "
             f"sha256 `{card['weights_sha256']}`.", "",
             "## Training data", "", card["training_data"].strip(), "",
             "## Commands", "", "```bash", card["commands"].strip(), "```", "",
             f"Training wall time: {card['train_wall_time_s'] / 60:.1f} min on {card['machine']}.", "",
             "## Scores on held-out data", "",
             "| test set | protocol | images | PSNR (dB) | SSIM |", "|---|---|---|---|---|"]
    for s in card["scores"]:
        label = f"{s['test_set']}, clean images as input (**rain-free**)" if s.get("rain_free") else s["test_set"]
        label += " + **self-ensemble** (mean over 4 flips)" if s.get("self_ensemble") else ""
        lines.append(f"| {label} | {s['protocol']} | {s['num_images']} | {s['psnr']:.2f} | {s['ssim']:.4f} |")
    lines += ["", "Protocols: `standard` = whole images, uint8 output, MATLAB Y channel; `paper` = ten 224x224 "
              "crops per image on RGB (README, Evaluation protocols). **Rain-free** rows: the model applied to photos "
              "without rain, scored against themselves (do no harm: a model that blurs or shifts contrast scores low "
              "there; `experiments.evaluate --rain_free`). Measured by `experiments.ship_model` on these "
              "weights; `tests/test_pretrained.py` re-measures the standard protocol where the data is present."]
    if card.get("license_note"):
        lines += ["", "## Terms", "", card["license_note"].strip()]
    return "\n".join(lines) + "\n"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write_model(target: str, source: str, card: dict) -> None:
    """Write ``target`` whole or not at all: weights and config from ``source``, the card as JSON and .md."""
    from menet_tf import atomic
    from menet_tf.model import CONFIG_FILE, WEIGHTS_FILE

    with atomic.atomic_path(target) as tmp:
        os.makedirs(tmp)
        shutil.copyfile(os.path.join(source, WEIGHTS_FILE), os.path.join(tmp, WEIGHTS_FILE))
        shutil.copyfile(os.path.join(source, CONFIG_FILE), os.path.join(tmp, CONFIG_FILE))
        with open(os.path.join(tmp, f"{card['name']}.json"), "w") as f:
            json.dump(card, f, indent=2, sort_keys=True)
            f.write("\n")
        with open(os.path.join(tmp, f"{card['name']}.md"), "w") as f:
            f.write(markdown_card(card))
    if pretrained.sha256(os.path.join(target, WEIGHTS_FILE)) != card["weights_sha256"]:
        sys.exit(f"error: {target}/{WEIGHTS_FILE}: the copy's sha256 differs from the card's")


def _label_dirs(flag: str) -> dict:
    return dict(cliutil.label_dirs(PROG, flag, getattr(FLAGS, flag)))


def measure(model_dir: str, tests: dict, rain_free: dict, name: str) -> list:
    """Card score entries: both protocols on every test set, then the standard protocol on every rain-free
    set (whole photos: what a user's photo goes through; ten crops per image would add nothing there); with
    --self_ensemble, then the standard protocol of every set with the self-ensemble."""
    from experiments import evaluation

    single, single_multiple, _ = evaluation.load_predictor(model_dir=model_dir)
    scores = []
    for ensemble in (False, True) if FLAGS.self_ensemble else (False,):
        predict, multiple = (evaluation.self_ensembled(single), 1) if ensemble else (single, single_multiple)
        for sets, free in ((tests, False), (rain_free, True)):
            for label, folder in sets.items():
                protocols = ("standard",) if free or ensemble else tuple(FLAGS.test_protocols)
                summary = evaluation.evaluate_model(predict, folder, protocols=protocols, name=name, save_images=0,
                                                    multiple=multiple, rain_free=free)
                for protocol in protocols:
                    entry = summary["protocols"][protocol]
                    scores.append({"test_set": label, "folder": folder, "protocol": protocol,
                                   "num_images": entry["num_images"], "psnr": entry["psnr"], "ssim": entry["ssim"]}
                                  | ({"rain_free": True} if free else {})
                                  | ({"self_ensemble": True} if ensemble else {})
                                  | {"per_image": summary["per_image"][protocol]})
                    print(f"{label}{' (rain-free)' if free else ''}{' + self-ensemble' if ensemble else ''} "
                          f"{protocol}: {entry['psnr']:.2f} dB / {entry['ssim']:.4f}", flush=True)
    return scores


def _shipped_card(target: str, name: str, mode: str) -> dict:
    card_path = os.path.join(target, f"{name}.json")
    if not os.path.isfile(card_path):
        usage_error(f"--{mode}: {card_path}: no such card (ship the model first)")
    try:
        with open(card_path) as f:
            card = json.load(f)
    except json.JSONDecodeError as e:
        sys.exit(f"error: {card_path}: not valid JSON ({e}); not rewriting the card")
    weights = os.path.join(target, card.get("weights_file", "net.weights.h5"))
    if not os.path.isfile(weights) or pretrained.sha256(weights) != card["weights_sha256"]:
        sys.exit(f"error: {weights}: missing or its sha256 is not the card's; not rewriting the card")
    return card


def _rewrite(target: str, card: dict) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as keep:
        source = os.path.join(keep, "old")
        shutil.copytree(target, source)
        _write_model(target, source, card)


def add_scores() -> None:
    """--add_scores: measure the given sets on the shipped weights; add (or replace) their card entries."""
    from menet_tf.model import read_config

    given = [f for f in ("model_dir", "train_wall_time_s", "overwrite", "text_only", "summary",
                         "training_data_file", "commands_file") if FLAGS[f].present]
    if given:
        usage_error(f"--add_scores keeps everything but the scores: leave out --{', --'.join(given)}")
    if not set(FLAGS.test_protocols) <= {"standard", "paper"} or not FLAGS.test_protocols:
        usage_error(f"--test_protocols={','.join(FLAGS.test_protocols)}: give standard and/or paper")
    tests, free = _label_dirs("test_dirs"), _label_dirs("rain_free_dirs")
    if not tests and not free:
        usage_error("--add_scores: give --test_dirs and/or --rain_free_dirs")
    target = os.path.join(FLAGS.output_root or pretrained.PRETRAINED_DIR, FLAGS.name)
    card = _shipped_card(target, FLAGS.name, "add_scores")
    config = read_config(target)
    if os.path.isdir(config["data_dir"]):
        check_disjoint(training_files(config), {**tests, **free})
    else:
        print(f"note: the training data {config['data_dir']} is not here: disjointness from it not checked "
              "(the card's training data text says what it was)", flush=True)
    new = measure(target, tests, free, FLAGS.name)
    key = lambda s: (s["test_set"], bool(s.get("rain_free")), bool(s.get("self_ensemble")))  # noqa: E731 - replaced whole
    measured = {key(s) for s in new}
    scores, placed = [], set()  # a replaced set keeps its place on the card; new sets go last
    for s in card["scores"]:
        if key(s) not in measured:
            scores.append(s)
        elif key(s) not in placed:
            scores.extend(n for n in new if key(n) == key(s))
            placed.add(key(s))
    card["scores"] = scores + [n for n in new if key(n) not in placed]
    _rewrite(target, card)
    print(f"added {len(new)} scores to the card of {target} (weights, texts unchanged)")


def rewrite_texts() -> None:
    """--text_only: the card's summary, training data, commands (and license note when given) from the
    flags; everything measured stays. The weights are checked against the card first."""
    root = FLAGS.output_root or pretrained.PRETRAINED_DIR
    target = os.path.join(root, FLAGS.name)
    card = _shipped_card(target, FLAGS.name, "text_only")
    card.update(summary=FLAGS.summary, training_data=_read(FLAGS.training_data_file),
                commands=_read(FLAGS.commands_file))
    if FLAGS["license_note"].present:
        card["license_note"] = FLAGS.license_note
    _rewrite(target, card)
    print(f"rewrote the card texts of {target} (weights, scores unchanged)")


def main(argv):
    if len(argv) > 1:
        usage_error(f"unexpected arguments: {' '.join(argv[1:])}")
    import re

    from menet_tf.model import NET_CONFIG_KEYS, WEIGHTS_FILE, read_config

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", FLAGS.name) or FLAGS.name in ("net", "identity"):
        usage_error(f"--name={FLAGS.name}: use lower-case letters, digits and '-' (not 'net' or 'identity')")
    if FLAGS.add_scores:
        return add_scores()
    missing = [f for f in ("summary", "training_data_file", "commands_file") if getattr(FLAGS, f) is None]
    if missing:
        usage_error(f"missing --{', --'.join(missing)}")
    for flag in ("training_data_file", "commands_file"):
        if not os.path.isfile(getattr(FLAGS, flag)):
            usage_error(f"--{flag}={getattr(FLAGS, flag)}: no such file")
    if FLAGS.text_only:
        given = [f for f in ("model_dir", "train_wall_time_s", "test_dirs", "overwrite") if FLAGS[f].present]
        if given:
            usage_error(f"--text_only keeps weights, scores and wall time: leave out --{', --'.join(given)}")
        return rewrite_texts()
    missing = [f for f in ("model_dir", "train_wall_time_s", "test_dirs") if getattr(FLAGS, f) is None]
    if missing:
        usage_error(f"missing --{', --'.join(missing)} (needed unless --text_only)")
    problem = cliutil.model_dir_problem(FLAGS.model_dir)
    if problem:
        usage_error(problem)
    tests, free = _label_dirs("test_dirs"), _label_dirs("rain_free_dirs")
    root = FLAGS.output_root or pretrained.PRETRAINED_DIR
    target = os.path.join(root, FLAGS.name)
    if os.path.exists(target) and not FLAGS.overwrite:
        usage_error(f"{target} exists (pass --overwrite to replace it)")

    weights = os.path.join(FLAGS.model_dir, WEIGHTS_FILE)
    size = os.path.getsize(weights)
    if size > pretrained.MAX_WEIGHTS_BYTES:
        usage_error(f"{weights}: {size / 1e6:.1f} MB, more than the {pretrained.MAX_WEIGHTS_BYTES / 2**20:.0f} MiB a shipped model may take")
    not_f32 = {k: v for k, v in weight_dtypes(weights).items() if v != "float32"}
    if not_f32:
        usage_error(f"{weights}: weights not float32: {sorted(not_f32.items())[:3]}")
    config = read_config(FLAGS.model_dir)
    check_disjoint(training_files(config), {**tests, **free})
    scores = measure(FLAGS.model_dir, tests, free, FLAGS.name)

    training_data, commands = _read(FLAGS.training_data_file), _read(FLAGS.commands_file)
    card = {
        "name": FLAGS.name,
        "summary": FLAGS.summary,
        "net_config": {k: config[k] for k in NET_CONFIG_KEYS if k in config},
        "training_config": config,
        "training_data": training_data,
        "commands": commands,
        "train_wall_time_s": FLAGS.train_wall_time_s,
        "machine": FLAGS.machine or f"{cliutil.cpu_description()}, no GPU (TensorFlow on CPU)",
        "scores": scores,
        "weights_file": WEIGHTS_FILE,
        "weights_sha256": pretrained.sha256(weights),
        "weights_bytes": size,
        "license_note": FLAGS.license_note,
    }
    os.makedirs(root, exist_ok=True)
    _write_model(target, FLAGS.model_dir, card)
    print(f"wrote {target} ({size / 1e6:.2f} MB weights, card {FLAGS.name}.md)")


def console():
    """The ``menet-ship-model`` console script: the same as ``python -m experiments.ship_model``."""
    app.run(main)


if __name__ == "__main__":
    console()
