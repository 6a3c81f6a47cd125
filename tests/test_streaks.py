"""menet_tf.streaks: the no-reference streak energy finds the rain's direction and drops when rain is removed."""

import numpy as np
import pytest

from menet_tf import streaks, synthesis
from menet_tf.imageio import read_image


@pytest.mark.parametrize("angle", [-20.0, 0.0, 15.0])
def test_finds_the_direction_of_the_rain(angle):
    """Rain drawn at a fixed tilt (synthesis' convention: positive, the top leans right) is found there."""
    clean = read_image(synthesis.builtin_clean_images()[2])
    style = synthesis.RainStyle("fixed", (angle, angle), synthesis.STYLES["light"].layers)
    rainy = synthesis.add_rain(clean, style, np.random.default_rng(0))
    energy, found = streaks.streak_energy(rainy)
    assert found == angle
    assert energy > 1.5 * streaks.streak_energy(clean)[0]


def test_removing_the_rain_removes_streak_energy_on_every_bundled_photo():
    rng = np.random.default_rng(1)
    for path in synthesis.builtin_clean_images():
        clean = read_image(path)[:400, :400]
        rainy = synthesis.add_rain(clean, "light", rng)
        removed = streaks.fraction_removed(rainy, clean)
        assert 0.1 < removed < 1.0, (path, removed)  # least on motorcycle_right (its own lines): 0.17
        assert streaks.fraction_removed(rainy, rainy) == 0.0
        # half the rain taken away removes less than all of it
        half = np.round((rainy.astype(float) + clean) / 2)
        assert 0 < streaks.fraction_removed(rainy, half) < removed


def test_a_horizontal_line_is_not_a_streak_and_the_measure_is_a_mean():
    img = np.zeros((120, 120))
    img[60, :] = 200  # horizontal: not within 30 degrees of vertical
    assert streaks.streak_energy(img)[0] < 0.2
    vert = np.zeros((120, 120))
    vert[:, 60] = 200
    e, angle = streaks.streak_energy(vert)
    # one vertical line of 200 over 80 interior columns: response 200 on its column only -> 200 / 80
    assert angle == 0.0 and e == pytest.approx(200 / 80)
    with pytest.raises(ValueError, match="too small"):
        streaks.streak_energy(np.zeros((40, 40)))
