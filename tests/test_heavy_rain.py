"""data_prep.heavy_rain: the held-out heavy test set shares no rain map and no background with the training
set, is made byte for byte the same by its one command, and holds what its docstring says."""

import csv
import os
import subprocess
import sys

import pytest

from data_prep import heavy_rain

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")
pytestmark = pytest.mark.skipif(
    not all(os.path.isdir(os.path.join(SHARED, d)) for d in ("Rain100L", "RainTrainH_sample", "BSDS500_test")),
    reason="../shared/data (Rain100L, RainTrainH_sample, BSDS500_test) is absent")


def test_the_split_keeps_rain_and_backgrounds_apart():
    held, train = heavy_rain.held_out_photos(SHARED), heavy_rain.training_photos(SHARED)
    assert len(held) == 50 and len(train) == 150 and not set(held) & set(train)
    assert sorted(held + train) == heavy_rain.bsds_photos(SHARED)
    assert not set(heavy_rain.HELD_OUT_PAIRS) & set(heavy_rain.RAINTRAINH_TRAIN_PAIRS)
    # pairs 1 and 10 are Rain100H test pairs (Rain100L backgrounds 1 and 2): in neither part
    assert {1, 10}.isdisjoint(heavy_rain.HELD_OUT_PAIRS + heavy_rain.RAINTRAINH_TRAIN_PAIRS)
    # nothing of the Rain100L test half (whose clean images are Rain100H's) is trained on
    assert min(heavy_rain.RAIN100L_TRAIN_PAIRS) > 50 and {58, 69, 80, 91}.isdisjoint(heavy_rain.RAIN100L_TRAIN_PAIRS)


def test_the_held_out_set_is_made_by_one_command_the_same_every_time(tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"t{k}"
        r = subprocess.run([sys.executable, "-m", "data_prep.heavy_rain", "--make=test", f"--shared={SHARED}",
                            f"--out={out}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        assert r.stdout.strip().splitlines()[-1].startswith(f"55 test pairs in {out}")
        outs.append(out)
    names = sorted(n for n in os.listdir(outs[0]) if n.endswith(".png"))
    assert len(names) == 110
    for n in names:
        assert (outs[0] / n).read_bytes() == (outs[1] / n).read_bytes(), n
    with open(outs[0] / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 50
    held = set(heavy_rain.held_out_photos(SHARED))
    assert {r["source"] for r in rows} == held  # each held-out photo once
    sources = {s for r in rows for s in r["rain_from"].split("+")}
    assert sources <= {f"rain-{i}.png" for i in heavy_rain.HELD_OUT_PAIRS}
    assert all(-12 <= float(r["angle"]) <= 12 and 1 <= float(r["density"]) <= 2 for r in rows)
    # pairs 051-055: RainTrainH 16-20 byte for byte
    for k, i in enumerate(heavy_rain.HELD_OUT_PAIRS, 51):
        with open(os.path.join(SHARED, "RainTrainH_sample", f"rain-{i}.png"), "rb") as f:
            assert (outs[0] / f"rain-{k:03d}.png").read_bytes() == f.read()


def test_a_missing_shared_folder_is_one_error_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "data_prep.heavy_rain", "--make=test", f"--shared={tmp_path}",
                        f"--out={tmp_path / 'o'}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == f"error: {tmp_path}/RainTrainH_sample/rain-16.png: missing"
    assert not (tmp_path / "o" / "rain-001.png").exists()


def test_the_storm_recipe_keeps_the_held_out_photos_out_and_its_rain_free_pairs_are_identities(tmp_path):
    """--recipe=storm: every moved-rain job draws its rain from the training pairs and its backgrounds from the
    training photos / Rain100L train half; the rain-free pairs are (B, B) of training images only."""
    sources = {"raintrainh", "rain100l", "bsds_train", "rain100l_clean"}
    for recipe, spec in heavy_rain.RECIPES.items():
        for name, rain_from, clean, *_ in spec.jobs:
            assert {rain_from, clean} <= sources, (recipe, name)
    assert heavy_rain.RECIPES["storm"].rain_free and not heavy_rain.RECIPES["downpour"].rain_free
    # squall: storm's jobs as they are, plus finer rain (scales below 1) from the same sources
    squall, storm = heavy_rain.RECIPES["squall"].jobs, heavy_rain.RECIPES["storm"].jobs
    assert squall[:len(storm)] == storm and all(j.scale[0] < 1 for j in squall[len(storm):])
    assert len({j.folder for r in heavy_rain.RECIPES.values() for j in r.jobs} - set(heavy_rain.TRAIN_SEEDS)) == 0
    n = heavy_rain._link_rain_free(str(tmp_path), SHARED)
    names = sorted(os.listdir(tmp_path))
    assert n == 96 and len(names) == 2 * n
    held = {os.path.realpath(os.path.join(SHARED, "BSDS500_test", p)) for p in heavy_rain.held_out_photos(SHARED)}
    allowed = {os.path.realpath(os.path.join(SHARED, "BSDS500_test", p)) for p in heavy_rain.training_photos(SHARED)}
    allowed |= {os.path.realpath(os.path.join(SHARED, "Rain100L", f"norain-{i:03d}.png"))
                for i in heavy_rain.RAIN100L_TRAIN_PAIRS}
    for name in names:
        if name.startswith("rain-"):
            target = os.path.realpath(tmp_path / name)
            assert target == os.path.realpath(tmp_path / ("no" + name))
            assert target in allowed and target not in held
