"""Paired de-raining data sets: finding the pairs of a folder, checking them, duplicate backgrounds
and grouped splits (no TensorFlow). The pipelines that cut and batch them are in :mod:`menet_tf.data`,
which re-exports the public names below.

Pair discovery (:func:`find_pairs`, :func:`discover_pairs`)
------------------------------------------------------------
A data set folder is recognised by the layouts of :data:`LAYOUTS` (one line each):

=============================  ================  ===================  ==============================
layout                         rainy             clean                notes
=============================  ================  ===================  ==============================
``jorder-flat``                ``rain-*``        ``norain-*``         ``rainstreak-*`` and
                                                                      ``rainregion-*`` beside them
                                                                      are ignored (unused)
``prenet``                     ``rainy/rain-*``  ``norain-*``         PReNet's test sets
``input/target``               ``input/*``       ``target/*``         same name on both sides
``rain/norain``                ``rain/*``        ``norain/*``         same name on both sides
``rain/norain, JORDER names``  ``rain/rain-*``   ``norain/norain-*``
``rainy/clean``                ``rainy/*``       ``clean/*``          same name on both sides
``inputcrop/cleancrop``        ``inputcrop/*``   ``cleancrop/*``      same name on both sides
``data/gt``                    ``data/*``        ``gt/*``             same name on both sides
=============================  ================  ===================  ==============================

A pattern is a glob relative to the data folder; any image extension (``.png``, ``.jpg``, ...) may
follow it. The text matched by the wildcards (extension excluded) is the *pair key*: a rainy image
and a clean image with the same key form a pair. In keys, numbers compare by value, so ``rain-1.png``
pairs with ``norain-001.png``; pairs come in natural order of the rainy path (``2`` before ``10``).
The layout that yields the most pairs is chosen (a tie is an error: pass explicit globs); with no
pair at all, the first layout of which one side was found (to report its missing partners).
Explicit ``rainy_glob`` / ``clean_glob`` (e.g. ``"low/*_r.png"``, ``"high/gt*.png"``; ``**`` crosses
folders) replace the table for anything else, with the same key rule (no stray check then).

Conversions (done by :func:`menet_tf.imageio.read_image`; every image becomes H x W x 3 uint8):
  * grayscale (L, 1-bit, 32-bit I/F with values 0..255) -> the grey value copied to R, G and B;
  * RGBA, grey + alpha, palette (with or without transparency), CMYK -> RGB, alpha dropped (not
    composited);
  * 16-bit PNG (grey or RGB, with or without alpha) -> ``round(v * 255 / 65535)``;
  * JPEG EXIF orientation is *not* applied (rainy and clean must stay aligned as stored).

Errors. Every problem below names the file(s) and is found while scanning, before any training step.
All problems of a data set are collected and raised together as one :class:`DataError` (a
``ValueError``), one ``"path: problem"`` line each (``DataError.problems`` holds :class:`Problem`
objects). With ``skip_bad_pairs=True`` the bad pairs are dropped instead and one warning (logger
``menet_tf.pairs``) gives the count and the list. Never a silent skip.

  * no such folder / a folder with no file at all -> DataError "DIR: no such directory" /
    "DIR: empty folder (no files at all)" (always raised, no skipping)
  * no layout recognised, or two layouts tie -> DataError "DIR: no supported layout found; tried ..." /
    "DIR: ambiguous layout, A and B both match ..." (always raised)
  * a rainy image without its clean partner, or the reverse -> "rainy image without its clean
    partner (looked for DIR/norain-007.*)" / "clean image without its rainy partner (looked for ...)"
  * two files with the same pair key on one side (``rain-1.png``, ``rain-001.png``) -> "same pair
    key as OTHER (rainy side): ambiguous, keep only one of them"
  * a stray file in a layout folder: "not an image file (a stray file in a jorder-flat data folder);
    remove it", or for an image that fits no pattern "image file that matches neither the rainy
    pattern ... (a stray file?)". Hidden files (``.name``), sub-folders, the ignored companions
    above and the ``manifest.csv`` that ``data_prep.synthesize`` writes are not strays.
  * a corrupt or truncated PNG/JPEG, a non-image with an image extension, a missing file -> the
    :class:`~menet_tf.imageio.ImageError` text ("corrupt or truncated image (...)", "truncated PNG (no
    IEND chunk ...)", "not an image, or a corrupt one ...", "no such file")
  * a size mismatch inside a pair -> "size 481x321 differs from its clean partner PATH (321x481)
    (width x height)"
  * an image smaller than the crop -> "image is 200x150 (width x height), smaller than the 224x224
    crop (pair with PATH)"
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import glob as _glob
import hashlib
import logging
import os
import re
from typing import Callable, Iterable, Sequence

import numpy as np

from menet_tf.imageio import ImageError, is_image_file, read_image

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------
# Errors


@dataclasses.dataclass(frozen=True)
class Problem:
    """One problem with one file: ``str()`` is ``"path: problem"``."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


class DataError(ValueError):
    """A data set that cannot be used as it is; the message lists every problem, one per line."""

    def __init__(self, message: str, problems: Iterable[Problem] = ()):
        self.problems = list(problems)
        super().__init__(message + "".join(f"\n  {p}" for p in self.problems))


_SKIP_HINT = "pass skip_bad_pairs=True (--skip_bad_pairs) to drop the bad pairs with a warning"


def _raise_or_warn(problems: Sequence[Problem], skip_bad_pairs: bool, where: str, kept: int, total: int):
    if not problems:
        return
    if not skip_bad_pairs:
        raise DataError(f"{len(problems)} problem(s) in the data set {where} ({_SKIP_HINT}):", problems)
    log.warning(
        "skip_bad_pairs: %d problem(s) in %s; using %d of %d pair(s):%s",
        len(problems),
        where,
        kept,
        total,
        "".join(f"\n  {p}" for p in problems),
    )


# ----------------------------------------------------------------------------------------------
# Layouts and pair discovery


@dataclasses.dataclass(frozen=True)
class Layout:
    """A folder layout: glob patterns (relative to the data folder, extension left out) whose
    wildcards capture the pair key; ``ignore`` lists companion files expected beside them, unused."""

    name: str
    rainy: str
    clean: str
    ignore: tuple[str, ...] = ()


_JORDER_COMPANIONS = ("rainstreak-*", "rainregion-*")
#: Files that this project's own tools write beside the images (data_prep.synthesize's manifest): not strays.
SIDECAR_FILES = ("manifest.csv",)

#: Supported layouts; adding one is one line. See the module docstring.
LAYOUTS: tuple[Layout, ...] = (
    Layout("jorder-flat", "rain-*", "norain-*", _JORDER_COMPANIONS),
    Layout("prenet", "rainy/rain-*", "norain-*", _JORDER_COMPANIONS + tuple("rainy/" + p for p in _JORDER_COMPANIONS)),
    Layout("input/target", "input/*", "target/*"),
    Layout("rain/norain", "rain/*", "norain/*"),
    Layout("rain/norain, JORDER names", "rain/rain-*", "norain/norain-*"),
    Layout("rainy/clean", "rainy/*", "clean/*"),
    Layout("inputcrop/cleancrop", "inputcrop/*", "cleancrop/*"),
    Layout("data/gt", "data/*", "gt/*"),
)

GLOB_LAYOUT = "glob"


def natural_key(text: str) -> list:
    """Sort key in which digit runs compare as numbers: ``rain-2`` before ``rain-10``."""
    return [[int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)], text]


def _normalise_key(captures: Sequence[str]) -> tuple[str, ...]:
    return tuple(re.sub(r"\d+", lambda m: str(int(m.group())), c) for c in captures)


class _Pattern:
    """A glob pattern under a root folder that lists files and captures their wildcards."""

    def __init__(self, root: str, pattern: str):
        self.pattern = pattern.replace(os.sep, "/")
        self.root = root
        absolute = os.path.isabs(self.pattern)
        self.glob = self.pattern if absolute else os.path.join(_glob.escape(root), self.pattern)
        self.folder = os.path.dirname(self.pattern if absolute else os.path.join(root, self.pattern)) or "."
        rootn = os.path.normpath(root).replace(os.sep, "/")
        prefix = "" if absolute or rootn == "." else re.escape(rootn.rstrip("/") + "/")
        self.regex = re.compile(prefix + self._translate(self.pattern))
        self.wildcards = re.compile(r"\[!?[^\]]+\]|\*\*/|\*\*|\*|\?").findall(self.pattern)

    @staticmethod
    def _translate(pattern: str) -> str:
        out, i = [], 0
        while i < len(pattern):
            ch = pattern[i]
            if pattern.startswith("**/", i):
                out.append(r"((?:[^/]*/)*)")
                i += 3
                continue
            if pattern.startswith("**", i):
                out.append(r"(.*)")
                i += 2
                continue
            if ch == "*":
                out.append(r"([^/]*)")
            elif ch == "?":
                out.append(r"([^/])")
            elif ch == "[" and pattern.find("]", i + 2) > 0:
                j = pattern.find("]", i + 2)
                body = pattern[i + 1 : j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("([" + body.replace("\\", "\\\\") + "])")
                i = j + 1
                continue
            else:
                out.append(re.escape(ch))
            i += 1
        return "".join(out)

    def match(self, path: str):
        """The wildcard captures of ``path`` (the extension excluded when it can be), or None."""
        p = os.path.normpath(path).replace(os.sep, "/")
        stem = os.path.splitext(p)[0]
        m = self.regex.fullmatch(stem) or self.regex.fullmatch(p)
        return None if m is None else m.groups()

    def files(self) -> list[str]:
        found = set(_glob.glob(self.glob, recursive=True)) | set(_glob.glob(self.glob + ".*", recursive=True))
        return sorted(f for f in found if os.path.isfile(f))

    def fill(self, captures: Sequence[str]) -> str:
        """The file name this pattern expects for ``captures`` (for "looked for ..." messages)."""
        if len(captures) != len(self.wildcards):
            return f"{self.pattern} with the pair key {'_'.join(captures)!r}"
        it = iter(captures)
        text = re.sub(r"\[!?[^\]]+\]|\*\*/|\*\*|\*|\?", lambda m: next(it), self.pattern)
        if not os.path.splitext(text)[1]:
            text += ".*"
        return text if os.path.isabs(text) else os.path.join(self.root, text)


@dataclasses.dataclass
class PairList:
    """What :func:`discover_pairs` found: the layout, the pairs (natural order), and problems.

    ``keys[i]`` is the text captured by the wildcards for pair i (e.g. ``"001"``);
    ``problems`` are missing partners, ambiguous keys and stray files (not raised here);
    ``ignored`` are expected companion files (``rainstreak-*``) that are not used.
    """

    layout: str
    data_dir: str | None
    rainy_pattern: str
    clean_pattern: str
    pairs: list[tuple[str, str]]
    keys: list[str]
    problems: list[Problem] = dataclasses.field(default_factory=list)
    ignored: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pairs)


def _key_text(captures: Sequence[str]) -> str:
    return "_".join(c.strip("/").replace("/", "_") for c in captures)


def _collect(pattern: _Pattern, side: str, problems: list[Problem]) -> dict[tuple, tuple[str, tuple]]:
    """The image files of one side, by normalised pair key -> (path, captures).

    Non-image files matching the pattern, and files sharing a key, are added to ``problems``.
    """
    by_key: dict[tuple, list[tuple[str, tuple]]] = {}
    for path in pattern.files():
        caps = pattern.match(path)
        if caps is None:
            continue
        if not is_image_file(path):
            problems.append(Problem(path, f"not an image file (a stray file matching the {side} pattern "
                                          f"'{pattern.pattern}'); remove it or narrow the pattern"))
            continue
        by_key.setdefault(_normalise_key(caps), []).append((path, caps))
    out = {}
    for key, entries in by_key.items():
        if len(entries) > 1:
            for path, _ in entries:
                others = ", ".join(p for p, _ in entries if p != path)
                problems.append(Problem(path, f"same pair key as {others} ({side} side): ambiguous, "
                                              "keep only one of them"))
            continue
        out[key] = entries[0]
    return out


def _match_layout(data_dir: str, rainy: str, clean: str, name: str, ignore: Sequence[str] = (),
                  stray_check: bool = True) -> PairList:
    rp, cp = _Pattern(data_dir, rainy), _Pattern(data_dir, clean)
    problems: list[Problem] = []
    r, c = _collect(rp, "rainy", problems), _collect(cp, "clean", problems)
    both = {path for path, _ in r.values()} & {path for path, _ in c.values()}
    for path in sorted(both):  # only possible with explicit globs
        problems.append(Problem(path, f"matches both the rainy pattern '{rainy}' and the clean pattern '{clean}'"))
    r = {k: v for k, v in r.items() if v[0] not in both}
    c = {k: v for k, v in c.items() if v[0] not in both}
    pairs, keys = [], []
    for key, (path, caps) in r.items():
        if key in c:
            pairs.append((path, c[key][0]))
            keys.append(_key_text(caps))
        else:
            problems.append(Problem(path, f"rainy image without its clean partner (looked for {cp.fill(caps)})"))
    for key, (path, caps) in c.items():
        if key not in r:
            problems.append(Problem(path, f"clean image without its rainy partner (looked for {rp.fill(caps)})"))
    ignored: list[str] = []
    if stray_check:
        ignore_patterns = [_Pattern(data_dir, p) for p in ignore]
        for folder in sorted({rp.folder, cp.folder}):
            if not os.path.isdir(folder):
                continue
            for entry in sorted(os.listdir(folder)):
                path = os.path.join(folder, entry)
                if entry.startswith(".") or not os.path.isfile(path):
                    continue  # hidden files and sub-folders are not part of any layout
                if rp.match(path) is not None or cp.match(path) is not None:
                    continue
                if entry in SIDECAR_FILES or any(p.match(path) is not None for p in ignore_patterns):
                    ignored.append(path)
                elif is_image_file(path):
                    problems.append(Problem(path, f"image file that matches neither the rainy pattern "
                                                  f"'{rainy}' nor the clean pattern '{clean}' of the "
                                                  f"{name} layout (a stray file?)"))
                else:
                    problems.append(Problem(path, f"not an image file (a stray file in a {name} data folder); "
                                                  "remove it"))
    order = sorted(range(len(pairs)), key=lambda i: natural_key(os.path.relpath(pairs[i][0], data_dir)))
    problems.sort(key=lambda p: natural_key(p.path))
    return PairList(name, data_dir, rainy, clean, [pairs[i] for i in order], [keys[i] for i in order],
                    problems, sorted(ignored, key=natural_key))


def discover_pairs(data_dir: str | os.PathLike | None, rainy_glob: str | None = None,
                   clean_glob: str | None = None) -> PairList:
    """Find the pairs of ``data_dir`` (see the module docstring) without reading any image.

    Problems with single files (missing partners, strays, ambiguous keys) are returned in
    ``PairList.problems``, not raised; a missing or empty folder, or a folder in which no layout
    (or more than one, tied) is recognised, raises :class:`DataError`.
    """
    if (rainy_glob is None) != (clean_glob is None):
        raise DataError("rainy_glob and clean_glob must be given together "
                        f"(got rainy_glob={rainy_glob!r}, clean_glob={clean_glob!r})")
    data_dir = os.fspath(data_dir) if data_dir is not None else ""
    if rainy_glob is not None:
        root = data_dir or "."
        if data_dir and not os.path.isdir(data_dir):
            raise DataError(f"{data_dir}: no such directory")
        pl = _match_layout(root, rainy_glob, clean_glob, GLOB_LAYOUT, stray_check=False)
        if not pl.pairs and not pl.problems:
            raise DataError(f"{root}: no file matches rainy_glob {rainy_glob!r} or clean_glob {clean_glob!r}")
        return pl
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: no such directory")
    if not any(files for _, _, files in os.walk(data_dir)):
        raise DataError(f"{data_dir}: empty folder (no files at all)")
    candidates = [_match_layout(data_dir, lay.rainy, lay.clean, lay.name, lay.ignore) for lay in LAYOUTS]
    best = max(len(c.pairs) for c in candidates)
    if best > 0:
        top = [c for c in candidates if len(c.pairs) == best]
    else:  # no pair at all: the layout of which one side was found (its partners all missing)
        one_sided = [(sum("partner" in p.problem for p in c.problems), i) for i, c in enumerate(candidates)]
        most, first = max(one_sided, key=lambda t: (t[0], -t[1]))
        top = [candidates[first]] if most else []
    if len(top) == 1:
        return top[0]
    if not top:
        raise DataError(
            f"{data_dir}: no supported layout found; tried "
            + ", ".join(f"{lay.name} ({lay.rainy} + {lay.clean})" for lay in LAYOUTS)
            + "; pass rainy_glob and clean_glob (--rainy_glob/--clean_glob) for other layouts"
        )
    raise DataError(
        f"{data_dir}: ambiguous layout, {' and '.join(c.layout for c in top)} both match "
        f"({best} pairs each); pass rainy_glob and clean_glob (--rainy_glob/--clean_glob) to choose"
    )


def find_pairs(data_dir: str | os.PathLike | None, rainy_glob: str | None = None, clean_glob: str | None = None,
               skip_bad_pairs: bool = False) -> list[tuple[str, str]]:
    """The (rainy_path, clean_path) pairs of ``data_dir`` in natural order; logs the layout found.

    Missing partners, stray files and ambiguous keys raise one :class:`DataError` listing them all
    (or, with ``skip_bad_pairs``, are logged as one warning). No image is read here: see
    :func:`scan_pairs` for decoding checks.
    """
    pl = discover_pairs(data_dir, rainy_glob, clean_glob)
    log.info("%s: layout %s (rainy %s, clean %s), %d pairs", data_dir, pl.layout, pl.rainy_pattern,
             pl.clean_pattern, len(pl.pairs))
    _raise_or_warn(pl.problems, skip_bad_pairs, os.fspath(data_dir or "."), len(pl.pairs), len(pl.pairs))
    return list(pl.pairs)


# ----------------------------------------------------------------------------------------------
# Scanning (decoding and checking every image once)


@dataclasses.dataclass
class ScannedPairs:
    """The result of :func:`scan_pairs`: only good pairs, in order, with what was learned reading them.

    ``rainy[i]`` / ``clean[i]`` are H x W x 3 uint8 arrays (None unless ``keep_images``);
    ``sizes[i]`` is (height, width); ``clean_digests[i]`` is a SHA-1 of the clean pixels (identical
    backgrounds have equal digests); ``problems`` are the problems skipped or collected.
    """

    pairs: list[tuple[str, str]]
    keys: list[str]
    sizes: list[tuple[int, int]]
    clean_digests: list[str]
    rainy: list[np.ndarray] | None = None
    clean: list[np.ndarray] | None = None
    problems: list[Problem] = dataclasses.field(default_factory=list)
    layout: str | None = None
    total_pairs: int = 0

    def __len__(self) -> int:
        return len(self.pairs)


def _wh(shape) -> str:
    return f"{shape[1]}x{shape[0]}"


def _read(path: str, problems: list[Problem]) -> np.ndarray | None:
    try:
        return read_image(path)
    except ImageError as e:
        problems.append(Problem(e.path, e.problem))
        return None


def check_pair(rainy_path: str, clean_path: str, crop_size: int | None = None):
    """Read one pair; returns (rainy, clean, problems) with None images where a problem was found."""
    problems: list[Problem] = []
    rainy, clean = _read(rainy_path, problems), _read(clean_path, problems)
    if rainy is not None and clean is not None:
        if rainy.shape != clean.shape:
            problems.append(Problem(rainy_path, f"size {_wh(rainy.shape)} differs from its clean partner "
                                                f"{clean_path} ({_wh(clean.shape)}) (width x height)"))
        elif crop_size and min(rainy.shape[:2]) < crop_size:
            problems.append(Problem(rainy_path, f"image is {_wh(rainy.shape)} (width x height), smaller than the "
                                                f"{crop_size}x{crop_size} crop (pair with {clean_path})"))
    if problems:
        return None, None, problems
    return rainy, clean, problems


def _as_pair_list(data_dir_or_pairs, rainy_glob=None, clean_glob=None) -> PairList:
    if isinstance(data_dir_or_pairs, PairList):
        return data_dir_or_pairs
    if isinstance(data_dir_or_pairs, (str, os.PathLike)) or data_dir_or_pairs is None:
        return discover_pairs(data_dir_or_pairs, rainy_glob, clean_glob)
    pairs = [(os.fspath(r), os.fspath(c)) for r, c in data_dir_or_pairs]
    if not pairs:
        raise DataError("an empty list of pairs was given")
    keys = [os.path.splitext(os.path.basename(r))[0] for r, _ in pairs]
    return PairList("list", None, "", "", pairs, keys)


def scan_pairs(
    pairs,
    crop_size: int | None = None,
    skip_bad_pairs: bool = False,
    keep_images: bool = True,
    progress: bool = False,
    on_pair: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
    collect_only: bool = False,
    rainy_glob: str | None = None,
    clean_glob: str | None = None,
    num_workers: int | None = None,
) -> ScannedPairs:
    """Decode every image of ``pairs`` once and check it; return the good pairs (:class:`ScannedPairs`).

    ``pairs``: a data folder (discovered with :func:`discover_pairs`, globs allowed), a
    :class:`PairList`, or a list of (rainy_path, clean_path). Checks: each file decodes (conversions
    in the module docstring), both images of a pair have the same size, and with ``crop_size`` both
    sides are at least ``crop_size``. Discovery problems (missing partners, strays) are included.

    Every problem found is raised at the end as one :class:`DataError` ("path: problem" per line);
    ``skip_bad_pairs=True`` drops the bad pairs with one warning instead; ``collect_only=True`` does
    neither and only returns them in ``.problems`` (for ``data_prep.verify``).
    ``on_pair(i, rainy, clean)`` is called for each good pair as it is read (i counts good pairs), so
    a caller can cut patches without keeping whole images (``keep_images=False``). Files are decoded
    by ``num_workers`` threads (default: one per CPU), results are used in pair order.
    """
    pl = _as_pair_list(pairs, rainy_glob, clean_glob)
    problems = list(pl.problems)
    out = ScannedPairs([], [], [], [], [] if keep_images else None, [] if keep_images else None,
                       layout=pl.layout, total_pairs=len(pl.pairs))
    bar = None
    if progress and pl.pairs:
        from menet_tf.progress import progress_bar

        bar = progress_bar(len(pl.pairs), unit_name="pair")
    def check(pair):
        rainy, clean, pair_problems = check_pair(pair[0], pair[1], crop_size)
        return rainy, clean, pair_problems, None if clean is None else _digest(clean)

    workers = max(1, min(num_workers or os.cpu_count() or 1, len(pl.pairs)))
    chunk = 4 * workers  # decode ahead in bounded chunks, consume in order
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:  # decoders release the GIL
        for start in range(0, len(pl.pairs), chunk):
            results = pool.map(check, pl.pairs[start : start + chunk])
            for n, (rainy, clean, pair_problems, digest) in enumerate(results, start):
                problems.extend(pair_problems)
                if rainy is not None:
                    if on_pair is not None:
                        on_pair(len(out.pairs), rainy, clean)
                    out.pairs.append(pl.pairs[n])
                    out.keys.append(pl.keys[n])
                    out.sizes.append(tuple(rainy.shape[:2]))
                    out.clean_digests.append(digest)
                    if keep_images:
                        out.rainy.append(rainy)
                        out.clean.append(clean)
                if bar is not None:
                    bar.update(n + 1)
    out.problems = problems
    if not collect_only:
        _raise_or_warn(problems, skip_bad_pairs, pl.data_dir or "(list of pairs)", len(out.pairs), len(pl.pairs))
        if not out.pairs:
            raise DataError(f"no usable pair left in {pl.data_dir or '(list of pairs)'}", problems)
    return out


def _digest(image: np.ndarray) -> str:
    h = hashlib.sha1(repr(image.shape).encode())
    h.update(np.ascontiguousarray(image).tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# Duplicate backgrounds and grouped train/test split


def duplicate_backgrounds(clean_digests: Sequence[str]) -> list[list[int]]:
    """Groups (indices, ascending) of pairs whose clean images are pixel-identical; only groups of 2+.

    ``clean_digests`` is :attr:`ScannedPairs.clean_digests` (or any per-pair content hash).
    """
    groups: dict[str, list[int]] = {}
    for i, d in enumerate(clean_digests):
        groups.setdefault(d, []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def grouped_split(num_pairs: int, groups: Sequence[Sequence[int]], test_fraction: float,
                  seed: int = 0) -> tuple[list[int], list[int]]:
    """A reproducible train/test split of ``range(num_pairs)`` that never separates a group.

    Groups (e.g. :func:`duplicate_backgrounds`) and the remaining single pairs are visited in an
    order drawn from ``numpy.random.default_rng(seed)``; each goes to the test side while it fits in
    ``round(test_fraction * num_pairs)``, else to the training side. Returns sorted index lists.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in [0, 1], got {test_fraction}")
    parent = list(range(num_pairs))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for g in groups:
        for i in g[1:]:
            parent[find(i)] = find(g[0])
    units: dict[int, list[int]] = {}
    for i in range(num_pairs):
        units.setdefault(find(i), []).append(i)
    unit_list = sorted(units.values(), key=lambda u: u[0])
    target = round(test_fraction * num_pairs)
    rng = np.random.default_rng(seed)
    test: list[int] = []
    train: list[int] = []
    for u in rng.permutation(len(unit_list)):
        unit = unit_list[u]
        (test if len(test) + len(unit) <= target else train).extend(unit)
    return sorted(train), sorted(test)
