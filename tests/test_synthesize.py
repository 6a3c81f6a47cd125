"""Rain synthesis: determinism, O >= B, style strength against the real Rain100L/H input PSNRs, the
JORDER-flat layout, and the CLI (one subprocess)."""

import csv
import dataclasses
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from menet_tf import metrics, synthesis
from menet_tf.imageio import ImageError, read_image, write_image

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _pairs(out_dir):
    names = sorted(f for f in os.listdir(out_dir) if f.startswith("rain-"))
    return [(read_image(os.path.join(out_dir, n)), read_image(os.path.join(out_dir, "no" + n)))
            for n in names]


@pytest.fixture(scope="module")
def builtin_sets(tmp_path_factory):
    """Every style's rain on all bundled photos, seed 0 (rendered once for the module)."""
    out = {}
    for style in ("light", "heavy", "varied"):
        d = tmp_path_factory.mktemp(style)
        written = synthesis.synthesize_dataset(str(d), style, seed=0)
        out[style] = (d, written)
    return out


def test_builtin_clean_images_are_bundled_rgb_photos():
    paths = synthesis.builtin_clean_images()
    assert [os.path.basename(p) for p in paths] == list(synthesis.BUILTIN_PHOTOS)
    import skimage.data

    for p in paths:
        assert os.path.dirname(p) == os.path.dirname(os.path.abspath(skimage.data.__file__))
        img = read_image(p)
        assert min(img.shape[:2]) >= synthesis.DEFAULT_MIN_SIZE
        # a colour photo, not grey stored as RGB
        assert np.abs(img[..., 0].astype(int) - img[..., 1]).mean() > 1


def test_layout_and_norain_is_the_clean_image(builtin_sets):
    d, written = builtin_sets["light"]
    n = len(synthesis.BUILTIN_PHOTOS)
    assert [(os.path.basename(r), os.path.basename(c)) for r, c in written] == [
        (f"rain-{i:03d}.png", f"norain-{i:03d}.png") for i in range(1, n + 1)]
    for (r, c), src in zip(written, synthesis.builtin_clean_images()):
        np.testing.assert_array_equal(read_image(c), read_image(src))
    with open(d / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["source"] for r in rows] == list(synthesis.BUILTIN_PHOTOS)


def test_rain_only_brightens(builtin_sets):
    for style in ("light", "heavy", "varied"):
        for rain, clean in _pairs(builtin_sets[style][0]):
            assert rain.shape == clean.shape
            assert (rain >= clean).all()
            assert (rain > clean).any()


def test_heavy_is_stronger_than_light(builtin_sets):
    def mean_abs(style):
        return np.mean([np.abs(r.astype(int) - c).mean() for r, c in _pairs(builtin_sets[style][0])])

    assert mean_abs("heavy") > 3 * mean_abs("light")


def test_psnr_bands_on_bundled_photos(builtin_sets):
    """Real inputs: Rain100L 26.90 dB, Rain100H 13.6 dB (standard protocol, Y)."""
    light = [metrics.psnr(r, c) for r, c in _pairs(builtin_sets["light"][0])]
    heavy = [metrics.psnr(r, c) for r, c in _pairs(builtin_sets["heavy"][0])]
    assert all(24 < p < 32 for p in light), light
    assert all(12 < p < 20 for p in heavy), heavy


@pytest.mark.skipif(not (DATA / "BSDS500_test").is_dir(), reason="shared/data/BSDS500_test absent")
def test_psnr_bands_on_bsds_photos(tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    for name in sorted(os.listdir(DATA / "BSDS500_test"))[:6]:
        shutil.copy(DATA / "BSDS500_test" / name, clean / name)
    for style, lo, hi in (("light", 24, 32), ("heavy", 12, 20)):
        d = tmp_path / style
        synthesis.synthesize_dataset(str(d), style, clean_dir=str(clean), seed=1)
        mean = np.mean([metrics.psnr(r, c) for r, c in _pairs(d)])
        assert lo < mean < hi, (style, mean)


def _rain100l_train_half():
    """The (rainy, clean) pairs of README section (a)'s Rain100L train half: pairs 51-100 without the four
    whose backgrounds repeat in the test half (58, 69, 80, 91)."""
    return [(read_image(DATA / "Rain100L" / f"rain-{i:03d}.png"), read_image(DATA / "Rain100L" / f"norain-{i:03d}.png"))
            for i in range(51, 101) if i not in (58, 69, 80, 91)]


@pytest.mark.skipif(not (DATA / "BSDS500_test").is_dir() or not (DATA / "Rain100L").is_dir(),
                    reason="shared/data/BSDS500_test or Rain100L absent")
def test_varied_rain_spreads_over_images_like_rain100l(tmp_path):
    """'varied' is fitted to the Rain100L train half's rain: per image, its input PSNR has about that
    set's mean and spreads over about its range (20.2 to 34.5 dB), much wider than 'light', which draws
    the same amount of rain for every image; the fraction of rain pixels (R > 10) likewise."""
    clean = tmp_path / "clean"
    clean.mkdir()
    for name in sorted(os.listdir(DATA / "BSDS500_test"))[:24]:
        os.symlink(DATA / "BSDS500_test" / name, clean / name)

    def per_image(pairs):
        psnr = np.array([metrics.psnr(r, c) for r, c in pairs])
        cover = np.array([np.mean((r.astype(float) - c).mean(-1) > 10) for r, c in pairs])
        return psnr, cover

    real_psnr, real_cover = per_image(_rain100l_train_half())
    got = {}
    for style in ("light", "varied"):
        synthesis.synthesize_dataset(str(tmp_path / style), style, clean_dir=str(clean), seed=21)
        got[style] = per_image(_pairs(tmp_path / style))
    psnr, cover = got["varied"]
    assert abs(psnr.mean() - real_psnr.mean()) < 2.0, (psnr.mean(), real_psnr.mean())
    assert 0.7 < cover.mean() / real_cover.mean() < 1.4, (cover.mean(), real_cover.mean())
    spread = lambda v: v.max() - v.min()  # noqa: E731
    assert spread(psnr) > 0.6 * spread(real_psnr), (spread(psnr), spread(real_psnr))
    assert spread(psnr) > 1.5 * spread(got["light"][0])
    assert cover.max() / cover.min() > 3 > got["light"][1].max() / got["light"][1].min()


def test_varied_streaks_differ_within_an_image():
    """In one 'varied' image the streaks are not all alike: with the angle fixed to vertical, its rain
    map holds both thin streaks (the column profile of an isolated far-drop layer) and wide soft ones;
    measured as the spread of the across-streak width over the layers, rendered alone."""
    st = synthesis.STYLES["varied"]
    widths = []
    for spec in st.layers:
        one = synthesis.RainStyle("one", (0.0, 0.0), (dataclasses.replace(spec, angle_offset=0.0),))
        r = synthesis.render_rain((400, 400), one, np.random.default_rng(3))
        # the mean row profile around each column maximum: its width at half height
        profile = np.zeros(21)
        for row in r[::8]:
            c = int(np.argmax(row))
            if 10 <= c < 390 and row[c] > 5:
                profile += row[c - 10 : c + 11] / row[c]
        profile /= profile.max()
        widths.append(int((profile > 0.5).sum()))
    assert max(widths) >= 2 * min(widths), widths


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    def render(name, seed):
        d = tmp_path / name
        synthesis.synthesize_dataset(str(d), "heavy", seed=seed, max_images=2, num_variants=2)
        return {f: (d / f).read_bytes() for f in sorted(os.listdir(d))}

    a, b, c = render("a", 5), render("b", 5), render("c", 6)
    assert len(a) == 9  # 4 pairs + manifest
    assert a == b
    assert a["rain-001.png"] != c["rain-001.png"]
    assert a["norain-001.png"] == c["norain-001.png"]
    assert a["rain-001.png"] != a["rain-002.png"]  # variants differ


def test_rain_depends_on_the_image_not_its_position(tmp_path):
    src = read_image(synthesis.builtin_clean_images()[2])[:240, :240]
    only, both = tmp_path / "only", tmp_path / "both"
    only.mkdir()
    both.mkdir()
    write_image(str(only / "b.png"), src)
    write_image(str(both / "a.png"), src[::-1])
    write_image(str(both / "b.png"), src)
    p1 = synthesis.synthesize_dataset(str(tmp_path / "o1"), "light", clean_dir=str(only), seed=3)
    p2 = synthesis.synthesize_dataset(str(tmp_path / "o2"), "light", clean_dir=str(both), seed=3)
    assert Path(p1[0][0]).read_bytes() == Path(p2[1][0]).read_bytes()


def test_light_streaks_are_oriented_lines():
    """The rain map is made of streaks along the drawn angle: with the angle fixed to vertical, the
    map barely changes down a column but changes sharply across a row."""
    st = synthesis.STYLES["light"]
    vertical = synthesis.RainStyle("v", (0.0, 0.0), st.layers)
    r = synthesis.render_rain((300, 300), vertical, np.random.default_rng(0))
    dv = np.abs(np.diff(r, axis=0)).mean()
    dh = np.abs(np.diff(r, axis=1)).mean()
    assert dh > 5 * dv
    k = synthesis.streak_kernel(21, 1.0, 20.0)  # leaning right at the top
    assert k.max() == 1.0
    c = k.shape[1] // 2
    top = k[: k.shape[0] // 2]
    assert top[:, c + 1 :].sum() > 10 * top[:, :c].sum()


def test_small_images_skipped_with_warning(tmp_path, caplog):
    src = read_image(synthesis.builtin_clean_images()[0])
    clean = tmp_path / "clean"
    clean.mkdir()
    write_image(str(clean / "big.png"), src[:230, :300])
    write_image(str(clean / "small.png"), src[:200, :300])
    with caplog.at_level(logging.WARNING):
        pairs = synthesis.synthesize_dataset(str(tmp_path / "o"), "light", clean_dir=str(clean))
    assert len(pairs) == 1
    assert "small.png" in caplog.text and "big.png" not in caplog.text
    assert len(synthesis.synthesize_dataset(str(tmp_path / "o2"), "light", clean_dir=str(clean),
                                            min_size=0)) == 2


def test_unreadable_image_error_names_the_file(tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ImageError, match="broken.png"):
        synthesis.synthesize_dataset(str(tmp_path / "o"), "light", clean_dir=str(clean))
    with pytest.raises(ValueError, match="style"):
        synthesis.synthesize_dataset(str(tmp_path / "o"), "drizzle")


def test_cli_writes_the_same_bytes_as_the_library(tmp_path):
    out = tmp_path / "cli"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    res = subprocess.run(
        [sys.executable, "-m", "data_prep.synthesize", f"--out={out}", "--style=heavy", "--seed=4",
         "--max_images=2", "--num_variants=2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    lib = tmp_path / "lib"
    synthesis.synthesize_dataset(str(lib), "heavy", seed=4, max_images=2, num_variants=2)
    files = sorted(os.listdir(lib))
    assert sorted(os.listdir(out)) == files and len(files) == 9
    for f in files:
        assert (out / f).read_bytes() == (lib / f).read_bytes(), f


def test_scaled_style_is_the_same_rain_seen_closer():
    light = synthesis.STYLES["light"]
    same = synthesis.scaled_style("light", 1)
    assert same.layers == light.layers
    a = synthesis.render_rain((64, 80), light, np.random.default_rng(5))
    np.testing.assert_array_equal(synthesis.render_rain((64, 80), same, np.random.default_rng(5)), a)
    big = synthesis.scaled_style(light, 3)
    for s, b in zip(light.layers, big.layers):
        assert b.length == (3 * s.length[0], 3 * s.length[1]) and b.width == (3 * s.width[0], 3 * s.width[1])
        assert b.density == pytest.approx((s.density[0] / 9, s.density[1] / 9))
        assert b.blur_sigma == pytest.approx(3 * s.blur_sigma) and b.brightness == s.brightness
    # the same drops per scene area, each 3x longer and wider: the rain covers about the same fraction
    rng = np.random.default_rng(1)
    cover = [np.mean(synthesis.render_rain((480, 480), st, rng) > 20) for st in (light, big)]
    assert 0.5 < cover[1] / cover[0] < 2


def test_haze_is_the_transmission_blend():
    o = np.array([[[0, 100, 255]]], dtype=np.uint8)
    # t = 0.75, A = 220: 0.75 * O + 0.25 * 220 = 55, 130, 246.25 -> rounded half up
    np.testing.assert_array_equal(synthesis.add_haze(o, 0.25, 220.0), [[[55, 130, 246]]])
    np.testing.assert_array_equal(synthesis.add_haze(o, 0.0, 220.0), o)
    with pytest.raises(ValueError, match="haze must be in"):
        synthesis.add_haze(o, 1.0, 220.0)


def test_scales_and_haze_per_rendering_are_recorded_and_rendered(tmp_path):
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png"):
        write_image(str(clean_dir / name), rng.integers(0, 256, (60, 70, 3), dtype=np.uint8))
    plain = synthesis.synthesize_dataset(str(tmp_path / "plain"), "heavy", clean_dir=str(clean_dir), seed=4,
                                         min_size=0, num_variants=2)
    real = synthesis.synthesize_dataset(str(tmp_path / "real"), "heavy", clean_dir=str(clean_dir), seed=4,
                                        min_size=0, num_variants=2, scale_range=(1.0, 3.0), haze_range=(0.1, 0.3))
    with open(tmp_path / "real" / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    scales = [float(r["scale"]) for r in rows]
    hazes = [float(r["haze"]) for r in rows]
    assert all(1.0 <= s <= 3.0 for s in scales) and len(set(scales)) == 4
    assert all(0.1 <= h <= 0.3 for h in hazes)
    for (r_plain, c_plain), (r_real, c_real), row in zip(plain, real, rows):
        np.testing.assert_array_equal(read_image(c_plain), read_image(c_real))  # the target stays clean
        clean = read_image(c_real)
        streaks = synthesis.add_rain(clean, synthesis.scaled_style("heavy", float(row["scale"])),
                                     synthesis.image_rng(4, row["source"], int(row["variant"])))
        want = synthesis.add_haze(streaks, float(row["haze"]), float(row["airlight"]))
        # the manifest rounds scale and haze to 4 decimals: a grey level or two, at most
        assert np.abs(read_image(r_real).astype(int) - want.astype(int)).max() <= 2
    with open(tmp_path / "plain" / "manifest.csv") as f:
        assert {(r["scale"], r["haze"]) for r in csv.DictReader(f)} == {("1.0000", "0.0000")}


# ----------------------------------------------------------------------------------------------
# Transplanted rain (--rain_from): the rain maps of a paired set moved onto other clean images


def test_extract_rain_inverts_additive_rain_and_takes_the_least_clipped_channel():
    rng = np.random.default_rng(3)
    clean = rng.integers(0, 100, (20, 30, 3), dtype=np.uint8)
    rain = rng.integers(0, 150, (20, 30)).astype(np.float64)
    rainy = synthesis.add_rain_map(clean, rain)
    np.testing.assert_array_equal(synthesis.extract_rain(rainy, clean), rain)  # no channel clips: exact
    # one channel near white clips; the other two still carry R
    clean[..., 0] = 250
    rainy = synthesis.add_rain_map(clean, rain)
    np.testing.assert_array_equal(synthesis.extract_rain(rainy, clean), rain)
    with pytest.raises(ValueError, match="one size"):
        synthesis.extract_rain(rainy, clean[:10])


def _variants(r):
    """The four maps transplant_map may cut from: as is, mirrored, turned 180 degrees, both."""
    return [r, r[:, ::-1], r[::-1, ::-1], r[::-1, :]]


def _is_crop_of(crop, maps):
    h, w = crop.shape
    for m in maps:
        windows = np.lib.stride_tricks.sliding_window_view(m, (h, w))
        if np.any(np.all(windows == crop, axis=(-2, -1))):
            return True
    return False


def test_transplant_at_scale_one_is_a_mirrored_or_turned_crop_of_the_map():
    rng = np.random.default_rng(0)
    rain = rng.integers(0, 200, (40, 50)).astype(np.float32)
    seen = set()
    for k in range(40):
        g = np.random.default_rng(k)
        cut = synthesis.transplant_map(rain, (30, 35), 1.0, g)
        assert cut.shape == (30, 35)
        hits = [i for i, m in enumerate(_variants(rain)) if _is_crop_of(cut, [m])]
        assert hits, k
        seen.add(hits[0])
        np.testing.assert_array_equal(synthesis.transplant_map(rain, (30, 35), 1.0, np.random.default_rng(k)), cut)
    assert seen == {0, 1, 2, 3}  # every orientation occurs


def test_transplant_enlarges_streaks_and_covers_any_image():
    # one vertical streak 9 px long, 1 px wide; at scale 2.5 it is about 22 px long and wider
    rain = np.zeros((60, 60), np.float32)
    rain[20:29, 30] = 200.0
    big = synthesis.transplant_map(rain, (100, 100), 2.5, np.random.default_rng(1))
    rows, cols = np.nonzero(big > 100)  # above half the peak
    assert 20 <= rows.max() - rows.min() + 1 <= 25 and 2 <= cols.max() - cols.min() + 1 <= 4
    # a landscape map on a portrait image: enlarged until it covers (140 / 60 > 2)
    tall = synthesis.transplant_map(rain, (140, 50), 1.0, np.random.default_rng(2))
    assert tall.shape == (140, 50) and tall.min() >= 0


def test_transplant_below_scale_one_shrinks_the_map_and_repeats_it_to_cover():
    """scale < 1: the map shrunk (PIL bicubic, the reference here) and tiled; the cut is a crop of that tiling
    in one of the four orientations, and a streak is shorter by the scale."""
    from PIL import Image

    rng = np.random.default_rng(5)
    rain = rng.integers(0, 200, (40, 60)).astype(np.float32)
    small = np.maximum(np.asarray(Image.fromarray(rain).resize((30, 20), Image.BICUBIC)), 0.0)
    tiled = np.tile(small, (4, 4))
    for k in range(12):
        cut = synthesis.transplant_map(rain, (50, 70), 0.5, np.random.default_rng(k))
        assert cut.shape == (50, 70)  # larger than the shrunk map (20 x 30): covered
        assert _is_crop_of(cut, _variants(tiled)), k
    line = np.zeros((60, 60), np.float32)
    line[10:50, 30] = 200.0  # one vertical streak 40 px long; at scale 0.5 copies 20 px long, 30 px apart
    cut = synthesis.transplant_map(line, (100, 100), 0.5, np.random.default_rng(3))
    on = cut > cut.max() / 2
    runs = []
    for col in np.nonzero(on.any(axis=0))[0]:
        edges = np.diff(np.concatenate([[0], on[:, col].astype(int), [0]]))
        runs += list(np.nonzero(edges == -1)[0] - np.nonzero(edges == 1)[0])
    assert 18 <= max(runs) <= 22 and np.count_nonzero(on.any(axis=1)) >= 50  # short, and repeated down the image


def test_dataset_with_rain_from_moves_the_source_rain(tmp_path):
    rng = np.random.default_rng(7)
    src, clean_dir = tmp_path / "src", tmp_path / "clean"
    src.mkdir()
    clean_dir.mkdir()
    maps = {}
    for i in (1, 2):
        b = rng.integers(0, 60, (50, 64, 3), dtype=np.uint8)
        r = np.where(rng.random((50, 64)) < 0.1, rng.integers(30, 180, (50, 64)), 0).astype(np.float64)
        write_image(str(src / f"rain-{i}.png"), synthesis.add_rain_map(b, r))
        write_image(str(src / f"norain-{i}.png"), b)
        maps[f"rain-{i}.png"] = r
    for name in ("p.png", "q.png", "s.png"):  # dark: B + R never clips, so R comes back exactly
        write_image(str(clean_dir / name), rng.integers(0, 60, (40, 48, 3), dtype=np.uint8))
    kw = dict(clean_dir=str(clean_dir), seed=5, min_size=0, num_variants=2, rain_from=str(src))
    pairs = synthesis.synthesize_dataset(str(tmp_path / "a"), "light", **kw)
    again = synthesis.synthesize_dataset(str(tmp_path / "b"), "light", **kw)
    with open(tmp_path / "a" / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(pairs) == len(rows) == 6 and {r["style"] for r in rows} == {"transplant"}
    assert {r["rain_from"] for r in rows} <= set(maps) and len({r["rain_from"] for r in rows}) == 2
    for (rp, cp), (rp2, _), row in zip(pairs, again, rows):
        assert Path(rp).read_bytes() == Path(rp2).read_bytes()
        moved = synthesis.extract_rain(read_image(rp), read_image(cp))
        assert moved.any() and _is_crop_of(moved, _variants(maps[row["rain_from"]]))


def test_cli_rain_from_refuses_a_style(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "data_prep.synthesize", f"--out={tmp_path / 'x'}", f"--rain_from={tmp_path}",
         "--style=heavy"], cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "leave out --style" in res.stderr
    assert not (tmp_path / "x").exists()


def test_turned_transplant_has_no_empty_corner_and_turns_the_streaks():
    # a constant map stays constant once turned and cropped: no empty (zero) corner anywhere
    flat = np.full((40, 60), 100.0, np.float32)
    for angle in (-12.0, 7.5, 30.0):
        cut = synthesis.transplant_map(flat, (40, 60), 1.0, np.random.default_rng(1), angle)
        assert cut.shape == (40, 60) and np.abs(cut - 100.0).max() < 1e-3, angle
    # one vertical streak turned by 20 degrees: its bright pixels lie on a line tilted by 20 degrees
    line = np.zeros((300, 300), np.float32)
    line[:, 150] = 200.0
    cut = synthesis.transplant_map(line, (120, 120), 1.0, np.random.default_rng(0), 20.0)
    ys, xs = np.nonzero(cut > 100)
    slope = np.polyfit(ys, xs, 1)[0]  # x change per row going down
    assert abs(abs(np.degrees(np.arctan(slope))) - 20.0) < 1.5, slope
    # angle 0 is the plain transplant, draw for draw
    rain = np.random.default_rng(5).integers(0, 200, (50, 70)).astype(np.uint8)
    np.testing.assert_array_equal(synthesis.transplant_map(rain, (30, 40), 1.7, np.random.default_rng(9), 0.0),
                                  synthesis.transplant_map(rain, (30, 40), 1.7, np.random.default_rng(9)))


def test_density_sums_that_many_transplanted_maps():
    maps = [("a", np.full((30, 30), 40, np.uint8)), ("b", np.full((30, 30), 60, np.uint8))]
    for density, counts in ((1.0, {1}), (2.0, {2}), (3.0, {3}), (1.5, {1, 2})):
        seen = set()
        for seed in range(40):
            rain, names = synthesis.transplant_layers(maps, (20, 20), 1.0, np.random.default_rng(seed), 0.0, density)
            want = sum(40 if n == "a" else 60 for n in names)
            np.testing.assert_allclose(rain, np.full((20, 20), min(want, 255)), atol=1e-4)
            seen.add(len(names))
        assert seen == counts, (density, seen)
    big = [("c", np.full((30, 30), 200, np.uint8))]
    rain, _ = synthesis.transplant_layers(big, (10, 10), 1.0, np.random.default_rng(0), 0.0, 2.0)
    assert rain.max() == 255.0  # capped
    with pytest.raises(ValueError, match="density"):
        synthesis.transplant_layers(big, (10, 10), 1.0, np.random.default_rng(0), 0.0, 0.5)


def test_intensity_scales_the_moved_rain_and_leaves_every_other_draw_alone(tmp_path):
    """intensity_range=(k, k): each pair's rain is k times the rain the same call without it moves (to the
    rounding of two uint8 writes), from the same source maps; a range draws log-uniform factors, listed."""
    rng = np.random.default_rng(7)
    src, clean_dir = tmp_path / "src", tmp_path / "clean"
    src.mkdir(), clean_dir.mkdir()
    for i in (1, 2):
        b = rng.integers(0, 60, (50, 64, 3), dtype=np.uint8)
        r = np.where(rng.random((50, 64)) < 0.2, rng.integers(40, 180, (50, 64)), 0).astype(np.float64)
        write_image(str(src / f"rain-{i}.png"), synthesis.add_rain_map(b, r))
        write_image(str(src / f"norain-{i}.png"), b)
    for name in ("p.png", "q.png"):  # dark: B + R never clips
        write_image(str(clean_dir / name), rng.integers(0, 60, (40, 48, 3), dtype=np.uint8))
    kw = dict(clean_dir=str(clean_dir), seed=3, min_size=0, num_variants=3, rain_from=str(src),
              rotate_range=(-10, 10), density_range=(1, 2))
    full = synthesis.synthesize_dataset(str(tmp_path / "full"), "light", **kw)
    faint = synthesis.synthesize_dataset(str(tmp_path / "faint"), "light", intensity_range=(0.4, 0.4), **kw)
    for (rf, cf), (rk, ck) in zip(full, faint):
        b = read_image(cf).astype(np.float64)
        assert np.array_equal(b, read_image(ck))
        o_full = read_image(rf).astype(np.float64)
        r_full, r_faint = o_full - b, read_image(rk) - b
        kept = o_full < 255  # where the full-strength rainy image did not clip
        assert r_full[kept].max() > 40 and kept.mean() > 0.8
        assert np.abs(r_faint - 0.4 * r_full)[kept].max() <= 0.5 + 0.4 * 0.5 + 1e-9  # two roundings half up
    manifests = []
    for d in ("full", "faint"):
        with open(tmp_path / d / "manifest.csv") as f:
            manifests.append(list(csv.DictReader(f)))
    assert [r["rain_from"] for r in manifests[0]] == [r["rain_from"] for r in manifests[1]]
    assert {r["intensity"] for r in manifests[1]} == {"0.4000"} and "intensity" not in manifests[0][0]
    synthesis.synthesize_dataset(str(tmp_path / "range"), "light", intensity_range=(0.25, 1.0), **kw)
    with open(tmp_path / "range" / "manifest.csv") as f:
        drawn = [float(r["intensity"]) for r in csv.DictReader(f)]
    assert all(0.25 <= k <= 1.0 for k in drawn) and len(set(drawn)) == len(drawn) == 6
    with pytest.raises(ValueError, match="intensity_range"):
        synthesis.synthesize_dataset(str(tmp_path / "bad"), "light", intensity_range=(0.0, 1.0), **kw)
    with pytest.raises(ValueError, match="rain_from"):
        synthesis.synthesize_dataset(str(tmp_path / "bad2"), "light", clean_dir=str(clean_dir),
                                     intensity_range=(0.5, 1.0))
