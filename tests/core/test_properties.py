"""Properties over shapes, dtypes and batch sizes (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from saliency_core import integrated_gradients, smoothgrad, vanilla_gradient

shapes = hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=4)
dtypes = st.sampled_from([np.float32, np.float64, np.uint8, np.int16, np.float16])


@st.composite
def batches(draw):
    shape = draw(shapes)
    dtype = draw(dtypes)
    if np.dtype(dtype).kind == "f":
        elements = st.floats(-10, 10, width=np.dtype(dtype).itemsize * 8)
    else:
        elements = st.integers(0, 100)
    return draw(hnp.arrays(dtype, shape, elements=elements))


def expected_dtype(dtype) -> np.dtype:
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


@given(x=batches(), batch_size=st.integers(1, 20), n_samples=st.integers(1, 6),
       aggregate=st.sampled_from(["mean", "abs", "square", "variance"]))
def test_smoothgrad_shape_dtype_and_finiteness(x, batch_size, n_samples, aggregate):
    result = smoothgrad(lambda b, t: np.tanh(b), x, n_samples=n_samples, batch_size=batch_size,
                        aggregate=aggregate, sigma=0.5, seed=0)
    assert result.shape == x.shape
    assert result.dtype == expected_dtype(x.dtype)
    assert np.isfinite(result).all()
    if aggregate in ("abs", "square", "variance"):
        assert (result >= 0).all()


@given(x=batches(), batch_size=st.integers(1, 9))
def test_linear_callback_gives_its_constant_for_any_shape(x, batch_size):
    w = np.linspace(-1, 1, int(np.prod(x.shape[1:]))).reshape(x.shape[1:])
    fn = lambda b, t: np.broadcast_to(w, b.shape).astype(b.dtype)  # noqa: E731
    result = smoothgrad(fn, x, n_samples=3, batch_size=batch_size, sigma=1.0, seed=1)
    np.testing.assert_allclose(result, np.broadcast_to(w, x.shape), rtol=1e-6, atol=1e-6)


@given(x=batches(), small=st.integers(1, 7), n_samples=st.integers(1, 8))
def test_batch_size_invariance(x, small, n_samples):
    x = x.astype(np.float64)
    fn = lambda b, t: b**2  # noqa: E731
    options = dict(n_samples=n_samples, aggregate="variance", sigma=0.7, seed=3)
    a = smoothgrad(fn, x, batch_size=small, **options)
    b = smoothgrad(fn, x, batch_size=64, **options)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


@given(x=batches(), batch_size=st.integers(1, 9), steps=st.integers(1, 5))
def test_integrated_gradients_and_vanilla_keep_shape(x, batch_size, steps):
    fn = lambda b, t: 3 * b  # noqa: E731
    assert vanilla_gradient(fn, x, batch_size=batch_size).shape == x.shape
    ig = integrated_gradients(fn, x, steps=steps, batch_size=batch_size)
    assert ig.shape == x.shape and ig.dtype == expected_dtype(x.dtype)
    # S = 1.5 x^2 from a zero baseline: attributions 1.5 x^2 exactly (linear gradient)
    xf = x.astype(ig.dtype)
    np.testing.assert_allclose(ig, 1.5 * xf**2, rtol=2e-3, atol=1e-3)
