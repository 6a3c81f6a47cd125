"""SavedModel / TFLite export: the export, loaded by a process that has only TensorFlow, reproduces the
Keras net on odd sizes, for float and uint8 input; the export CLI writes and describes it."""

import json
import os
import subprocess
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

from menet_tf import export as E
from menet_tf.model import build_derain_net, net_config, save_net

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def reference_derain(net, batch, multiple):
    """The Keras net on a numpy reflect-padded batch, cropped back."""
    h, w = batch.shape[1:3]
    pads = ((0, 0), (0, -h % multiple), (0, -w % multiple), (0, 0))
    return net(np.pad(batch.astype(np.float32), pads, mode="reflect"), training=False).numpy()[:, :h, :w]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(7)
    config = net_config(num_res_blocks=1, channel_attention=True)  # CA: multiple 16, the harder case
    net = build_derain_net(1, channel_attention=True)
    export_dir = str(tmp_path_factory.mktemp("export") / "saved")
    info = E.export_saved_model(net, export_dir, config)
    return net, export_dir, info


LOADER = textwrap.dedent(
    """
    import sys
    sys.modules["menet_tf"] = None  # importing the package from here on would fail
    import numpy as np
    import tensorflow as tf
    export_dir, data = sys.argv[1], sys.argv[2]
    loaded = tf.saved_model.load(export_dir)
    out = {"signatures": np.array(sorted(loaded.signatures))}
    for size in ("481x321", "257x129"):
        images = np.load(f"{data}/{size}.npy")  # uint8 [2, H, W, 3]
        f = loaded.signatures["serve"](images=tf.constant(images.astype(np.float32)))
        u = loaded.signatures["serve_uint8"](images=tf.constant(images))
        out[f"{size}_float"] = f["derained"].numpy()
        out[f"{size}_uint8"] = u["derained"].numpy()
        out[f"{size}_uint8_out"] = u["derained_uint8"].numpy()
        e = loaded.signatures["serve_self_ensemble"](images=tf.constant(images.astype(np.float32)))
        e8 = loaded.signatures["serve_self_ensemble_uint8"](images=tf.constant(images))
        out[f"{size}_ensemble"], out[f"{size}_ensemble_uint8_in"] = e["derained"].numpy(), e8["derained"].numpy()
        out[f"{size}_ensemble_uint8_out"] = e8["derained_uint8"].numpy()
    out["modules"] = np.array(sorted(m for m, v in sys.modules.items() if v is not None and m.startswith("menet")) or ["none"])
    np.savez(f"{data}/out.npz", **out)
    """
)


def test_saved_model_loads_with_tensorflow_only_and_matches_keras(exported, tmp_path):
    net, export_dir, info = exported
    assert info["required_multiple"] == 16
    rng = np.random.default_rng(0)
    inputs = {}
    for size in ("481x321", "257x129"):
        w, h = map(int, size.split("x"))
        inputs[size] = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        np.save(tmp_path / f"{size}.npy", inputs[size])
    script = tmp_path / "load.py"
    script.write_text(LOADER)
    proc = subprocess.run([sys.executable, str(script), export_dir, str(tmp_path)], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    assert set(out["signatures"]) == {"serve", "serve_uint8", "serving_default", "serve_self_ensemble",
                                      "serve_self_ensemble_uint8"}
    assert not any(m.startswith("menet") for m in out["modules"])
    for size, images in inputs.items():
        want = reference_derain(net, images, 16)
        for kind in ("float", "uint8"):
            got = out[f"{size}_{kind}"]
            assert got.shape == images.shape and got.dtype == np.float32
            assert np.abs(got - want).max() <= 1e-3, (size, kind)
        got8 = out[f"{size}_uint8_out"]
        assert got8.dtype == np.uint8
        np.testing.assert_array_equal(got8, np.round(out[f"{size}_uint8"]).astype(np.uint8))
        # the self-ensemble signatures: the mean of the Keras net over the four flips (each reflect-padded
        # itself), each flipped back; numpy flips, independent of menet_tf.inference
        flips = [lambda a: a, lambda a: a[:, :, ::-1], lambda a: a[:, ::-1], lambda a: a[:, ::-1, ::-1]]
        mean = np.mean([f(reference_derain(net, np.ascontiguousarray(f(images)), 16)) for f in flips], axis=0)
        assert np.abs(mean - want).max() > 0.5  # the flips matter for this net: a real test of the mean
        for key in ("ensemble", "ensemble_uint8_in"):
            assert out[f"{size}_{key}"].shape == images.shape
            assert np.abs(out[f"{size}_{key}"] - mean).max() <= 1e-3, (size, key)
        np.testing.assert_array_equal(out[f"{size}_ensemble_uint8_out"],
                                      np.round(out[f"{size}_ensemble_uint8_in"]).astype(np.uint8))


def test_tflite_matches_keras(exported, tmp_path):
    net, export_dir, _ = exported
    path = str(tmp_path / "m.tflite")
    assert E.export_tflite(export_dir, path) > 0
    images = np.random.default_rng(1).integers(0, 256, (1, 129, 257, 3), dtype=np.uint8)
    got = E.run_tflite(path, images)
    assert got.shape == images.shape
    assert np.abs(got - reference_derain(net, images, 16)).max() <= 1e-2


def test_export_cli_writes_prints_signatures_and_checks(tmp_path):
    keras.utils.set_random_seed(8)
    model_dir = str(tmp_path / "model")
    save_net(build_derain_net(1), model_dir, net_config(1, False))
    export_dir = str(tmp_path / "exported")
    cmd = [sys.executable, "-m", "experiments.export", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--tflite"]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "signature 'serve':" in proc.stdout and "signature 'serve_uint8':" in proc.stdout
    assert "input  images: float32 [?, ?, ?, 3]" in proc.stdout
    assert "signature 'serve_self_ensemble':" in proc.stdout
    assert "check: serve_self_ensemble_uint8 on 45x67 vs the mean of the Keras net over 4 flips" in proc.stdout
    assert os.path.isfile(os.path.join(export_dir, "saved_model.pb"))
    assert os.path.getsize(os.path.join(export_dir, E.TFLITE_FILE)) > 0
    info = json.load(open(os.path.join(export_dir, E.EXPORT_INFO_FILE)))
    assert info["required_multiple"] == 4 and info["receptive_radius"] == 25
    # a second export into the now non-empty directory is refused before any work, in one line
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "is not empty (pass --overwrite" in proc.stderr
