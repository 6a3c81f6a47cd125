"""Padding, whole-image and tiled inference (menet_tf.inference) against independent references:
numpy's reflect padding, the Keras net's own output, exact records of the shapes the net is called on."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from menet_tf.layers import FusedBatchNorm
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
    """A bare function (one pass) on a CA net: one tile covering the image is exact; several tiles are not,
    as each sees its own attention (derain_tiled given the Keras net runs two passes instead, below)."""
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


# ------------------------------------------------------------ exact tiles with channel attention (CA)


def randomize_bn(net, seed):
    """Non-trivial BN statistics: every BN's moving mean/variance are first set to the statistics of a
    photo-like image (one training-mode pass with momentum 0, so activations have a sensible scale and
    CA's sigmoid is not saturated), then perturbed at random, as are gamma and beta; layer5's kernel is
    scaled so the residual is photo-sized (~10 grey levels) rather than ~1."""
    rng = np.random.default_rng(seed)
    bns = [layer for layer in net._flatten_layers() if isinstance(layer, FusedBatchNorm)]
    assert len(bns) >= 11
    for bn in bns:
        bn.momentum = 0.0
    net(smooth_image(128, 128, seed)[None].astype(np.float32), training=True)
    for bn in bns:
        bn.momentum = 0.99
        n = bn.moving_mean.shape[0]
        std = np.sqrt(bn.moving_variance.numpy())
        bn.moving_mean.assign(bn.moving_mean.numpy() + rng.normal(0, 0.3, n) * std)
        bn.moving_variance.assign(bn.moving_variance.numpy() * rng.uniform(0.5, 2.0, n))
        bn.gamma.assign(rng.uniform(0.5, 1.5, n))
        bn.beta.assign(rng.normal(0, 0.3, n))
    kernel = net.get_layer("layer5").kernel
    kernel.assign(kernel * 20.0)
    return net


@pytest.fixture(scope="module")
def ca_nets():
    keras.utils.set_random_seed(4)
    return {v: randomize_bn(build_derain_net(1, channel_attention=True, ca_variant=v), seed=i)
            for i, v in enumerate(("released", "scale_only"))}


def whole_image_attention(net, padded):
    """The whole-image path's own a: ChannelAttention.attention on layer2_relu's output."""
    feats = keras.Model(net.input, net.get_layer("layer2_relu").output)(padded, training=False)
    return net.get_layer("channel_attention").attention(feats, training=False).numpy()


def test_ca_receptive_radius_is_exact(ca_nets):
    """A cell of CA's pre-mean map changes under a single-pixel perturbation at most
    ca_receptive_radius() = 46 px outside its 16 x 16 block, and that bound is attained."""
    assert I.ca_receptive_radius() == 46 and I.CA_MARGIN == 48
    map_fn, _ = I.ca_fns(ca_nets["released"])
    x = smooth_image(192, 192, seed=8).astype(np.float32)[None]
    base = map_fn(tf.constant(x)).numpy()[0]
    assert base.shape == (12, 12, 64)
    reach = 0
    for k in range(16):  # every phase of the 16-pixel grid, along the diagonal
        p = 80 + k
        x2 = x.copy()
        x2[0, p, p] += 80.0
        changed = np.abs(map_fn(tf.constant(x2)).numpy()[0] - base).max(-1) > 0
        for cy, cx in zip(*np.nonzero(changed)):
            dy = max(16 * cy - p, p - (16 * cy + 15), 0)
            dx = max(16 * cx - p, p - (16 * cx + 15), 0)
            reach = max(reach, dy, dx)
    assert reach == I.ca_receptive_radius()


@pytest.mark.parametrize("size", [112, 128, 208, 400, 1024])
@pytest.mark.parametrize("tile", [112, 128, 256])
def test_ca_pass1_cores_partition_the_map_and_keep_the_margin(size, tile):
    ranges = I.ca_core_ranges(size, tile)
    assert ranges[0][2] == 0 and ranges[-1][3] == size
    for (s, e, c0, c1), nxt in zip(ranges, ranges[1:] + [None]):
        assert s % 16 == 0 and e - s <= tile and s <= c0 < c1 <= e and c0 % 16 == 0 and c1 % 16 == 0
        assert c0 == 0 or c0 - s >= I.CA_MARGIN  # inner borders: the cells' receptive field stays inside
        assert c1 == size or e - c1 >= I.CA_MARGIN
        if nxt is not None:
            assert nxt[2] == c1  # cores are contiguous: a partition


def test_split_models_share_the_nets_layers_and_reproduce_it(ca_nets):
    from menet_tf.model import split_at_channel_attention

    for net in ca_nets.values():
        map_model, fixed_model = split_at_channel_attention(net)
        ids = {id(v) for v in net.weights}
        assert all(id(v) in ids for v in map_model.weights + fixed_model.weights)  # no copies
        x = tf.constant(smooth_image(64, 96, seed=2).astype(np.float32)[None])
        a = tf.sigmoid(tf.reduce_mean(map_model(x, training=False), axis=[1, 2], keepdims=True))
        np.testing.assert_allclose(a.numpy(), whole_image_attention(net, x), atol=1e-6)
        np.testing.assert_allclose(fixed_model([x, a], training=False).numpy(), net(x, training=False).numpy(), atol=1e-3)
    with pytest.raises(ValueError, match="channel_attention"):
        split_at_channel_attention(build_derain_net(1))


@pytest.mark.parametrize("variant", ["released", "scale_only"])
def test_tiled_with_ca_two_passes_equals_whole_image(ca_nets, variant):
    """CA net, image not a multiple of 16 (padded once, as the whole-image path pads): pass 1's attention
    equals the whole-image ChannelAttention.attention of the padded image; the tiles then reproduce
    whole-image inference as without CA; neither pass ever sees more than a tile; one-pass tiles
    (tile-local attention) do not."""
    net, multiple = ca_nets[variant], 16
    h, w = 171, 203  # padded to 176 x 208
    tile, overlap, margin = 128, 64, I.receptive_radius(1)  # 2 x 3 tiles, margin = radius: exact
    image = smooth_image(h, w, seed=5)
    padded = np.pad(image.astype(np.float32), ((0, 5), (0, 5), (0, 0)), mode="reflect")[None]
    whole = reference_derain(net, image, multiple)
    assert np.abs(whole - image).mean() > 3  # the net really changes the image

    map_fn, fixed_fn = I.ca_fns(net)
    map_calls, fixed_calls, attentions, progress = [], [], [], []

    def rec_map(x):
        map_calls.append(tuple(x.shape))
        return map_fn(x)

    def rec_fixed(x, a):
        fixed_calls.append(tuple(x.shape))
        attentions.append(a.numpy())
        return fixed_fn(x, a)

    tiled = I.derain_tiled_ca(rec_map, rec_fixed, image, tile=tile, overlap=overlap, multiple=multiple,
                              margin=margin, progress=lambda d, t: progress.append((d, t)))
    assert tiled.shape == image.shape and tiled.dtype == np.float32
    # pass 1: the whole image's attention
    want_a = whole_image_attention(net, padded)
    assert np.mean((want_a > 0.05) & (want_a < 0.95)) > 0.8  # mostly not saturated: the mean matters
    assert all(np.abs(a - want_a).max() <= 1e-5 for a in attentions)
    # the net never runs on more than a tile: pass-1 windows and pass-2 tiles, multiples of 16
    n1, n2 = I.tiled_calls(h, w, tile, overlap, channel_attention=True)
    assert (len(map_calls), len(fixed_calls)) == (n1, n2) == (12, 6)
    assert all(c[0] == 1 and c[1] <= tile and c[2] <= tile and c[1] % 16 == 0 == c[2] % 16 for c in map_calls + fixed_calls)
    assert progress == [(k, n1 + n2) for k in range(1, n1 + n2 + 1)]
    # exact up to float rounding away from the seams, within 0.5 grey levels on them
    seams = I.seam_mask(h, w, tile, overlap)
    diff = np.abs(tiled - whole).max(-1)
    assert diff[~seams].max() <= 1e-3
    assert diff[seams].max() <= 0.5
    # derain_tiled given the Keras net takes this path by itself (uint8 output: rounded)
    auto = I.derain_tiled(net, image, tile=tile, overlap=overlap, multiple=multiple, margin=margin, out_dtype=np.uint8)
    assert np.abs(auto.astype(np.float32) - tiled).max() <= 0.5 + 1e-3
    # a bare function (one pass, tile-local attention) is visibly different inside the tiles
    one_pass = I.derain_tiled(I.padded_fn(net, multiple), image, tile=tile, overlap=overlap, multiple=multiple, margin=margin)
    assert np.abs(one_pass - whole).max(-1)[~seams].max() > 0.1


def test_tiled_with_ca_rejects_tiles_below_the_pass1_margin(ca_nets):
    with pytest.raises(ValueError, match="tile >= 112"):
        I.derain_tiled(ca_nets["released"], smooth_image(100, 200), tile=96, overlap=32, multiple=16)


def test_derain_at_scale_identities():
    """The rain layer found on the shrunk image is enlarged and subtracted: a net that removes nothing
    returns the image exactly; one that removes a constant c removes c everywhere (bilinear enlargement
    of a constant is that constant); scale 1 is the net itself."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (45, 67, 3)).astype(np.float32)
    calls = []

    def identity(x):
        calls.append(x.shape)
        return x

    np.testing.assert_array_equal(I.derain_at_scale(identity, image, 3.0), image)
    assert calls == [(15, 22, 3)]  # round(45/3), round(67/3)
    got = I.derain_at_scale(lambda x: x - 10.0, image, 2.5)
    np.testing.assert_allclose(got, np.clip(image - 10.0, 0, 255), atol=1e-3)
    np.testing.assert_array_equal(I.derain_at_scale(lambda x: x * 0.5, image, 1.0), image * 0.5)
    # the shrunk image is the area average: a 2x2 block mean at scale 2
    small = I.shrink_for_rain_scale(image[:44, :66], 2.0)
    np.testing.assert_allclose(small, image[:44, :66].reshape(22, 2, 33, 2, 3).mean((1, 3)), atol=1e-3)


def test_auto_rain_scale_reads_the_short_side():
    assert I.auto_rain_scale(321, 481) == 1.0  # a benchmark image: untouched
    assert I.auto_rain_scale(1440, 1920) == pytest.approx(1440 / 481)
    assert I.auto_rain_scale(100, 50) == 1.0 and I.auto_rain_scale(20000, 30000) == 8.0


@pytest.mark.parametrize("batch", [False, True])
def test_self_ensemble_is_the_mean_of_the_four_flips_flipped_back(batch):
    """A run that adds 3 x row + column is not flip-equivariant: flipped back, the four outputs add
    3i + j, 3i + (W-1-j), 3(H-1-i) + j and 3(H-1-i) + (W-1-j), whose mean is 3(H-1)/2 + (W-1)/2 everywhere;
    each pass k sees image k of (x, x left-right, x up-down, x turned half)."""
    rng = np.random.default_rng(5)
    h, w = 7, 10
    image = rng.integers(0, 200, (3, h, w, 3) if batch else (h, w, 3)).astype(np.float32)
    ramp = (3 * np.arange(h)[:, None] + np.arange(w)[None, :])[..., None].astype(np.float32)
    seen = []

    def run(x, k):
        seen.append((k, x.copy()))
        return x + ramp

    got = I.self_ensemble(run, image, batch=batch)
    np.testing.assert_array_equal(got, image + np.float32(3 * (h - 1) / 2 + (w - 1) / 2))
    lr, ud = (2, 1) if batch else (1, 0)
    want = [image, np.flip(image, lr), np.flip(image, ud), np.flip(image, (ud, lr))]
    assert [k for k, _ in seen] == [0, 1, 2, 3]
    for (_, x), ref in zip(seen, want):
        np.testing.assert_array_equal(x, ref)


def test_derainer_self_ensemble_equals_the_mean_of_flipped_derains_whole_and_tiled(nets):
    """Derainer(self_ensemble=True): the mean of the plain Derainer on the four flipped images, each flipped
    back (an independent numpy mean); the same through exact CA tiles; progress counts 4 x the net calls;
    derain_batch gives derain's bytes."""
    from menet_tf.derainer import Derainer, to_uint8

    net = nets["ca"]
    image = smooth_image(150, 260, seed=4)

    def make(ensemble, tile=0):
        return Derainer(I.padded_fn(net, 16), net, 16, I.receptive_radius(1), True, "test", tile=tile,
                        self_ensemble=ensemble)

    for tile in (0, 192):
        plain, ens = make(False, tile), make(True, tile)
        flips = [(), (1,), (0,), (0, 1)]
        ref = np.mean([np.flip(plain.derain(np.flip(image, f), exact_float=True), f) for f in flips], axis=0)
        calls = []
        got = ens.derain(image, exact_float=True, progress=lambda done, total: calls.append((done, total)))
        np.testing.assert_allclose(got, ref, atol=1e-3)
        plan = ens.plan(150, 260)
        assert plan.passes == 4 and plan.net_calls == 4 * (plan.windows + plan.tiles)
        assert (plan.tiles > 1) == bool(tile)
        assert calls[-1] == (plan.net_calls, plan.net_calls) and len(calls) == plan.net_calls
        np.testing.assert_array_equal(ens.derain(image), to_uint8(got))
    whole = make(True)
    frames = np.stack([image, smooth_image(150, 260, seed=9)])
    np.testing.assert_array_equal(whole.derain_batch(frames), np.stack([whole.derain(f) for f in frames]))
