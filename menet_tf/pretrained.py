"""Models this project trained and ships with the package: de-rain a photo right after install.

    from menet_tf import pretrained
    pretrained.names()                  # ['menet-lb-heavy', 'menet-lb-light', 'menet-lb-multiscale', ...]
    net = pretrained.load("menet-lb-rain100l")   # the Keras net, float32, BN in inference mode when called
    pretrained.card("menet-lb-rain100l")          # the model card (dict): data, commands, scores, sha256

Every CLI that takes ``--model_dir`` also takes ``--model=NAME``: a shipped model *is* a model
directory (``menet_tf/pretrained/<name>/`` holds ``config.json`` and ``net.weights.h5``, as training
writes them), with its model card beside the weights: ``<name>.json`` (machine-readable: net config,
training data, commands, wall time and machine, scores in both protocols, the weights' sha256) and
``<name>.md`` (the same for people, written from the JSON by ``experiments.ship_model``).

The weights are checked against the card's sha256 before use, so a truncated file or a Git LFS pointer
is an error naming the file, never a silently wrong model. No TensorFlow import until :func:`load`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os

PRETRAINED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")
# The model `derain` uses when given none (see its card for what it was trained on); `derain` and the web page
# de-rain with its self-ensemble (the mean over four flips) unless told --noself_ensemble (issue 20).
DEFAULT = "menet-lb-squall-v4"  # light and heavy rain, real photos (issue 20); before: -squall-v3, -v2, -squall, menet-lb-multiscale
MAX_WEIGHTS_BYTES = 6 * 1024 * 1024
CARD_KEYS = ("name", "summary", "net_config", "training_data", "commands", "train_wall_time_s", "machine",
             "scores", "weights_file", "weights_sha256", "weights_bytes", "license_note")


def names() -> list[str]:
    """The shipped models' names, sorted."""
    if not os.path.isdir(PRETRAINED_DIR):
        return []
    return sorted(n for n in os.listdir(PRETRAINED_DIR) if os.path.isfile(os.path.join(PRETRAINED_DIR, n, f"{n}.json")))


def _check_name(name: str) -> str:
    if name not in names():
        shipped = ", ".join(names()) or "none"
        raise ValueError(f"unknown model {name!r}; shipped models: {shipped} (menet_tf.pretrained.names())")
    return os.path.join(PRETRAINED_DIR, name)


def card(name: str) -> dict:
    """The model card of ``name`` (its ``<name>.json``)."""
    folder = _check_name(name)
    path = os.path.join(folder, f"{name}.json")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def _verified(path: str, size: int, mtime: float, want: str) -> bool:
    return sha256(path) == want


def model_dir(name: str) -> str:
    """The folder of the shipped model ``name``, usable wherever a ``--model_dir`` is (read-only: it
    lies inside the installed package). Raises ValueError for an unknown name or weights whose sha256
    is not the card's."""
    folder = _check_name(name)
    info = card(name)
    weights = os.path.join(folder, info.get("weights_file", "net.weights.h5"))
    if not os.path.isfile(weights):
        raise ValueError(f"{weights}: missing (the package data of model {name!r} was not installed)")
    stat = os.stat(weights)
    if not _verified(weights, stat.st_size, stat.st_mtime, info["weights_sha256"]):
        raise ValueError(f"{weights}: sha256 differs from the model card's {info['weights_sha256'][:12]}... "
                         f"({stat.st_size} bytes: a truncated download or a Git LFS pointer?); reinstall menet-tf")
    return folder


def load(name: str):
    """The Keras net of the shipped model ``name`` (float32)."""
    from menet_tf.model import load_net

    return load_net(model_dir(name))


def name_or_dir(spec: str) -> str:
    """The folder of the shipped model named ``spec``, or ``spec`` itself, taken as a model directory
    (for flags that accept either). ValueError as :func:`model_dir` for damaged shipped weights."""
    return model_dir(spec) if spec in names() else spec


def resolve(model_dir_flag: str | None, model_flag: str | None, default: bool = False) -> str | None:
    """The model directory a CLI should use from its ``--model_dir`` and ``--model`` flags: exactly one of
    them, or (``default=True``, e.g. ``derain``) neither, meaning the default shipped model. ValueError
    with one line otherwise."""
    if model_dir_flag and model_flag:
        raise ValueError(f"give one of --model_dir and --model, not both (got --model_dir={model_dir_flag} "
                         f"--model={model_flag})")
    if model_flag:
        return model_dir(model_flag)
    if model_dir_flag:
        return model_dir_flag
    return model_dir(DEFAULT) if default else None
