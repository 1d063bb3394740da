"""Colour maps: endpoints, built-in tables, matplotlib present and hidden."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from visualize import BUILTIN_COLORMAPS, apply_colormap, colormap_range


@pytest.fixture
def without_matplotlib(monkeypatch):
    """Make ``import matplotlib`` fail, as on a machine where it is not installed."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)


@pytest.fixture(params=["matplotlib present", "matplotlib hidden"])
def either_way(request, monkeypatch):
    if request.param == "matplotlib present":
        pytest.importorskip("matplotlib")
    else:
        monkeypatch.setitem(sys.modules, "matplotlib", None)
    return request.param


def test_blue_grey_red_endpoints_and_midpoints(either_way):
    values = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    expected = [[0, 0, 255], [64, 64, 191], [128, 128, 128], [191, 64, 64], [255, 0, 0]]
    np.testing.assert_array_equal(apply_colormap(values, cmap="blue_grey_red"), expected)


@pytest.mark.parametrize("name", ["grey", "gray"])
def test_grey_is_a_straight_line(either_way, name):
    values = np.array([0.0, 0.25, 0.5, 1.0])
    expected = [[0, 0, 0], [64, 64, 64], [128, 128, 128], [255, 255, 255]]
    np.testing.assert_array_equal(apply_colormap(values, cmap=name), expected)


def test_viridis_endpoints(either_way):
    result = apply_colormap(np.array([0.0, 1.0]), cmap="viridis").astype(int)
    # matplotlib's viridis runs from (68, 1, 84) to (253, 231, 37); truncation vs
    # rounding to bytes may differ by one level.
    np.testing.assert_allclose(result, [[68, 1, 84], [253, 231, 37]], atol=1)


def test_jet_endpoints(either_way):
    result = apply_colormap(np.array([0.0, 0.5, 1.0]), cmap="jet").astype(int)
    # dark blue, green-ish middle, dark red
    np.testing.assert_allclose(result[0], [0, 0, 128], atol=1)
    np.testing.assert_allclose(result[2], [128, 0, 0], atol=1)
    assert result[1, 1] > 200 and result[1, 0] < 150 and result[1, 2] < 150


@pytest.mark.parametrize(("name", "tolerance"), [("viridis", 7), ("jet", 6)])
def test_builtin_fallback_is_close_to_matplotlib(monkeypatch, name, tolerance):
    pytest.importorskip("matplotlib")
    values = np.linspace(0.0, 1.0, 1001)
    with_matplotlib = apply_colormap(values, cmap=name).astype(int)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    fallback = apply_colormap(values, cmap=name).astype(int)
    assert np.abs(with_matplotlib - fallback).max() <= tolerance
    assert not np.array_equal(with_matplotlib, fallback)  # two different code paths ran


def test_matplotlib_colormaps_are_used_when_installed():
    matplotlib = pytest.importorskip("matplotlib")
    values = np.linspace(0.0, 1.0, 11)
    expected = matplotlib.colormaps["viridis"](values, bytes=True)[..., :3]
    np.testing.assert_array_equal(apply_colormap(values, cmap="viridis"), expected)
    inferno = matplotlib.colormaps["inferno"](values, bytes=True)[..., :3]
    np.testing.assert_array_equal(apply_colormap(values, cmap="inferno"), inferno)


def test_matplotlib_diverging_maps_take_minus_one_to_one():
    pytest.importorskip("matplotlib")
    result = apply_colormap(np.array([-1.0, 0.0, 1.0]), cmap="RdBu_r").astype(int)
    assert result[0, 2] > result[0, 0]  # blue end
    assert result[2, 0] > result[2, 2]  # red end
    assert np.all(result[1] > 200)  # near-white middle


def test_fallback_works_without_matplotlib_and_names_what_is_missing(without_matplotlib):
    for name in BUILTIN_COLORMAPS:
        low, _ = colormap_range(name)
        result = apply_colormap(np.array([[low, 1.0]]), cmap=name)
        assert result.shape == (1, 2, 3) and result.dtype == np.uint8
    with pytest.raises(ValueError, match="install"):
        apply_colormap(np.zeros(2), cmap="inferno")


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match=r"expected cmap to be one of 'grey'.*got 'nope'"):
        apply_colormap(np.zeros(2), cmap="nope")


def test_colormap_range():
    assert colormap_range("blue_grey_red") == (-1.0, 1.0)
    assert colormap_range("RdBu_r") == (-1.0, 1.0)
    assert colormap_range("viridis") == (0.0, 1.0)
    assert colormap_range("jet") == (0.0, 1.0)


def test_values_outside_the_range_are_refused_not_clipped():
    with pytest.raises(ValueError, match=r"expected heat with values in \[0, 1\].*got values"):
        apply_colormap(np.array([-0.5, 0.5]), cmap="viridis")
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        apply_colormap(np.array([1.5]), cmap="blue_grey_red")


def test_batches_and_shapes():
    result = apply_colormap(np.zeros((2, 3, 5)), cmap="grey")
    assert result.shape == (2, 3, 5, 3) and result.dtype == np.uint8
    np.testing.assert_array_equal(result, 0)


def test_a_sequential_map_on_the_diverging_map_shows_half_of_it():
    np.testing.assert_array_equal(
        apply_colormap(np.array([0.0, 1.0]), cmap="blue_grey_red"),
        [[128, 128, 128], [255, 0, 0]],
    )


def test_maps_and_batches_of_maps_are_coloured_pixel_by_pixel():
    maps = np.random.default_rng(0).uniform(size=(2, 4, 5))
    batch = apply_colormap(maps, cmap="grey")
    assert batch.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(batch[1], apply_colormap(maps[1], cmap="grey"))
    np.testing.assert_array_equal(batch[..., 0], np.rint(maps * 255))


def test_discriminativity_colours_a_batch_of_narrow_maps():
    # (N, H, 3) maps made by the package are maps, not an image: not refused as one
    from visualize import discriminativity

    map_a = np.zeros((2, 4, 3))
    map_a[:, 0, 0] = 1.0
    result = discriminativity(map_a, np.zeros((2, 4, 3)), channel_axis=None)
    assert result.shape == (2, 4, 3, 3)
    np.testing.assert_array_equal(result[:, 0, 0], [[255, 0, 0]] * 2)  # only map_a: red
