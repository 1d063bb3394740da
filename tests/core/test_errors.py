"""Bad input gets a clear error, before any callback call, and nothing half-done."""

from __future__ import annotations

import re
from functools import partial

import numpy as np
import pytest

from saliency_core import (
    gradient_x_input,
    integrated_gradients,
    smoothgrad,
    vanilla_gradient,
)
from tests.core import callbacks

METHODS = {
    "smoothgrad": partial(smoothgrad, seed=0, n_samples=3),
    "vanilla_gradient": vanilla_gradient,
    "gradient_x_input": gradient_x_input,
    "integrated_gradients": partial(integrated_gradients, steps=3),
}


class NeverCalled:
    def __call__(self, x, target):  # pragma: no cover - the point is that it is not called
        raise AssertionError("the callback ran before the input was checked")


@pytest.fixture(params=sorted(METHODS))
def method(request):
    return METHODS[request.param]


@pytest.mark.parametrize(
    ("x", "error", "message"),
    [
        (np.array([[1.0, np.nan]]), ValueError, r"finite.*input\(s\) \[0\]"),
        (np.array([[1.0], [np.inf]]), ValueError, r"finite.*\[1\]"),
        (np.array([1.0, 2.0]), ValueError, r"batch.*shape \(2,\).*x\[None\]"),
        (np.float64(3.0), ValueError, r"at least 2 dimensions"),
        (np.zeros((0, 3)), ValueError, r"at least one input"),
        (np.array([["a", "b"]]), TypeError, r"numeric.*dtype <U1"),
        (np.array([[True, False]]), TypeError, r"numeric.*bool"),
        (np.array([[1 + 2j]]), TypeError, r"numeric.*complex"),
        ("not an array", TypeError, r"expected a numpy array, got str"),
    ],
)
def test_bad_x(method, x, error, message):
    with pytest.raises(error, match=message):
        method(NeverCalled(), x)


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        (np.array([0, 1, 2]), ValueError, r"one index per input, shape \(2,\), got shape \(3,\)"),
        (np.array([[0], [1]]), ValueError, r"shape \(2,\), got shape \(2, 1\)"),
        (-1, ValueError, r"non-negative index, got -1"),
        (np.array([0, -3]), ValueError, r"non-negative indices, got \[-3\]"),
        (1.5, TypeError, r"integer output indices.*got dtype float64"),
        (np.array([0.0, 1.0]), TypeError, r"got whole numbers of dtype float64.*astype\(int\)"),
        (3.0, TypeError, r"got whole numbers of dtype float64"),
        (True, TypeError, r"boolean"),
        (np.array([0, 1], dtype=object), TypeError, r"integer output indices.*got dtype object"),
        (np.array(["0", "1"]), TypeError, r"got dtype <U1"),
        ([[0], [1, 2]], ValueError, r"got a ragged list"),
        # beyond int64: refused, never an OverflowError or a wrap to a negative index
        (2**70, ValueError, r"fits in int64 \(at most 2\*\*63 - 1\), got 1180591620717411303424"),
        (np.uint64(2**64 - 1), ValueError, r"fits in int64.*got 18446744073709551615"),
        (np.array([2**63, 0], dtype=np.uint64), ValueError,
         r"fit in int64.*got 9223372036854775808 \(dtype uint64\)"),
    ],
)
def test_bad_target(method, target, error, message):
    with pytest.raises(error, match=message):
        method(NeverCalled(), np.ones((2, 3)), target)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"n_samples": 0}, ValueError, "n_samples: expected a positive integer, got 0"),
        ({"n_samples": 2.5}, TypeError, "n_samples: expected a positive integer, got 2.5"),
        ({"batch_size": 0}, ValueError, "batch_size: expected a positive integer, got 0"),
        ({"noise_level": -0.1}, ValueError, "noise_level: expected a finite non-negative"),
        ({"sigma": -1.0}, ValueError, "sigma: expected a finite non-negative number, got -1.0"),
        ({"sigma": np.ones(4)}, ValueError,
         r"one value per input \(shape \(2,\)\), one per element of an input.*got shape \(4,\)"),
        ({"noise_level": 0.2, "sigma": 0.1}, ValueError, "got both"),
        ({"noise_level": 0.15, "sigma": 0.1}, ValueError, "got both"),
        ({"aggregate": "median"}, ValueError,
         "aggregate: expected one of 'mean', 'abs', 'square', 'variance', got 'median'"),
    ],
)
def test_bad_smoothgrad_options(options, error, message):
    with pytest.raises(error, match=re.escape(message) if "(" not in message else message):
        smoothgrad(NeverCalled(), np.random.default_rng(0).uniform(size=(2, 3)), **options)


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"steps": 0}, ValueError, "steps: expected a positive integer, got 0"),
        ({"baseline": np.zeros(5)}, ValueError, r"baseline: expected .* broadcastable"),
        ({"baseline": np.zeros((4, 3))}, ValueError, r"baseline"),
        ({"baseline": np.nan}, ValueError, "baseline: expected finite values"),
        ({"baseline": "zero"}, TypeError, "baseline: expected a number"),
    ],
)
def test_bad_integrated_gradients_options(options, error, message):
    with pytest.raises(error, match=message):
        integrated_gradients(NeverCalled(), np.ones((2, 3)), **options)


def test_fn_must_be_callable(method):
    with pytest.raises(TypeError, match="expected a callable fn"):
        method("model", np.ones((1, 2)))


# --- what a callback returns is checked on every call ------------------------------------


def returns_after(n_good: int, bad):
    calls = []

    def fn(x, target):
        calls.append(len(calls))
        if len(calls) > n_good:
            return bad(x)
        return np.zeros_like(x)

    return fn


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (lambda x: x[:, :-1], ValueError, r"rows 4\.\.7: expected an array of shape \(4, 3\), "
                                          r"got shape \(4, 2\)"),
        (lambda x: x.tolist(), TypeError, r"rows 4\.\.7: expected a numpy array, got list"),
        (lambda x: x * np.nan, ValueError, r"rows 4\.\.7: expected finite values, got NaN"),
        (lambda x: x[:-1], ValueError, r"rows 4\.\.7: expected an array of shape \(4, 3\)"),
    ],
)
def test_bad_callback_output_names_the_call(bad, error, message):
    x = np.random.default_rng(0).uniform(size=(2, 3))
    with pytest.raises(error, match=message):
        smoothgrad(returns_after(1, bad), x, n_samples=6, batch_size=4, seed=0)
    with pytest.raises(error, match=message):
        integrated_gradients(returns_after(1, bad), x, steps=6, batch_size=4)


def test_first_call_with_wrong_row_count():
    with pytest.raises(ValueError, match=r"rows 0\.\.3: expected 4 rows .* got shape \(3, 3\)"):
        smoothgrad(lambda x, t: x[:-1], np.ones((1, 3)) * [0, 1, 2], n_samples=4, seed=0)


def test_vanilla_gradient_output_shape_checked():
    with pytest.raises(ValueError, match=r"rows 0\.\.1: expected an array of shape \(2, 3\)"):
        vanilla_gradient(lambda x, t: x.sum(axis=1), np.ones((2, 3)))


def test_constant_input_warns():
    with pytest.warns(RuntimeWarning, match=r"input\(s\) \[1\] are constant.*sigma = 0"):
        smoothgrad(callbacks.linear(np.ones(3)), np.array([[0.0, 1, 2], [5, 5, 5]]),
                   n_samples=2, seed=0)


def test_callback_exception_propagates_unchanged():
    error = KeyError("layer4")

    def fn(x, target):
        raise error

    with pytest.raises(KeyError) as caught:
        smoothgrad(fn, np.ones((1, 2)) * [0, 1], n_samples=2, seed=0)
    assert caught.value is error


def test_inputs_are_not_modified():
    x = np.random.default_rng(0).uniform(size=(2, 3))
    before = x.copy()
    smoothgrad(lambda b, t: b, x, n_samples=4, seed=0)
    integrated_gradients(lambda b, t: b, x, steps=3)
    np.testing.assert_array_equal(x, before)
