"""Statistics of the rain in paired data sets: what a synthetic rain style is fitted to, and checked against.

    python -m data_prep.rain_stats DIR [DIR ...] [--max_pairs 40]

For each pair (rainy O, clean B) the rain map is R = mean over R, G, B of (O - B), on the 0..255 scale.
Per image: the fraction of pixels with R > 10 (how much of the image the rain covers), the 50th, 90th and
99th percentiles of R over those pixels (how bright the streaks are), the streak length and width (full
widths at half maximum of R's autocorrelation along and across its main direction, in pixels), and the
input PSNR (standard protocol: uint8, Y). Printed per folder as mean [min, max] over its images, a
markdown table, then one JSON line. ``menet_tf.synthesis``'s ``varied`` style was fitted to these
numbers on the Rain100L train half (docs/gallery.md).
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS

STATS = ("coverage", "p50", "p90", "p99", "length", "width", "psnr")
RAIN_THRESHOLD = 10.0  # R above this counts as rain (0..255 scale)
_WINDOW = 80  # largest lag of the autocorrelation looked at, px


def _define_flags() -> None:
    flags.DEFINE_integer("max_pairs", None, "Use only the first N pairs of each folder (natural order).", lower_bound=1)
    flags.DEFINE_string("rainy_glob", None, "Glob of the rainy images, relative to each folder (with --clean_glob).")
    flags.DEFINE_string("clean_glob", None, "Glob of the clean images, relative to each folder (with --rainy_glob).")


def rain_map(rainy, clean) -> np.ndarray:
    """R = mean over the colour channels of (O - B), float64, 0..255 scale; H x W."""
    o, b = np.asarray(rainy, np.float64), np.asarray(clean, np.float64)
    if o.shape != b.shape:
        raise ValueError(f"rainy {o.shape} and clean {b.shape} differ in size")
    d = o - b
    return d.mean(-1) if d.ndim == 3 else d


def _profile_fwhm(ac: np.ndarray, direction: np.ndarray) -> float:
    """Full width at half maximum of the centred autocorrelation ``ac`` along a unit ``direction``
    (bilinear samples every 0.25 px, out to _WINDOW px each way; the half-maximum crossings interpolated
    linearly between samples)."""
    from scipy import ndimage

    c = np.array(ac.shape, np.float64) // 2
    t = np.arange(-_WINDOW, _WINDOW + 0.25, 0.25)
    rows, cols = c[0] + t * direction[0], c[1] + t * direction[1]
    values = ndimage.map_coordinates(ac, [rows, cols], order=1, mode="constant")
    idx = np.nonzero(values > 0.5)[0]
    if not idx.size:
        return 0.0
    i, j = int(idx[0]), int(idx[-1])

    def crossing(inside: int, outside: int) -> float:  # where the line between two samples meets 0.5
        if outside < 0 or outside >= t.size:
            return float(t[inside])
        a, b = values[inside], values[outside]
        return float(t[inside] + (t[outside] - t[inside]) * (a - 0.5) / (a - b))

    return crossing(j, j + 1) - crossing(i, i - 1)


def streak_size(r: np.ndarray) -> tuple[float, float]:
    """(length, width) of the streaks of rain map ``r``, px: the full widths at half maximum of the
    autocorrelation of max(r, 0) (mean removed) along and across its main direction (the principal axes
    of the region where it exceeds half its peak). For one w x L box: (L, w)."""
    x = np.maximum(r, 0.0)
    x = x - x.mean()
    if not np.any(x):
        return 0.0, 0.0
    h, w = x.shape
    f = np.fft.rfft2(x, s=(2 * h, 2 * w))  # zero-padded: a linear, not circular, autocorrelation
    ac = np.fft.fftshift(np.fft.irfft2(np.abs(f) ** 2, s=(2 * h, 2 * w)))
    ac /= ac.max()
    cy, cx = h, w
    win = ac[max(cy - _WINDOW, 0) : cy + _WINDOW + 1, max(cx - _WINDOW, 0) : cx + _WINDOW + 1]
    ys, xs = np.nonzero(win > 0.5)
    ys = ys - (cy - max(cy - _WINDOW, 0))
    xs = xs - (cx - max(cx - _WINDOW, 0))
    cov = np.cov(np.vstack([ys, xs]).astype(np.float64)) if ys.size > 1 else np.eye(2)
    evals, evecs = np.linalg.eigh(np.atleast_2d(cov))
    major, minor = evecs[:, 1], evecs[:, 0]  # (row, col) unit vectors
    return _profile_fwhm(ac, major), _profile_fwhm(ac, minor)


def image_stats(rainy, clean) -> dict:
    """The statistics of one pair (see the module docstring)."""
    from menet_tf import metrics

    r = rain_map(rainy, clean)
    rain = r[r > RAIN_THRESHOLD]
    p50, p90, p99 = (np.percentile(rain, [50, 90, 99]) if rain.size else (math.nan,) * 3)
    length, width = streak_size(r)
    return {"coverage": float(rain.size / r.size), "p50": float(p50), "p90": float(p90), "p99": float(p99),
            "length": length, "width": width, "psnr": float(metrics.psnr(rainy, clean))}


def summarize(per_image: list[dict]) -> dict:
    """{statistic: {"mean", "min", "max"}} over the images (NaNs of rain-free images left out)."""
    out = {}
    for k in STATS:
        v = np.array([s[k] for s in per_image], np.float64)
        v = v[~np.isnan(v)]
        out[k] = ({"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())} if v.size
                  else {"mean": math.nan, "min": math.nan, "max": math.nan})
    return out


def folder_stats(folder: str, max_pairs: int | None = None, rainy_glob=None, clean_glob=None) -> dict:
    from menet_tf.imageio import ImageError, read_image
    from menet_tf.pairs import find_pairs

    pairs = find_pairs(folder, rainy_glob, clean_glob)[:max_pairs]
    per_image = []
    for r, c in pairs:
        try:
            per_image.append(image_stats(read_image(r), read_image(c)))
        except ImageError:
            raise
        except ValueError as e:  # sizes that differ
            raise ValueError(f"{r} / {c}: {e}") from None
    return {"num_pairs": len(per_image), **summarize(per_image)}


def _cell(s: dict, k: str) -> str:
    fmt = {"coverage": "{:.1%}", "psnr": "{:.2f}"}.get(k, "{:.1f}")
    return f"{fmt.format(s[k]['mean'])} [{fmt.format(s[k]['min'])}, {fmt.format(s[k]['max'])}]"


def markdown_table(results: dict) -> str:
    head = "| folder | pairs | " + " | ".join(STATS) + " |"
    lines = [head, "|" + "---|" * (len(STATS) + 2)]
    for folder, s in results.items():
        lines.append(f"| {folder} | {s['num_pairs']} | " + " | ".join(_cell(s, k) for k in STATS) + " |")
    return "\n".join(lines)


def main(argv):
    folders = list(argv[1:])
    if not folders:
        raise app.UsageError("give one or more data folders: python -m data_prep.rain_stats DIR [DIR ...]")
    try:
        results = {f: folder_stats(f, FLAGS.max_pairs, FLAGS.rainy_glob, FLAGS.clean_glob) for f in folders}
    except (ValueError, OSError) as e:  # DataError and ImageError name the folder or file
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 1
    print("mean [min, max] over each folder's images; coverage: pixels with R > 10; p50/p90/p99: of R there; "
          "length/width: streak size, px; psnr: input, standard protocol")
    print(markdown_table(results))
    print(json.dumps(results), flush=True)
    return 0


if __name__ == "__main__":
    _define_flags()
    app.run(main)
