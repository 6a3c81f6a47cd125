"""Padding, whole-image and tiled inference (menet_tf.inference) against independent references:
numpy's reflect padding, the Keras net's own output, exact records of the shapes the net is called on."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from menet_tf import inference as I
from menet_tf.model import build_derain_net


def reference_derain(net, image, multiple):
    """The Keras net on a numpy reflect-padded batch, cropped back: the independent reference."""
    batch = np.asarray(image, np.float32)
    single = batch.ndim == 3
    if single:
        batch = batch[None]
    h, w = batch.shape[1:3]
    pads = ((0, 0), (0, -h % multiple), (0, -w % multiple), (0, 0))
    out = net(np.pad(batch, pads, mode="reflect"), training=False).numpy()[:, :h, :w]
    return out[0] if single else out


def smooth_image(h, w, seed=0):
    """A photo-like test image: smooth colour gradients plus texture, uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([128 + 100 * np.sin(6 * x + c) * np.cos(4 * y - c) for c in (0.0, 1.0, 2.0)], -1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def nets():
    keras.utils.set_random_seed(3)
    return {"plain": build_derain_net(1), "ca": build_derain_net(1, channel_attention=True)}


@pytest.mark.parametrize("h,w", [(1, 1), (1, 6), (2, 3), (3, 17), (5, 7), (17, 33), (16, 16)])
@pytest.mark.parametrize("multiple", [4, 16])
def test_pad_to_multiple_equals_numpy_reflect_for_any_size(h, w, multiple):
    # tiny sizes need pads larger than the image: numpy reflects repeatedly (and repeats a 1-px axis)
    x = np.random.default_rng(h * 100 + w).normal(size=(2, h, w, 3)).astype(np.float32)
    want = np.pad(x, ((0, 0), (0, -h % multiple), (0, -w % multiple), (0, 0)), mode="reflect")
    got = I.pad_to_multiple(tf.constant(x), multiple).numpy()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(I.pad_to_multiple(x[0], multiple).numpy(), want[0])  # unbatched


def test_pad_to_multiple_in_a_dynamic_shape_graph():
    fn = tf.function(lambda x: I.pad_to_multiple(x, 16), input_signature=[tf.TensorSpec([None, None, None, 3])])
    x = np.arange(5 * 21 * 3, dtype=np.float32).reshape(1, 5, 21, 3)
    np.testing.assert_array_equal(fn(x).numpy(), np.pad(x, ((0, 0), (0, 11), (0, 11), (0, 0)), mode="reflect"))


def test_receptive_radius_is_exact_for_one_block(nets):
    """Perturbing one input pixel changes outputs exactly up to receptive_radius(1) = 25 px away."""
    net = nets["plain"]
    radius = I.receptive_radius(1)
    assert radius == 25
    assert (I.receptive_radius(8), I.receptive_radius(16)) == (81, 145)
    x = np.random.default_rng(0).uniform(0, 255, (1, 96, 96, 3)).astype(np.float32)
    base = net(x, training=False).numpy()
    reach = 0
    for p in [(48, 48), (49, 49), (50, 50), (51, 51)]:  # the 4 phases of the space_to_depth grid
        x2 = x.copy()
        x2[0, p[0], p[1]] += 60.0
        changed = np.abs(net(x2, training=False).numpy() - base).max(-1)[0] > 0
        ys, xs = np.nonzero(changed)
        reach = max(reach, np.abs(ys - p[0]).max(), np.abs(xs - p[1]).max())
    assert reach == radius  # never beyond the radius, and the bound is attained


@pytest.mark.parametrize("kind,multiple", [("plain", 4), ("ca", 16)])
def test_derain_image_any_size_equals_padded_net(nets, kind, multiple):
    net = nets[kind]
    batch = np.stack([smooth_image(37, 53, 1), smooth_image(37, 53, 2)])
    got = I.derain_image(net, batch, multiple)
    assert got.shape == batch.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, reference_derain(net, batch, multiple), atol=1e-3)
    single = I.derain_image(net, batch[0].astype(np.float32), multiple)  # float input, no batch axis
    np.testing.assert_allclose(single, got[0], atol=1e-3)


def test_tiles_partition_unity_and_identity_fn_reproduces_image():
    """The blend weights of all tiles sum to 1 everywhere, so an identity 'net' returns the image."""
    h, w, tile, overlap = 203, 331, 96, 40
    for size in (h, w):
        starts = I.tile_starts(size, tile, overlap)
        total = np.zeros(size)
        for i, s in enumerate(starts):
            total[s : min(s + tile, size)] += I.tile_weights_1d(starts, i, size, tile, overlap, I.default_margin(overlap))
        np.testing.assert_allclose(total, 1.0, atol=1e-12)
    image = smooth_image(h, w)
    out = I.derain_tiled(lambda x: x, image, tile=tile, overlap=overlap, multiple=4)
    np.testing.assert_allclose(out, image.astype(np.float32), atol=1e-3)
    out8 = I.derain_tiled(lambda x: x, image, tile=tile, overlap=overlap, multiple=4, out_dtype=np.uint8)
    np.testing.assert_array_equal(out8, image)


def test_tiled_never_calls_the_net_on_more_than_a_tile(nets):
    h, w, tile, overlap = 300, 413, 96, 32
    fn = I.padded_fn(nets["plain"], 4)
    calls = []

    def recording(x):
        calls.append(tuple(x.shape))
        return fn(x)

    I.derain_tiled(recording, smooth_image(h, w), tile=tile, overlap=overlap, multiple=4)
    assert len(calls) == I.tile_count(h, w, tile, overlap) == len(I.tile_starts(h, tile, overlap)) * len(I.tile_starts(w, tile, overlap))
    assert all(c[0] == 1 and c[1] <= tile and c[2] <= tile for c in calls)
    assert max(c[1] * c[2] for c in calls) == tile * tile


def test_tiled_equals_whole_image_without_ca(nets):
    """No CA: with the auto overlap (margin >= receptive radius) tiles reproduce whole-image inference:
    to float rounding away from the seams, and within 0.5 grey levels on them."""
    net = nets["plain"]
    radius, multiple = I.receptive_radius(1), 4
    overlap = I.auto_overlap(radius, multiple)
    tile = 2 * overlap
    image = smooth_image(301, 415, seed=5)  # 2 x 3 tiles, the last of each row/column clipped
    whole = reference_derain(net, image, multiple)
    tiled = I.derain_tiled(I.padded_fn(net, multiple), image, tile=tile, overlap=overlap, multiple=multiple)
    seams = I.seam_mask(*image.shape[:2], tile, overlap)
    assert seams.any() and (~seams).any()
    diff = np.abs(tiled - whole).max(-1)
    assert diff[~seams].max() <= 1e-3
    assert diff[seams].max() <= 0.5
    assert np.abs(whole - image).mean() > 5  # the net really changes the image (not a trivial pass-through)


def test_tiled_with_ca_single_tile_is_whole_image_and_tiles_differ(nets):
    """CA averages over the whole input: one tile covering the image is exact; several tiles are not
    (documented in docs/deployment.md)."""
    net, multiple = nets["ca"], 16
    image = smooth_image(200, 250, seed=6)
    whole = reference_derain(net, image, multiple)
    fn = I.padded_fn(net, multiple)
    one = I.derain_tiled(fn, image, tile=256, overlap=96, multiple=multiple)
    np.testing.assert_allclose(one, whole, atol=1e-3)
    several = I.derain_tiled(fn, image, tile=128, overlap=32, multiple=multiple)
    seams = I.seam_mask(200, 250, 128, 32)
    assert np.abs(several - whole).max(-1)[~seams].max() > 1e-2


def test_mixed_precision_policy_keeps_float32_output():
    try:
        assert I.configure_precision(True, "cpu") == "mixed_bfloat16"
        assert I.configure_precision(True, "gpu") == "mixed_float16"
        I.configure_precision(True, "cpu")
        net = build_derain_net(1)
        assert net.get_layer("layer5").compute_dtype == "bfloat16"
        out = I.derain_image(net, smooth_image(20, 28), 4)
        assert out.dtype == np.float32 and out.shape == (20, 28, 3)
        assert 0.0 <= out.min() and out.max() <= 255.0
    finally:
        assert I.configure_precision(False) == "float32"
