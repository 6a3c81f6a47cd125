"""Shared benchmark helpers: median timings, matmul FLOP/s, conv FLOP counting, one JSON line."""

from __future__ import annotations

import json
import os
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")


def median_seconds(fn, runs: int, warmup: int) -> float:
    """Median wall time of fn() over ``runs`` calls after ``warmup`` calls; fn must block until done."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_gflops(n: int = 2048, runs: int = 10, warmup: int = 3) -> float:
    """float32 GFLOP/s of an n x n matmul (2 n^3 FLOPs) under tf.function."""
    a = tf.random.uniform((n, n), dtype=tf.float32)
    b = tf.random.uniform((n, n), dtype=tf.float32)
    mm = tf.function(lambda: tf.linalg.matmul(a, b))
    seconds = median_seconds(lambda: mm().numpy(), runs, warmup)
    return 2.0 * n**3 / seconds / 1e9


def conv_forward_flops(net: keras.Model, input_shape) -> int:
    """FLOPs (2 x multiply-adds) of every Conv2D in one forward pass of ``net`` at ``input_shape``."""
    records = []
    original = keras.layers.Conv2D.convolution_op  # Conv2D.call and ConvBN's folded inference both use it

    def recording_op(self, inputs, kernel):
        out = original(self, inputs, kernel)
        k = kernel.shape  # kh, kw, cin, cout
        records.append(2 * int(k[0]) * int(k[1]) * int(k[2]) * int(k[3]) * int(out.shape[0]) * int(out.shape[1]) * int(out.shape[2]))
        return out

    keras.layers.Conv2D.convolution_op = recording_op
    try:
        net(tf.zeros(input_shape), training=False)
    finally:
        keras.layers.Conv2D.convolution_op = original
    return sum(records)


def synthetic_batch(batch_size: int, crop_size: int, seed: int = 0) -> tuple[tf.Tensor, tf.Tensor]:
    """(rainy, clean) float32 0..255: uniform noise, plus bright sparse 'streak' pixels on the rainy side."""
    rng = np.random.default_rng(seed)
    shape = (batch_size, crop_size, crop_size, 3)
    clean = tf.constant(rng.uniform(0, 255, shape).astype(np.float32))
    streaks = tf.constant((rng.random(shape[:3] + (1,)) > 0.95) * 80.0, tf.float32)
    return tf.clip_by_value(clean + streaks, 0, 255), clean


CONV_SHAPE = (20, 56, 56, 64)


def conv_gflops(dtype: str, runs: int = 20, warmup: int = 5) -> float:
    """The "conv peak": forward GFLOP/s of a 3x3 conv 64->64 (bias-free, SAME) on CONV_SHAPE in ``dtype``.
    Each call returns one output element, so the time is the convolution's alone (fetching the whole
    8-16 MB output, as timing ``conv(x).numpy()`` does, adds about a third in bfloat16 here)."""
    x = tf.cast(tf.random.stateless_normal(CONV_SHAPE, (1, 2)), dtype)
    w = tf.cast(tf.random.stateless_normal((3, 3, 64, 64), (3, 4)) * 0.04, dtype)
    conv = tf.function(lambda: tf.nn.conv2d(x, w, 1, "SAME")[0, 0, 0, 0])
    seconds = median_seconds(lambda: conv().numpy(), runs, warmup)
    b, h, w_, c = CONV_SHAPE
    return 2.0 * 9 * c * 64 * b * h * w_ / seconds / 1e9


def print_json(obj: dict) -> None:
    """The benchmark's result: one JSON object on the last line."""
    print(json.dumps(obj, sort_keys=True), flush=True)
