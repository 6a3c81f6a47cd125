"""Metrics against independent references: the published Rain100L "Input" row, scikit-image's
rgb2ycbcr and structural_similarity, plain formulas, hand-computed values, and tf.image."""

import csv
import math
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from skimage.color import rgb2ycbcr
from skimage.metrics import structural_similarity

from menet_tf import metrics
from menet_tf.imageio import read_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _rand_pair(seed, shape=(67, 53, 3), noise=20):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, size=shape, dtype=np.uint8)
    # a structured image (smooth ramps) so that SSIM is not trivially ~0
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    base = (yy * 3 + xx * 2)[..., None] % 256 + np.arange(shape[2]) * 40
    a = ((base + a.astype(int) // 8) % 256).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-noise, noise + 1, size=shape), 0, 255).astype(np.uint8)
    return a, b


def _plain_y(img):
    """Y in float by the textbook formula, one pixel at a time (independent of rgb_to_y)."""
    out = np.empty(img.shape[:2])
    for i in range(img.shape[0]):
        for j in range(img.shape[1]):
            r, g, b = (float(v) for v in img[i, j])
            y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
            out[i, j] = math.floor(y + 0.5)
    return out


# ---------------------------------------------------------------- rgb_to_y


def test_rgb_to_y_hand_computed():
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255],
                    [100, 150, 200], [2, 44, 141]]], dtype=np.uint8)
    # 16; 16+219; 16+65.481; 16+128.553; 16+24.966; 16+30824.25/255 = 136.879...;
    # 16+(130.962+5656.332+3520.206)/255 = 16+9307.5/255 = 52.5 exactly -> 53 (half away from zero,
    # where numpy's round-half-even would give 52)
    assert metrics.rgb_to_y(px).tolist() == [[16, 235, 81, 145, 41, 137, 53]]
    assert metrics.rgb_to_y(px).dtype == np.uint8


def test_rgb_to_y_matches_skimage_rgb2ycbcr():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    sk = rgb2ycbcr(img)[..., 0]  # 16 + 65.481 r + 128.553 g + 24.966 b, r in 0..1, float
    frac = sk - np.floor(sk)
    ties = np.abs(frac - 0.5) < 1e-9
    ours = metrics.rgb_to_y(img).astype(float)
    np.testing.assert_array_equal(ours[~ties], np.round(sk[~ties]))
    np.testing.assert_array_equal(ours[ties], np.ceil(sk[ties]))


# ---------------------------------------------------------------- PSNR


def test_psnr_equals_plain_formula_on_y():
    a, b = _rand_pair(1)
    ya, yb = _plain_y(a), _plain_y(b)
    expected = 10 * math.log10(255.0**2 / np.mean((ya - yb) ** 2))
    assert metrics.psnr(a, b) == pytest.approx(expected, abs=1e-10)


def test_psnr_rgb_and_crop_border():
    a, b = _rand_pair(2)
    diff = a.astype(float) - b.astype(float)
    assert metrics.psnr(a, b, test_y_channel=False) == pytest.approx(
        10 * math.log10(255.0**2 / np.mean(diff**2)), abs=1e-10)
    c = 4
    d = diff[c:-c, c:-c]
    assert metrics.psnr(a, b, test_y_channel=False, crop_border=c) == pytest.approx(
        10 * math.log10(255.0**2 / np.mean(d**2)), abs=1e-10)


def test_psnr_identical_is_inf():
    a, _ = _rand_pair(3)
    assert metrics.psnr(a, a) == math.inf


def test_float_input_is_quantised_half_away_from_zero():
    assert metrics.quantize(np.array([2.5, 3.5, -1.0, 254.6, 300.0])).tolist() == [3, 4, 0, 255, 255]
    a, b = _rand_pair(4)
    bf = b.astype(np.float64) + 0.3  # rounds back to b
    assert metrics.psnr(a, bf) == metrics.psnr(a, b)
    assert metrics.ssim(a, bf) == metrics.ssim(a, b)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        metrics.psnr(np.zeros((20, 20, 3), np.uint8), np.zeros((20, 21, 3), np.uint8))


# ---------------------------------------------------------------- SSIM


def test_ssim_identical_is_exactly_one():
    a, _ = _rand_pair(5)
    assert metrics.ssim(a, a) == 1.0
    assert metrics.ssim(a, a, test_y_channel=False) == 1.0


def test_ssim_matches_skimage_on_y():
    # skimage (gaussian_weights, sigma 1.5, truncate 3.5 -> an 11-tap normalised Gaussian) filters the
    # whole image with reflect padding and then averages the map after cropping (11-1)//2 = 5 pixels on
    # each side: exactly the 'valid' region of the MATLAB ssim_index, so the two agree to round-off.
    for seed in (6, 7):
        a, b = _rand_pair(seed, noise=35)
        ya, yb = metrics.rgb_to_y(a), metrics.rgb_to_y(b)
        ref = structural_similarity(ya, yb, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=255)
        assert metrics.ssim(a, b) == pytest.approx(ref, abs=1e-12)
        assert 0.2 < ref < 0.99  # a non-trivial value


def test_ssim_rgb_matches_skimage_channel_mean():
    a, b = _rand_pair(8, noise=30)
    ref = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                data_range=255, channel_axis=-1)
    assert metrics.ssim(a, b, test_y_channel=False) == pytest.approx(ref, abs=1e-12)


def test_ssim_crop_border_equals_ssim_of_cropped():
    a, b = _rand_pair(9)
    c = 3
    assert metrics.ssim(a, b, crop_border=c) == metrics.ssim(a[c:-c, c:-c], b[c:-c, c:-c])


# ---------------------------------------------------------------- published reference


@pytest.mark.skipif(not (DATA / "Rain100L").is_dir(), reason="shared/data/Rain100L not available")
def test_rain100l_input_row():
    """The rainy Rain100L inputs against their clean images: published "Input" row 26.90 / 0.838."""
    acc = metrics.MetricAccumulator()
    for i in range(1, 101):
        rain = read_image(str(DATA / "Rain100L" / f"rain-{i:03d}.png"))
        clean = read_image(str(DATA / "Rain100L" / f"norain-{i:03d}.png"))
        acc.add_images(f"{i:03d}", rain, clean)
    assert len(acc) == 100
    assert round(acc.mean_psnr, 2) == 26.90
    assert round(acc.mean_ssim, 3) == 0.838


# ---------------------------------------------------------------- paper protocol


def _crops(seed, n=5, size=48):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 255, size=(n, size, size, 3))
    t = np.cumsum(t, axis=2) % 256  # some structure
    p = np.clip(t + rng.normal(0, 12, size=t.shape), 0, 255)
    return p, t


def test_paper_psnr_equals_formula_on_float_rgb():
    p, t = _crops(10)
    ps, ss = metrics.paper_psnr_ssim(p, t, batch_size=2)
    assert ps.shape == ss.shape == (5,)
    p32, t32 = p.astype(np.float32).astype(np.float64), t.astype(np.float32).astype(np.float64)
    mse = np.mean((p32 - t32) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(ps, 10 * np.log10(255.0**2 / mse), atol=1e-3)


def test_paper_ssim_matches_tf_image_per_crop_and_numpy_ssim():
    import tensorflow as tf

    p, t = _crops(11)
    p = np.round(p)  # integer-valued floats: the standard-protocol quantisation is then a no-op
    t = np.round(t)
    ps, ss = metrics.paper_psnr_ssim(p, t, batch_size=3)
    for i in range(len(p)):
        a = tf.constant(p[i : i + 1], tf.float32)
        b = tf.constant(t[i : i + 1], tf.float32)
        assert ss[i] == pytest.approx(float(tf.image.ssim(a, b, max_val=255.0)[0]), abs=1e-6)
        assert ps[i] == pytest.approx(float(tf.image.psnr(a, b, max_val=255.0)[0]), abs=1e-5)
        # tf.image.ssim = the same Gaussian/valid SSIM averaged over channels, in float32
        assert ss[i] == pytest.approx(metrics.ssim(p[i], t[i], test_y_channel=False), abs=2e-4)


# ---------------------------------------------------------------- accumulator


def test_metric_accumulator_means_and_csv(tmp_path):
    acc = metrics.MetricAccumulator()
    acc.add("a", 30.0, 0.9)
    acc.add_many(["b", "c"], [20.0, 25.0], [0.7, 0.8])
    a, b = _rand_pair(12)
    row = acc.add_images("d", a, b)
    assert row.psnr == metrics.psnr(a, b) and row.ssim == metrics.ssim(a, b)
    assert acc.mean_psnr == pytest.approx((30 + 20 + 25 + row.psnr) / 4)
    assert acc.mean_ssim == pytest.approx((0.9 + 0.7 + 0.8 + row.ssim) / 4)
    path = tmp_path / "sub" / "m.csv"
    acc.write_csv(str(path))
    with open(path) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["name", "psnr", "ssim"]
    assert [r[0] for r in rows[1:]] == ["a", "b", "c", "d", "mean"]
    assert float(rows[2][1]) == 20.0 and float(rows[-1][2]) == pytest.approx(acc.mean_ssim, abs=1e-6)
