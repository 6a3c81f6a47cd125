"""Tiny synthetic training pairs for the tests that run real training (imported by the test modules)."""

import os

import numpy as np

from menet_tf.imageio import write_image


def make_pairs(folder, n=3, size=(40, 44), seed=0):
    """n pairs rain-<i>.png / norain-<i>.png of ``size``: random clean images, sparse bright 'streaks'."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for i in range(1, n + 1):
        clean = rng.integers(0, 200, size + (3,), dtype=np.uint8)
        rainy = np.clip(clean.astype(int) + (rng.random(size + (1,)) > 0.9) * 60, 0, 255).astype(np.uint8)
        write_image(os.path.join(folder, f"norain-{i}.png"), clean)
        write_image(os.path.join(folder, f"rain-{i}.png"), rainy)
    return str(folder)
