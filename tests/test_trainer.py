"""The custom train_step against independent re-derivations (separate tapes, numpy, plain SGD)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from menet_tf import losses as losses_lib
from menet_tf.model import build_derain_net
from menet_tf.trainer import MultiTaskTrainer, learning_rate_schedule, make_optimizer


def tiny_batch(seed=0, size=16, n=4):
    rng = np.random.default_rng(seed)
    clean = rng.uniform(0, 255, (n, size, size, 3)).astype(np.float32)
    streaks = (rng.uniform(0, 1, clean.shape[:3] + (1,)) > 0.93) * 90.0
    rainy = np.clip(clean + streaks, 0, 255).astype(np.float32)
    return rainy, clean


def reference_step(net, rainy, clean, fns):
    """Per-task losses and layer5 gradients from independent, non-persistent tapes (float64 numpy)."""
    kernel = net.get_layer("layer5").kernel
    out = []
    for fn in fns:
        with tf.GradientTape() as tape:
            loss = fn(clean, net(rainy, training=True))
        out.append((float(loss), tape.gradient(loss, kernel).numpy().astype(np.float64)))
    return out


@pytest.mark.parametrize("weighting", ["gb", "lb"])
def test_sgd_step_applies_the_weighted_gradient_with_constant_weights(weighting):
    """One SGD(lr=1) step moves layer5's kernel by -(sum_i w_i dL_i/dW), with w_i re-derived in numpy.

    If a weight carried gradient, the step would contain extra L_i * dw_i terms and differ."""
    keras.utils.set_random_seed(0)
    rainy, clean = tiny_batch()
    net = build_derain_net(1, False)
    trainer = MultiTaskTrainer(net, ("p", "e"), weighting)
    trainer.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
    fns = [losses_lib.reconstruction_loss, losses_lib.edge_loss]
    ref = reference_step(net, rainy, clean, fns)
    values = np.array([v for v, _ in ref], np.float32)
    norms = np.array([np.linalg.norm(g) for _, g in ref], np.float32)
    basis = norms if weighting == "gb" else values
    weights = np.float32(1.0) - basis / np.float32(basis.sum(dtype=np.float32))
    before = net.get_layer("layer5").kernel.numpy().astype(np.float64)
    logs = trainer.train_on_batch(rainy, clean, return_dict=True)
    after = net.get_layer("layer5").kernel.numpy().astype(np.float64)

    np.testing.assert_allclose([logs["w_p"], logs["w_e"]], weights, rtol=2e-4)
    np.testing.assert_allclose([logs["loss_p"], logs["loss_e"]], values, rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], float(np.dot(weights, values)), rtol=1e-4)
    if weighting == "gb":
        np.testing.assert_allclose([logs["gnorm_p"], logs["gnorm_e"]], norms, rtol=1e-4)
        np.testing.assert_allclose(weights[0] * norms[0], weights[1] * norms[1], rtol=1e-4)
    expected = sum(w * g for w, (_, g) in zip(weights, ref))
    np.testing.assert_allclose(before - after, expected, rtol=2e-3, atol=1e-6 * np.abs(expected).max())


def test_fixed_weights_step_uses_the_fixed_coefficients():
    keras.utils.set_random_seed(1)
    rainy, clean = tiny_batch(1)
    net = build_derain_net(1, False)
    trainer = MultiTaskTrainer(net, ("p", "e"), "fixed")
    trainer.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0))
    ref = reference_step(net, rainy, clean, [losses_lib.reconstruction_loss, losses_lib.edge_loss])
    before = net.get_layer("layer5").kernel.numpy().astype(np.float64)
    logs = trainer.train_on_batch(rainy, clean, return_dict=True)
    assert (logs["w_p"], logs["w_e"]) == (1.0, pytest.approx(1e-2))
    expected = ref[0][1] + 1e-2 * ref[1][1]
    after = net.get_layer("layer5").kernel.numpy().astype(np.float64)
    np.testing.assert_allclose(before - after, expected, rtol=2e-3, atol=1e-6 * np.abs(expected).max())


ROWS = [
    (("p",), "fixed", False),
    (("p", "e"), "fixed", False),
    (("p", "e"), "gb", False),
    (("p", "e"), "lb", False),
    (("p", "e", "t"), "gb", True),
    (("p", "e", "t"), "lb", True),
]


@pytest.mark.parametrize("jit", [False, True], ids=["plain", "xla"])
@pytest.mark.parametrize("tasks, weighting, ca", ROWS, ids=["-".join(r[0]) + "-" + r[1] for r in ROWS])
def test_a_few_steps_lower_the_total_loss(tasks, weighting, ca, jit):
    if jit and weighting == "fixed" and len(tasks) == 1:
        pytest.skip("covered by the multi-task rows")
    keras.utils.set_random_seed(2)
    rainy, clean = tiny_batch(2, size=16 if ca else 8)
    trainer = MultiTaskTrainer(build_derain_net(1, ca), tasks, weighting)
    trainer.compile(optimizer=make_optimizer(steps_per_epoch=1), jit_compile=jit)
    assert trainer.jit_compile == jit  # Keras silently falls back to no XLA when it cannot compile
    history = trainer.fit(rainy, clean, batch_size=len(rainy), epochs=12, verbose=0).history
    # the first and last few steps' losses on the same batch, weighted the same way
    assert np.mean(history["loss"][-3:]) < np.mean(history["loss"][:3])
    assert np.mean(history["loss_p"][-3:]) < np.mean(history["loss_p"][:3])
    for t in tasks:
        assert np.all(np.isfinite(history[f"w_{t}"]))


def test_learning_rate_schedule_is_the_staircase():
    schedule = learning_rate_schedule(steps_per_epoch=23)
    for epoch, lr in [(0, 1e-3), (39, 1e-3), (40, 1e-4), (79, 1e-4), (80, 1e-5), (99, 1e-5)]:
        np.testing.assert_allclose(float(schedule(epoch * 23)), lr, rtol=1e-6)
        np.testing.assert_allclose(float(schedule(epoch * 23 + 22)), lr, rtol=1e-6)
    opt = make_optimizer(10)
    assert opt.epsilon == 1e-8 and opt.beta_1 == 0.9 and opt.beta_2 == 0.999


def test_test_step_reports_paper_protocol_psnr_ssim():
    keras.utils.set_random_seed(3)
    rainy, clean = tiny_batch(3, size=16)
    net = build_derain_net(1, False)
    trainer = MultiTaskTrainer(net, ("p",), "fixed")
    trainer.compile(optimizer=make_optimizer(1))
    result = trainer.evaluate(rainy, clean, batch_size=2, verbose=0, return_dict=True)
    out = net(rainy, training=False)
    np.testing.assert_allclose(result["psnr"], float(tf.reduce_mean(tf.image.psnr(out, clean, 255.0))), rtol=1e-5)
    np.testing.assert_allclose(result["ssim"], float(tf.reduce_mean(tf.image.ssim(out, clean, 255.0))), rtol=1e-5)


def test_gb_rejects_a_single_task():
    with pytest.raises(ValueError, match="only"):
        MultiTaskTrainer(build_derain_net(1, False), ("p",), "gb")


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_float32_losses_and_weights_and_scales_the_loss(policy):
    keras.utils.set_random_seed(4)
    rainy, clean = tiny_batch(4, size=8)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        net = build_derain_net(1, False)
        trainer = MultiTaskTrainer(net, ("p", "e"), "gb")
        trainer.compile(optimizer=make_optimizer(1))
        assert net.get_layer("layer5").compute_dtype == policy.split("_")[1]
        assert net.output.dtype == "float32"  # GlobalResidual computes in float32
        if policy == "mixed_float16":
            assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
        history = trainer.fit(rainy, clean, batch_size=4, epochs=10, verbose=0).history
    finally:
        keras.config.set_dtype_policy(previous)
    assert all(v.dtype == "float32" for v in net.trainable_variables)
    for key in ("loss", "loss_p", "loss_e", "w_p", "w_e"):
        assert np.all(np.isfinite(history[key])), key
    # float16's dynamic loss scale starts at 2^15 and overflows for the first steps (which the optimizer
    # skips); once it has settled, the gradient norms are real and GB's two weights sum to 1
    for key in ("gnorm_p", "gnorm_e"):
        assert np.all(np.isfinite(history[key][-4:])) and min(history[key][-4:]) > 0, key
    np.testing.assert_allclose(np.array(history["w_p"][-4:]) + np.array(history["w_e"][-4:]), 1.0, rtol=1e-5)
    assert history["loss_p"][-1] < history["loss_p"][0]
    value = trainer.task_losses(clean, net(rainy))[0]
    assert value.dtype == tf.float32
