"""experiments.gallery, experiments.streak_check and experiments.rain_scale_study, end to end on tiny inputs (subprocesses)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from menet_tf import synthesis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def _run(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=300)


def _photos(folder, sizes):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k, (w, h) in enumerate(sizes):
        clean = np.clip(rng.normal(128, 40, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(synthesis.add_rain(clean, "light", rng)).save(folder / f"p{k}.png")


def _pairs(folder, seed, n=2):
    """n (rainy, clean) pairs of light rain written as rain-K.png / norain-K.png into a new ``folder``."""
    folder.mkdir()
    rng = np.random.default_rng(seed)
    data = []
    for k in range(1, n + 1):
        clean = np.clip(rng.normal(120, 30, (96, 128, 3)), 0, 255).astype(np.uint8)
        rainy = synthesis.add_rain(clean, "light", rng)
        Image.fromarray(clean).save(folder / f"norain-{k}.png")
        Image.fromarray(rainy).save(folder / f"rain-{k}.png")
        data.append((rainy, clean))
    return data


def test_gallery_writes_three_panel_jpegs_within_the_size_bound(tmp_path):
    _photos(tmp_path / "in", [(300, 200), (1100, 500)])  # the second is larger than one 1024 px tile
    (tmp_path / "in" / "notes.txt").write_text("x")
    r = _run("experiments.gallery", f"--input={tmp_path / 'in'}", f"--output_dir={tmp_path / 'out'}",
             "--width=600", "--max_kb=60")
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / "out")) == ["p0.jpg", "p1.jpg"]
    for name, (w, h) in (("p0.jpg", (300, 200)), ("p1.jpg", (1100, 500))):
        path = tmp_path / "out" / name
        assert os.path.getsize(path) <= 60_000
        assert Image.open(path).size == (600, round(600 * h / (3 * w)))  # three panels side by side
    assert "not processed: " in r.stdout and "notes.txt" in r.stdout
    # two models (a shipped name and a model directory) at one scale: rainy | model A | model B
    from menet_tf import pretrained

    r = _run("experiments.gallery", f"--input={tmp_path / 'in' / 'p0.png'}", f"--output_dir={tmp_path / 'two'}",
             "--width=600", f"--models={pretrained.DEFAULT},{pretrained.model_dir(pretrained.DEFAULT)}",
             "--rain_scales=1", "--max_kb=2000")
    assert r.returncode == 0, r.stderr[-3000:]
    page = Image.open(tmp_path / "two" / "p0.jpg")
    assert page.size == (600, round(600 * 200 / 900))
    luma = np.asarray(page.convert("L")).astype(int)  # JPEG keeps luma at full resolution, chroma halved
    same, rainy = np.abs(luma[:, 200:400] - luma[:, 400:600]).mean(), np.abs(luma[:, :200] - luma[:, 200:400]).mean()
    assert same < 1.5 and same < rainy / 2, (same, rainy)  # the same model twice: equal panels, up to JPEG
    # --crop: the central pixels of each panel at full resolution, unshrunk (of the 1100x500 photo)
    r = _run("experiments.gallery", f"--input={tmp_path / 'in' / 'p1.png'}", f"--output_dir={tmp_path / 'crop'}",
             "--crop=120", "--rain_scales=1", "--max_kb=2000")
    assert r.returncode == 0, r.stderr[-3000:]
    page = np.asarray(Image.open(tmp_path / "crop" / "p1.jpg").convert("L")).astype(int)
    assert page.shape == (120, 240)  # rainy | de-rained
    photo = np.asarray(Image.open(tmp_path / "in" / "p1.png").convert("L")).astype(int)
    assert np.abs(page[:, :120] - photo[190:310, 490:610]).mean() < 4  # JPEG of per-pixel noise: ~2.4
    assert np.abs(page[:, :120] - photo[180:300, 480:600]).mean() > 20  # not a window 10 px off
    # the streak energy removed, per photo and on average (menet_tf.streaks, on the panels shown)
    assert "streak energy removed: " in r.stdout and "mean streak energy removed over the " in r.stdout


def test_rain_scale_study_at_scale_one_matches_as_is(tmp_path):
    clean = tmp_path / "clean"
    clean.mkdir()
    rng = np.random.default_rng(1)
    for k in range(2):
        Image.fromarray(np.clip(rng.normal(120, 30, (96, 128, 3)), 0, 255).astype(np.uint8)).save(clean / f"c{k}.png")
    r = _run("experiments.rain_scale_study", f"--clean_dir={clean}", "--num_images=2", "--scales=1,2",
             f"--output_dir={tmp_path / 'out'}")
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["num_images"] == 2 and [row["rain_scale"] for row in report["rows"]] == [1.0, 2.0]
    one = report["rows"][0]
    # at s = 1 the matched scale is the photo itself, and so is s / 1.5 (scales <= 1 run the net as is)
    assert one["matched (rain_scale s)"] == one["as is (rain_scale 1)"] == one["s / 1.5"]
    assert (tmp_path / "out" / "study.md").read_text().count("\n") == 4  # header, rule, two rows


def test_streak_check_ranks_models_against_ground_truth(tmp_path):
    """The clean images' removal and every model's numbers are the library's, recomputed here."""
    from menet_tf import metrics, pretrained, streaks
    from menet_tf.model import load_net

    folder = tmp_path / "pairs"
    data = _pairs(folder, seed=3)
    d = pretrained.model_dir(pretrained.DEFAULT)
    r = _run("experiments.streak_check", f"--data_dir={folder}", f"--models={pretrained.DEFAULT},{d}")
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["num_pairs"] == 2
    assert got["clean_removed"] == np.mean([streaks.fraction_removed(a, b) for a, b in data])
    net = load_net(d)
    want_psnr = np.mean([metrics.psnr(metrics.quantize(net(a[None].astype(np.float32), training=False).numpy()[0]), b)
                         for a, b in data])
    for label in (pretrained.DEFAULT, d):  # the same model by name and by folder
        assert got["models"][label]["psnr"] == pytest.approx(want_psnr, abs=0.02)
    bad = _run("experiments.streak_check", f"--data_dir={folder}", f"--models={pretrained.DEFAULT}")
    assert bad.returncode != 0 and "two or more" in (bad.stdout + bad.stderr)
    (folder / "rain-3.png").write_bytes(b"not a png")
    (folder / "norain-3.png").write_bytes(b"not a png")
    broken = _run("experiments.streak_check", f"--data_dir={folder}", f"--models={pretrained.DEFAULT},{d}")
    assert broken.returncode == 1 and "rain-3.png" in broken.stderr and "Traceback" not in broken.stderr


def test_extra_dirs_rank_and_show_another_tools_outputs(tmp_path):
    """--extra_dirs: a folder of outputs made elsewhere (here: the clean images themselves, and the rainy
    ones) is scored and measured like a model, and drawn as a panel of the gallery."""
    from menet_tf import metrics, pretrained, streaks

    folder, perfect, nothing = tmp_path / "pairs", tmp_path / "perfect", tmp_path / "nothing"
    data = _pairs(folder, seed=4)
    for f, side in ((perfect, 1), (nothing, 0)):  # outputs named after the rainy images: clean ones, rainy ones
        f.mkdir()
        for k, pair in enumerate(data, 1):
            Image.fromarray(pair[side]).save(f / f"rain-{k}.png")
    r = _run("experiments.streak_check", f"--data_dir={folder}", f"--models={pretrained.DEFAULT}",
             f"--extra_dirs=clean={perfect},as is={nothing}")
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])["models"]
    assert got["clean"]["psnr"] == float("inf")
    assert got["clean"]["removed"] == pytest.approx(np.mean([streaks.fraction_removed(a, b) for a, b in data]))
    assert got["as is"]["removed"] == 0.0
    assert got["as is"]["psnr"] == pytest.approx(np.mean([metrics.psnr(a, b) for a, b in data]))
    r = _run("experiments.gallery", f"--input={folder}", f"--output_dir={tmp_path / 'g'}", "--rain_scales=1",
             "--crop=64", f"--extra_dirs=as is={nothing}")
    # the clean images have no output in that folder: a grey panel, said so, and not measured
    assert r.returncode == 0 and "note: as is: " in r.stdout and "norain-1.png: no such file" in r.stdout
    photos = tmp_path / "photos"
    photos.mkdir()
    for k in (1, 2):
        os.replace(folder / f"rain-{k}.png", photos / f"rain-{k}.png")
    r = _run("experiments.gallery", f"--input={photos}", f"--output_dir={tmp_path / 'g'}", "--rain_scales=1",
             "--crop=64", f"--extra_dirs=as is={nothing}")
    assert r.returncode == 0, r.stderr[-3000:]
    page = np.asarray(Image.open(tmp_path / "g" / "rain-1.jpg"))
    assert page.shape[1] == 3 * 64  # rainy | the model | the extra folder's output
    assert "0%" in r.stdout.strip().splitlines()[-2]  # the rainy image as 'output' removes nothing
    bad = _run("experiments.streak_check", f"--data_dir={folder}", "--extra_dirs=nolabel")
    assert bad.returncode == 2 and "is not 'label=existing folder'" in bad.stderr
