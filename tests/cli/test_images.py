"""``read_images``: every Pillow mode read at its true range, the way viewers show it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from adapters.cli import main
from adapters.cli.errors import CommandError
from adapters.cli.images import read_images


def read(path, channels=1, size=None):
    return read_images([str(path)], channels=channels, size=size, mean=None, std=None)


def test_sixteen_bit_png_is_scaled_by_65535(tmp_path):
    values = np.array([[0, 1, 255, 256], [1000, 30000, 65534, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I;16")
    expected = values.astype(np.float64) / 65535
    np.testing.assert_allclose(read(path)[0, ..., 0], expected, rtol=1e-6)
    rgb = read(path, channels=3)[0]
    assert rgb.shape == (2, 4, 3)
    np.testing.assert_allclose(rgb, np.repeat(expected[..., None], 3, axis=-1), rtol=1e-6)
    # resized in floating point: a constant full-range image stays at 1
    Image.fromarray(np.full((6, 6), 65535, np.uint16)).save(path)
    np.testing.assert_allclose(read(path, size=(3, 2)), np.ones((1, 3, 2, 1)))


def test_thirty_two_bit_integer_images(tmp_path):
    path = tmp_path / "int.tif"
    Image.fromarray(np.array([[0, 65535], [13107, 100]], dtype=np.int32)).save(path)
    assert Image.open(path).mode == "I"
    np.testing.assert_allclose(read(path)[0, ..., 0], [[0, 1], [0.2, 100 / 65535]], rtol=1e-6)
    # outside the 16-bit range: min-max scaled
    Image.fromarray(np.array([[-100, 0], [100, 300]], dtype=np.int32)).save(path)
    np.testing.assert_allclose(read(path)[0, ..., 0], [[0, 0.25], [0.5, 1]], rtol=1e-6)


def test_float_tiff_keeps_values_in_the_unit_range(tmp_path):
    values = np.array([[0.0, 0.125], [0.5, 1.0]], dtype=np.float32)
    path = tmp_path / "float.tif"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "F"
    np.testing.assert_array_equal(read(path)[0, ..., 0], values)


def test_float_tiff_outside_the_unit_range_is_min_max_scaled(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[-1.0, 0.0], [1.0, 3.0]], dtype=np.float32)).save(path)
    np.testing.assert_allclose(read(path)[0, ..., 0], [[0, 0.25], [0.5, 1]])
    Image.fromarray(np.full((2, 2), 7.0, dtype=np.float32)).save(path)
    np.testing.assert_array_equal(read(path), np.zeros((1, 2, 2, 1)))


def test_float_tiff_that_is_not_finite_is_refused(tmp_path):
    path = tmp_path / "nan.tif"
    Image.fromarray(np.array([[0.0, np.nan]], dtype=np.float32)).save(path)
    with pytest.raises(CommandError, match="expected finite pixel values, got NaN"):
        read(path)


@pytest.mark.parametrize(("orientation", "turn"), [(3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied(tmp_path, orientation, turn):
    """Orientation 6 is shown turned 90 degrees clockwise, 8 counter-clockwise, 3 by 180."""
    values = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    path = tmp_path / "turned.png"
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(values).save(path, exif=exif)
    np.testing.assert_array_equal(read(path)[0, ..., 0] * 255, np.rot90(values, k=turn))


def test_transparent_pixels_are_composited_onto_black(tmp_path):
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[...] = (255, 255, 255, 0)  # an invisible white background
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[1, 2] = (0, 0, 255, 51)  # blue at 20% opacity
    path = tmp_path / "logo.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    expected = np.zeros((2, 3, 3))
    expected[0, 0] = (1, 0, 0)
    expected[1, 2] = (0, 0, 0.2)
    np.testing.assert_allclose(read(path, channels=3)[0], expected, atol=1 / 255)
    grey = read(path, channels=1)[0, ..., 0]
    # Pillow's luma weights, as for any colour image read grey
    np.testing.assert_allclose(grey, expected @ [0.299, 0.587, 0.114], atol=1 / 255)


def test_grey_with_alpha_is_composited_too(tmp_path):
    la = np.array([[[200, 255], [200, 0], [200, 128]]], dtype=np.uint8)
    path = tmp_path / "la.png"
    Image.fromarray(la, mode="LA").save(path)
    np.testing.assert_allclose(read(path)[0, ..., 0], [[200 / 255, 0, 200 / 255 * 128 / 255]],
                               atol=1 / 255)


@pytest.mark.parametrize(("side", "message"), [(11, "too large to read safely"),
                                               (20, "too large to read safely")])
def test_decompression_bombs_are_refused(tmp_path, monkeypatch, side, message):
    """11 x 11 only makes Pillow warn (over the limit), 20 x 20 raise (over twice it)."""
    path = tmp_path / "bomb.png"
    Image.new("L", (side, side)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(CommandError, match=message):
        read(path)


def test_decompression_bomb_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (20, 20)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    out = tmp_path / "out"
    assert main(["explain", "--model", "tests.cli.cli_models:tiny_torch", "--input", str(path),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "too large to read safely" in err
    assert not out.exists()


@pytest.mark.parametrize(("size", "message"), [
    (["0", "0"], "--size: expected two positive integers H W, got 0 0"),
    (["-3", "5"], "--size: expected two positive integers H W, got -3 5"),
    (["100000", "100000"], "--size: expected at most"),
])
def test_bad_size_is_one_line_and_exit_2(tmp_path, capsys, size, message):
    path = tmp_path / "im.png"
    Image.new("RGB", (4, 4)).save(path)
    out = tmp_path / "out"
    assert main(["explain", "--model", "tests.cli.cli_models:tiny_torch", "--input", str(path),
                 "--size", *size, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not out.exists()
