"""data_prep.flip: every pair written upside down (or mirrored, or turned half), at the same relative path, checked
against numpy flips of the files read by PIL; an --out inside --data_dir is refused before anything is written."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _flip(*args):
    return subprocess.run([sys.executable, "-m", "data_prep.flip", *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=300)


def test_flip_writes_each_pair_flipped_at_its_relative_path(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    files = {}
    for sub, n in (("a", 2), ("b", 1)):
        (data / sub).mkdir(parents=True)
        for i in range(1, n + 1):
            for kind in ("rain", "norain"):
                img = rng.integers(0, 256, (9 + i, 13, 3), dtype=np.uint8)
                Image.fromarray(img).save(data / sub / f"{kind}-{i}.png")
                files[f"{sub}/{kind}-{i}.png"] = img
    for flip, axes in (("ud", (0,)), ("both", (0, 1))):
        out = tmp_path / flip
        r = _flip(f"--data_dir={data}", "--rainy_glob=*/rain-*", "--clean_glob=*/norain-*", f"--out={out}",
                  f"--flip={flip}", "--noprogress")
        assert r.returncode == 0, r.stderr[-2000:]
        assert f"wrote 3 pairs flipped ({flip})" in r.stdout
        written = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)
        assert written == sorted(files)
        for rel, img in files.items():
            np.testing.assert_array_equal(np.asarray(Image.open(out / rel)), np.flip(img, axes))
    r = _flip(f"--data_dir={data}", "--rainy_glob=*/rain-*", "--clean_glob=*/norain-*", f"--out={data / 'ud'}")
    assert r.returncode != 0 and "is inside --data_dir" in r.stderr and not (data / "ud").exists()
