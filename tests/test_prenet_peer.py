"""experiments.prenet_peer on a stand-in checkout (PReNet's own code and weights are never in this
repository): the tool imports the checkout's networks.py, loads its weights and runs PReNet's test-script
pipeline (RGB / 255, clamp to [0, 1], uint8(255 x) truncated), checked against numpy."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch", reason="PyTorch is not installed (the peer tool's own dependency)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}

# A stand-in with PReNet's interface: PReNet(recurrent_iter, use_GPU), forward -> (output, list of stages);
# its one weight scales the input (0.8 at save time), and it imports torchvision and cv2 as PReNet's does.
STAND_IN = '''
import torch
import torch.nn as nn
import torchvision
import cv2


class PReNet(nn.Module):
    def __init__(self, recurrent_iter=6, use_GPU=True):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))
        self.iters = recurrent_iter

    def forward(self, x):
        return x * self.gain + 0.05, [x] * self.iters
'''


def _checkout(tmp_path):
    d = tmp_path / "PReNet"
    (d / "logs" / "Rain100H" / "PReNet6").mkdir(parents=True)
    (d / "networks.py").write_text(STAND_IN)
    (d / "generator.py").write_text(STAND_IN.replace("class PReNet", "class Generator_lstm"))
    sys.path.insert(0, str(d))
    try:
        import importlib

        for optional in ("torchvision", "cv2"):  # the stand-in module imports them like PReNet's
            try:
                importlib.import_module(optional)
            except Exception:  # noqa: BLE001
                sys.modules[optional] = type(sys)(optional)
        net = importlib.import_module("networks").PReNet(6, False)
    finally:
        sys.path.pop(0)
        sys.modules.pop("networks", None)
    with torch.no_grad():
        net.gain.fill_(0.8)
    torch.save(net.state_dict(), d / "logs" / "Rain100H" / "PReNet6" / "net_latest.pth")
    return d


def test_peer_tool_runs_the_checkouts_net_as_its_test_script_does(tmp_path):
    d = _checkout(tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)
    Image.fromarray(image).save(photos / "shot.jpg", quality=100)
    from menet_tf.imageio import read_image

    decoded = read_image(str(photos / "shot.jpg"), exif_transpose=True)
    r = subprocess.run([sys.executable, "-m", "experiments.prenet_peer", f"--prenet_dir={d}", "--model=rain100h",
                        f"--input={photos}", f"--output_dir={tmp_path / 'out'}", "--threads=1"], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    got = np.asarray(Image.open(tmp_path / "out" / "shot.png"))
    want = np.floor(np.clip(decoded.astype(np.float32) / 255 * 0.8 + 0.05, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(got, want)
    # scoring a paired set goes through experiments.evaluation (standard protocol)
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    Image.fromarray(image).save(pairs / "rain-1.png")
    Image.fromarray(image).save(pairs / "norain-1.png")
    r = subprocess.run([sys.executable, "-m", "experiments.prenet_peer", f"--prenet_dir={d}", "--model=rain100h",
                        f"--test_dir={pairs}", "--rain_free", "--threads=1"], cwd=ROOT, env=ENV, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    from menet_tf import metrics

    out = np.floor(np.clip(image.astype(np.float32) / 255 * 0.8 + 0.05, 0, 1) * 255).astype(np.uint8)
    assert summary["rain_free"] is True
    assert summary["protocols"]["standard"]["psnr"] == pytest.approx(metrics.standard_psnr_ssim(out, image)[0])
    missing = subprocess.run([sys.executable, "-m", "experiments.prenet_peer", f"--prenet_dir={d}", "--model=real",
                              f"--test_dir={pairs}"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].endswith("PReNet2.pth: missing (PReNet's released weights are in "
                                                            "its repository's logs/)")
