"""menet_tf.auto (--model=auto): the rain amount and the extra rain against numpy, the rule's choice on both
sides of its threshold for both measures (outputs equal to the chosen model's own), and the threshold fit of
experiments.fit_auto."""

import json

import numpy as np
import pytest

from menet_tf import auto, pretrained


def test_rain_amount_is_the_mean_luma_removed():
    rng = np.random.default_rng(0)
    rainy = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    derained = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    y = lambda a: 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]  # noqa: E731
    want = np.maximum(y(rainy.astype(float)) - y(derained.astype(float)), 0).mean()
    assert auto.rain_amount(rainy, derained) == pytest.approx(want, rel=1e-5)
    assert auto.rain_amount(rainy, rainy) == 0.0
    assert auto.rain_amount(derained * 0, derained) == 0.0  # getting brighter is not rain removed


def _pair_and_rainy(seed: int):
    """The two shipped models the rule tests use (light, heavy: names and Derainers) and a small heavy-rain image."""
    from menet_tf import synthesis
    from menet_tf.derainer import Derainer

    light, heavy = "menet-lb-rain100l", "menet-lb-heavy"
    clean = np.random.default_rng(seed).integers(40, 200, (64, 80, 3), dtype=np.uint8)
    rainy = synthesis.add_rain(clean, "heavy", np.random.default_rng(seed + 1))
    return (light, heavy, Derainer.load(model_dir=pretrained.model_dir(light)),
            Derainer.load(model_dir=pretrained.model_dir(heavy)), rainy)


def test_the_rule_picks_the_heavy_output_above_the_threshold_and_the_light_model_below(tmp_path):
    light, heavy, d_light, d_heavy, rainy = _pair_and_rainy(1)
    amount = auto.rain_amount(rainy, d_heavy.derain(rainy))
    assert amount > 1.0
    for threshold, chosen, want in ((amount - 0.5, heavy, d_heavy.derain(rainy)),
                                    (amount + 0.5, light, d_light.derain(rainy))):
        path = tmp_path / "auto.json"
        path.write_text(json.dumps({"light": light, "heavy": heavy, "threshold": threshold}))
        a = auto.AutoDerainer(d_light, d_heavy, auto.rule(str(path)))
        np.testing.assert_array_equal(a.derain(rainy), want)
        assert a.last_choice == chosen and a.last_amount == pytest.approx(amount)
        batch = np.stack([rainy, rainy])
        np.testing.assert_array_equal(a.derain_batch(batch)[1], (d_heavy if chosen == heavy else d_light).derain_batch(batch)[1])
    (tmp_path / "bad.json").write_text(json.dumps({"light": "nope", "heavy": heavy, "threshold": 1}))
    with pytest.raises(ValueError, match="'nope', which is not a shipped model"):
        auto.rule(str(tmp_path / "bad.json"))


def test_the_extra_measure_subtracts_the_light_models_amount_and_picks_by_it(tmp_path):
    light, heavy, d_light, d_heavy, rainy = _pair_and_rainy(3)
    out_l, out_h = d_light.derain(rainy), d_heavy.derain(rainy)
    y = lambda a: a.astype(float) @ np.array([0.299, 0.587, 0.114])  # noqa: E731
    extra = np.maximum(y(rainy) - y(out_h), 0).mean() - np.maximum(y(rainy) - y(out_l), 0).mean()
    assert auto.extra_rain(rainy, out_l, out_h) == pytest.approx(extra, rel=1e-4, abs=1e-4)
    assert auto.extra_rain(rainy, out_h, out_h) == 0.0
    for threshold, chosen, want in ((extra - 0.25, heavy, out_h), (extra + 0.25, light, out_l)):
        path = tmp_path / "auto.json"
        path.write_text(json.dumps({"light": light, "heavy": heavy, "threshold": threshold, "measure": "extra"}))
        a = auto.AutoDerainer(d_light, d_heavy, auto.rule(str(path)))
        np.testing.assert_array_equal(a.derain(rainy), want)
        assert a.last_choice == chosen and a.last_amount == pytest.approx(extra, rel=1e-4, abs=1e-4)
        np.testing.assert_array_equal(a.derain(rainy, exact_float=True).round(), want)  # measured on uint8 alike
        assert a.last_choice == chosen
        batch = np.stack([rainy, rainy])
        np.testing.assert_array_equal(a.derain_batch(batch)[0], (d_heavy if chosen == heavy else d_light).derain_batch(batch)[0])
        assert a.last_choice == chosen
    # a file from before measures existed (the old sentence) is the heavy measure; an unknown one is refused
    path.write_text(json.dumps({"light": light, "heavy": heavy, "threshold": 1, "measure": auto.MEASURES["heavy"]}))
    assert auto.rule(str(path)).measure == "heavy"
    path.write_text(json.dumps({"light": light, "heavy": heavy, "threshold": 1, "measure": "luck"}))
    with pytest.raises(ValueError, match="unknown measure 'luck'"):
        auto.rule(str(path))


def test_fit_threshold_separates_and_prefers_the_widest_gap():
    from menet_tf.auto import best_threshold

    t, errors = best_threshold([1.0, 2.0, 3.0], [10.0, 12.0])
    assert errors == 0 and t == pytest.approx(6.5)
    t, errors = best_threshold([1.0, 2.0, 11.0], [10.0, 12.0, 13.0])  # one light image among the heavy ones
    assert errors == 1 and 2.0 < t < 10.0
