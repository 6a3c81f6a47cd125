"""--cache=memory|disk|none: the training batches are byte for byte those of the landed pipeline
(make_patches + make_epoch_dataset) for every mode, and resume stays exact in every mode."""

import dataclasses
import os

import numpy as np
import pytest

import synthetic_pairs  # tests/synthetic_pairs.py
from experiments import config as config_lib
from experiments.training import train
from menet_tf import data as data_lib
from menet_tf.patch_source import CACHE_MODES, make_patch_source, make_source_epoch_dataset

RAIN100L = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "shared",
                        "data", "Rain100L")


def batches(dataset):
    return [(r.numpy(), c.numpy()) for r, c in dataset]


def assert_same_batches(pairs, crop, batch, tmp_path, steps=None):
    rainy, clean, _ = data_lib.make_patches(pairs, crop_size=crop)
    want = batches(data_lib.make_epoch_dataset(rainy, clean, batch, seed=5, start_epoch=0, epochs=2,
                                               steps_per_epoch=steps))
    assert len(want) >= 2
    for mode in CACHE_MODES:
        source = make_patch_source(pairs, crop, mode=mode, cache_dir=str(tmp_path / f"cache_{mode}"))
        assert len(source) == len(rainy)
        got = batches(make_source_epoch_dataset(source, batch, seed=5, start_epoch=0, epochs=2, steps_per_epoch=steps))
        assert len(got) == len(want), mode
        for (gr, gc), (wr, wc) in zip(got, want):
            assert gr.dtype == wr.dtype == np.float32
            np.testing.assert_array_equal(gr, wr, err_msg=mode)
            np.testing.assert_array_equal(gc, wc, err_msg=mode)
        if mode == "disk":
            assert len(os.listdir(tmp_path / "cache_disk")) == len(rainy) // data_lib.CROPS_PER_IMAGE


def test_every_cache_mode_gives_the_landed_batches_on_synthetic_pairs(tmp_path):
    folder = tmp_path / "pairs"
    for k, size in enumerate([(40, 44), (37, 53), (45, 39)]):  # odd sizes: the centre crop's rounding
        synthetic_pairs.make_pairs(folder / str(k), n=2, size=size, seed=k)
    pairs = [p for k in range(3) for p in data_lib.find_pairs(str(folder / str(k)))]
    assert_same_batches(pairs, 32, 6, tmp_path)


@pytest.mark.skipif(not os.path.isdir(RAIN100L), reason="../shared/data/Rain100L is absent")
def test_every_cache_mode_gives_the_landed_batches_on_rain100l(tmp_path):
    pairs = data_lib.find_pairs(RAIN100L)[:12]  # 120 patches of the real 481 x 321 pairs
    assert_same_batches(pairs, 224, 20, tmp_path)


@pytest.mark.parametrize("mode", ["disk", "none"])
def test_resume_in_each_cache_mode_equals_a_straight_memory_run(mode, tmp_path, restore_op_determinism):
    data = synthetic_pairs.make_pairs(tmp_path / "pairs")
    base = config_lib.TrainConfig(
        losses=("p", "e"), weighting="lb", num_res_blocks=1, crop_size=16, batch_size=4, epochs=2,
        lr_decay_epochs=1, seed=3, deterministic=True, jit_compile=False, data_dir=data)
    straight, _ = train(dataclasses.replace(base, model_dir=str(tmp_path / "memory")), verbose=0)
    cfg = dataclasses.replace(base, model_dir=str(tmp_path / mode), cache=mode)
    train(dataclasses.replace(cfg, epochs=1), verbose=0)
    resumed, _ = train(cfg, verbose=0)
    for a, b in zip(straight.net.weights, resumed.net.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6, err_msg=a.path)


@pytest.fixture
def restore_op_determinism():
    from tensorflow.python.framework import config as tf_config

    was = tf_config.is_op_determinism_enabled()
    yield
    if not was:
        tf_config.disable_op_determinism()
