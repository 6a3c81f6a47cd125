"""experiments.derain end to end (subprocesses): a folder with a corrupt file, EXIF orientation, odd
sizes, tiling; outputs compared with the Keras net's own whole-image result."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
from PIL import Image, ImageOps

from menet_tf.model import build_derain_net, load_net, net_config, save_net

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
REAL_RAIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_rain"


def run_derain(*args):
    cmd = [sys.executable, "-m", "experiments.derain", *args]
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)


def reference_derain(net, image, multiple):
    h, w = image.shape[:2]
    x = np.pad(image.astype(np.float32)[None], ((0, 0), (0, -h % multiple), (0, -w % multiple), (0, 0)), mode="reflect")
    return net(x, training=False).numpy()[0, :h, :w]


def photo(h, w, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([128 + 90 * np.sin(5 * x + c) * np.cos(3 * y + c) for c in (0.0, 1.5, 3.0)], -1)
    return np.clip(base + rng.normal(0, 15, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    keras.utils.set_random_seed(11)
    d = str(tmp_path_factory.mktemp("model"))
    save_net(build_derain_net(1), d, net_config(1, False))  # no CA: multiple 4, receptive radius 25
    return d


def test_folder_with_corrupt_file_exif_and_tiles(model_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    # a JPEG stored 190 x 130 with EXIF orientation 6 (display rotated 90 degrees clockwise: 130 x 190)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photo(130, 190, 1)).save(src / "rotated.jpg", quality=95, exif=exif)
    Image.fromarray(photo(171, 229, 2)).save(src / "odd.png")  # odd size, 2 x 2 tiles of 168 below
    (src / "broken.jpg").write_bytes((src / "rotated.jpg").read_bytes()[:600])  # truncated JPEG
    if REAL_RAIN.is_dir():
        shutil.copy(REAL_RAIN / "syn2real_35.jpg", src / "real.jpg")
    out = tmp_path / "out"
    proc = run_derain(f"--input={src}", f"--output_dir={out}", f"--model_dir={model_dir}", "--side_by_side", "--tile=168",
                      "--noself_ensemble")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-3000:]  # one file failed
    assert "FAILED" in log and str(src / "broken.jpg") in log.split("failed:")[-1]
    net = load_net(model_dir)
    expected = {"rotated": np.asarray(ImageOps.exif_transpose(Image.open(src / "rotated.jpg")).convert("RGB")),
                "odd": np.asarray(Image.open(src / "odd.png").convert("RGB"))}
    if REAL_RAIN.is_dir():
        expected["real"] = np.asarray(Image.open(src / "real.jpg").convert("RGB"))
    assert expected["rotated"].shape == (190, 130, 3)
    assert sorted(os.listdir(out)) == sorted([f"{k}.png" for k in expected] + [f"{k}_side_by_side.png" for k in expected])
    for stem, rainy in expected.items():
        got = np.asarray(Image.open(out / f"{stem}.png"))
        assert got.shape == rainy.shape, stem
        # tiles (auto overlap, no CA) reproduce the whole-image result: only the final rounding differs
        want = reference_derain(net, rainy, 4)
        assert np.abs(got.astype(np.float32) - want).max() <= 0.5 + 1e-3, stem
        sbs = np.asarray(Image.open(out / f"{stem}_side_by_side.png"))
        np.testing.assert_array_equal(sbs, np.concatenate([rainy, got], axis=1))
    assert "2x2 tiles" in log or "4 tiles" in log


def test_saved_model_input_and_name_collisions(model_dir, tmp_path):
    from menet_tf import export

    export_dir = str(tmp_path / "exported")
    export.export_saved_model(load_net(model_dir), export_dir, net_config(1, False))
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo(45, 67, 3)).save(src / "a.png")
    Image.fromarray(photo(45, 67, 4)).save(src / "a.bmp")  # same stem: both get the extension
    out = tmp_path / "out"
    proc = run_derain(f"--input={src}", f"--output_dir={out}", f"--saved_model={export_dir}", "--tile=0",
                      "--noself_ensemble")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert sorted(os.listdir(out)) == ["a_bmp.png", "a_png.png"]
    net = load_net(model_dir)
    rainy = np.asarray(Image.open(src / "a.bmp"))
    got = np.asarray(Image.open(out / "a_bmp.png")).astype(np.float32)
    assert np.abs(got - reference_derain(net, rainy, 4)).max() <= 0.5 + 1e-3


def test_bad_flags_fail_in_one_line_before_any_work(tmp_path):
    out = tmp_path / "out"
    proc = run_derain(f"--input={tmp_path}", f"--output_dir={out}", "--model_dir=a", "--saved_model=b")
    assert proc.returncode != 0
    assert "give at most one of --model_dir, --model and --saved_model" in proc.stderr
    assert not out.exists()


def test_channel_attention_model_dir_tiles_exactly(tmp_path):
    """A CA model directory is tiled in two passes: the PNG equals the whole-image result up to the final
    rounding, where one-pass tiles (tile-local attention) would not."""
    from test_inference import randomize_bn  # same folder (pytest puts it on sys.path)

    from menet_tf import inference

    keras.utils.set_random_seed(12)
    net = randomize_bn(build_derain_net(1, channel_attention=True), seed=3)
    model_dir = str(tmp_path / "model_ca")
    save_net(net, model_dir, net_config(1, True))
    src = tmp_path / "in"
    src.mkdir()
    rainy = photo(200, 229, 5)  # padded to 208 x 240: 2 x 2 tiles of 192 (auto overlap 96)
    Image.fromarray(rainy).save(src / "ca.png")
    out = tmp_path / "out"
    proc = run_derain(f"--input={src}", f"--output_dir={out}", f"--model_dir={model_dir}", "--tile=192",
                      "--noself_ensemble")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "channel attention in two passes" in log and "4 tiles + 4 attention windows" in log, log[-3000:]
    got = np.asarray(Image.open(out / "ca.png")).astype(np.float32)
    net = load_net(model_dir)
    want = reference_derain(net, rainy, 16)
    assert np.abs(got - want).max() <= 0.5 + 1e-3
    one_pass = inference.derain_tiled(inference.padded_fn(net, 16), rainy, tile=192, overlap=96, multiple=16)
    assert np.abs(one_pass - want).max() > 1.0


def test_a_derain_killed_mid_folder_and_rerun_with_skip_existing_writes_every_output_once(model_dir, tmp_path):
    """SIGKILL while the 3rd of 6 outputs is being written (forced with MENET_CRASH_AT): no truncated or
    partial PNG remains; the re-run with --skip_existing de-rains only the 4 missing ones, and every output
    equals the net's own result."""
    import signal

    from menet_tf.atomic import CRASH_ENV, PARTIAL_PREFIX

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    images = {f"p{i}": photo(40 + 4 * i, 52, seed=20 + i) for i in range(6)}
    for stem, image in images.items():
        Image.fromarray(image).save(src / f"{stem}.png")
    env = {**ENV, CRASH_ENV: "derain_during_write@2"}
    cmd = [sys.executable, "-m", "experiments.derain", f"--input={src}", f"--output_dir={out}",
           f"--model_dir={model_dir}", "--tile=0", "--noself_ensemble"]
    killed = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    whole = sorted(n for n in os.listdir(out) if not n.startswith(PARTIAL_PREFIX))
    assert whole == ["p0.png", "p1.png"]  # the 3rd was killed before its rename
    assert any(n.startswith(PARTIAL_PREFIX) for n in os.listdir(out))  # what the killed writer left
    first = {n: os.stat(out / n).st_mtime_ns for n in whole}
    rerun = run_derain(f"--input={src}", f"--output_dir={out}", f"--model_dir={model_dir}", "--tile=0", "--skip_existing",
                       "--noself_ensemble")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert rerun.stdout.count("already there, skipped") == 2 and rerun.stdout.count("  -> ") == 4
    assert sorted(os.listdir(out)) == sorted(f"{s}.png" for s in images)  # the partial file is gone
    assert {n: os.stat(out / n).st_mtime_ns for n in whole} == first  # written once, not again
    net = load_net(model_dir)
    for stem, image in images.items():
        got = np.asarray(Image.open(out / f"{stem}.png"))
        want = np.clip(np.round(reference_derain(net, image, 4)), 0, 255)
        assert np.abs(got.astype(int) - want).max() <= 1, stem


def test_entries_it_does_not_process_are_reported_by_name(model_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(photo(40, 52, 3)).save(src / "good.png")
    frames = [Image.fromarray(photo(20, 24, s)) for s in (4, 5)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:])
    os.symlink(tmp_path / "gone.png", src / "dangling.png")
    (src / "folder.jpg").mkdir()
    (src / "notes.txt").write_text("x")
    out = tmp_path / "out"
    proc = run_derain(f"--input={src}", f"--output_dir={out}", f"--model_dir={model_dir}")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert sorted(os.listdir(out)) == ["good.png"]
    lines = proc.stdout.splitlines()
    for name, reason in [("anim.gif", "an animated GIF (2 frames)"), ("dangling.png", "a dangling link"),
                         ("folder.jpg", "a folder with an image file name"), ("notes.txt", "not an image file (.txt")]:
        assert any(line.startswith(f"not processed: {src / name}: {reason}") for line in lines), (name, proc.stdout)
    assert "4 entries of" in lines[-1] and "anim.gif, dangling.png, folder.jpg, notes.txt" in lines[-1]


def test_rain_scale_runs_the_net_on_the_shrunk_photo(model_dir, tmp_path):
    from menet_tf import inference

    src = tmp_path / "in"
    src.mkdir()
    image = photo(90, 130, 7)
    Image.fromarray(image).save(src / "p.png")
    out = tmp_path / "out"
    proc = run_derain(f"--input={src}", f"--output_dir={out}", f"--model_dir={model_dir}", "--rain_scale=2.5",
                      "--noself_ensemble")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "rain scale 2.50: the net runs at 52x36" in proc.stdout
    net = load_net(model_dir)
    want = inference.derain_at_scale(lambda x: reference_derain(net, x, 4), image, 2.5)
    got = np.asarray(Image.open(out / "p.png")).astype(np.float32)
    assert np.abs(got - want).max() <= 0.5 + 1e-3
    plain = run_derain(f"--input={src}", f"--output_dir={tmp_path / 'plain'}", f"--model_dir={model_dir}")
    assert "rain scale" not in plain.stdout  # scale 1 unless told
    bad = run_derain(f"--input={src}", f"--output_dir={tmp_path / 'bad'}", f"--model_dir={model_dir}", "--rain_scale=0.5")
    assert bad.returncode == 2 and "--rain_scale=0.5: give a number >= 1" in bad.stderr


def test_self_ensemble_is_the_default_and_noself_ensemble_is_one_pass(model_dir, tmp_path):
    """With no flag (issue 20's default) each photo is the mean of the four flipped derains flipped back;
    --noself_ensemble writes the one-pass result."""
    src = tmp_path / "in"
    src.mkdir()
    image = photo(70, 90, 3)
    Image.fromarray(image).save(src / "p.png")
    proc = run_derain(f"--input={src}", f"--output_dir={tmp_path / 'out'}", f"--model_dir={model_dir}")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert ", 4 flips" in proc.stdout
    net = load_net(model_dir)
    flips = [(), (1,), (0,), (0, 1)]
    want = np.mean([np.flip(reference_derain(net, np.flip(image, f), 4), f) for f in flips], axis=0)
    got = np.asarray(Image.open(tmp_path / "out" / "p.png")).astype(np.float32)
    assert np.abs(got - want).max() <= 0.5 + 1e-3
    plain = reference_derain(net, image, 4)
    assert np.abs(got - np.clip(np.round(plain), 0, 255)).max() >= 2  # the flips changed the output
    one = run_derain(f"--input={src}", f"--output_dir={tmp_path / 'one'}", f"--model_dir={model_dir}", "--noself_ensemble")
    assert one.returncode == 0 and ", 4 flips" not in one.stdout, (one.stdout + one.stderr)[-3000:]
    got_one = np.asarray(Image.open(tmp_path / "one" / "p.png")).astype(np.float32)
    assert np.abs(got_one - plain).max() <= 0.5 + 1e-3
