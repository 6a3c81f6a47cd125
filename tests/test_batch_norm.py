"""The fused batch-norm layer (TF's FusedBatchNormV3) against a float64 numpy re-derivation and against
keras.layers.BatchNormalization with the spec's settings; BN folding in inference; the cheaper custom
gradients of the step (clip, mean square); a model_dir and .keras file written before the change."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from menet_tf import layers as L
from menet_tf import losses
from menet_tf.model import load_net

MOMENTUM, EPS = 0.99, 1e-3
FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "legacy_bn")


def numpy_bn_train(x, gamma, beta, dy):
    """Batch statistics over all axes but the last (biased variance); y and dL/dx, dgamma, dbeta for the
    upstream gradient dy; all in float64."""
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    axes = tuple(range(x.ndim - 1))
    mean, var = x.mean(axes), x.var(axes)
    inv = 1.0 / np.sqrt(var + EPS)
    xhat = (x - mean) * inv
    y = gamma * xhat + beta
    dgamma, dbeta = (dy * xhat).sum(axes), dy.sum(axes)
    dx = gamma * inv * (dy - dy.mean(axes) - xhat * (dy * xhat).mean(axes))
    return y, dx, dgamma, dbeta, mean, var


def numpy_bn_infer(x, gamma, beta, mean, var):
    return (x.astype(np.float64) - mean) / np.sqrt(var + EPS) * gamma + beta


def close(actual, expected, rtol=1e-5):
    """Within rtol relative to the reference's largest magnitude (elementwise relative error is
    meaningless where a gradient crosses zero)."""
    expected = np.asarray(expected, np.float64)
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=0, atol=rtol * np.abs(expected).max())


def step_fn(layer, training, jit=False):
    @tf.function(jit_compile=jit)
    def step(x, c):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=training)
            loss = tf.reduce_sum(y * c)  # dL/dy = c
        return (y, *tape.gradient(loss, [x, layer.gamma, layer.beta]))

    return step


def init_pair(shape, rng):
    fused = L.FusedBatchNorm(momentum=MOMENTUM, epsilon=EPS)
    ref = keras.layers.BatchNormalization(momentum=MOMENTUM, epsilon=EPS)
    fused.build(shape)
    ref.build(shape)
    assert [v.name for v in fused.weights] == [v.name for v in ref.weights]  # same order, same names
    for a, b in zip(fused.weights, ref.weights):
        value = rng.uniform(0.5, 1.5, a.shape).astype(np.float32)
        a.assign(value)
        b.assign(value)
    return fused, ref


@pytest.mark.parametrize("jit", [False, True])
def test_training_steps_match_numpy_and_keras_batch_norm(jit):
    rng = np.random.default_rng(0)
    shape = (4, 6, 10, 8)
    fused, ref = init_pair(shape, rng)
    mm, mv = fused.moving_mean.numpy().astype(np.float64), fused.moving_variance.numpy().astype(np.float64)
    gamma, beta = fused.gamma.numpy().astype(np.float64), fused.beta.numpy().astype(np.float64)
    f_step, r_step = step_fn(fused, True, jit), step_fn(ref, True, jit)
    for i in range(4):  # several steps: the moving statistics accumulate
        x = (rng.normal(0, 1, shape) * rng.uniform(0.5, 4, shape[-1]) + rng.uniform(-3, 3, shape[-1])).astype(np.float32)
        c = rng.normal(0, 1, shape).astype(np.float32)
        y, dx, dg, db, mean, var = numpy_bn_train(x, gamma, beta, c)
        mm, mv = MOMENTUM * mm + (1 - MOMENTUM) * mean, MOMENTUM * mv + (1 - MOMENTUM) * var
        got = f_step(tf.constant(x), tf.constant(c))
        want_keras = r_step(tf.constant(x), tf.constant(c))
        for g, k, n in zip(got, want_keras, (y, dx, dg, db)):
            close(g, n)
            close(g, k)
        close(fused.moving_mean.numpy(), mm)
        close(fused.moving_variance.numpy(), mv)
        close(fused.moving_variance.numpy(), ref.moving_variance.numpy())
        close(fused.moving_mean.numpy(), ref.moving_mean.numpy())


@pytest.mark.parametrize("jit", [False, True])
def test_inference_mode_matches_numpy_and_keras_and_leaves_the_statistics(jit):
    rng = np.random.default_rng(1)
    shape = (3, 5, 7, 6)
    fused, ref = init_pair(shape, rng)
    before = [v.numpy().copy() for v in fused.weights]
    x = rng.normal(1, 2, shape).astype(np.float32)
    c = rng.normal(0, 1, shape).astype(np.float32)
    y, dx, dg, db = step_fn(fused, False, jit)(tf.constant(x), tf.constant(c))
    gamma, beta, mean, var = (w.astype(np.float64) for w in before)
    expected = numpy_bn_infer(x, gamma, beta, mean, var)
    close(y, expected)
    close(dx, c * gamma / np.sqrt(var + EPS))  # inference BN is affine in x
    close(dg, (c * (x - mean) / np.sqrt(var + EPS)).sum((0, 1, 2)))
    close(db, c.sum((0, 1, 2)))
    close(y, ref(x, training=False))
    for b, a in zip(before, fused.weights):
        np.testing.assert_array_equal(a.numpy(), b)
    scale, offset = fused.folded_scale_and_offset()
    close(x * scale.numpy() + offset.numpy(), expected)


def test_a_frozen_layer_uses_its_moving_statistics_even_when_training():
    rng = np.random.default_rng(2)
    fused, _ = init_pair((2, 4, 4, 3), rng)
    fused.trainable = False
    x = rng.normal(0, 3, (2, 4, 4, 3)).astype(np.float32)
    w = [v.numpy() for v in fused.weights]
    close(fused(x, training=True), numpy_bn_infer(x, *w))
    np.testing.assert_array_equal(fused.moving_mean.numpy(), w[2])


def test_bfloat16_input_gives_bfloat16_output_close_to_float32():
    rng = np.random.default_rng(3)
    fused, _ = init_pair((4, 8, 8, 16), rng)
    half = L.FusedBatchNorm(momentum=MOMENTUM, epsilon=EPS, dtype="mixed_bfloat16")
    half.build((4, 8, 8, 16))
    for a, b in zip(half.weights, fused.weights):
        assert a.dtype == "float32"
        a.assign(b)
    x = rng.normal(0, 2, (4, 8, 8, 16)).astype(np.float32)
    for training in (True, False):
        y16 = half(x, training=training)
        assert y16.dtype == tf.bfloat16
        y32 = fused(x, training=training)
        close(tf.cast(y16, tf.float32), y32, rtol=2e-2)
    close(half.moving_mean.numpy(), fused.moving_mean.numpy(), rtol=1e-2)


def test_config_round_trip_and_registered_name():
    layer = L.FusedBatchNorm(momentum=0.9, epsilon=1e-4, name="bn")
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(again, L.FusedBatchNorm)
    assert (again.momentum, again.epsilon, again.name) == (0.9, 1e-4, "bn")
    assert keras.saving.get_registered_name(L.FusedBatchNorm) == "menet_tf>FusedBatchNorm"


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_conv_bn_inference_folds_the_batch_norm_into_the_convolution(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        rng = np.random.default_rng(4)
        layer = L.ConvBN(8, 5, relu=True)
        x = rng.uniform(0, 4, (2, 12, 12, 5)).astype(np.float32)
        layer(x, training=True)
        for v in layer.bn.weights:
            v.assign(rng.uniform(0.5, 1.5, v.shape).astype(np.float32))
        folded = layer(x, training=False)
        gamma, beta, mean, var = (v.numpy().astype(np.float64) for v in layer.bn.weights)
        conv = tf.nn.conv2d(x.astype(np.float64), layer.conv.kernel.numpy().astype(np.float64), 1, "SAME").numpy()
        expected = np.maximum(numpy_bn_infer(conv, gamma, beta, mean, var), 0)
        if policy == "float32":
            assert folded.dtype == tf.float32
            close(folded, expected)
        else:
            assert folded.dtype == tf.bfloat16
            close(tf.cast(folded, tf.float32), expected, rtol=2e-2)
        # the variables are untouched, and training mode is conv then BN on the batch statistics
        y_train = layer(x, training=True)
        bstats = numpy_bn_train(conv, gamma, beta, np.zeros_like(conv))[0]
        close(tf.cast(y_train, tf.float32), np.maximum(bstats, 0), rtol=1e-5 if policy == "float32" else 3e-2)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_clip_gradient_equals_tf_clip_by_value_gradient():
    x = tf.constant([[-3.0, 0.0, 0.5, 100.0, 255.0, 255.5, 300.0]])
    dy = tf.constant([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]])
    grads = []
    for fn in (lambda t: L.clip_with_pass_through_gradient(t, 0.0, 255.0), lambda t: tf.clip_by_value(t, 0.0, 255.0)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        grads.append((y.numpy(), tape.gradient(y, x, output_gradients=dy).numpy()))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    np.testing.assert_array_equal(grads[0][1], grads[1][1])
    np.testing.assert_array_equal(grads[0][1], [[0, 2, 3, 4, 5, 0, 0]])


def test_mean_square_value_and_gradient_equal_autodiff():
    x = tf.constant(np.random.default_rng(5).normal(0, 10, (3, 7, 5, 2)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        ours = losses.mean_square(x)
        ref = tf.reduce_mean(tf.square(x))
    close(ours, ref)
    close(tape.gradient(ours, x), tape.gradient(ref, x))
    close(tape.gradient(ours, x), 2 * x.numpy().astype(np.float64) / x.shape.num_elements())


def test_a_model_dir_and_keras_file_written_before_the_fused_layer_load_and_give_the_same_outputs():
    """tests/fixtures/legacy_bn was written by the code that used keras.layers.BatchNormalization
    (tests/fixtures/make_legacy_bn_fixture.py at 624e37e)."""
    ref = np.load(os.path.join(FIXTURE, "outputs.npz"))
    x = ref["image"].astype(np.float32)
    nets = [load_net(os.path.join(FIXTURE, "model_dir")),
            keras.models.load_model(os.path.join(FIXTURE, "net.keras"), safe_mode=True)]
    for net in nets:
        assert isinstance(net.get_layer("layer1").bn, L.FusedBatchNorm)
        # outputs are 0..255; float rounding of the folded / fused kernels only
        np.testing.assert_allclose(net(x, training=False).numpy(), ref["inference"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(nets[0](x, training=True).numpy(), ref["training"], rtol=0, atol=1e-3)
