"""Losses against numpy (float64) re-derivations of spec section 3."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from menet_tf import losses

RTOL = 1e-5


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(42)
    clean = rng.uniform(0, 255, (3, 32, 48, 3)).astype(np.float32)
    derained = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.float32)
    return clean, derained


def np_sobel(img):
    """Reflect-pad by 1, correlate each channel with dy and dx; -> [B, H, W, C, 2] (dy, dx)."""
    dy = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], np.float64)
    dx = dy.T
    x = np.pad(img.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    b, h, w, c = img.shape
    out = np.zeros((b, h, w, c, 2))
    for i in range(3):
        for j in range(3):
            window = x[:, i:i + h, j:j + w, :]
            out[..., 0] += dy[i, j] * window
            out[..., 1] += dx[i, j] * window
    return out


def np_patch_features(img, k=4):
    b, h, w, c = img.shape
    x = img.astype(np.float64).reshape(b, h // k, k, w // k, k, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, (h // k) * (w // k), k * k * c)


def np_gram(img):
    f = np_patch_features(img)
    return np.einsum("bmi,bmj->bij", f, f)


def test_sobel_loss_network_equals_numpy(images):
    clean, _ = images
    np.testing.assert_allclose(losses.sobel_edges(clean).numpy(), np_sobel(clean), rtol=RTOL, atol=1e-3)
    layer = losses.SobelLossNetwork()
    assert layer.trainable_weights == [] and not layer.trainable
    np.testing.assert_allclose(layer(clean).numpy(), np_sobel(clean), rtol=RTOL, atol=1e-3)


def test_reconstruction_loss(images):
    clean, derained = images
    ref = np.mean((derained.astype(np.float64) - clean) ** 2)
    np.testing.assert_allclose(float(losses.reconstruction_loss(clean, derained)), ref, rtol=RTOL)


def test_edge_loss(images):
    clean, derained = images
    ref = np.mean((np_sobel(derained) - np_sobel(clean)) ** 2)
    np.testing.assert_allclose(float(losses.edge_loss(clean, derained)), ref, rtol=RTOL)


def test_patch_features_shape_is_hw_over_16_by_48(images):
    clean, _ = images
    f = losses.patch_features(clean)
    assert f.shape == (3, 32 * 48 // 16, 48)
    np.testing.assert_array_equal(f.numpy(), np_patch_features(clean).astype(np.float32))


def test_texture_loss_released(images):
    clean, derained = images
    s_clean = np_gram(clean).mean(axis=(1, 2))
    s_derained = np_gram(derained).mean(axis=(1, 2))
    ref = np.mean((s_clean - s_derained) ** 2)
    np.testing.assert_allclose(float(losses.texture_loss_released(clean, derained)), ref, rtol=RTOL)


def test_texture_loss_paper(images):
    clean, derained = images
    m = 32 * 48 / 16
    ref = np.mean(np.sum((np_gram(clean) / m - np_gram(derained) / m) ** 2, axis=(1, 2)))
    np.testing.assert_allclose(float(losses.texture_loss_paper(clean, derained)), ref, rtol=RTOL)


def test_released_texture_loss_is_huge_for_small_errors():
    # Spec: "1e7 for tiny errors". A uniform +1 grey level shift on a mid-grey image:
    clean = np.full((1, 64, 64, 3), 128.0, np.float32)
    value = float(losses.texture_loss_released(clean, clean + 1.0))
    # s = mean over 48x48 of sum_m F_mi F_mj = M * v^2  ->  (M (129^2 - 128^2))^2
    m = 64 * 64 / 16
    np.testing.assert_allclose(value, (m * (129.0**2 - 128.0**2)) ** 2, rtol=RTOL)
    assert value > 1e7


def test_losses_are_zero_for_identical_images(images):
    clean, _ = images
    for fn in (losses.reconstruction_loss, losses.edge_loss, losses.texture_loss_released, losses.texture_loss_paper):
        assert float(fn(clean, clean)) == 0.0


def test_make_task_losses_names_and_errors():
    fns = losses.make_task_losses(["p", "e", "t"], texture_form="paper")
    assert list(fns) == ["p", "e", "t"] and fns["t"] is losses.texture_loss_paper
    with pytest.raises(ValueError, match="unknown loss 'x'"):
        losses.make_task_losses(["p", "x"])
    with pytest.raises(ValueError, match="texture loss form"):
        losses.make_task_losses(["t"], texture_form="gatys")


def test_caffe_preprocessing_equals_keras_vgg19_preprocess_input(images):
    clean, _ = images
    ref = keras.applications.vgg19.preprocess_input(clean.copy())
    np.testing.assert_allclose(losses.caffe_preprocess(clean).numpy(), ref, rtol=1e-6, atol=1e-4)


def test_vgg19_loss_loads_local_weights_and_matches_an_independent_vgg(tmp_path, images):
    clean, derained = images
    keras.utils.set_random_seed(7)
    reference = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    path = str(tmp_path / "vgg19_random.weights.h5")
    reference.save_weights(path)
    loss_fn = losses.perceptual_loss(path)
    extractor = loss_fn.feature_extractor
    assert extractor.output.shape[-1] == 256 and not extractor.trainable_weights
    ref_features = keras.Model(reference.input, reference.get_layer("block3_conv4").output)
    pre = keras.applications.vgg19.preprocess_input
    f_c = ref_features(pre(clean.copy())).numpy().astype(np.float64)
    f_d = ref_features(pre(derained.copy())).numpy().astype(np.float64)
    np.testing.assert_allclose(float(loss_fn(clean, derained)), np.mean((f_d - f_c) ** 2), rtol=1e-4)


def test_vgg19_missing_weights_file_is_named(tmp_path):
    missing = str(tmp_path / "nope.h5")
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        losses.perceptual_loss(missing)
    bad = tmp_path / "bad.weights.h5"
    bad.write_text("not hdf5")
    with pytest.raises(ValueError, match="bad.weights.h5"):
        losses.perceptual_loss(str(bad))


def test_losses_stay_float32_for_half_inputs(images):
    clean, derained = images
    value = losses.edge_loss(tf.cast(clean, tf.float16), tf.cast(derained, tf.float16))
    assert value.dtype == tf.float32
