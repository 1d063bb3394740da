"""Rendering: uint8 conversion, PIL images, labelled grids and PNG files."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visualize import grid, save, to_image, to_uint8

WHITE = (255, 255, 255)

# ---------------------------------------------------------------- to_uint8 / to_image


def test_floats_are_min_max_scaled_hand_computed():
    image = np.array([[-2.0, 0.0], [1.0, 2.0]])
    np.testing.assert_array_equal(to_uint8(image), [[0, 128], [191, 255]])


def test_imagenet_normalised_input_uses_the_whole_range_and_is_not_clipped():
    # An ImageNet-normalised image spans roughly [-2.1, 2.6]; clipping after x255 (the
    # Captum bug) would turn everything negative black and everything above 1/255 white.
    image = np.linspace(-2.1, 2.6, 48).reshape(4, 4, 3)
    result = to_uint8(image)
    assert result.min() == 0 and result.max() == 255
    assert len(np.unique(result)) == 48  # every value kept apart, none clipped together
    expected = np.rint((image + 2.1) / 4.7 * 255).astype(np.uint8)
    np.testing.assert_array_equal(result, expected)


def test_uint8_is_kept_as_it_is():
    image = np.array([[[7, 8, 9], [10, 11, 250]]], dtype=np.uint8)
    np.testing.assert_array_equal(to_uint8(image), image)


def test_bool_and_integer_images():
    np.testing.assert_array_equal(to_uint8(np.array([[True, False]])), [[255, 0]])
    np.testing.assert_array_equal(to_uint8(np.array([[0, 1000]], dtype=np.int64)), [[0, 255]])


def test_constant_images_give_zeros():
    np.testing.assert_array_equal(to_uint8(np.full((2, 3), 0.7)), np.zeros((2, 3)))


def test_channels_first_and_last_agree():
    hwc = np.random.default_rng(0).normal(size=(5, 6, 3))
    chw = np.moveaxis(hwc, -1, 0)
    np.testing.assert_array_equal(to_uint8(chw), to_uint8(hwc))
    np.testing.assert_array_equal(to_uint8(chw, channel_axis=0), to_uint8(hwc))
    np.testing.assert_array_equal(to_uint8(hwc, channel_axis=-1), to_uint8(hwc))


def test_single_channel_images_become_grey():
    grey = np.array([[0.0, 1.0], [0.5, 0.25]])
    expected = to_uint8(grey)
    np.testing.assert_array_equal(to_uint8(grey[None]), expected)  # (1, H, W)
    np.testing.assert_array_equal(to_uint8(grey[..., None]), expected)  # (H, W, 1)
    assert to_image(grey[None]).mode == "L"


def test_explicit_channel_axis_for_ambiguous_shapes():
    image = np.random.default_rng(1).normal(size=(3, 4, 3))  # HWC by the detection rule
    assert to_uint8(image).shape == (3, 4, 3)
    assert to_uint8(image, channel_axis=0).shape == (4, 3, 3)


def test_to_image_modes_and_size():
    assert to_image(np.zeros((4, 6))).mode == "L"
    picture = to_image(np.zeros((3, 4, 6)))
    assert (picture.mode, picture.size) == ("RGB", (6, 4))
    assert to_image(np.zeros((4, 6, 4), dtype=np.uint8)).mode == "RGBA"


def test_to_image_pixels_are_the_uint8_conversion():
    image = np.random.default_rng(2).normal(size=(3, 5, 7))
    np.testing.assert_array_equal(np.asarray(to_image(image)), to_uint8(image))


def test_pil_images_are_accepted():
    picture = Image.new("RGB", (3, 2), (10, 20, 30))
    np.testing.assert_array_equal(to_uint8(picture), np.full((2, 3, 3), [10, 20, 30]))
    palette = picture.convert("P")
    assert to_image(palette).mode == "RGB"


# ---------------------------------------------------------------- save


def test_png_written_and_read_back_equal(tmp_path):
    image = np.random.default_rng(3).integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    written = save(image, tmp_path / "nested" / "folders" / "map.png")
    assert written == tmp_path / "nested" / "folders" / "map.png"
    with Image.open(written) as loaded:
        assert loaded.format == "PNG"
        np.testing.assert_array_equal(np.asarray(loaded), image)


def test_save_float_map_and_pil_image(tmp_path):
    grey = np.array([[0.0, 0.5], [1.0, 0.25]])
    with Image.open(save(grey, str(tmp_path / "grey.png"))) as loaded:
        np.testing.assert_array_equal(np.asarray(loaded), to_uint8(grey))
    picture = Image.new("RGBA", (2, 2), (1, 2, 3, 4))
    with Image.open(save(picture, tmp_path / "rgba.png")) as loaded:
        assert loaded.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(loaded), np.asarray(picture))


def test_save_replaces_an_existing_file(tmp_path):
    target = tmp_path / "map.png"
    save(np.zeros((2, 2), dtype=np.uint8), target)
    save(np.full((2, 2), 9, dtype=np.uint8), target)
    with Image.open(target) as loaded:
        np.testing.assert_array_equal(np.asarray(loaded), 9)


def test_a_failed_save_leaves_nothing_half_written(tmp_path, monkeypatch):
    target = tmp_path / "map.png"
    save(np.zeros((2, 2), dtype=np.uint8), target)
    before = target.read_bytes()

    def failing_save(self, file, *args, **kwargs):
        file.write(b"\x89PNG half")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save(np.ones((2, 2), dtype=np.uint8), target)
    with pytest.raises(OSError, match="disk full"):
        save(np.ones((2, 2), dtype=np.uint8), tmp_path / "new.png")
    assert target.read_bytes() == before  # the old file is untouched
    assert sorted(path.name for path in tmp_path.iterdir()) == ["map.png"]  # no leftovers


def test_save_through_a_symlink_writes_the_file_it_points_to(tmp_path):
    real = tmp_path / "figures" / "map.png"
    save(np.zeros((2, 2), dtype=np.uint8), real)
    real.chmod(0o640)
    link = tmp_path / "latest.png"
    link.symlink_to(Path("figures") / "map.png")  # relative, as links usually are
    assert save(np.full((2, 2), 7, dtype=np.uint8), link) == link
    assert link.is_symlink() and link.resolve() == real.resolve()
    with Image.open(real) as loaded:
        np.testing.assert_array_equal(np.asarray(loaded), 7)
    assert stat.S_IMODE(real.stat().st_mode) == 0o640  # the replaced file keeps its mode
    assert sorted(p.name for p in real.parent.iterdir()) == ["map.png"]  # nothing left over


def test_save_through_a_dangling_symlink_or_a_linked_folder(tmp_path):
    link = tmp_path / "new.png"
    link.symlink_to(tmp_path / "out" / "made.png")  # neither the folder nor the file exists
    save(np.eye(3), link)
    assert link.is_symlink() and (tmp_path / "out" / "made.png").is_file()
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    save(np.eye(3), tmp_path / "alias" / "eye.png")
    assert (tmp_path / "real" / "eye.png").is_file()


def test_save_refuses_a_folder_and_a_loop_of_links(tmp_path):
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ValueError, match=r"expected a path to a file, got the folder"):
        save(np.eye(3), tmp_path / "folder.png")
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    with pytest.raises(ValueError, match=r"expected a path that leads to a file"):
        save(np.eye(3), tmp_path / "a.png")


def test_save_refuses_other_formats_and_wrong_types(tmp_path):
    with pytest.raises(ValueError, match=r"expected a path ending in \.png, got .*map\.jpg"):
        save(np.zeros((2, 2)), tmp_path / "map.jpg")
    with pytest.raises(TypeError, match="expected path to be a string or a path, got int"):
        save(np.zeros((2, 2)), 3)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- grid


def cells(count, size=(8, 10), value=0):
    """``count`` uint8 grey images of ``size`` = (height, width)."""
    return [np.full(size, value, dtype=np.uint8) for _ in range(count)]


def test_grid_size_without_padding_or_text():
    assert grid(cells(6), ncols=3, padding=0).size == (3 * 10, 2 * 8)
    assert grid([cells(3), cells(3)], padding=0).size == (30, 16)


def test_grid_size_with_padding():
    # 3 columns of width 10 and 2 rows of height 8, with 4 pixels around and between
    assert grid(cells(6), ncols=3, padding=4).size == (3 * 10 + 4 * 4, 2 * 8 + 3 * 4)


def test_flat_list_defaults_to_one_row_and_wraps_with_ncols():
    assert grid(cells(5), padding=0).size == (50, 8)
    assert grid(cells(5), ncols=2, padding=0).size == (20, 24)  # 3 rows, last one short


def test_cells_land_where_expected():
    black, white = np.zeros((2, 2), dtype=np.uint8), np.full((2, 2), 255, dtype=np.uint8)
    red = np.zeros((2, 2, 3), dtype=np.uint8)
    red[..., 0] = 255
    figure = np.asarray(grid([[black, white], [red, black]], padding=1))
    assert figure.shape == (7, 7, 3)
    np.testing.assert_array_equal(figure[1:3, 1:3], 0)  # black at row 0, column 0
    np.testing.assert_array_equal(figure[1:3, 4:6], 255)  # white at row 0, column 1
    np.testing.assert_array_equal(figure[4:6, 1:3], [[[255, 0, 0]] * 2] * 2)  # red
    np.testing.assert_array_equal(figure[0, :], 255)  # the padding is background


def test_titles_and_row_labels_are_drawn():
    images = [cells(2, value=128), cells(2, value=128)]
    plain = np.asarray(grid(images, padding=4))
    titled = np.asarray(grid(images, titles=["noise 0%", "noise 10%"], padding=4))
    extra_height = titled.shape[0] - plain.shape[0]
    assert extra_height > 4
    title_strip = titled[:extra_height]
    assert (title_strip != 255).any()  # text pixels, not only background
    labelled = np.asarray(grid(images, row_labels=["input 1", "input 2"], padding=4))
    extra_width = labelled.shape[1] - plain.shape[1]
    assert extra_width > 4
    assert (labelled[:, :extra_width] != 255).any()
    np.testing.assert_array_equal(labelled[:, extra_width:], plain)  # cells just shifted


def test_wide_titles_widen_the_columns():
    figure = grid(cells(2, size=(4, 4)), titles=["a very long title indeed", "b"], padding=0)
    assert figure.width > 2 * 4


def test_cell_size_scales_images_with_nearest_neighbour():
    checker = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    figure = np.asarray(grid([checker], cell_size=4, padding=0))
    expected = np.kron(checker, np.ones((2, 2), dtype=np.uint8))
    np.testing.assert_array_equal(figure[..., 0], expected)
    assert grid([checker], cell_size=(6, 4), padding=0).size == (6, 4)


def test_smaller_images_are_enlarged_keeping_their_aspect_and_centred():
    large = np.full((4, 6), 128, dtype=np.uint8)  # sets the cell size: 6 wide, 4 high
    small = np.zeros((2, 2), dtype=np.uint8)  # enlarged x2 to 4 x 4, centred in 6
    figure = np.asarray(grid([[large, small]], padding=0))[..., 0]
    assert figure.shape == (4, 12)
    np.testing.assert_array_equal(figure[:, :6], 128)
    np.testing.assert_array_equal(figure[:, 7:11], 0)
    np.testing.assert_array_equal(figure[:, [6, 11]], 255)


def test_rgba_cells_are_shown_over_the_background_and_none_is_empty():
    clear = np.zeros((2, 2, 4), dtype=np.uint8)  # fully transparent black
    figure = np.asarray(grid([[clear, None]], padding=0))
    np.testing.assert_array_equal(figure, 255)


def test_ragged_rows_leave_empty_cells():
    figure = np.asarray(grid([cells(2), cells(1)], padding=0))
    assert figure.shape == (16, 20, 3)
    np.testing.assert_array_equal(figure[8:, 10:], 255)


def test_float_cells_are_scaled():
    figure = np.asarray(grid([np.array([[-1.0, 1.0]])], padding=0))
    np.testing.assert_array_equal(figure[..., 0], [[0, 255]])
