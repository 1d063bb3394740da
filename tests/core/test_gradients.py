"""Vanilla gradient, gradient x input and integrated gradients against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from saliency_core import gradient_x_input, integrated_gradients, vanilla_gradient
from tests.core import callbacks


def test_vanilla_gradient_per_class_targets():
    w = np.random.default_rng(0).standard_normal((4, 3))
    x = np.random.default_rng(1).uniform(size=(5, 4))
    target = np.array([0, 2, 1, 1, 0])
    result = vanilla_gradient(callbacks.per_class_linear(w), x, target, batch_size=2)
    np.testing.assert_allclose(result, w[:, target].T)
    # an int target means the same class for every input
    np.testing.assert_allclose(
        vanilla_gradient(callbacks.per_class_linear(w), x, 2), np.tile(w[:, 2], (5, 1))
    )


def test_vanilla_gradient_call_counts():
    counting = callbacks.Counting(callbacks.linear(np.ones(2)))
    vanilla_gradient(counting, np.zeros((7, 2)), batch_size=3)
    assert counting.calls == [3, 3, 1]


def test_gradient_x_input():
    x = np.array([[1.0, -2.0, 0.0]])
    np.testing.assert_allclose(
        gradient_x_input(callbacks.mixed_3d, x), [[5.0, 8.0, 0.0]]
    )


def nonlinear_score(x):
    return np.sin(x).sum(axis=1) + x.sum(axis=1) ** 2


def nonlinear_gradient(x, target):
    return np.cos(x) + 2 * x.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("baseline", [None, 0.5, np.array([0.1, -0.2, 0.3, 0.0])])
def test_integrated_gradients_completeness(baseline):
    x = np.array([[1.0, -2.0, 0.5, 3.0], [0.2, 0.1, -0.4, 1.5]])
    base = np.broadcast_to(0.0 if baseline is None else baseline, x.shape)
    expected = nonlinear_score(x) - nonlinear_score(base)
    errors = []
    for steps in (4, 16, 64):
        attributions = integrated_gradients(nonlinear_gradient, x, baseline=baseline, steps=steps)
        errors.append(np.abs(attributions.sum(axis=1) - expected).max())
    # the midpoint rule's error falls as 1/steps^2: 16x fewer steps, ~256x more error
    assert errors[0] > errors[1] > errors[2]
    assert errors[1] < errors[0] / 8 and errors[2] < errors[1] / 8
    assert errors[2] < 1e-3 * np.abs(expected).max()


def test_integrated_gradients_of_a_quadratic_is_exact():
    # the midpoint rule integrates a linear gradient exactly: IG of x^T A x from 0 is x * 2Ax / 2
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    x = np.array([[1.0, -1.0]])
    result = integrated_gradients(callbacks.quadratic(a), x, steps=3)
    np.testing.assert_allclose(result, x * (x @ a), rtol=1e-14)
    assert result.sum() == pytest.approx((x @ a @ x.T).item())


def test_integrated_gradients_batches_path_points_across_inputs():
    counting = callbacks.Counting(nonlinear_gradient)
    x = np.ones((3, 4))
    reference = integrated_gradients(nonlinear_gradient, x, steps=10, batch_size=1000)
    result = integrated_gradients(counting, x, steps=10, batch_size=8)
    assert counting.calls == [8, 8, 8, 6]
    np.testing.assert_allclose(result, reference, rtol=1e-12)


def test_integrated_gradients_baseline_of_one_input_shape():
    x = np.random.default_rng(0).uniform(size=(2, 3, 2))
    baseline = np.full((3, 2), 0.25)
    a = integrated_gradients(callbacks.linear(np.ones((3, 2))), x, baseline=baseline, steps=2)
    np.testing.assert_allclose(a, x - 0.25)


def test_dtypes_are_kept():
    x32 = np.ones((1, 3), dtype=np.float32)
    assert integrated_gradients(nonlinear_gradient, x32, steps=2).dtype == np.float32
    assert vanilla_gradient(nonlinear_gradient, x32.astype(np.float64)).dtype == np.float64
    assert gradient_x_input(nonlinear_gradient, np.ones((1, 3), dtype=np.uint8)).dtype == np.float32
