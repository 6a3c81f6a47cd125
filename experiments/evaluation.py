"""Evaluation library: score a de-raining model (or the rainy input itself) on a paired test set under
the two protocols of the spec (section 7), and write the per-image CSVs and the JSON summary.

Used by the ``experiments.evaluate`` CLI and by the ablation driver::

    predict, multiple, name = load_predictor(model_dir="runs/menet_gb")
    summary = evaluate_model(predict, "../shared/data/Rain100L", output_dir="runs/menet_gb/eval_Rain100L",
                             name=name, multiple=multiple)
    summary["protocols"]["paper"]["psnr"]

Protocols (one pass over the data; every image is decoded once for checking, once for scoring):

  * ``standard``: the whole image of any size is reflect-padded (bottom/right) to the net's multiple,
    run in inference mode (BN uses its moving statistics), cropped back, quantised to uint8 (rounded)
    and scored with :func:`menet_tf.metrics.standard_psnr_ssim` (MATLAB Y channel); per image, then
    averaged over the images. No resizing (the released code's bicubic resize is a known defect).
  * ``paper``: the 10 crops of :func:`menet_tf.data.five_crop_with_flips` (``crop_size`` 224: corners,
    centre, and the same on the left-right flipped image), ``batch_size`` crops at a time through the
    net, scored on the clipped float RGB output (not quantised) with ``tf.image.psnr`` /
    ``tf.image.ssim`` (max_val 255, :func:`menet_tf.metrics.paper_psnr_ssim`); averaged over all the
    crops (1,000 for Rain100L).

The identity "model" (``predictor=None``) scores the rainy input itself: the "Input" row of every table.

Files written under ``output_dir`` (names in the module constants):

  * ``per_image_standard.csv``  name, psnr, ssim                 (standard protocol)
  * ``per_crop_paper.csv``      name, crop, psnr, ssim           (paper protocol, crop 0..9)
  * ``per_image_paper.csv``     name, psnr, ssim                 (mean of each image's 10 crops)
  * ``summary.json``            see :func:`evaluate_model`
  * ``images/<name>.png``       the first ``save_images`` de-rained whole images (uint8, as scored by
                                the standard protocol); they feed the Fig. 10 grid of ``figures.py``.
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import Callable, Sequence

import numpy as np

from experiments.cliutil import check_writable
from menet_tf.atomic import atomic_write

PROTOCOLS = ("paper", "standard")
SUMMARY_FILE = "summary.json"
STANDARD_CSV = "per_image_standard.csv"
PAPER_CROP_CSV = "per_crop_paper.csv"
PAPER_IMAGE_CSV = "per_image_paper.csv"
IMAGES_DIR = "images"
IDENTITY_NAME = "Input"
#: the fields of each per-protocol object of the summary, exactly
PROTOCOL_FIELDS = ("dataset", "protocol", "num_images", "psnr", "ssim")


# ------------------------------------------------------------------------------------------ helpers


def dataset_name(data_dir) -> str:
    """The data set's display name: the data folder's base name (``../shared/data/Rain100L/`` -> Rain100L)."""
    if not isinstance(data_dir, (str, os.PathLike)):
        return "pairs"
    return os.path.basename(os.path.normpath(os.path.abspath(os.fspath(data_dir))))


def default_output_dir(data_dir, model_dir: str | None = None, saved_model: str | None = None) -> str:
    """``<model_dir>/eval_<dataset>``; ``<saved_model>_eval_<dataset>`` beside an exported SavedModel (not
    inside it); ``eval_identity_<dataset>`` (in the current folder) for the identity model."""
    ds = dataset_name(data_dir)
    if model_dir:
        return os.path.join(model_dir, f"eval_{ds}")
    if saved_model:
        return os.path.normpath(saved_model) + f"_eval_{ds}"
    return f"eval_identity_{ds}"


def normalize_protocols(protocols) -> tuple[str, ...]:
    """"both" / "paper" / "standard" / a sequence of them -> a tuple in the order ("paper", "standard")."""
    if isinstance(protocols, str):
        protocols = PROTOCOLS if protocols == "both" else (protocols,)
    wanted = set(protocols)
    unknown = wanted - set(PROTOCOLS)
    if unknown or not wanted:
        raise ValueError(f"protocols must be among {PROTOCOLS} (or 'both'), got {sorted(wanted) or 'none'}")
    return tuple(p for p in PROTOCOLS if p in wanted)


def _write_rows(path: str, header: Sequence[str], rows) -> None:
    with atomic_write(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for row in rows:
            w.writerow([f"{v:.6f}" if isinstance(v, float) else v for v in row])


def read_rows(path: str) -> list[dict]:
    """The rows of one of the CSVs above as dicts (psnr/ssim as floats; a ``mean`` row is dropped)."""
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("name") == "mean":
                continue
            for k in ("psnr", "ssim"):
                row[k] = float(row[k])
            if "crop" in row:
                row["crop"] = int(row["crop"])
            out.append(row)
    return out


def read_summary(eval_dir: str) -> dict:
    path = os.path.join(eval_dir, SUMMARY_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no {SUMMARY_FILE} here; is {eval_dir!r} an evaluation output folder?")
    with open(path) as f:
        return json.load(f)


# -------------------------------------------------------------------------------------- predictors


#: what a self-ensembled model's display name ends in
SELF_ENSEMBLE_SUFFIX = " + self-ensemble"


def load_predictor(model_dir: str | None = None, saved_model: str | None = None, identity: bool = False,
                   jit_compile: bool = False, self_ensemble: bool = False):
    """The model to evaluate, as ``(predict, multiple, name)`` for :func:`evaluate_model`.

    Exactly one source: ``model_dir`` (config.json + net.weights.h5, :func:`menet_tf.model.load_net`),
    ``saved_model`` (a SavedModel of ``experiments.export``, loaded with ``tf.saved_model.load`` and
    called through its ``serve`` signature) or ``identity=True``.

    ``predict``: float32 [B, H, W, 3] in 0..255 -> float32 [B, H, W, 3] (a numpy array), any H and W
    (both sources pad to the net's multiple themselves; BN in inference mode); ``None`` for the
    identity model. ``multiple``: the net's required multiple (4, or 16 with channel attention; for a
    SavedModel the one recorded in its menet_export.json, else 16; 1 for identity). ``name``: the
    display name, the folder's base name or "Input". With ``self_ensemble``, ``predict`` is the mean of the
    model over the flips of :func:`menet_tf.inference.self_ensemble`, ``multiple`` is 1 (each flip pads
    itself) and the name ends in " + self-ensemble".
    """
    if sum([bool(model_dir), bool(saved_model), bool(identity)]) != 1:
        raise ValueError("give exactly one of model_dir, saved_model and identity=True")
    if identity:
        return None, 1, IDENTITY_NAME
    if self_ensemble:
        single, _, name = load_predictor(model_dir, saved_model, jit_compile=jit_compile)
        return self_ensembled(single), 1, name + SELF_ENSEMBLE_SUFFIX
    import tensorflow as tf

    from menet_tf import export, inference
    from menet_tf.model import load_net, read_config, required_multiple

    if model_dir:
        config = read_config(model_dir)
        net = load_net(model_dir)
        multiple = required_multiple(bool(config.get("channel_attention", False)))
        fn = inference.padded_fn(net, multiple, jit_compile=jit_compile)

        def predict(images):
            return fn(tf.constant(images, tf.float32)).numpy()

        predict.net = net  # for callers that want the Keras model
        return predict, multiple, os.path.basename(os.path.normpath(model_dir))

    loaded = tf.saved_model.load(saved_model)
    signature = loaded.signatures[export.SIGNATURE_FLOAT]
    info = export.read_export_info(saved_model) or {}
    multiple = int(info.get("required_multiple", 16))

    def predict(images):
        return signature(images=tf.constant(images, tf.float32))["derained"].numpy()

    predict.loaded = loaded  # keep the loaded object (and its variables) alive with the function
    return predict, multiple, os.path.basename(os.path.normpath(saved_model))


def self_ensembled(predict: Callable) -> Callable:
    """``predict`` (a predictor of :func:`load_predictor`, which pads itself) as the mean over the flips of
    :func:`menet_tf.inference.self_ensemble`; evaluate it with ``multiple=1``, so that each flip of the image
    itself is padded, as ``Derainer(self_ensemble=True)`` does."""
    from menet_tf import inference

    def ensembled(images):
        return inference.self_ensemble(lambda flipped, k: predict(flipped), images, batch=True)

    ensembled.single = predict
    return ensembled


def _make_runner(predictor, multiple: int, jit_compile: bool) -> Callable | None:
    """float32 [B, H, W, 3] (any H, W) -> clipped float32 [B, H, W, 3]: reflect-pad to ``multiple``,
    predict, crop back. A Keras model runs through :func:`menet_tf.inference.padded_fn` (training=False)."""
    if predictor is None:
        return None
    import keras
    import tensorflow as tf

    from menet_tf import inference

    if isinstance(predictor, keras.Model):
        fn = inference.padded_fn(predictor, int(multiple), jit_compile=jit_compile)
    else:
        m = max(1, int(multiple))

        def fn(x):
            h, w = x.shape[1], x.shape[2]
            return predictor(inference.pad_to_multiple(x, m))[:, :h, :w, :]

    def run(batch: np.ndarray) -> np.ndarray:
        x = np.asarray(batch, np.float32)
        y = fn(tf.constant(x))
        y = np.asarray(y.numpy() if hasattr(y, "numpy") else y, dtype=np.float32)
        if y.shape != x.shape:
            raise ValueError(f"the model returned shape {y.shape} for an input of shape {x.shape}")
        return np.clip(y, 0.0, 255.0)

    return run


# ------------------------------------------------------------------------------------------ evaluate


def evaluate_model(
    predictor,
    data_dir,
    protocols=PROTOCOLS,
    output_dir: str | None = None,
    name: str | None = None,
    crop_size: int = 224,
    batch_size: int = 20,
    save_images: int = 4,
    multiple: int = 4,
    rainy_glob: str | None = None,
    clean_glob: str | None = None,
    skip_bad_pairs: bool = False,
    jit_compile: bool = False,
    progress: bool = True,
    extra: dict | None = None,
    rain_free: bool = False,
) -> dict:
    """Evaluate ``predictor`` on the pairs of ``data_dir``; write the files (module docstring) when
    ``output_dir`` is given; return the summary.

    predictor: ``None`` (identity: the rainy input scores itself), a Keras model (run with
        ``training=False``), or a function float32 [B, H, W, 3] 0..255 -> [B, H, W, 3] (numpy or tensor),
        called with H and W multiples of ``multiple`` (this function pads by reflection and crops back).
    data_dir: a data folder (any layout of :mod:`menet_tf.data`; ``rainy_glob``/``clean_glob`` for
        others) or a list of (rainy_path, clean_path).
    protocols: "both", "paper", "standard" or a sequence of them.
    save_images: write the first N de-rained whole images as ``output_dir/images/<name>.png``.
    extra: more top-level summary fields (e.g. ``{"model_dir": ...}``).
    rain_free: the "do no harm" score: each pair's *clean* image is the input and the target (its rainy
        image is never read), so the scores say how much the model changes photos without rain (the
        identity scores PSNR ``inf`` and SSIM 1). The summary then has ``"rain_free": true``.

    Summary (also ``output_dir/summary.json``)::

        {"model": name, "dataset": "Rain100L", "num_images": 100, "identity": false,
         "protocols": {"paper":    {"dataset", "protocol", "num_images", "psnr", "ssim"},
                       "standard": {"dataset", "protocol", "num_images", "psnr", "ssim"}},
         "paper_num_crops": 1000, "crop_size": 224, "data_dir": "/abs/path",
         "per_image": {"paper": [["rain-001", psnr, ssim], ...], "standard": [...]},
         "saved_images": [{"name": "rain-001", "file": "images/rain-001.png",
                           "rainy": "/abs/rain-001.png", "clean": "/abs/norain-001.png"}, ...]}

    PSNR in dB (``inf`` for a perfect image, written as ``Infinity`` in the JSON).
    Data problems raise :class:`menet_tf.data.DataError` before any image is scored.
    """
    from menet_tf import data, metrics
    from menet_tf.imageio import read_image, write_image

    protocols = normalize_protocols(protocols)
    if crop_size < 1 or batch_size < 1 or save_images < 0 or multiple < 1:
        raise ValueError(f"crop_size ({crop_size}), batch_size ({batch_size}), multiple ({multiple}) must be "
                         f">= 1 and save_images ({save_images}) >= 0")
    identity = predictor is None
    name = name or (IDENTITY_NAME if identity else "model")
    ds = dataset_name(data_dir)
    paper, standard = "paper" in protocols, "standard" in protocols
    if output_dir is not None:
        check_writable(output_dir)

    scanned = data.scan_pairs(data_dir, crop_size=crop_size if paper else None, skip_bad_pairs=skip_bad_pairs,
                              keep_images=False, rainy_glob=rainy_glob, clean_glob=clean_glob)
    names = [os.path.splitext(os.path.basename(r))[0] for r, _ in scanned.pairs]
    if len(set(names)) != len(names):  # e.g. a glob across folders: use the pair keys instead
        names = [k or f"pair-{i + 1}" for i, k in enumerate(scanned.keys)]
    run = _make_runner(predictor, multiple, jit_compile)

    std_rows: list[tuple[str, float, float]] = []
    crop_rows: list[tuple[str, int, float, float]] = []
    saved: list[dict] = []
    # paper crops waiting for a full batch: (name, crop index), rainy crop, clean crop
    pend_owner: list[tuple[str, int]] = []
    pend_rainy: list[np.ndarray] = []
    pend_clean: list[np.ndarray] = []

    def flush(final: bool) -> None:
        while len(pend_rainy) >= batch_size or (final and pend_rainy):
            k = min(batch_size, len(pend_rainy))
            r = np.stack(pend_rainy[:k]).astype(np.float32)
            c = np.stack(pend_clean[:k]).astype(np.float32)
            owners = pend_owner[:k]
            del pend_owner[:k], pend_rainy[:k], pend_clean[:k]
            if run is not None:
                r = run(r)
            ps, ss = metrics.paper_psnr_ssim(r, c, batch_size=batch_size)
            crop_rows.extend((nm, j, float(p), float(s)) for (nm, j), p, s in zip(owners, ps, ss))

    bar = None
    if progress:
        from menet_tf.progress import progress_bar

        # running means of the current protocol's scores (stateful: shown as given, not re-averaged)
        bar = progress_bar(len(scanned.pairs), unit_name="image", stateful_metrics=["psnr", "ssim"])
    images_dir = os.path.join(output_dir, IMAGES_DIR) if output_dir is not None else None
    for i, ((rp, cp), nm) in enumerate(zip(scanned.pairs, names)):
        clean = read_image(cp)
        rainy = clean if rain_free else read_image(rp)
        values = []
        want_image = images_dir is not None and i < save_images
        if standard or want_image:
            pred = rainy if run is None else metrics.quantize(run(rainy[None].astype(np.float32))[0])
            if standard:
                p, s = metrics.standard_psnr_ssim(pred, clean)
                std_rows.append((nm, p, s))
                values = [("psnr", float(np.mean([r[1] for r in std_rows]))),
                          ("ssim", float(np.mean([r[2] for r in std_rows])))]
            if want_image:
                write_image(os.path.join(images_dir, nm + ".png"), pred)
                saved.append({"name": nm, "file": f"{IMAGES_DIR}/{nm}.png",
                              "rainy": os.path.abspath(cp if rain_free else rp),
                              "clean": os.path.abspath(cp)})
        if paper:
            rc, cc = data.five_crop_with_flips(rainy, crop_size), data.five_crop_with_flips(clean, crop_size)
            pend_owner.extend((nm, j) for j in range(len(rc)))
            pend_rainy.extend(rc)
            pend_clean.extend(cc)
            flush(final=False)
            if not standard and crop_rows:
                values = [("psnr", float(np.mean([r[2] for r in crop_rows]))),
                          ("ssim", float(np.mean([r[3] for r in crop_rows])))]
        if bar is not None:
            bar.update(i + 1, values=values or None)
    if paper:
        flush(final=True)

    n = len(scanned.pairs)
    summary: dict = {"model": name, "dataset": ds, "num_images": n, "identity": identity, "rain_free": bool(rain_free),
                     "protocols": {}}
    if paper:
        summary["protocols"]["paper"] = _protocol_entry(ds, "paper", n, [r[2] for r in crop_rows],
                                                        [r[3] for r in crop_rows])
        summary["paper_num_crops"] = len(crop_rows)
        summary["crop_size"] = int(crop_size)
    if standard:
        summary["protocols"]["standard"] = _protocol_entry(ds, "standard", n, [r[1] for r in std_rows],
                                                           [r[2] for r in std_rows])
    # every image's scores (standard: the whole image; paper: the mean of its crops), as in the CSV files
    summary["per_image"] = {}
    if paper:
        summary["per_image"]["paper"] = [list(r) for r in per_image_means(crop_rows)]
    if standard:
        summary["per_image"]["standard"] = [list(r) for r in std_rows]
    if isinstance(data_dir, (str, os.PathLike)):
        summary["data_dir"] = os.path.abspath(os.fspath(data_dir))
    summary["saved_images"] = saved
    summary.update(extra or {})

    if output_dir is not None:
        if standard:
            _write_rows(os.path.join(output_dir, STANDARD_CSV), ("name", "psnr", "ssim"), std_rows)
        if paper:
            _write_rows(os.path.join(output_dir, PAPER_CROP_CSV), ("name", "crop", "psnr", "ssim"), crop_rows)
            _write_rows(os.path.join(output_dir, PAPER_IMAGE_CSV), ("name", "psnr", "ssim"),
                        per_image_means(crop_rows))
        with atomic_write(os.path.join(output_dir, SUMMARY_FILE)) as f:
            json.dump(summary, f, indent=2)
    return summary


def _protocol_entry(dataset: str, protocol: str, num_images: int, psnrs, ssims) -> dict:
    """Exactly the fields of :data:`PROTOCOL_FIELDS`."""
    mean = lambda v: float(np.mean(v)) if len(v) else math.nan  # noqa: E731
    return {"dataset": dataset, "protocol": protocol, "num_images": int(num_images),
            "psnr": mean(psnrs), "ssim": mean(ssims)}


def per_image_means(crop_rows) -> list[tuple[str, float, float]]:
    """(name, crop, psnr, ssim) rows -> (name, mean psnr, mean ssim) per image, in first-seen order."""
    groups: dict[str, list] = {}
    for nm, _, p, s in crop_rows:
        groups.setdefault(nm, []).append((p, s))
    return [(nm, float(np.mean([v[0] for v in g])), float(np.mean([v[1] for v in g]))) for nm, g in groups.items()]


def format_summary(summary: dict) -> list[str]:
    """Human-readable lines, one per protocol: ``standard  Rain100L  Input  PSNR 26.90 dB  SSIM 0.838 ...``."""
    lines = []
    for proto, e in summary["protocols"].items():
        extra = f", {summary.get('paper_num_crops')} crops" if proto == "paper" else ""
        lines.append(f"{proto:<8s}  {e['dataset']}{' (rain-free)' if summary.get('rain_free') else ''}  {summary['model']}:  PSNR {e['psnr']:.2f} dB  "
                     f"SSIM {e['ssim']:.3f}  ({e['num_images']} images{extra})")
    return lines


__all__ = [
    "IDENTITY_NAME",
    "PROTOCOLS",
    "PROTOCOL_FIELDS",
    "SUMMARY_FILE",
    "STANDARD_CSV",
    "PAPER_CROP_CSV",
    "PAPER_IMAGE_CSV",
    "IMAGES_DIR",
    "check_writable",
    "dataset_name",
    "default_output_dir",
    "evaluate_model",
    "format_summary",
    "load_predictor",
    "normalize_protocols",
    "per_image_means",
    "read_rows",
    "read_summary",
]
