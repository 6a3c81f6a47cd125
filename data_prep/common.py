"""Library side of the data_prep tools (no flags here, so tests and other tools can import it).

* :func:`verify_data` -- what ``python -m data_prep.verify`` reports: layout, pair count, image sizes,
  duplicate backgrounds (pixel-identical clean images) and every problem of
  :mod:`menet_tf.data` (missing partners, strays, corrupt files, size mismatches, too small images).
* :func:`split_data` -- what ``python -m data_prep.split`` does: a reproducible train/test split that
  keeps pairs with identical clean images on the same side, written as two JORDER-flat folders
  (``rain-KEY.ext`` + ``norain-KEY.ext``) and a ``split.json``.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import shutil

from menet_tf import data as D

SPLIT_FILE = "split.json"


@dataclasses.dataclass
class VerifyReport:
    data_dir: str
    layout: str | None = None
    rainy_pattern: str = ""
    clean_pattern: str = ""
    found_pairs: int = 0
    good_pairs: int = 0
    sizes: dict = dataclasses.field(default_factory=dict)  # "WxH" -> number of good pairs
    duplicate_groups: list = dataclasses.field(default_factory=list)  # [[clean path, ...], ...]
    ignored: list = dataclasses.field(default_factory=list)
    problems: list = dataclasses.field(default_factory=list)  # [D.Problem or str]

    def text(self) -> str:
        lines = [f"data set: {self.data_dir}"]
        if self.layout is not None:
            lines += [
                f"layout: {self.layout} (rainy {self.rainy_pattern}, clean {self.clean_pattern})",
                f"pairs: {self.good_pairs}" + ("" if self.good_pairs == self.found_pairs
                                               else f" usable of {self.found_pairs} found"),
                "image sizes (width x height): "
                + (", ".join(f"{s}: {n}" for s, n in self.sizes.items()) or "none"),
            ]
            if self.ignored:
                lines.append(f"ignored companion files (rainstreak-* ...): {len(self.ignored)}")
            n_dup = sum(len(g) for g in self.duplicate_groups)
            lines.append(
                f"duplicate backgrounds (identical clean images): {len(self.duplicate_groups)} group(s), "
                f"{self.good_pairs - n_dup + len(self.duplicate_groups)} unique backgrounds for "
                f"{self.good_pairs} pairs"
            )
            lines += ["  " + " = ".join(os.path.basename(p) for p in g) for g in self.duplicate_groups]
        lines.append(f"problems: {len(self.problems)}" if self.problems else "problems: none")
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


def verify_data(data_dir: str, rainy_glob: str | None = None, clean_glob: str | None = None,
                crop_size: int | None = D.PAPER_CROP_SIZE, progress: bool = False) -> VerifyReport:
    """Read every image of ``data_dir`` once and report (never raises for data problems)."""
    report = VerifyReport(os.fspath(data_dir))
    try:
        pl = D.discover_pairs(data_dir, rainy_glob, clean_glob)
    except D.DataError as e:
        report.problems.append(str(e))
        return report
    report.layout, report.rainy_pattern, report.clean_pattern = pl.layout, pl.rainy_pattern, pl.clean_pattern
    report.found_pairs, report.ignored = len(pl.pairs), pl.ignored
    scanned = D.scan_pairs(pl, crop_size=crop_size or None, keep_images=False, progress=progress,
                           collect_only=True)
    report.good_pairs = len(scanned.pairs)
    report.problems = list(scanned.problems)
    sizes = collections.Counter(f"{w}x{h}" for h, w in scanned.sizes)
    report.sizes = dict(sizes.most_common())
    report.duplicate_groups = [[scanned.pairs[i][1] for i in g]
                               for g in D.duplicate_backgrounds(scanned.clean_digests)]
    return report


def _place(src: str, dst: str, link: bool) -> None:
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system, or not allowed: copy
    shutil.copyfile(src, dst)


def _safe_name(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_.+" else "_" for ch in key) or "pair"


def split_data(data_dir, out_dir: str, test_fraction: float, seed: int = 0, rainy_glob: str | None = None,
               clean_glob: str | None = None, skip_bad_pairs: bool = False, link: bool = True,
               progress: bool = False) -> dict:
    """Split the pairs of ``data_dir`` into ``out_dir/train`` and ``out_dir/test`` (JORDER flat).

    All data problems raise :class:`menet_tf.data.DataError` before anything is written (or, with
    ``skip_bad_pairs``, the bad pairs are left out with one warning). Pairs whose clean images are
    pixel-identical stay on the same side (:func:`menet_tf.data.grouped_split`). Files are
    hard-linked when possible, else copied. Returns what is written to ``out_dir/split.json``.
    """
    scanned = D.scan_pairs(data_dir, crop_size=None, skip_bad_pairs=skip_bad_pairs, keep_images=False,
                           progress=progress, rainy_glob=rainy_glob, clean_glob=clean_glob)
    groups = D.duplicate_backgrounds(scanned.clean_digests)
    train, test = D.grouped_split(len(scanned.pairs), groups, test_fraction, seed)
    for side in ("train", "test"):
        d = os.path.join(out_dir, side)
        if os.path.isdir(d) and os.listdir(d):
            raise D.DataError(f"{d}: output folder exists and is not empty; choose another --out")
    names, used = [], set()
    for key in scanned.keys:
        name = _safe_name(key)
        while name in used:
            name += "_"
        used.add(name)
        names.append(name)
    record = {
        "source": os.path.abspath(os.fspath(data_dir)) if not isinstance(data_dir, (list, tuple)) else None,
        "layout": scanned.layout,
        "test_fraction": test_fraction,
        "seed": seed,
        "num_pairs": len(scanned.pairs),
        "duplicate_backgrounds": [[names[i] for i in g] for g in groups],
    }
    for side, idx in (("train", train), ("test", test)):
        d = os.path.join(out_dir, side)
        os.makedirs(d, exist_ok=True)
        entries = []
        for i in idx:
            rp, cp = scanned.pairs[i]
            rainy = os.path.join(side, f"rain-{names[i]}{os.path.splitext(rp)[1]}")
            clean = os.path.join(side, f"norain-{names[i]}{os.path.splitext(cp)[1]}")
            _place(rp, os.path.join(out_dir, rainy), link)
            _place(cp, os.path.join(out_dir, clean), link)
            entries.append({"key": names[i], "rainy": rainy, "clean": clean,
                            "source_rainy": os.path.abspath(rp), "source_clean": os.path.abspath(cp)})
        record[side] = entries
    from menet_tf.atomic import atomic_write

    with atomic_write(os.path.join(out_dir, SPLIT_FILE)) as f:
        json.dump(record, f, indent=1)
    return record
