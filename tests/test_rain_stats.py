"""data_prep.rain_stats: exact values on hand-made rain maps, and the CLI on a small synthetic set."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from data_prep import rain_stats
from menet_tf import metrics, synthesis
from menet_tf.imageio import write_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("length,width", [(40, 3), (25, 1), (60, 5)])
def test_streak_size_of_one_box_is_its_length_and_width(length, width):
    """The autocorrelation of a w x L box is a product of triangles of half-maximum widths L and w."""
    r = np.zeros((200, 240))
    r[50 : 50 + length, 100 : 100 + width] = 50
    got_l, got_w = rain_stats.streak_size(r)
    assert got_l == pytest.approx(length, abs=0.6) and got_w == pytest.approx(width, abs=0.1)
    assert rain_stats.streak_size(r.T) == pytest.approx((got_l, got_w))  # any direction: here horizontal


def test_streak_size_follows_a_tilted_streak():
    big = np.zeros((240, 240))
    for angle in (0.0, 25.0, -40.0):
        k = synthesis.streak_kernel(61, 2.0, angle)
        big[:] = 0
        big[20 : 20 + k.shape[0], 30 : 30 + k.shape[1]] = 80 * k
        length, width = rain_stats.streak_size(big)
        # the kernel fades to half brightness at its ends, so its half-maximum length is a little shorter
        assert 45 < length < 61 and 1.5 < width < 3.5, (angle, length, width)


def test_image_stats_coverage_percentiles_and_psnr():
    clean = np.full((100, 120, 3), 90, np.uint8)
    rainy = clean.copy()
    rainy[10:60, 20:22] += 40  # 100 px of R = 40
    rainy[70:80, 50:51] += 5   # below the rain threshold
    s = rain_stats.image_stats(rainy, clean)
    assert s["coverage"] == pytest.approx(100 / 12000)
    assert s["p50"] == s["p90"] == s["p99"] == 40
    assert s["psnr"] == pytest.approx(metrics.psnr(rainy, clean))
    summary = rain_stats.summarize([s, {**s, "coverage": 0.5, "p50": float("nan")}])
    assert summary["coverage"] == pytest.approx({"mean": (100 / 12000 + 0.5) / 2, "min": 100 / 12000, "max": 0.5})
    assert summary["p50"] == {"mean": 40, "min": 40, "max": 40}  # the rain-free image's NaN is left out


def test_cli_prints_a_table_and_json(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(1, 4):
        clean = np.clip(rng.normal(100, 20, (120, 160, 3)), 0, 255).astype(np.uint8)
        write_image(str(tmp_path / f"norain-{k}.png"), clean)
        write_image(str(tmp_path / f"rain-{k}.png"), synthesis.add_rain(clean, "light", rng))
    res = subprocess.run([sys.executable, "-m", "data_prep.rain_stats", str(tmp_path), "--max_pairs=2"], cwd=ROOT,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])[str(tmp_path)]
    assert out["num_pairs"] == 2
    assert 0 < out["coverage"]["min"] <= out["coverage"]["mean"] <= out["coverage"]["max"] < 0.5
    assert f"| {tmp_path} | 2 |" in res.stdout


def test_cli_errors_name_the_folder_or_the_pair(tmp_path):
    """A missing folder, or a pair whose images differ in size: one line naming it, exit status 1."""
    write_image(str(tmp_path / "rain-1.png"), np.zeros((60, 80, 3), np.uint8))
    write_image(str(tmp_path / "norain-1.png"), np.zeros((50, 80, 3), np.uint8))
    for target, named in ((tmp_path / "absent", "absent"), (tmp_path, "rain-1.png")):
        res = subprocess.run([sys.executable, "-m", "data_prep.rain_stats", str(target)], cwd=ROOT,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 1
        assert "Traceback" not in res.stderr and named in res.stderr and "error: " in res.stderr
