"""menet_tf.pairs, menet_tf.data and the data_prep tools against independent references.

References: crops cut here with numpy slicing at offsets written out by hand (banker's rounding:
481 -> 128, 321 -> 48), images read here with Pillow directly, the duplicate list of
../shared/data/README.md, and the exact error texts of the menet_tf.pairs docstring.
"""

import collections
import filecmp
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from menet_tf import data as D

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RAIN100L = DATA / "Rain100L"
C = 224
# Hand-written centre offsets for the crop of 224: round((481-224)/2) = round(128.5) = 128 and
# round((321-224)/2) = round(48.5) = 48 (half to even), not 129 / 49.
CENTRE = {481: 128, 321: 48}

needs_rain100l = pytest.mark.skipif(not RAIN100L.is_dir(), reason="../shared/data/Rain100L is absent")


def pil_rgb(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def reference_crops(img, c=C, centre=None):
    """The 10 crops, by hand: TL, TR, BL, BR, centre, then the same on img[:, ::-1]."""
    h, w = img.shape[:2]
    ct, cl = centre if centre is not None else (CENTRE[h], CENTRE[w])
    out = []
    for src in (img, img[:, ::-1]):
        out += [src[:c, :c], src[:c, w - c :], src[h - c :, :c], src[h - c :, w - c :], src[ct : ct + c, cl : cl + c]]
    return out


@pytest.fixture(scope="module")
def rain100l():
    if not RAIN100L.is_dir():
        pytest.skip("../shared/data/Rain100L is absent")
    names = [f"{i:03d}" for i in range(1, 101)]
    return {
        "pairs": [(str(RAIN100L / f"rain-{n}.png"), str(RAIN100L / f"norain-{n}.png")) for n in names],
        "rainy": [pil_rgb(RAIN100L / f"rain-{n}.png") for n in names],
        "clean": [pil_rgb(RAIN100L / f"norain-{n}.png") for n in names],
    }


# ------------------------------------------------------------------------------------------------
# Rain100L: discovery, training epoch, paper-protocol crops, full images


@needs_rain100l
def test_rain100l_has_100_pairs_in_natural_order(rain100l):
    pl = D.discover_pairs(RAIN100L)
    assert pl.layout == "jorder-flat"
    assert pl.problems == [] and pl.ignored == []
    assert D.find_pairs(RAIN100L) == rain100l["pairs"]


@needs_rain100l
def test_one_training_epoch_is_exactly_the_1000_reference_patches(rain100l):
    ds, n = D.make_train_dataset(RAIN100L, crop_size=C, batch_size=20, seed=3)
    assert n == 1000
    ref = collections.Counter()
    for r, c in zip(rain100l["rainy"], rain100l["clean"]):
        for rc, cc in zip(reference_crops(r), reference_crops(c)):
            ref[rc.tobytes() + cc.tobytes()] += 1
    assert sum(ref.values()) == 1000 and len(ref) == 1000  # all distinct (rainy differ even when clean are equal)
    got = collections.Counter()
    for rainy, clean in ds:
        assert rainy.shape == (20, C, C, 3) and clean.shape == (20, C, C, 3)
        assert rainy.dtype.name == "float32" and clean.dtype.name == "float32"
        r, c = rainy.numpy(), clean.numpy()
        r8, c8 = r.astype(np.uint8), c.astype(np.uint8)
        assert np.array_equal(r8, r) and np.array_equal(c8, c)  # integral values 0..255
        got.update(a.tobytes() + b.tobytes() for a, b in zip(r8, c8))
    assert sum(got.values()) == 1000
    assert got == ref  # byte for byte, each once: all five positions, flipped and not, pairs aligned
    first = [next(iter(ds))[0].numpy()[:, 0, 0, 0].tobytes() for _ in range(2)]
    assert first[0] != first[1]  # reshuffled every epoch
    # The test can tell the rounding apart: a round-half-up centre crop (129, 49) is not delivered.
    r0, c0 = rain100l["rainy"][0], rain100l["clean"][0]
    h, w = r0.shape[:2]
    up = reference_crops(r0, centre=(CENTRE[h] + 1, CENTRE[w] + 1))[4]
    assert up.tobytes() + reference_crops(c0, centre=(CENTRE[h] + 1, CENTRE[w] + 1))[4].tobytes() not in ref


@needs_rain100l
def test_training_order_is_reproducible_with_a_seed(rain100l):
    pairs = rain100l["pairs"][:4]

    def orders(seed):
        ds, n = D.make_train_dataset(pairs, batch_size=8, seed=seed)
        assert n == 40
        return [[b[0].numpy()[:, 0, 0, 0].tobytes() + b[0].numpy()[:, 100, 7, 1].tobytes() for b in ds]
                for _ in range(2)]

    a, b = orders(7), orders(7)
    assert a == b and len(a[0]) == 5  # 40 patches -> 5 batches of 8
    assert a[0] != a[1]


@needs_rain100l
def test_paper_eval_crops_are_in_order_and_complete(rain100l):
    ds = D.make_paper_eval_dataset(RAIN100L, crop_size=C, batch_size=64)
    batches = [(r.numpy().astype(np.uint8), c.numpy().astype(np.uint8)) for r, c in ds]
    assert [len(r) for r, _ in batches] == [64] * 15 + [40]  # 1000 crops: the last batch kept
    rainy = np.concatenate([r for r, _ in batches])
    clean = np.concatenate([c for _, c in batches])
    assert rainy.shape == clean.shape == (1000, C, C, 3)  # 1000 = 15 * 64 + 40: the last batch kept
    for i, (r, c) in enumerate(zip(rain100l["rainy"], rain100l["clean"])):
        for j, (rc, cc) in enumerate(zip(reference_crops(r), reference_crops(c))):
            assert np.array_equal(rainy[10 * i + j], rc), (i, j)
            assert np.array_equal(clean[10 * i + j], cc), (i, j)


@needs_rain100l
def test_five_crop_with_flips_numpy_and_tf_match_hand_cut_crops(rain100l):
    import tensorflow as tf

    by_shape = {}
    for img in rain100l["rainy"]:
        by_shape.setdefault(img.shape, img)
    assert set(by_shape) == {(321, 481, 3), (481, 321, 3)}
    for img in by_shape.values():
        ref = np.stack(reference_crops(img))
        got = D.five_crop_with_flips(img, C)
        assert got.shape == (10, C, C, 3) and got.dtype == np.uint8
        assert np.array_equal(got, ref)
        assert np.array_equal(D.five_crop_with_flips(tf.constant(img), C).numpy(), ref)
        dyn = tf.function(lambda x: D.five_crop_with_flips(x, C),
                          input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
        assert np.array_equal(dyn(img).numpy(), ref)  # offsets from a dynamic shape, tf.round


def test_five_crop_order_on_a_labelled_image():
    # Each pixel holds its own (row, column): every crop's first pixel names its offset.
    h, w, c = 7, 10, 4
    img = np.stack(np.meshgrid(np.arange(h), np.arange(w), indexing="ij"), axis=-1)
    crops = D.five_crop_with_flips(img, c)
    firsts = [tuple(crop[0, 0]) for crop in crops]
    centre = (round((h - c) / 2), round((w - c) / 2))  # (2, 3): 1.5 -> 2, 3.0 -> 3
    assert firsts[:5] == [(0, 0), (0, w - c), (h - c, 0), (h - c, w - c), centre]
    # on the flipped image, column x holds the original column w-1-x
    assert firsts[5:] == [(0, w - 1), (0, c - 1), (h - c, w - 1), (h - c, c - 1), (centre[0], w - 1 - centre[1])]
    with pytest.raises(ValueError, match=r"image is 10x7 \(width x height\), smaller than the 8x8 crop"):
        D.five_crop_with_flips(img, 8)


@needs_rain100l
def test_full_images_any_size(rain100l):
    got = list(D.iterate_full_images(rain100l["pairs"][:12]))  # both orientations; all 100 cost time
    assert [g[0] for g in got] == [f"rain-{i:03d}" for i in range(1, 13)]
    assert {g[1].shape for g in got} == {(321, 481, 3), (481, 321, 3)}
    for (name, r, c), rr, cc in zip(got, rain100l["rainy"], rain100l["clean"]):
        assert r.dtype == np.uint8 and np.array_equal(r, rr) and np.array_equal(c, cc)


# ------------------------------------------------------------------------------------------------
# Every supported layout, laid out from Rain100L in a temp dir (symbolic links)


def _relayout(tmp, rainy_name, clean_name, extra=()):
    for i in range(1, 101):
        for src, name in ((f"rain-{i:03d}.png", rainy_name(i)), (f"norain-{i:03d}.png", clean_name(i))):
            dst = tmp / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(RAIN100L / src, dst)
    for name in extra:
        os.symlink(RAIN100L / "rain-001.png", tmp / name)


LAYOUT_CASES = {
    "jorder-flat": (lambda i: f"rain-{i:03d}.png", lambda i: f"norain-{i:03d}.png"),
    "jorder-flat unpadded": (lambda i: f"rain-{i}.png", lambda i: f"norain-{i}.png"),
    "jorder-flat mixed padding": (lambda i: f"rain-{i}.png", lambda i: f"norain-{i:03d}.png"),
    "prenet": (lambda i: f"rainy/rain-{i:03d}.png", lambda i: f"norain-{i:03d}.png"),
    "input/target": (lambda i: f"input/{i}.png", lambda i: f"target/{i}.png"),
    "rain/norain": (lambda i: f"rain/{i:03d}.png", lambda i: f"norain/{i:03d}.png"),
    "rain/norain, JORDER names": (lambda i: f"rain/rain-{i:03d}.png", lambda i: f"norain/norain-{i:03d}.png"),
    "rainy/clean": (lambda i: f"rainy/img_{i}.png", lambda i: f"clean/img_{i}.png"),
    "inputcrop/cleancrop": (lambda i: f"inputcrop/{i:03d}.png", lambda i: f"cleancrop/{i:03d}.png"),
    "data/gt": (lambda i: f"data/{i}.png", lambda i: f"gt/{i}.png"),
}


@needs_rain100l
@pytest.mark.parametrize("case", sorted(LAYOUT_CASES))
def test_same_pairs_in_every_layout(tmp_path, case, rain100l):
    rainy_name, clean_name = LAYOUT_CASES[case]
    extra = ("rainstreak-001.png", "rainregion-001.png") if case == "jorder-flat" else ()
    _relayout(tmp_path, rainy_name, clean_name, extra)
    pl = D.discover_pairs(tmp_path)
    assert pl.layout == case.split(" unpadded")[0].split(" mixed")[0]
    assert pl.problems == []
    assert sorted(os.path.basename(p) for p in pl.ignored) == sorted(extra)
    found = D.find_pairs(tmp_path)
    assert [(os.path.realpath(r), os.path.realpath(c)) for r, c in found] == [
        (os.path.realpath(r), os.path.realpath(c)) for r, c in rain100l["pairs"]]
    assert found == [(str(tmp_path / rainy_name(i)), str(tmp_path / clean_name(i))) for i in range(1, 101)]


@needs_rain100l
def test_explicit_globs(tmp_path, rain100l):
    _relayout(tmp_path, lambda i: f"low/{i:04d}_r.png", lambda i: f"high/sub/gt{i}_c.png")
    with pytest.raises(D.DataError, match="no supported layout found"):
        D.find_pairs(tmp_path)
    with pytest.raises(D.DataError) as e:  # two wildcards on the clean side: keys never meet
        D.find_pairs(tmp_path, rainy_glob="low/*_r.png", clean_glob="high/*/gt*_c.png")
    assert len(e.value.problems) == 200
    assert str(e.value.problems[0]) == (f"{tmp_path}/high/sub/gt1_c.png: clean image without its rainy partner "
                                        "(looked for low/*_r.png with the pair key 'sub_1')")
    found = D.find_pairs(tmp_path, rainy_glob="low/*_r.png", clean_glob="high/sub/gt*_c.png")
    assert [(os.path.realpath(r), os.path.realpath(c)) for r, c in found] == [
        (os.path.realpath(r), os.path.realpath(c)) for r, c in rain100l["pairs"]]
    with pytest.raises(D.DataError, match="rainy_glob and clean_glob must be given together"):
        D.find_pairs(tmp_path, rainy_glob="low/*_r.png")


@needs_rain100l
def test_the_layout_with_more_pairs_wins_and_a_tie_is_ambiguous(tmp_path):
    _relayout(tmp_path, lambda i: f"rain-{i}.png", lambda i: f"norain-{i}.png")

    def add_input_target(numbers):
        for i in numbers:
            for sub, prefix in (("input", "rain"), ("target", "norain")):
                (tmp_path / sub).mkdir(exist_ok=True)
                os.symlink(RAIN100L / f"{prefix}-{i:03d}.png", tmp_path / sub / f"{i}.png")

    add_input_target(range(1, 51))
    assert D.discover_pairs(tmp_path).layout == "jorder-flat"  # 100 pairs against 50
    add_input_target(range(51, 101))
    with pytest.raises(D.DataError, match=r"ambiguous layout, jorder-flat and input/target both match \(100 pairs"):
        D.discover_pairs(tmp_path)


# ------------------------------------------------------------------------------------------------
# Bad input: conversions and errors (small synthetic images, crop 8)


def _img(h=10, w=12, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _save(path, array, **kw):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, **kw).save(path)
    return str(path)


def _good_pairs(d, n=3):
    for i in range(1, n + 1):
        _save(d / f"rain-{i}.png", _img(seed=i))
        _save(d / f"norain-{i}.png", _img(seed=100 + i))


def _crops8(img):
    return reference_crops(img, c=8, centre=(round((img.shape[0] - 8) / 2), round((img.shape[1] - 8) / 2)))


def _conversion_cases(rng):
    grey = rng.integers(0, 256, (10, 12), dtype=np.uint8)
    rgba = rng.integers(0, 256, (10, 12, 4), dtype=np.uint8)
    idx = rng.integers(0, 16, (10, 12), dtype=np.uint8)
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    g16 = rng.integers(0, 65536, (10, 12), dtype=np.uint16)
    return {
        "grayscale": (lambda p: _save(p, grey, mode="L"), np.repeat(grey[..., None], 3, axis=-1)),
        "rgba": (lambda p: _save(p, rgba, mode="RGBA"), rgba[..., :3]),
        "palette": (lambda p: _palette(p, idx, palette), palette[idx]),
        "16-bit": (lambda p: _save(p, g16), np.repeat(np.round(g16 * (255 / 65535)).astype(np.uint8)[..., None], 3, -1)),
    }


def _palette(path, idx, palette):
    im = Image.fromarray(idx, mode="P")
    im.putpalette(palette.tobytes())
    im.save(path)
    return str(path)


@pytest.mark.parametrize("kind", ["grayscale", "rgba", "palette", "16-bit"])
def test_image_kinds_are_converted_to_rgb_uint8_in_the_pipeline(tmp_path, kind):
    rng = np.random.default_rng(5)
    write, expected = _conversion_cases(rng)[kind]
    write(tmp_path / "rain-1.png")
    clean = _img(seed=9)
    _save(tmp_path / "norain-1.png", clean)
    if kind == "16-bit":
        assert Image.open(tmp_path / "rain-1.png").mode.startswith("I;16")
    ds = D.make_paper_eval_dataset(tmp_path, crop_size=8, batch_size=4)
    rainy = np.concatenate([r.numpy() for r, _ in ds]).astype(np.uint8)
    got_clean = np.concatenate([c.numpy() for _, c in ds]).astype(np.uint8)
    assert np.array_equal(rainy, np.stack(_crops8(expected)))
    assert np.array_equal(got_clean, np.stack(_crops8(clean)))
    (name, r, _), = list(D.iterate_full_images(tmp_path))
    assert name == "rain-1" and np.array_equal(r, expected)


def _problems_of(excinfo):
    return [str(p) for p in excinfo.value.problems]


def test_missing_partners_are_named(tmp_path):
    _good_pairs(tmp_path, 2)
    _save(tmp_path / "rain-3.png", _img())
    _save(tmp_path / "norain-04.png", _img())
    d = str(tmp_path)
    with pytest.raises(D.DataError) as e:
        D.find_pairs(tmp_path)
    assert type(e.value) is D.DataError and isinstance(e.value, ValueError)
    assert _problems_of(e) == [
        f"{d}/norain-04.png: clean image without its rainy partner (looked for {d}/rain-04.*)",
        f"{d}/rain-3.png: rainy image without its clean partner (looked for {d}/norain-3.*)",
    ]
    assert str(e.value).startswith(f"2 problem(s) in the data set {d} (pass skip_bad_pairs=True")
    assert f"\n  {d}/rain-3.png: rainy image without its clean partner" in str(e.value)


def test_missing_partner_in_paired_folders(tmp_path):
    _save(tmp_path / "input" / "a.png", _img())
    _save(tmp_path / "target" / "a.png", _img())
    _save(tmp_path / "input" / "b.png", _img())
    with pytest.raises(D.DataError) as e:
        D.make_train_dataset(tmp_path, crop_size=8, batch_size=2)
    assert _problems_of(e) == [
        f"{tmp_path}/input/b.png: rainy image without its clean partner (looked for {tmp_path}/target/b.*)"
    ]


def test_corrupt_truncated_and_non_image_files(tmp_path):
    _good_pairs(tmp_path, 1)
    png = tmp_path / "rain-2.png"
    _save(png, _img())
    raw = bytearray(png.read_bytes())
    raw[len(raw) // 2] ^= 0x55  # a flipped bit inside the pixel data
    png.write_bytes(bytes(raw))
    _save(tmp_path / "norain-2.png", _img())
    _save(tmp_path / "norain-3.png", _img())
    full = (tmp_path / "norain-3.png").read_bytes()
    (tmp_path / "rain-3.png").write_bytes(full[: len(full) - 12])  # cut before IEND: pixels complete
    _save(tmp_path / "rain-4.jpg", _img())
    jpg = (tmp_path / "rain-4.jpg").read_bytes()
    (tmp_path / "rain-4.jpg").write_bytes(jpg[: len(jpg) // 2])
    _save(tmp_path / "norain-4.png", _img())
    (tmp_path / "rain-5.png").write_text("not a picture\n")
    _save(tmp_path / "norain-5.png", _img())
    with pytest.raises(D.DataError) as e:
        D.make_train_dataset(tmp_path, crop_size=8, batch_size=2)
    p = _problems_of(e)
    assert len(p) == 4
    assert p[0].startswith(f"{tmp_path}/rain-2.png: corrupt or truncated image (")
    assert p[1] == f"{tmp_path}/rain-3.png: truncated PNG (no IEND chunk: the file is incomplete)"
    assert p[2].startswith(f"{tmp_path}/rain-4.jpg: corrupt or truncated image (")
    assert p[3] == f"{tmp_path}/rain-5.png: not an image, or a corrupt one (the format is not recognised)"
    assert "Traceback" not in str(e.value) and str(e.value).startswith("4 problem(s)")


def test_size_mismatch_small_image_stray_file_and_empty_folder(tmp_path):
    _good_pairs(tmp_path, 1)
    _save(tmp_path / "rain-2.png", _img(10, 12))
    _save(tmp_path / "norain-2.png", _img(12, 10))
    _save(tmp_path / "rain-3.png", _img(6, 7))
    _save(tmp_path / "norain-3.png", _img(6, 7))
    (tmp_path / "notes.txt").write_text("hello")
    _save(tmp_path / "photo.png", _img())
    (tmp_path / ".hidden").write_text("hidden files are not part of a layout")
    d = str(tmp_path)
    with pytest.raises(D.DataError) as e:
        D.make_train_dataset(tmp_path, crop_size=8, batch_size=2)
    assert _problems_of(e) == [
        f"{d}/notes.txt: not an image file (a stray file in a jorder-flat data folder); remove it",
        f"{d}/photo.png: image file that matches neither the rainy pattern 'rain-*' nor the clean "
        "pattern 'norain-*' of the jorder-flat layout (a stray file?)",
        f"{d}/rain-2.png: size 12x10 differs from its clean partner {d}/norain-2.png (10x12) (width x height)",
        f"{d}/rain-3.png: image is 7x6 (width x height), smaller than the 8x8 crop (pair with {d}/norain-3.png)",
    ]
    # a smaller image is fine for full-image evaluation, a mismatch is not
    with pytest.raises(D.DataError) as e:
        D.iterate_full_images(tmp_path)
    assert [s.split(": ")[1][:4] for s in _problems_of(e)] == ["not ", "imag", "size"]
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    with pytest.raises(D.DataError, match=re.escape(f"{empty}: empty folder (no files at all)")):
        D.make_train_dataset(empty)
    with pytest.raises(D.DataError, match=re.escape(f"{tmp_path}/nowhere: no such directory")):
        D.find_pairs(tmp_path / "nowhere")


def test_duplicate_keys_are_ambiguous(tmp_path):
    _good_pairs(tmp_path, 1)
    _save(tmp_path / "rain-2.png", _img())
    _save(tmp_path / "rain-002.png", _img())
    _save(tmp_path / "norain-2.png", _img())
    with pytest.raises(D.DataError) as e:
        D.find_pairs(tmp_path)
    d = str(tmp_path)
    assert _problems_of(e) == [
        f"{d}/norain-2.png: clean image without its rainy partner (looked for {d}/rain-2.*)",
        f"{d}/rain-002.png: same pair key as {d}/rain-2.png (rainy side): ambiguous, keep only one of them",
        f"{d}/rain-2.png: same pair key as {d}/rain-002.png (rainy side): ambiguous, keep only one of them",
    ]


def test_skip_bad_pairs_gives_one_warning_with_count_and_list(tmp_path, caplog):
    _good_pairs(tmp_path, 3)
    _save(tmp_path / "rain-4.png", _img())  # no partner
    (tmp_path / "rain-5.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    _save(tmp_path / "norain-5.png", _img())
    _save(tmp_path / "rain-6.png", _img(10, 12))
    _save(tmp_path / "norain-6.png", _img(12, 10))
    (tmp_path / "Thumbs.db").write_bytes(b"\0" * 10)
    with pytest.raises(D.DataError) as e:
        D.make_train_dataset(tmp_path, crop_size=8, batch_size=10)
    problems = _problems_of(e)
    assert len(problems) == 4
    with caplog.at_level(logging.WARNING, logger="menet_tf.pairs"):
        ds, n = D.make_train_dataset(tmp_path, crop_size=8, batch_size=10, skip_bad_pairs=True, seed=0)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert msg.startswith(f"skip_bad_pairs: 4 problem(s) in {tmp_path}; using 3 of 5 pair(s):")
    assert msg.splitlines()[1:] == [f"  {p}" for p in problems]
    assert n == 30
    got = collections.Counter(b.tobytes() for r, _ in ds for b in r.numpy().astype(np.uint8))
    ref = collections.Counter(c.tobytes() for i in (1, 2, 3) for c in _crops8(_img(seed=i)))
    assert got == ref


def test_pairs_as_a_list_and_a_jpeg_partner(tmp_path):
    r = _save(tmp_path / "a" / "x.png", _img(seed=1))
    c = tmp_path / "b" / "y.jpg"
    _save(c, _img(seed=2))
    ds = D.make_paper_eval_dataset([(r, str(c))], crop_size=8, batch_size=3)
    batches = [b[1].numpy().astype(np.uint8) for b in ds]
    assert [len(b) for b in batches] == [3, 3, 3, 1]  # no crop dropped
    assert np.array_equal(np.concatenate(batches), np.stack(_crops8(pil_rgb(c))))
    with pytest.raises(D.DataError, match=re.escape(f"{tmp_path}/zz.png: no such file")):
        D.scan_pairs([(r, str(tmp_path / "zz.png"))])


# ------------------------------------------------------------------------------------------------
# Duplicate backgrounds, grouped split, and the CLI tools


def _readme_duplicates():
    text = (DATA / "README.md").read_text()
    sentence = text[text.index("Clean images 003=004") :].split("pixel-identical")[0]
    return [tuple(m) for m in re.findall(r"(\d{3})=(\d{3})", sentence)]


@pytest.fixture(scope="module")
def rain100l_scan():
    if not RAIN100L.is_dir():
        pytest.skip("../shared/data/Rain100L is absent")
    return D.scan_pairs(RAIN100L, crop_size=C, keep_images=False)


def test_duplicate_backgrounds_of_rain100l_are_the_readmes(rain100l_scan):
    expected = _readme_duplicates()
    assert len(expected) == 9
    groups = D.duplicate_backgrounds(rain100l_scan.clean_digests)
    assert [tuple(rain100l_scan.keys[i] for i in g) for g in groups] == expected


def test_grouped_split_never_separates_duplicates(rain100l_scan):
    groups = D.duplicate_backgrounds(rain100l_scan.clean_digests)
    for frac in (0.1, 0.2, 0.5, 0.9):
        for seed in range(40):
            train, test = D.grouped_split(100, groups, frac, seed)
            assert sorted(train + test) == list(range(100))
            assert len(test) == round(100 * frac)
            for g in groups:
                assert set(g) <= set(train) or set(g) <= set(test)
    assert D.grouped_split(100, groups, 0.5, 1) == D.grouped_split(100, groups, 0.5, 1)
    assert D.grouped_split(100, groups, 0.5, 1) != D.grouped_split(100, groups, 0.5, 2)


def _cli(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


@needs_rain100l
def test_verify_cli_reports_rain100l():
    res = _cli("data_prep.verify", str(RAIN100L))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "layout: jorder-flat" in out and "\npairs: 100\n" in out
    assert "image sizes (width x height): 481x321: 66, 321x481: 34" in out
    assert "9 group(s), 91 unique backgrounds for 100 pairs" in out
    for a, b in _readme_duplicates():
        assert f"\n  norain-{a}.png = norain-{b}.png\n" in out
    assert out.rstrip().endswith("problems: none")


def test_verify_cli_lists_problems_and_exits_1(tmp_path):
    _good_pairs(tmp_path, 1)
    _save(tmp_path / "rain-2.png", _img(10, 12))
    _save(tmp_path / "norain-2.png", _img(12, 10))
    (tmp_path / "rain-3.png").write_text("text")
    (tmp_path / "readme.md").write_text("text")
    res = _cli("data_prep.verify", f"--data_dir={tmp_path}", "--crop_size=8", "--noprogress")
    assert res.returncode == 1, res.stdout + res.stderr
    d = str(tmp_path)
    assert "problems: 3" in res.stdout
    assert f"  {d}/rain-3.png: rainy image without its clean partner (looked for {d}/norain-3.*)" in res.stdout
    assert f"  {d}/readme.md: not an image file" in res.stdout
    assert f"  {d}/rain-2.png: size 12x10 differs from its clean partner {d}/norain-2.png" in res.stdout
    assert "\npairs: 1 usable of 2 found\n" in res.stdout


@needs_rain100l
def test_split_cli_keeps_duplicates_together(tmp_path):
    out = tmp_path / "split"
    res = _cli("data_prep.split", str(RAIN100L), "--test_fraction", "0.5", "--seed", "0", "--out", str(out),
               "--noprogress")
    assert res.returncode == 0, res.stdout + res.stderr
    record = json.loads((out / "split.json").read_text())
    train = {e["key"] for e in record["train"]}
    test = {e["key"] for e in record["test"]}
    assert len(train) == len(test) == 50 and train | test == {f"{i:03d}" for i in range(1, 101)}
    for a, b in _readme_duplicates():
        assert {a, b} <= train or {a, b} <= test
    for side in ("train", "test"):
        pairs = D.find_pairs(out / side)
        assert len(pairs) == 50
        for e in record[side]:
            assert filecmp.cmp(out / e["rainy"], RAIN100L / f"rain-{e['key']}.png", shallow=False)
            assert filecmp.cmp(out / e["clean"], RAIN100L / f"norain-{e['key']}.png", shallow=False)
    res = _cli("data_prep.split", str(RAIN100L), "--out", str(out), "--noprogress")
    assert res.returncode == 1 and "output folder exists and is not empty" in res.stderr


def test_epoch_dataset_order_depends_only_on_seed_and_epoch():
    from menet_tf.data import make_epoch_dataset

    rng = np.random.default_rng(0)
    rainy = rng.integers(0, 256, (23, 4, 4, 3), dtype=np.uint8)
    clean = rainy.copy()
    batches = lambda ds: [b[0].numpy() for b in ds]  # noqa: E731
    straight = batches(make_epoch_dataset(rainy, clean, 5, seed=7, start_epoch=0, epochs=3))
    resumed = batches(make_epoch_dataset(rainy, clean, 5, seed=7, start_epoch=1, epochs=3))
    assert len(straight) == 3 * 4 and len(resumed) == 2 * 4  # 23 // 5 = 4 full batches per epoch
    for a, b in zip(straight[4:], resumed):
        np.testing.assert_array_equal(a, b)
    # each epoch is a permutation without repeats, and epochs differ
    firsts = [np.concatenate(straight[4 * e:4 * e + 4]).reshape(20, -1) for e in range(3)]
    for f in firsts:
        assert len({row.tobytes() for row in f}) == 20
    assert not np.array_equal(firsts[0], firsts[1])
    capped = batches(make_epoch_dataset(rainy, clean, 5, seed=7, start_epoch=0, epochs=2, steps_per_epoch=2))
    assert len(capped) == 4
    np.testing.assert_array_equal(capped[2], straight[4])


def test_pairs_module_needs_no_tensorflow_and_data_keeps_its_names():
    """Pair discovery lives in menet_tf.pairs (no TensorFlow import, so the CLIs check folders before
    loading TF); menet_tf.data re-exports it, so code written against menet_tf.data keeps working."""
    import subprocess
    import sys

    code = "import sys, menet_tf.pairs; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    from menet_tf import pairs

    for name in D.__all__:
        assert hasattr(D, name), name
        if hasattr(pairs, name):
            assert getattr(D, name) is getattr(pairs, name), name
