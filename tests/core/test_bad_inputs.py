"""Inputs that used to slip through (a numpy error, a wrong answer, or silence), one by one.

Each is refused with "name: expected ..., got ..." before any callback runs, or gives the
right answer.
"""

from __future__ import annotations

import numpy as np
import pytest

from saliency_core import (
    grad_cam,
    grad_cam_plus_plus,
    guided_grad_cam,
    integrated_gradients,
    noise_sigma,
    occlusion,
    resize_linear,
    smoothgrad,
    vanilla_gradient,
)
from saliency_core._streaming import call_chunk, call_layer_chunk, chunk_bounds
from tests.core import callbacks


def never_called(*args):  # pragma: no cover - the point is that it is not called
    raise AssertionError("a callback ran before the input was checked")


X = np.random.default_rng(0).uniform(size=(2, 4, 4, 3))


# --- x --------------------------------------------------------------------------------------


def test_an_empty_axis_is_refused_everywhere():
    empty = np.zeros((2, 0, 3))
    message = r"x: expected inputs with at least one element \(no axis of size 0\), got shape"
    with pytest.raises(ValueError, match=message):
        noise_sigma(empty, 0.1)
    with pytest.raises(ValueError, match=message):
        smoothgrad(never_called, empty, seed=0)
    with pytest.raises(ValueError, match=message):
        vanilla_gradient(never_called, empty)
    with pytest.raises(ValueError, match=r"maps: expected inputs with at least one element"):
        resize_linear(np.zeros((1, 0)), (3,))


@pytest.mark.parametrize("order", [">", "<"])
@pytest.mark.parametrize("aggregate", ["mean", "square"])
def test_byte_order_does_not_change_the_map(order, aggregate):
    # '>f8' is float64 too: the noise must be drawn in float64 for it, as for '<f8'
    x = np.random.default_rng(0).uniform(size=(2, 5))
    swapped = x.astype(f"{order}f8")
    fn = callbacks.quadratic(np.eye(5))
    native = smoothgrad(fn, x, n_samples=8, aggregate=aggregate, seed=3)
    result = smoothgrad(fn, swapped, n_samples=8, aggregate=aggregate, seed=3)
    assert result.dtype == np.float64 and result.dtype.isnative
    np.testing.assert_array_equal(result, native)


@pytest.mark.parametrize(("dtype", "expected"), [(">f4", np.float32), (">f2", np.float32),
                                                  (">i4", np.float32), (np.longdouble, np.float64)])
def test_other_dtypes_become_native_float32_or_float64(dtype, expected):
    x = (np.arange(6).reshape(2, 3) % 4).astype(dtype)
    result = vanilla_gradient(callbacks.linear(np.ones(3)), x)
    assert result.dtype == expected
    np.testing.assert_array_equal(result, np.ones((2, 3)))


def test_lists_are_batches():
    np.testing.assert_array_equal(vanilla_gradient(lambda b, t: 2 * b, [[1.0, 2.0]]), [[2, 4]])


# --- targets in range of int64 and unsigned ones -----------------------------------------


def test_unsigned_targets_within_int64_work():
    w = np.random.default_rng(0).standard_normal((3, 4))
    x = np.ones((2, 3))
    result = vanilla_gradient(callbacks.per_class_linear(w), x, np.array([3, 1], dtype=np.uint64))
    np.testing.assert_allclose(result, w[:, [3, 1]].T)


# --- SmoothGrad options ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "error", "message"),
    [(-0.1, ValueError, "noise_level: expected a finite non-negative number, got -0.1"),
     (float("nan"), ValueError, "noise_level: expected a finite non-negative number, got nan"),
     ("0.1", TypeError, "noise_level: expected a non-negative number, got '0.1'")],
)
def test_noise_sigma_refuses_what_smoothgrad_refuses(level, error, message):
    with pytest.raises(error, match=message):
        noise_sigma(X, level)
    with pytest.raises(error, match=message):
        smoothgrad(never_called, X, noise_level=level, seed=0)


def test_a_range_that_overflows_is_refused():
    with pytest.raises(ValueError, match=r"noise_level \* \(max - min\) within float64.*\[0\]"):
        smoothgrad(never_called, np.array([[-1e308, 1e308]]), seed=0)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"seed": "a"}, TypeError, r"seed: expected None, a non-negative int.*got str 'a'"),
        ({"seed": 1.5}, TypeError, r"seed: expected None.*got float 1.5"),
        ({"seed": True}, TypeError, r"seed: expected None.*got bool True"),
        ({"seed": -1}, ValueError, r"seed: expected a non-negative int, got -1"),
        ({"progress": "no"}, TypeError, r"progress: expected True or False, got 'no'"),
        ({"aggregate": np.array(["mean"])}, TypeError, r"aggregate: expected one of .* ndarray"),
        ({"aggregate": None}, TypeError, r"aggregate: expected one of .* NoneType"),
        ({"sigma": ["a", "b"]}, TypeError, r"sigma: expected a number or an array of numbers"),
        ({"sigma": np.array([True, False])}, TypeError, r"sigma: .*got dtype bool"),
        ({"sigma": [[1.0], [1.0, 2.0]]}, ValueError, r"sigma: .*got a ragged list"),
        ({"sigma": np.array(-1.0)}, ValueError, r"sigma: expected a finite non-negative"),
        ({"sigma": 1e39}, ValueError, r"sigma: expected standard deviations within the range "
                                      r"of x's dtype float32"),
        ({"n_samples": 2**70}, ValueError, r"n_samples: expected a positive integer below 2\*\*63"),
        ({"n_samples": True}, TypeError, r"n_samples: expected a positive integer, got True"),
    ],
)
def test_bad_smoothgrad_options(options, error, message):
    with pytest.raises(error, match=message):
        smoothgrad(never_called, X.astype(np.float32), **options)


def test_a_zero_d_sigma_array_is_a_number():
    result = smoothgrad(lambda b, t: b.copy(), np.zeros((1, 2)), sigma=np.array(0.0), seed=0)
    np.testing.assert_array_equal(result, np.zeros((1, 2)))


def test_square_and_abs_are_taken_in_float64():
    # float16 300**2 is inf and int32 70000**2 wraps around; abs(int32 min) wraps too
    x = np.zeros((1, 3))
    options = dict(n_samples=3, sigma=0.0, seed=0, batch_size=2)
    half = smoothgrad(lambda b, t: np.full(b.shape, 300, np.float16), x, aggregate="square",
                      **options)
    np.testing.assert_array_equal(half, np.full((1, 3), 90000.0))
    wide = smoothgrad(lambda b, t: np.full(b.shape, 70000, np.int32), x, aggregate="square",
                      **options)
    np.testing.assert_array_equal(wide, np.full((1, 3), 4.9e9))
    low = smoothgrad(lambda b, t: np.full(b.shape, -(2**31), np.int32), x, aggregate="abs",
                     **options)
    np.testing.assert_array_equal(low, np.full((1, 3), 2.0**31))
    variance = smoothgrad(lambda b, t: np.full(b.shape, 70000, np.int32), x,
                          aggregate="variance", **options)
    np.testing.assert_array_equal(variance, np.zeros((1, 3)))


def test_a_statistic_beyond_the_result_dtype_is_refused_not_inf():
    # finite float64 gradients whose square does not fit float32 inputs' result
    with pytest.raises(ValueError, match=r"fn: expected results within the range of float32"):
        smoothgrad(lambda b, t: np.full(b.shape, 1e30), np.zeros((1, 2), np.float32),
                   aggregate="square", sigma=0.0, n_samples=2, seed=0)


# --- integrated gradients ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"steps": True}, TypeError, "steps: expected a positive integer, got True"),
        ({"baseline": 1e39}, ValueError, r"baseline: expected values within the range of x's "
                                         r"dtype float32"),
        ({"baseline": -3e38}, ValueError, r"baseline: expected x - baseline within the range"),
        ({"baseline": [[0.0], [0.0, 1.0]]}, ValueError, r"baseline: .*got a ragged list"),
        ({"baseline": True}, TypeError, r"baseline: expected a number.*got dtype bool"),
    ],
)
def test_bad_integrated_gradients_options(options, error, message):
    x = np.full((2, 3), 3e38, dtype=np.float32)
    with pytest.raises(error, match=message):
        integrated_gradients(never_called, x, **options)


# --- Grad-CAM ---------------------------------------------------------------------------------


def layer_returning(a, g=None):
    return lambda x, target: (a[: len(x)], (np.ones_like(a) if g is None else g)[: len(x)])


NHWC_LAYER = layer_returning(np.ones((2, 2, 2, 3)))


@pytest.mark.parametrize(
    ("size", "error", "message"),
    [
        ((0, 0), ValueError, r"size: expected positive sizes, got \(0, 0\)"),
        ((-3, 8), ValueError, r"size: expected positive sizes, got \(-3, 8\)"),
        ((), ValueError, r"size: expected at least one spatial size"),
        (4, TypeError, r"size: expected a tuple of positive ints, one per spatial axis, got int"),
        ((3.5, 2), TypeError, r"size: expected a tuple of positive ints, got \(3.5, 2\)"),
        ((True, 2), TypeError, r"size: expected a tuple of positive ints"),
    ],
)
def test_bad_size_is_refused_before_the_call(size, error, message):
    for method in (grad_cam, grad_cam_plus_plus):
        with pytest.raises(error, match=message):
            method(never_called, X, size=size)
    with pytest.raises(error, match=message):
        resize_linear(np.ones((1, 2, 2)), size)


def test_size_of_the_wrong_length_names_the_axes():
    with pytest.raises(ValueError, match=r"2 spatial axes .* output size has 1 \(\(3,\)\); for "
                                         r"channels-first \(NCHW\) tensors pass channel_axis=1"):
        grad_cam(NHWC_LAYER, X, size=(3,))
    # a size given explicitly may have any aspect: no guess about the layer's channels
    np.testing.assert_allclose(grad_cam(NHWC_LAYER, X, size=np.array([3, 5])),
                               np.full((2, 3, 5), 3.0))


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"channel_axis": 1.0}, TypeError, r"channel_axis: expected an int axis, got float 1.0"),
        ({"channel_axis": True}, TypeError, r"channel_axis: expected an int axis, got bool"),
        ({"input_channel_axis": "last"}, TypeError, r"input_channel_axis: expected an int axis"),
        ({"input_channel_axis": 4}, ValueError, r"input_channel_axis: expected an axis in "
                                                r"\[-4, 3\], got 4"),
        ({"input_channel_axis": 0}, ValueError, r"input_channel_axis: expected a non-batch axis"),
    ],
)
def test_bad_axes_are_refused_before_the_call(options, error, message):
    with pytest.raises(error, match=message):
        grad_cam(never_called, X, **options)
    with pytest.raises(error, match=message):
        guided_grad_cam(never_called, X, layer_fn=never_called, **options)


def test_guided_grad_cam_checks_everything_before_the_guided_callback():
    with pytest.raises(TypeError, match=r"layer_fn: expected a callable"):
        guided_grad_cam(never_called, X, layer_fn="conv5")
    with pytest.raises(TypeError, match=r"guided_fn: expected a callable"):
        guided_grad_cam("guided", X, layer_fn=never_called)


def test_nchw_input_with_the_default_axes_is_refused():
    # (N, 1, 28, 28) read channels-last would be 28 channels of 1 x 28: a (N, 1, 28) map
    x = np.zeros((2, 1, 28, 28))
    layer = layer_returning(np.ones((2, 16, 7, 7)))
    with pytest.raises(ValueError, match=r"x: shape \(2, 1, 28, 28\) looks channels-first .* "
                                         r"pass input_channel_axis=1 \(and channel_axis=1"):
        grad_cam(never_called, x)
    with pytest.raises(ValueError, match=r"input_channel_axis=1"):
        guided_grad_cam(never_called, x, layer_fn=never_called)
    assert grad_cam(layer, x, channel_axis=1, input_channel_axis=1).shape == (2, 28, 28)
    # an axis given explicitly is taken as it is, -1 too
    assert grad_cam(layer, x, channel_axis=-1, input_channel_axis=-1).shape == (2, 1, 28)


@pytest.mark.parametrize("channels", [16, 8, 64])
def test_nchw_activations_with_the_default_channel_axis_are_refused(channels):
    # the input axis is right (NCHW), the layer's is left at -1: (k, C, 7, 7) or (k, C, 14, 14)
    x = np.zeros((2, 1, 28, 28))
    side = 14 if channels == 8 else 7
    layer = layer_returning(np.ones((2, channels, side, side)))
    message = (rf"activations of shape \(2, {channels}, {side}, {side}\) look channels-first "
               r".* pass channel_axis=1")
    for method in (grad_cam, grad_cam_plus_plus):
        with pytest.raises(ValueError, match=message):
            method(layer, x, input_channel_axis=1)
    assert grad_cam(layer, x, channel_axis=1, input_channel_axis=1).shape == (2, 28, 28)


@pytest.mark.parametrize(
    ("x_shape", "layer_shape"),
    [((2, 28, 28, 1), (2, 7, 7, 16)), ((2, 28, 28, 3), (2, 14, 14, 14)),
     ((2, 16, 32, 3), (2, 8, 16, 16)), ((2, 28, 20, 3), (2, 5, 3, 3)),
     ((2, 16, 16, 3), (2, 4, 4, 16)), ((2, 28, 28, 3), (2, 1, 1, 64))],
)
def test_channels_last_layers_pass_the_default_axes(x_shape, layer_shape):
    a = np.random.default_rng(0).uniform(size=layer_shape)
    result = grad_cam(layer_returning(a), np.zeros(x_shape))
    assert result.shape == x_shape[:-1] and (result > 0).any()


def test_later_chunks_are_held_to_the_first_chunks_shape():
    def layer(x, target):
        side = 2 if x.shape[0] == 2 else 3
        return np.ones((len(x), side, side, 4)), np.ones((len(x), side, side, 4))

    with pytest.raises(ValueError, match=r"layer_fn call for rows 2..2: expected an array of "
                                         r"shape \(1, 2, 2, 4\), got shape \(1, 3, 3, 4\)"):
        grad_cam(layer, np.zeros((3, 4, 4, 3)), batch_size=2)


def test_empty_activations_are_refused():
    with pytest.raises(ValueError, match=r"activations with no empty axis, got shape"):
        grad_cam(layer_returning(np.ones((2, 2, 0, 3))), X)


def test_resize_linear_refuses_non_arrays_and_copies():
    maps = np.array([[1.0, 2.0]])
    same = resize_linear(maps, (2,))
    same[0, 0] = 9.0
    assert maps[0, 0] == 1.0  # a copy, never the input itself
    with pytest.raises(TypeError, match=r"maps: expected a numpy array, got str"):
        resize_linear("map", (2,))
    with pytest.raises(ValueError, match=r"size: expected 1 spatial sizes for maps of shape"):
        resize_linear(maps, (2, 2))


# --- occlusion --------------------------------------------------------------------------------


def score(x):
    return x.reshape(len(x), -1).sum(axis=1)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"baseline": "black"}, TypeError, r"baseline: expected a number .*got str 'black'"),
        ({"baseline": float("nan")}, ValueError, r"baseline: expected a finite number, got nan"),
        ({"baseline": True}, TypeError, r"baseline: expected a number .*got bool True"),
        ({"baseline": 1e39}, ValueError, r"baseline: expected a number within the range of x's "
                                         r"dtype float32"),
        ({"window": 0}, ValueError, r"window: expected a positive integer, got 0"),
        ({"window": 2.0}, TypeError, r"window: expected an int or one int per input axis .*"
                                     r"got float 2.0"),
        ({"window": (2, 2)}, ValueError, r"window: expected an int or one int per input axis "
                                         r"\(3 for"),
        ({"window": 2, "stride": 0}, ValueError, r"stride: expected a positive integer, got 0"),
        ({"window": 2, "stride": (1, 1, True)}, TypeError, r"stride: expected a positive integer"),
    ],
)
def test_bad_occlusion_options(options, error, message):
    options = {"window": 2, **options}
    with pytest.raises(error, match=message):
        occlusion(never_called, X.astype(np.float32), **options)


def test_occlusion_accepts_numpy_numbers_and_windows():
    x = np.random.default_rng(0).uniform(size=(1, 4, 4))
    expected = occlusion(score, x, window=2, baseline=0.5)
    np.testing.assert_array_equal(
        occlusion(score, x, window=np.array([2, 2]), baseline=np.float32(0.5)), expected)
    np.testing.assert_array_equal(occlusion(score, x, window=2, baseline=np.array(0.5)), expected)


def test_occlusion_outputs_are_held_to_the_first_calls_shape():
    calls = []

    def predict(x):
        calls.append(len(x))
        return np.ones((len(x), 3 if len(calls) == 1 else 4))

    with pytest.raises(ValueError, match=r"predict_fn \(occluded copies\) call for rows 0..1: "
                                         r"expected an array of shape \(2, 3\), got shape "
                                         r"\(2, 4\)"):
        occlusion(predict, np.zeros((2, 4, 4)), 0, window=2, batch_size=2)


# --- the chunk helpers --------------------------------------------------------------------------


def test_chunk_bounds_cover_every_row_once():
    for total, batch_size in [(1, 1), (7, 3), (6, 3), (5, 64)]:
        bounds = list(chunk_bounds(total, batch_size))
        rows = [row for start, stop in bounds for row in range(start, stop)]
        assert rows == list(range(total))
        assert all(0 < stop - start <= batch_size for start, stop in bounds)


def test_call_helpers_name_the_rows():
    with pytest.raises(ValueError, match=r"fn call for rows 3..4: expected an array of shape "
                                         r"\(2, 5\), got shape \(2, 4\)"):
        call_chunk(lambda a: a, np.zeros((2, 4)), start=3, stop=5, expected_trailing=(5,))
    with pytest.raises(TypeError, match=r"layer_fn call for rows 0..1: expected a pair"):
        call_layer_chunk(lambda a: a, np.zeros((2, 4)), start=0, stop=2)
    with pytest.raises(ValueError, match=r"layer_fn \(gradients\) call for rows 0..1"):
        call_layer_chunk(lambda a: (a, a[:, :1]), np.zeros((2, 4)), start=0, stop=2)
