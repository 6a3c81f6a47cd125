"""Shared benchmark helpers: median timings, matmul FLOP/s, conv FLOP counting, one JSON line."""

from __future__ import annotations

import json
import os
import statistics
import time

import keras
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
    original = keras.layers.Conv2D.call

    def recording_call(self, inputs):
        out = original(self, inputs)
        k = self.kernel.shape  # kh, kw, cin, cout
        records.append(2 * int(k[0]) * int(k[1]) * int(k[2]) * int(k[3]) * int(out.shape[0]) * int(out.shape[1]) * int(out.shape[2]))
        return out

    keras.layers.Conv2D.call = recording_call
    try:
        net(tf.zeros(input_shape), training=False)
    finally:
        keras.layers.Conv2D.call = original
    return sum(records)


def print_json(obj: dict) -> None:
    """The benchmark's result: one JSON object on the last line."""
    print(json.dumps(obj, sort_keys=True), flush=True)
