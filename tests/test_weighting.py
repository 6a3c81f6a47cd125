"""GB / LB / fixed weights against numpy float32 re-derivations and spec section 4's identities."""

import numpy as np
import pytest
import tensorflow as tf

from menet_tf import weighting as W


def np_literal(x):
    x = np.asarray(x, np.float32)
    total = np.float32(np.sum(x, dtype=np.float32))
    return np.float32(1.0) - x / total


def test_lb_equals_numpy_literal_float32():
    rng = np.random.default_rng(0)
    for _ in range(20):
        losses = rng.uniform(0.01, 1e4, size=rng.integers(2, 5)).astype(np.float32)
        got = [float(w) for w in W.loss_balance([tf.constant(v) for v in losses])]
        np.testing.assert_allclose(got, np_literal(losses), rtol=1e-6, atol=1e-7)


def test_gb_equals_numpy_from_norms_and_stable_equals_others_over_total():
    norms = np.array([3.0, 0.5, 7.25], np.float32)
    got = [float(w) for w in W.gradient_balance([tf.constant(v) for v in norms])]
    np.testing.assert_allclose(got, np_literal(norms), rtol=1e-6)
    stable = [float(w) for w in W.gradient_balance([tf.constant(v) for v in norms], stable=True)]
    total = norms.sum(dtype=np.float64)
    np.testing.assert_allclose(stable, [(total - n) / total for n in norms], rtol=1e-6)


@pytest.mark.parametrize("stable", [False, True])
def test_two_task_identities(stable):
    rng = np.random.default_rng(1)
    for _ in range(10):
        a, b = rng.uniform(1e-3, 1e3, 2).astype(np.float32)
        w1, w2 = (float(w) for w in W.loss_balance([tf.constant(a), tf.constant(b)], stable=stable))
        np.testing.assert_allclose(w1 * a, w2 * b, rtol=1e-5)  # LB: w1 L1 == w2 L2
        np.testing.assert_allclose(w1 + w2, 1.0, rtol=1e-6)  # the weights sum to T - 1
        g1, g2 = (float(w) for w in W.gradient_balance([tf.constant(a), tf.constant(b)], stable=stable))
        np.testing.assert_allclose(g1 * a, g2 * b, rtol=1e-5)  # GB: w1 g1 == w2 g2


def test_literal_float32_zeroes_the_texture_weight():
    values = [tf.constant(1e2), tf.constant(1e3), tf.constant(1e11)]
    for fn in (W.loss_balance, W.gradient_balance):
        w_p, w_e, w_t = (float(w) for w in fn(values))
        assert w_t == 0.0
        assert w_p == 1.0 and w_e == 1.0
        # the same in plain numpy float32, the independent reference
        np.testing.assert_array_equal(np_literal([1e2, 1e3, 1e11]), np.float32([1.0, 1.0, 0.0]))
        s_p, s_e, s_t = (float(w) for w in fn(values, stable=True))
        assert s_t > 0.0
        np.testing.assert_allclose(s_t, 1.1e3 / (1e11 + 1.1e3), rtol=1e-5)


@pytest.mark.parametrize("stable", [False, True])
def test_degenerate_cases_give_finite_weights(stable):
    cases = [[0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 5.0], [float("inf"), 1.0], [float("nan"), 1.0], [1e38, 1e38]]
    for values in cases:
        for fn in (W.loss_balance, W.gradient_balance):
            ws = np.array([float(w) for w in fn([tf.constant(v, tf.float32) for v in values], stable=stable)])
            assert np.all(np.isfinite(ws)), (values, ws)
    # all-zero: no task dominates, so every weight is 1 in both forms
    assert [float(w) for w in W.loss_balance([tf.zeros([]), tf.zeros([])], stable=stable)] == [1.0, 1.0]


def test_no_gradient_flows_through_a_weight():
    a, b = tf.Variable(2.0), tf.Variable(5.0)
    for fn in (W.loss_balance, W.gradient_balance):
        for stable in (False, True):
            with tf.GradientTape(persistent=True) as tape:
                ws = fn([a * 1.0, b * 1.0], stable=stable)
            assert all(tape.gradient(w, [a, b]) == [None, None] for w in ws)


def test_fixed_weights_and_validation():
    assert W.fixed_weights(["p", "e"]) == [1.0, 1e-2]
    assert W.fixed_weights(["p", "vgg"]) == [1.0, 1e-3]
    assert W.fixed_weights(["p", "e"], {"e": 0.5}) == [1.0, 0.5]
    with pytest.raises(ValueError, match="single|only"):
        W.validate("gb", ["p"])
    with pytest.raises(ValueError, match="weighting must be one of"):
        W.validate("avg", ["p", "e"])
    W.validate("fixed", ["p"])
