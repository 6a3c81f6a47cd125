"""The network against the spec: parameter counts, exact inverses, shapes, range, init, save/load."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from menet_tf import layers as L
from menet_tf.model import build_derain_net, load_net, net_config, required_multiple, save_net


def n_trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


@pytest.mark.parametrize(
    "blocks, ca, expected",
    [(8, False, 671_680), (8, True, 815_680), (16, True, 1_407_552)],
)
def test_trainable_parameter_counts_match_released_graphs(blocks, ca, expected):
    assert n_trainable(build_derain_net(blocks, ca)) == expected


def test_parameter_count_is_rederived_from_the_layer_list():
    # Independent arithmetic from spec section 1: conv k*k*cin*cout (no bias) + BN gamma/beta.
    def conv_bn(cin, cout, k=3):
        return k * k * cin * cout + 2 * cout

    body = conv_bn(12, 16) + conv_bn(64, 64) + conv_bn(64, 64) + conv_bn(16, 16) + 3 * 3 * 16 * 12
    block = 2 * conv_bn(64, 64)
    ca = conv_bn(256, 64, 1) + conv_bn(64, 64) + conv_bn(256, 64, 1) + conv_bn(64, 64) + conv_bn(64, 64)
    for blocks, with_ca in [(3, False), (5, True)]:
        assert n_trainable(build_derain_net(blocks, with_ca)) == body + blocks * block + (ca if with_ca else 0)


def test_depth_to_space_inverts_space_to_depth_bit_for_bit():
    x = tf.random.uniform((2, 24, 40, 3), 0, 255, seed=1)
    for r in (2, 4):
        y = L.DepthToSpace(r)(L.SpaceToDepth(r)(x))
        np.testing.assert_array_equal(y.numpy(), x.numpy())


def test_space_to_depth_matches_numpy_reshape():
    x = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)
    b, h, w, c = x.shape
    ref = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h // 2, w // 2, 4 * c)
    np.testing.assert_array_equal(L.SpaceToDepth(2)(x).numpy(), ref)


@pytest.mark.parametrize("ca", [False, True])
def test_output_shape_equals_input_shape_for_allowed_sizes(ca):
    net = build_derain_net(1, ca)
    m = required_multiple(ca)
    assert m == (16 if ca else 4)
    for h, w in [(m, m), (2 * m, 3 * m), (5 * m, m)]:
        x = tf.random.uniform((1, h, w, 3), 0, 255)
        assert net(x).shape == (1, h, w, 3)


def test_outputs_are_clipped_to_0_255_and_equal_clip_of_input_plus_residual():
    net = build_derain_net(1, False)
    k = net.get_layer("layer5").kernel
    k.assign(k * 1000.0)  # a huge residual, so the clip is exercised on both sides
    x = tf.random.uniform((2, 16, 20, 3), 0, 255, seed=3)
    y = net(x).numpy()
    assert y.min() == 0.0 and y.max() == 255.0
    residual_model = keras.Model(net.input, net.get_layer("subpixel2").output)
    np.testing.assert_allclose(y, np.clip(x.numpy() + residual_model(x).numpy(), 0, 255), atol=1e-3)


def test_layer_order_and_names_follow_the_spec():
    net = build_derain_net(8, True)
    names = [layer.name for layer in net.layers]
    order = ["desubpixel1", "layer1", "desubpixel2", "layer2", "channel_attention", "res_block1", "res_block8",
             "long_skip2", "layer3", "subpixel1", "long_skip1", "layer4", "layer5", "subpixel2", "global_residual"]
    assert [n for n in names if n in order] == order
    assert net.get_layer("layer5").kernel.shape == (3, 3, 16, 12)
    assert not net.get_layer("layer5").use_bias
    convs = [w for w in net.weights if "kernel" in w.path]
    assert all("bias" not in w.path for w in net.weights)
    assert len(convs) == 4 + 16 + 5 + 1  # layer1-4 + 8 blocks x 2 + CA's 5 + layer5
    bn = net.get_layer("layer2").bn
    assert (bn.momentum, bn.epsilon, bn.center, bn.scale) == (0.99, 1e-3, True, True)


def test_last_residual_block_has_no_final_relu():
    net = build_derain_net(3, False)
    assert [net.get_layer(f"res_block{i}").final_relu for i in (1, 2, 3)] == [True, True, False]


def test_ca_released_and_scale_only_forms():
    ca = L.ChannelAttention(64, variant="released")
    x = tf.random.normal((2, 8, 12, 64))
    a = ca.attention(x).numpy()
    assert a.shape == (2, 1, 1, 64)
    np.testing.assert_allclose(ca(x).numpy(), x.numpy() + x.numpy() * a, rtol=1e-6)
    only = L.ChannelAttention(64, variant="scale_only")
    only.build(x.shape)
    only.set_weights(ca.get_weights())
    np.testing.assert_allclose(only(x).numpy(), x.numpy() * a, rtol=1e-6)
    with pytest.raises(ValueError, match="variant"):
        L.ChannelAttention(64, variant="nope")


def test_layer1_kernel_stddev_is_the_truncated_normal_one():
    target = 0.8796 * math.sqrt(1.0 / 108)
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        std = float(np.std(build_derain_net(1, False).get_layer("layer1").conv.kernel.numpy()))
        assert abs(std - target) <= 0.1 * target
    # and it is a truncated normal: nothing beyond 2 stddev
    k = build_derain_net(1, False).get_layer("layer2").conv.kernel.numpy()
    assert np.abs(k).max() <= 2 * math.sqrt(1.0 / (9 * 64)) + 1e-7


@pytest.mark.parametrize("ca", [False, True])
def test_keras_file_round_trip_reproduces_outputs_exactly(tmp_path, ca):
    net = build_derain_net(2, ca, ca_variant="released")
    # move BN statistics away from their initial values so they are part of the round trip
    for layer in net.layers:
        for w in layer.non_trainable_weights:
            w.assign(w + tf.random.uniform(w.shape, 0.1, 0.5))
    x = tf.random.uniform((2, 32, 48, 3), 0, 255, seed=5)
    path = str(tmp_path / "net.keras")
    net.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded(x).numpy(), net(x).numpy())
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), net(x, training=False).numpy())


def test_model_dir_round_trip(tmp_path):
    net = build_derain_net(2, True, "scale_only")
    save_net(net, str(tmp_path), net_config(2, True, "scale_only"))
    loaded = load_net(str(tmp_path))
    x = tf.random.uniform((1, 32, 32, 3), 0, 255, seed=2)
    np.testing.assert_array_equal(loaded(x).numpy(), net(x).numpy())
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_net(str(tmp_path / "missing"))


def test_net_compiles_under_xla():
    net = build_derain_net(1, True)
    x = tf.random.uniform((1, 32, 32, 3), 0, 255, seed=4)
    xla = tf.function(lambda t: net(t, training=False), jit_compile=True)
    np.testing.assert_allclose(xla(x).numpy(), net(x, training=False).numpy(), atol=1e-2)


def _randomise_batch_norm_statistics(net, rng):
    """Moving means and variances away from 0 and 1, so that inference exercises them."""
    for v in net.non_trainable_weights:
        if "moving_mean" in v.path:
            v.assign(rng.normal(0, 0.3, v.shape).astype("float32"))
        elif "moving_variance" in v.path:
            v.assign(rng.uniform(0.5, 2.0, v.shape).astype("float32"))


@pytest.mark.parametrize("ca", [False, True])
def test_deepen_gives_the_deeper_net_the_shallower_nets_function(ca):
    """menet_tf.model.deepen: a 5-block net given a trained-looking 2-block net's weights computes the same
    outputs (the identity: source(x)), in inference and with batch statistics, and its three new blocks can
    still learn (their first conv is not zero; only the second BN's gamma and beta are)."""
    from menet_tf.model import deepen

    rng = np.random.default_rng(3)
    keras.utils.set_random_seed(3)
    source = build_derain_net(num_res_blocks=2, channel_attention=ca)
    _randomise_batch_norm_statistics(source, rng)
    for v in source.trainable_weights:  # away from the init (BN gammas 1, betas 0), as trained weights are
        v.assign(v.numpy() + rng.normal(0, 0.05, v.shape).astype("float32"))
    target = build_derain_net(num_res_blocks=5, channel_attention=ca)
    assert deepen(source, target) == 3
    x = tf.constant(rng.uniform(0, 255, (2, 32, 48, 3)).astype("float32"))
    for training in (False, True):
        want, got = source(x, training=training).numpy(), target(x, training=training).numpy()
        assert np.abs(want - source(x * 0.5, training=training).numpy()).max() > 1  # a non-trivial function
        np.testing.assert_allclose(got, want, atol=2e-3, rtol=0)
    for k in (1, 2, 3):
        block = target.get_layer(f"res_block{k}")
        assert not block.conv_bn2.bn.gamma.numpy().any() and not block.conv_bn2.bn.beta.numpy().any()
        assert np.abs(block.conv_bn1.conv.kernel.numpy()).max() > 0.01
    np.testing.assert_array_equal(target.get_layer("res_block5").conv_bn2.conv.kernel.numpy(),
                                  source.get_layer("res_block2").conv_bn2.conv.kernel.numpy())


def _trained_looking(net, rng):
    _randomise_batch_norm_statistics(net, rng)
    for v in net.trainable_weights:
        v.assign(v.numpy() + rng.normal(0, 0.05, v.shape).astype("float32"))
    return net


@pytest.mark.parametrize("start_blocks", [3, 2])
def test_interpolate_is_each_weights_mix_and_its_ends_are_the_two_nets(start_blocks):
    """menet_tf.model.interpolate: alpha 0 computes start's function (also when end was deepened from a
    shallower start), alpha 1 end's, and alpha 0.3 holds 0.7 x start + 0.3 x end in every weight that the two
    share (numpy); a deepened start's new blocks keep end's weights but 0.3 x end's gamma and beta in BN 2."""
    from menet_tf.model import interpolate, net_config_of

    rng = np.random.default_rng(5)
    keras.utils.set_random_seed(5)
    start = _trained_looking(build_derain_net(num_res_blocks=start_blocks, channel_attention=True), rng)
    end = _trained_looking(build_derain_net(num_res_blocks=3, channel_attention=True), rng)
    x = tf.constant(rng.uniform(0, 255, (1, 32, 48, 3)).astype("float32"))
    assert np.abs(start(x).numpy() - end(x).numpy()).max() > 1  # two different functions
    for alpha, want in ((0.0, start), (1.0, end)):
        got = interpolate(start, end, alpha)
        assert net_config_of(got) == net_config_of(end)
        np.testing.assert_allclose(got(x).numpy(), want(x).numpy(), atol=2e-3, rtol=0)
    mid = interpolate(start, end, 0.3)
    added = 3 - start_blocks
    for layer in end.layers:
        if not layer.weights:
            continue
        k = int(layer.name[len("res_block"):]) if layer.name.startswith("res_block") else None
        for v, m in zip(layer.weights, mid.get_layer(layer.name).weights):
            if k is not None and k <= added:  # a new block: end's weights, BN 2's gamma and beta faded in
                scale = 0.3 if ("conv_bn2" in v.path and v.path.rsplit("/", 1)[-1] in ("gamma", "beta")) else 1.0
                np.testing.assert_allclose(m.numpy(), scale * v.numpy(), rtol=1e-6, atol=1e-7)
                continue
            source_name = f"res_block{k - added}" if k is not None else layer.name
            s = start.get_layer(source_name).weights[[w.path.split("/", 1)[1] for w in layer.weights].index(
                v.path.split("/", 1)[1])]
            np.testing.assert_allclose(m.numpy(), 0.7 * s.numpy() + 0.3 * v.numpy(), rtol=1e-6, atol=1e-7)


def test_interpolate_refuses_alpha_outside_0_1_and_another_net():
    from menet_tf.model import interpolate

    a = build_derain_net(num_res_blocks=2, channel_attention=True)
    with pytest.raises(ValueError, match="alpha"):
        interpolate(a, a, 1.5)
    with pytest.raises(ValueError, match="cannot interpolate"):  # no CA against CA
        interpolate(build_derain_net(num_res_blocks=2), a, 0.5)
    with pytest.raises(ValueError, match="cannot deepen"):  # fewer blocks, and no CA
        interpolate(build_derain_net(num_res_blocks=1), a, 0.5)
    with pytest.raises(ValueError, match="cannot deepen"):  # start deeper than end
        interpolate(build_derain_net(num_res_blocks=3, channel_attention=True), a, 0.5)


def test_deepen_refuses_a_deeper_source_or_another_net():
    from menet_tf.model import deepen

    with pytest.raises(ValueError, match="cannot deepen"):
        deepen(build_derain_net(num_res_blocks=3), build_derain_net(num_res_blocks=2))
    with pytest.raises(ValueError, match="cannot deepen"):
        deepen(build_derain_net(num_res_blocks=2), build_derain_net(num_res_blocks=3, channel_attention=True))
