"""experiments.evaluate / evaluation / figures, each against an independent reference: the published
Rain100L "Input" row, a plain numpy + tf.image re-derivation of the paper protocol, a net run by hand
with numpy reflect padding, and the one-line error contract of the CLI."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from PIL import Image

from experiments import evaluation as ev

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RAIN100L = DATA / "Rain100L"
needs_rain100l = pytest.mark.skipif(not RAIN100L.is_dir(), reason="Rain100L not available (../shared/data)")

# sizes (H, W) >= 224 for the paper protocol, none a multiple of 4 on both sides
SYNTH_SIZES = [(240, 250), (243, 226), (229, 231)]


def _cli(*args, cwd=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "experiments.evaluate", *args], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _pil_rgb(path):
    """Independent of menet_tf.imageio: PIL straight to an RGB uint8 array."""
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)


def _np_ten_crops(img, c=224):
    """Five-crop + flips by plain slicing: TL, TR, BL, BR, centre (Python round), then the same flipped."""
    h, w = img.shape[:2]
    ct, cl = round((h - c) / 2), round((w - c) / 2)
    out = []
    for im in (img, img[:, ::-1]):
        out += [im[:c, :c], im[:c, w - c:], im[h - c:, :c], im[h - c:, w - c:], im[ct:ct + c, cl:cl + c]]
    return np.stack(out)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    """A few JORDER-flat pairs (rain-N.png / norain-N.png) of odd sizes: smooth scenes + bright streaks."""
    from menet_tf.imageio import write_image

    d = tmp_path_factory.mktemp("synth")
    rng = np.random.default_rng(7)
    for i, (h, w) in enumerate(SYNTH_SIZES, 1):
        yy, xx = np.mgrid[:h, :w].astype(np.float64)
        clean = np.stack([128 + 90 * np.sin(xx / (17 + 3 * i) + k) * np.cos(yy / (23 + k)) for k in range(3)], -1)
        clean = np.clip(clean + rng.normal(0, 6, clean.shape), 0, 255)
        streaks = np.zeros((h, w))
        for _ in range(60):
            x0, y0, ln = rng.integers(0, w), rng.integers(0, h), rng.integers(8, 30)
            ys = np.arange(y0, min(h, y0 + ln))
            streaks[ys, np.clip(x0 + (ys - y0) // 4, 0, w - 1)] = rng.uniform(40, 110)
        write_image(str(d / f"rain-{i}.png"), np.clip(clean + streaks[..., None], 0, 255))
        write_image(str(d / f"norain-{i}.png"), clean)
    return d


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A 1-block net with random weights and non-trivial BN moving statistics (so that BN in training
    mode would give different numbers than the inference mode evaluation must use)."""
    from menet_tf.model import build_derain_net, net_config, save_net

    net = build_derain_net(1, False)
    rng = np.random.default_rng(3)
    for v in net.weights:
        if "moving_mean" in v.path:
            v.assign(rng.normal(0.0, 0.3, v.shape).astype("float32"))
        elif "moving_variance" in v.path:
            v.assign(rng.uniform(0.5, 2.0, v.shape).astype("float32"))
        elif "kernel" in v.path:
            v.assign(v.numpy() * 0.3)
    d = tmp_path_factory.mktemp("tiny_model")
    save_net(net, str(d), net_config(1, False))
    return d


@pytest.fixture(scope="module")
def evaluated(synth_dir, tiny_model_dir, tmp_path_factory):
    """The tiny net and the identity model evaluated (both protocols) on the synthetic pairs."""
    out = tmp_path_factory.mktemp("evals")
    predict, multiple, name = ev.load_predictor(model_dir=str(tiny_model_dir))
    assert multiple == 4 and name == tiny_model_dir.name
    net_dir = out / "net"
    net_summary = ev.evaluate_model(predict, str(synth_dir), protocols="both", output_dir=str(net_dir),
                                    name="tiny net", batch_size=4, save_images=2, multiple=multiple, progress=False)
    p0, m0, n0 = ev.load_predictor(identity=True)
    assert p0 is None and m0 == 1 and n0 == "Input"
    id_dir = out / "identity"
    id_summary = ev.evaluate_model(p0, str(synth_dir), protocols="both", output_dir=str(id_dir), name=n0,
                                   save_images=2, multiple=m0, progress=False)
    return {"net": (net_dir, net_summary), "identity": (id_dir, id_summary)}


# ---------------------------------------------------------------------------------------------- tests


@needs_rain100l
def test_cli_identity_standard_rain100l_gives_published_input_row(tmp_path):
    r = _cli("--model=identity", "--protocol=standard", f"--data_dir={RAIN100L}", f"--output_dir={tmp_path}",
             "--save_images=0")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    std = summary["protocols"]["standard"]
    assert set(std) == {"dataset", "protocol", "num_images", "psnr", "ssim"}
    assert std["dataset"] == "Rain100L" and std["protocol"] == "standard" and std["num_images"] == 100
    assert f"{std['psnr']:.2f}" == "26.90"
    assert f"{std['ssim']:.3f}" == "0.838"
    assert summary["model"] == "Input" and "paper" not in summary["protocols"]
    assert "PSNR 26.90 dB  SSIM 0.838" in r.stdout
    with open(tmp_path / "summary.json") as f:
        assert json.load(f) == summary
    rows = _read_csv(tmp_path / "per_image_standard.csv")
    assert len(rows) == 100 and rows[0]["name"] == "rain-001"
    assert np.mean([float(x["psnr"]) for x in rows]) == pytest.approx(std["psnr"], abs=1e-5)


@needs_rain100l
def test_identity_paper_protocol_equals_numpy_tf_image_rederivation(tmp_path):
    import tensorflow as tf

    summary = ev.evaluate_model(None, str(RAIN100L), protocols="paper", output_dir=str(tmp_path),
                                save_images=0, progress=False)
    # the reference: sorted JORDER names, PIL decoding, numpy crops, tf.image on each image's 10 crops
    ref_psnr, ref_ssim, names = [], [], []
    for rain in sorted(RAIN100L.glob("rain-*.png")):
        clean = RAIN100L / rain.name.replace("rain-", "norain-")
        r = tf.constant(_np_ten_crops(_pil_rgb(rain)).astype(np.float32))
        c = tf.constant(_np_ten_crops(_pil_rgb(clean)).astype(np.float32))
        ref_psnr.append(tf.image.psnr(r, c, max_val=255.0).numpy())
        ref_ssim.append(tf.image.ssim(r, c, max_val=255.0).numpy())
        names += [rain.stem] * 10
    ref_psnr, ref_ssim = np.concatenate(ref_psnr).astype(np.float64), np.concatenate(ref_ssim).astype(np.float64)
    assert len(ref_psnr) == 1000
    paper = summary["protocols"]["paper"]
    assert set(paper) == {"dataset", "protocol", "num_images", "psnr", "ssim"}
    assert paper["num_images"] == 100 and summary["paper_num_crops"] == 1000
    assert paper["psnr"] == pytest.approx(ref_psnr.mean(), rel=1e-9)
    assert paper["ssim"] == pytest.approx(ref_ssim.mean(), rel=1e-9)
    rows = _read_csv(tmp_path / "per_crop_paper.csv")
    assert [x["name"] for x in rows] == names
    assert [int(x["crop"]) for x in rows] == list(range(10)) * 100
    np.testing.assert_allclose([float(x["psnr"]) for x in rows], ref_psnr, atol=1e-5)
    np.testing.assert_allclose([float(x["ssim"]) for x in rows], ref_ssim, atol=1e-5)
    per = summary["per_image"]["paper"]  # each image's scores: the mean of its 10 crops
    assert [r[0] for r in per] == names[::10]
    np.testing.assert_allclose([r[1] for r in per], ref_psnr.reshape(100, 10).mean(1), atol=1e-5)
    np.testing.assert_allclose([r[2] for r in per], ref_ssim.reshape(100, 10).mean(1), atol=1e-5)
    print(f"identity paper protocol on Rain100L: PSNR {paper['psnr']:.4f} SSIM {paper['ssim']:.4f}")


def test_tiny_net_matches_hand_run_net(synth_dir, tiny_model_dir, evaluated):
    import tensorflow as tf

    from menet_tf import metrics
    from menet_tf.model import load_net

    net = load_net(str(tiny_model_dir))
    net_bn_training = load_net(str(tiny_model_dir))  # a training-mode call updates BN statistics: own copy
    out_dir, summary = evaluated["net"]
    std_rows = {x["name"]: x for x in _read_csv(out_dir / "per_image_standard.csv")}
    crop_rows = _read_csv(out_dir / "per_crop_paper.csv")
    ref_std, ref_crops, trained_mode = [], [], []
    for i, (h, w) in enumerate(SYNTH_SIZES, 1):
        rainy, clean = _pil_rgb(synth_dir / f"rain-{i}.png"), _pil_rgb(synth_dir / f"norain-{i}.png")
        assert rainy.shape[:2] == (h, w)
        ph, pw = -h % 4, -w % 4
        x = np.pad(rainy.astype(np.float32), ((0, ph), (0, pw), (0, 0)), mode="reflect")[None]
        y = net(tf.constant(x), training=False).numpy()[0, :h, :w]
        q = np.floor(np.clip(y, 0, 255) + 0.5).astype(np.uint8)
        p, s = metrics.psnr(q, clean), metrics.ssim(q, clean)
        ref_std.append((p, s))
        row = std_rows[f"rain-{i}"]
        assert float(row["psnr"]) == pytest.approx(p, abs=1e-5)
        assert float(row["ssim"]) == pytest.approx(s, abs=1e-5)
        if i <= 2:  # save_images=2: the saved PNG is the scored uint8 output
            saved = _pil_rgb(out_dir / "images" / f"rain-{i}.png")
            assert np.abs(saved.astype(int) - q.astype(int)).max() <= 1
            assert np.mean(saved == q) > 0.999
        else:
            assert not (out_dir / "images" / f"rain-{i}.png").exists()
        yt = net_bn_training(tf.constant(x), training=True).numpy()[0, :h, :w]
        trained_mode.append(np.abs(yt - y).max())
        crops_r = _np_ten_crops(rainy).astype(np.float32)
        crops_c = _np_ten_crops(clean).astype(np.float32)
        out = np.clip(net(tf.constant(crops_r), training=False).numpy(), 0, 255)
        ref_crops.append((tf.image.psnr(out, crops_c, 255.0).numpy(), tf.image.ssim(out, crops_c, 255.0).numpy()))
    std = summary["protocols"]["standard"]
    assert std["num_images"] == 3
    assert std["psnr"] == pytest.approx(np.mean([p for p, _ in ref_std]), abs=1e-6)
    assert std["ssim"] == pytest.approx(np.mean([s for _, s in ref_std]), abs=1e-6)
    # the summary's per-image rows (what model cards keep) are the hand-run scores, image by image
    per = summary["per_image"]["standard"]
    assert [r[0] for r in per] == [f"rain-{i}" for i in range(1, 4)]
    np.testing.assert_allclose([r[1:] for r in per], ref_std, atol=1e-6)
    # the test can tell BN modes apart (and evaluation used inference mode): a training-mode BN
    # changes the output by more than a grey level somewhere in every image
    assert min(trained_mode) > 1.0
    ref_p = np.concatenate([p for p, _ in ref_crops])
    ref_s = np.concatenate([s for _, s in ref_crops])
    np.testing.assert_allclose([float(x["psnr"]) for x in crop_rows], ref_p, atol=2e-3)
    np.testing.assert_allclose([float(x["ssim"]) for x in crop_rows], ref_s, atol=2e-5)
    per = summary["per_image"]["paper"]  # each image's scores: the mean of its 10 crops
    np.testing.assert_allclose([r[1] for r in per], ref_p.reshape(3, 10).mean(1), atol=2e-3)
    np.testing.assert_allclose([r[2] for r in per], ref_s.reshape(3, 10).mean(1), atol=2e-5)
    assert summary["protocols"]["paper"]["psnr"] == pytest.approx(ref_p.mean(), abs=1e-3)
    # the identity model on the same pairs is a different number (the net really ran)
    assert evaluated["identity"][1]["protocols"]["standard"]["psnr"] != pytest.approx(std["psnr"], abs=1e-3)
    with open(out_dir / "summary.json") as f:
        on_disk = json.load(f)
    assert on_disk["model"] == "tiny net" and on_disk["dataset"] == synth_dir.name
    for proto in ("paper", "standard"):
        assert set(on_disk["protocols"][proto]) == set(ev.PROTOCOL_FIELDS)


def test_saved_model_gives_the_model_dir_numbers(synth_dir, tiny_model_dir, evaluated, tmp_path):
    from menet_tf.export import export_saved_model
    from menet_tf.model import load_net, net_config

    export_dir = tmp_path / "exported"
    export_saved_model(load_net(str(tiny_model_dir)), str(export_dir), net_config(1, False))
    predict, multiple, name = ev.load_predictor(saved_model=str(export_dir))
    assert multiple == 4 and name == "exported"
    s = ev.evaluate_model(predict, str(synth_dir), protocols="standard", output_dir=None, multiple=multiple,
                          progress=False)
    ref = evaluated["net"][1]["protocols"]["standard"]
    assert s["protocols"]["standard"]["psnr"] == pytest.approx(ref["psnr"], abs=1e-3)
    assert s["protocols"]["standard"]["ssim"] == pytest.approx(ref["ssim"], abs=1e-5)


def _bad_flag_cases(tmp: Path, synth_dir: Path):
    empty_model = tmp / "empty_model"
    empty_model.mkdir()
    a_file = tmp / "a_file"
    a_file.write_text("x")
    not_eval = tmp / "not_eval"
    not_eval.mkdir()
    broken = tmp / "broken_data"
    broken.mkdir()
    (broken / "rain-1.png").write_bytes((synth_dir / "rain-1.png").read_bytes())
    (broken / "norain-1.png").write_bytes((synth_dir / "norain-1.png").read_bytes())
    (broken / "rain-2.png").write_bytes((synth_dir / "rain-2.png").read_bytes())  # no norain-2
    data = f"--data_dir={synth_dir}"
    return {
        "missing data_dir": (["--model=identity"], "--data_dir"),
        "nonexistent data_dir": (["--model=identity", f"--data_dir={tmp / 'nope'}"], "no such directory"),
        "no model": ([data], "exactly one of"),
        "two models": ([data, f"--model_dir={empty_model}", f"--saved_model={tmp}"], "exactly one of"),
        "identity and model_dir": ([data, "--model=identity", f"--model_dir={empty_model}"], "exactly one of"),
        "model_dir without config": ([data, f"--model_dir={empty_model}"], "config.json"),
        "unknown shipped model": ([data, "--model=no-such-model"], "unknown model 'no-such-model'"),
        "shipped model and model_dir": ([data, "--model=menet-lb-rain100l", f"--model_dir={empty_model}"],
                                        "exactly one of"),
        "unwritable output_dir": ([data, "--model=identity", f"--output_dir={a_file}/sub"], "--output_dir"),
        "bad protocol": ([data, "--model=identity", "--protocol=bogus"], "--protocol"),
        "bad crop_size": ([data, "--model=identity", "--crop_size=0"], "--crop_size"),
        "non-integer batch_size": ([data, "--model=identity", "--batch_size=abc"], "--batch_size"),
        "compare without summary": ([f"--compare={not_eval}", f"--output_dir={tmp / 'figs'}"], "summary.json"),
        "pair without partner": (["--model=identity", f"--data_dir={broken}"], "clean partner"),
        "unknown flag": ([data, "--model=identity", "--bogus_flag=1"], "bogus_flag"),
    }


def test_bad_flags_stop_with_one_line_error_before_any_work(synth_dir, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for label, (args, needle) in _bad_flag_cases(tmp_path, synth_dir).items():
        r = _cli(*args, cwd=cwd)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode != 0, label
        assert len(lines) == 1, f"{label}: {r.stderr}"  # one line, and TensorFlow never loaded (no log lines)
        assert lines[-1].startswith("error: ") and needle in lines[-1], f"{label}: {lines[-1]}"
        assert r.stdout == "", label
    assert list(cwd.iterdir()) == []  # no default output folder was created


def test_compare_draws_three_pngs(evaluated, tmp_path):
    from experiments import figures

    dirs = [str(evaluated["identity"][0]), str(evaluated["net"][0])]
    paths = figures.compare(dirs, str(tmp_path / "figs"))
    names = [os.path.basename(p) for p in paths]
    assert names == ["fig8_psnr_hist.png", "fig9_ssim_box.png", "fig10_grid.png"]
    for p in paths:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200
    # the CLI's compare mode writes the same files and runs no model
    r = _cli(f"--compare={','.join(dirs)}", f"--output_dir={tmp_path / 'cli_figs'}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "cli_figs")) == sorted(names)
    assert r.stderr.strip() == ""  # no TensorFlow start-up lines: no model ran


def test_rain_free_score_is_identity_for_the_identity_and_low_for_a_blur(tmp_path):
    """The do-no-harm score: the clean images go in and are the targets; the rainy images play no part.
    Reference: metrics.standard_psnr_ssim of each clean image against its blurred self, by hand."""
    from scipy import ndimage

    from menet_tf import metrics
    from menet_tf.imageio import write_image

    rng = np.random.default_rng(7)
    data = tmp_path / "pairs"
    data.mkdir()
    cleans = []
    for i, (h, w) in enumerate(SYNTH_SIZES, 1):
        x = ndimage.gaussian_filter(rng.random((h, w, 3)) * 255, (2, 2, 0))  # a smooth 'photo'
        clean = np.clip(x * 3 - 250, 0, 255).astype(np.uint8)
        cleans.append(clean)
        write_image(str(data / f"norain-{i}.png"), clean)
        write_image(str(data / f"rain-{i}.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))  # noise
    ident = ev.evaluate_model(None, str(data), protocols="both", save_images=0, progress=False, rain_free=True)
    assert ident["rain_free"] is True
    for proto in ("standard", "paper"):
        assert ident["protocols"][proto]["psnr"] == float("inf") and ident["protocols"][proto]["ssim"] == 1.0

    def blur(images):
        return ndimage.gaussian_filter(np.asarray(images, np.float32), (0, 1.5, 1.5, 0), mode="nearest")

    got = ev.evaluate_model(blur, str(data), protocols="standard", save_images=0, progress=False, rain_free=True,
                            multiple=1)  # no padding: the blur sees each image as the reference does
    want = [metrics.standard_psnr_ssim(metrics.quantize(blur(c[None].astype(np.float32))[0]), c) for c in cleans]
    assert got["protocols"]["standard"]["psnr"] == pytest.approx(np.mean([p for p, _ in want]), abs=1e-6)
    assert got["protocols"]["standard"]["ssim"] == pytest.approx(np.mean([s for _, s in want]), abs=1e-6)
    assert got["protocols"]["standard"]["psnr"] < 35  # a blur changes rain-free photos visibly
    rainy = ev.evaluate_model(blur, str(data), protocols="standard", save_images=0, progress=False)
    # without rain_free the noise 'rain' is the input: scored, and far below
    assert rainy["rain_free"] is False
    assert rainy["protocols"]["standard"]["psnr"] < got["protocols"]["standard"]["psnr"] - 5


def test_cli_rain_free_flag_names_the_output_and_prints_it(tmp_path):
    import synthetic_pairs

    data = synthetic_pairs.make_pairs(tmp_path / "pairs", n=2, size=(48, 40))
    r = _cli("--model=identity", f"--data_dir={data}", "--protocol=standard", "--rain_free", "--noprogress",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["rain_free"] is True and summary["protocols"]["standard"]["psnr"] == float("inf")
    assert "(rain-free)" in r.stdout and (tmp_path / "eval_identity_pairs_rainfree" / "summary.json").is_file()


def test_cli_self_ensemble_scores_the_mean_of_four_hand_run_flips(synth_dir, tiny_model_dir, evaluated, tmp_path):
    """--self_ensemble: each image is flipped (none, left-right, up-down, both), padded by numpy reflection,
    run through the net by hand and flipped back; the four are averaged, quantised and scored. The score
    differs from the plain net's (the flips really ran), and the name says so."""
    import tensorflow as tf

    from menet_tf import metrics
    from menet_tf.model import load_net

    net = load_net(str(tiny_model_dir))
    r = _cli(f"--model_dir={tiny_model_dir}", f"--data_dir={synth_dir}", "--protocol=standard", "--self_ensemble",
             "--noprogress", f"--output_dir={tmp_path / 'se'}")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["model"] == f"{tiny_model_dir.name} + self-ensemble"
    ref = []
    for i, (h, w) in enumerate(SYNTH_SIZES, 1):
        rainy, clean = _pil_rgb(synth_dir / f"rain-{i}.png"), _pil_rgb(synth_dir / f"norain-{i}.png")
        outs = []
        for axes in [(), (1,), (0,), (0, 1)]:
            x = np.flip(rainy, axes).astype(np.float32)
            x = np.pad(x, ((0, -h % 4), (0, -w % 4), (0, 0)), mode="reflect")[None]
            outs.append(np.flip(net(tf.constant(x), training=False).numpy()[0, :h, :w], axes))
        q = np.floor(np.clip(np.mean(outs, axis=0), 0, 255) + 0.5).astype(np.uint8)
        ref.append((metrics.psnr(q, clean), metrics.ssim(q, clean)))
    np.testing.assert_allclose([row[1:] for row in summary["per_image"]["standard"]], ref, atol=1e-4)
    plain = evaluated["net"][1]["protocols"]["standard"]["psnr"]
    assert abs(summary["protocols"]["standard"]["psnr"] - plain) > 1e-3
