"""The paper's comparison figures, drawn from evaluation output folders (``experiments.evaluation``).

    compare(["eval_identity_Rain100L", "runs/menet_gb/eval_Rain100L"], "figs")

  * ``fig8_psnr_hist.png``: per-image PSNR histograms, one panel per model, the same bins for all
    (Fig. 8 of the paper), the mean marked;
  * ``fig9_ssim_box.png``: per-image SSIM boxplots, one box per model (Fig. 9);
  * ``fig10_grid.png``: rows = a few test images; columns rainy | each model's de-rained output | clean
    (Fig. 10), each cell labelled with its per-image standard-protocol PSNR / SSIM (Y channel, uint8).
    It uses the images saved by ``evaluate --save_images`` (the names every compared folder saved);
    rainy and clean images are read from the paths recorded in summary.json. The identity model
    ("Input") has no column of its own: its output is the rainy column.

Per-image scores come from ``per_image_standard.csv`` (standard protocol) or ``per_image_paper.csv``
(paper protocol: mean of each image's 10 crops); ``protocol=None`` picks standard when every folder has
it, else paper. Matplotlib is used without pyplot (Agg canvas), so no display is needed.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Sequence

import numpy as np

from experiments import evaluation as ev
from menet_tf.atomic import atomic_path

log = logging.getLogger(__name__)

FIG8 = "fig8_psnr_hist.png"
FIG9 = "fig9_ssim_box.png"
FIG10 = "fig10_grid.png"
_CSV = {"standard": ev.STANDARD_CSV, "paper": ev.PAPER_IMAGE_CSV}
_PROTOCOL_TEXT = {"standard": "standard protocol: whole images, uint8, Y channel",
                  "paper": "paper protocol: mean of each image's 10 crops, RGB float"}
DPI = 120



def _save(fig, path: str) -> None:
    """Save a figure whole or not at all (format from the final name's extension)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=os.path.splitext(path)[1].lstrip(".").lower() or "png")

def load_eval(eval_dir: str) -> dict:
    """summary.json of ``eval_dir`` plus ``"dir"`` and ``"rows"`` ({protocol: per-image rows})."""
    s = ev.read_summary(eval_dir)
    s["dir"] = eval_dir
    s["rows"] = {}
    for proto, fname in _CSV.items():
        path = os.path.join(eval_dir, fname)
        if os.path.isfile(path):
            s["rows"][proto] = ev.read_rows(path)
    return s


def _display_names(evals: Sequence[dict]) -> list[str]:
    """Model names, made unique with the folder name where two agree."""
    names = [str(e.get("model") or os.path.basename(os.path.normpath(e["dir"]))) for e in evals]
    out = []
    for n, e in zip(names, evals):
        if names.count(n) > 1:
            n = f"{n} ({os.path.basename(os.path.normpath(e['dir']))})"
        out.append(n)
    return out


def _pick_protocol(evals: Sequence[dict], protocol: str | None) -> str:
    have = [set(e["rows"]) for e in evals]
    if protocol is None:
        for p in ("standard", "paper"):
            if all(p in h for h in have):
                return p
        found = ", ".join(f"{e['dir']}: {sorted(h) or 'none'}" for e, h in zip(evals, have))
        raise ValueError(f"the compared folders share no protocol with per-image scores ({found})")
    missing = [e["dir"] for e, h in zip(evals, have) if protocol not in h]
    if missing:
        raise ValueError(f"no {protocol}-protocol per-image scores ({_CSV[protocol]}) in {', '.join(missing)}")
    return protocol


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def fig8_psnr_hist(evals: Sequence[dict], names: Sequence[str], protocol: str, path: str, bins: int = 20) -> str:
    """Per-image PSNR histograms, one panel per model, the same bins, shared axes."""
    values = [np.array([r["psnr"] for r in e["rows"][protocol]], float) for e in evals]
    finite = np.concatenate([v[np.isfinite(v)] for v in values]) if values else np.zeros(0)
    if finite.size == 0:
        finite = np.array([0.0, 1.0])
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(math.floor(lo), math.ceil(hi), bins + 1)
    fig = _figure(7.0, 1.0 + 1.9 * len(evals))
    axes = fig.subplots(len(evals), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    colours = [f"C{i % 10}" for i in range(len(evals))]
    for ax, v, name, col, e in zip(axes, values, names, colours, evals):
        fv = v[np.isfinite(v)]
        ax.hist(fv, bins=edges, color=col, alpha=0.85, edgecolor="white")
        mean = float(np.mean(v)) if len(v) else math.nan
        ax.axvline(mean, color="black", linestyle="--", linewidth=1.2)
        extra = f", {len(v) - len(fv)} perfect (inf)" if len(fv) < len(v) else ""
        ax.set_title(f"{name}: mean {mean:.2f} dB over {len(v)} images{extra}", fontsize=10, loc="left")
        ax.set_ylabel("images")
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xlabel("PSNR (dB)")
    dataset = evals[0].get("dataset", "")
    fig.suptitle(f"Per-image PSNR on {dataset} ({_PROTOCOL_TEXT[protocol]})", fontsize=11)
    _save(fig, path)
    return path


def fig9_ssim_box(evals: Sequence[dict], names: Sequence[str], protocol: str, path: str) -> str:
    """Per-image SSIM boxplots, one box per model (mean marked with a triangle)."""
    values = [np.array([r["ssim"] for r in e["rows"][protocol]], float) for e in evals]
    fig = _figure(max(4.5, 1.3 * len(evals) + 2.0), 4.8)
    ax = fig.add_subplot()
    ax.boxplot(values, showmeans=True, widths=0.55)
    ax.set_xticks(range(1, len(names) + 1))
    ax.set_xticklabels([f"{n}\nmean {float(np.mean(v)):.4f}" for n, v in zip(names, values)],
                       rotation=0 if len(names) <= 5 else 30, fontsize=9)
    ax.set_ylabel("SSIM")
    ax.grid(axis="y", alpha=0.3)
    dataset = evals[0].get("dataset", "")
    ax.set_title(f"Per-image SSIM on {dataset}\n({_PROTOCOL_TEXT[protocol]})", fontsize=10)
    _save(fig, path)
    return path


def _grid_rows(evals: Sequence[dict], max_rows: int) -> list[dict]:
    """The saved images that every compared folder has, preferring one orientation (the first's)."""
    models = [e for e in evals if not e.get("identity")]
    pool = models or list(evals)
    common = None
    for e in pool:
        names = [s["name"] for s in e.get("saved_images", [])]
        common = names if common is None else [n for n in common if n in names]
    if not common:
        return []
    first = {s["name"]: s for s in pool[0]["saved_images"]}
    from menet_tf.imageio import read_image

    rows = []
    for nm in common:
        info = first[nm]
        for key in ("rainy", "clean"):
            if not os.path.isfile(info[key]):
                raise FileNotFoundError(f"{info[key]}: the {key} image of {nm} (recorded in "
                                        f"{pool[0]['dir']}/summary.json) is missing; is the data set still there?")
        rainy, clean = read_image(info["rainy"]), read_image(info["clean"])
        rows.append({"name": nm, "rainy": rainy, "clean": clean,
                     "outputs": [read_image(os.path.join(e["dir"], _saved_file(e, nm))) for e in models]})
    landscape = rows[0]["rainy"].shape[1] >= rows[0]["rainy"].shape[0]
    same = [r for r in rows if (r["rainy"].shape[1] >= r["rainy"].shape[0]) == landscape]
    return same[:max_rows]


def _saved_file(e: dict, name: str) -> str:
    for s in e["saved_images"]:
        if s["name"] == name:
            return s["file"]
    raise KeyError(name)


def fig10_grid(evals: Sequence[dict], names: Sequence[str], path: str, max_rows: int = 3) -> str | None:
    """Rows = images, columns rainy | each (non-identity) model | clean; None when no image is shared."""
    from menet_tf import metrics

    rows = _grid_rows(evals, max_rows)
    if not rows:
        log.warning("fig10: the compared folders saved no image in common (evaluate --save_images): "
                    "no grid drawn")
        return None
    model_names = [n for n, e in zip(names, evals) if not e.get("identity")]
    columns = ["Rainy input"] + model_names + ["Clean (ground truth)"]
    h, w = rows[0]["rainy"].shape[:2]
    cell_w = 2.6
    cell_h = cell_w * h / w + 0.45
    fig = _figure(cell_w * len(columns) + 0.4, cell_h * len(rows) + 0.5)
    axes = fig.subplots(len(rows), len(columns), squeeze=False)
    for i, row in enumerate(rows):
        images = [row["rainy"]] + row["outputs"] + [row["clean"]]
        for j, (img, ax) in enumerate(zip(images, axes[i])):
            ax.imshow(img, interpolation="lanczos")
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(images) - 1:
                p, s = metrics.standard_psnr_ssim(img, row["clean"])
                label = f"{p:.2f} dB / {s:.3f}" if math.isfinite(p) else f"inf dB / {s:.3f}"
            else:
                label = "PSNR / SSIM (Y)"
            ax.set_xlabel(label, fontsize=9)
            if i == 0:
                ax.set_title(columns[j], fontsize=10, fontweight="bold")
            if j == 0:
                ax.set_ylabel(row["name"], fontsize=9)
    fig.suptitle(f"{evals[0].get('dataset', '')}: rainy | de-rained | clean "
                 "(per-image PSNR / SSIM, standard protocol)", fontsize=11)
    _save(fig, path)
    return path


def compare(eval_dirs: Sequence[str], output_dir: str, protocol: str | None = None, max_rows: int = 3) -> list[str]:
    """Draw Fig. 8, 9 and 10 for the evaluation folders ``eval_dirs`` into ``output_dir``.

    protocol: whose per-image scores Fig. 8/9 show ("standard", "paper", or None = standard when every
    folder has it, else paper). Returns the PNG paths written (Fig. 10 is left out, with a warning,
    when the folders saved no image in common). Raises FileNotFoundError / ValueError naming the folder
    for a folder without summary.json or without the protocol's scores.
    """
    if not eval_dirs:
        raise ValueError("no evaluation folder to compare")
    evals = [load_eval(d) for d in eval_dirs]
    datasets = sorted({str(e.get("dataset")) for e in evals})
    if len(datasets) > 1:
        log.warning("comparing evaluations of different data sets: %s", ", ".join(datasets))
    protocol = _pick_protocol(evals, protocol)
    names = _display_names(evals)
    os.makedirs(output_dir, exist_ok=True)
    paths = [
        fig8_psnr_hist(evals, names, protocol, os.path.join(output_dir, FIG8)),
        fig9_ssim_box(evals, names, protocol, os.path.join(output_dir, FIG9)),
    ]
    grid = fig10_grid(evals, names, os.path.join(output_dir, FIG10), max_rows=max_rows)
    if grid:
        paths.append(grid)
    return paths


__all__ = ["FIG8", "FIG9", "FIG10", "compare", "fig8_psnr_hist", "fig9_ssim_box", "fig10_grid", "load_eval"]
