"""NoiseGrad and FusionGrad over numpy factories whose noisy copies are known exactly.

A linear model ``S_c(x) = x . W[:, c]`` with multiplicative weights noise ``W * E``,
``E ~ N(1, sigma^2)`` element by element, has the gradient ``W[:, c] * E[:, c]``: its
expectation is ``W[:, c]`` and the mean of ``M`` copies has the standard deviation
``sigma |W[:, c]| / sqrt(M)``.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from saliency_core import smoothgrad
from saliency_core.weight_noise import copy_seeds, fusion_grad, noise_grad

W = np.random.default_rng(0).standard_normal((6, 3))
X = np.random.default_rng(1).uniform(-1, 1, size=(4, 6))
TARGET = np.array([0, 2, 1, 1])


def noisy_weights(seed_sequence, sigma, shape=W.shape):
    return np.random.default_rng(seed_sequence).normal(1.0, sigma, size=shape)


def elementwise_copies(gradient):
    """A factory whose copy has a noise vector ``e`` (6,) and the gradient ``gradient(e, x)``."""

    def make_fn(seed_sequence):
        e = noisy_weights(seed_sequence, 0.2, (6,))
        return lambda x, target: gradient(e, x)

    return make_fn


#: ``S = sum(e * x^2)`` on each copy: the gradient ``2 e x``.
QUADRATIC = elementwise_copies(lambda e, x: 2 * e * x)


class LinearCopies:
    """The factory of noisy copies of the linear model; counts copies and calls."""

    def __init__(self, sigma=0.3):
        self.sigma = sigma
        self.copies = 0
        self.rows: list[int] = []

    def __call__(self, seed_sequence):
        self.copies += 1
        noisy = W * noisy_weights(seed_sequence, self.sigma)

        def gradient(x, target):
            self.rows.append(len(x))
            return noisy[:, target].T.astype(x.dtype)

        return gradient


def test_noise_grad_is_the_mean_of_the_copies_maps():
    seeds = copy_seeds(5, 7)
    expected = np.mean([(W * noisy_weights(s, 0.3))[:, TARGET].T for s in seeds], axis=0)
    np.testing.assert_allclose(noise_grad(LinearCopies(), X, TARGET, n_models=7, seed=5),
                               expected, rtol=1e-13)


def test_noise_grad_of_a_linear_model_tends_to_the_weights():
    n = 4000
    result = noise_grad(LinearCopies(0.3), X, TARGET, n_models=n, batch_size=4, seed=0)
    standard_error = 0.3 * np.abs(W[:, TARGET].T) / np.sqrt(n)
    assert (np.abs(result - W[:, TARGET].T) < 5 * standard_error).all()
    # and the copies do differ: a single one is off by about sigma |W|
    single = noise_grad(LinearCopies(0.3), X, TARGET, n_models=1, seed=0)
    assert np.abs(single - W[:, TARGET].T).max() > 10 * standard_error.max()


def test_sigma_zero_gives_the_plain_gradient():
    np.testing.assert_allclose(noise_grad(LinearCopies(0.0), X, TARGET, n_models=3, seed=1),
                               W[:, TARGET].T, rtol=1e-15)


def test_one_model_is_one_copy():
    make_fn = LinearCopies()
    (seed,) = copy_seeds(9, 1)
    np.testing.assert_array_equal(noise_grad(make_fn, X, TARGET, n_models=1, seed=9),
                                  LinearCopies()(seed)(X, TARGET))
    assert make_fn.copies == 1


def test_seeds():
    make_fn = LinearCopies()
    first = noise_grad(make_fn, X, TARGET, n_models=3, seed=2)
    np.testing.assert_array_equal(noise_grad(make_fn, X, TARGET, n_models=3, seed=2), first)
    assert not np.allclose(noise_grad(make_fn, X, TARGET, n_models=3, seed=3), first)
    # a SeedSequence is used as it is, not advanced; a Generator is advanced
    sequence = np.random.SeedSequence(11)
    np.testing.assert_array_equal(noise_grad(make_fn, X, TARGET, n_models=3, seed=sequence),
                                  noise_grad(make_fn, X, TARGET, n_models=3, seed=sequence))
    generator = np.random.default_rng(4)
    once = noise_grad(make_fn, X, TARGET, n_models=3, seed=generator)
    assert not np.allclose(noise_grad(make_fn, X, TARGET, n_models=3, seed=generator), once)
    np.testing.assert_array_equal(
        noise_grad(make_fn, X, TARGET, n_models=3, seed=np.random.default_rng(4)), once)
    # the first copies do not change with n_models
    three = noise_grad(make_fn, X, TARGET, n_models=3, seed=2) * 3
    five = noise_grad(make_fn, X, TARGET, n_models=5, seed=2) * 5
    last_two = sum(make_fn(s)(X, TARGET) for s in copy_seeds(2, 5)[3:])
    np.testing.assert_allclose(five, three + last_two, rtol=1e-12)


def test_global_random_state_is_left_alone():
    state = np.random.get_state()[1].copy()  # noqa: NPY002 - the global state stays
    noise_grad(LinearCopies(), X, TARGET, n_models=2, seed=0)
    fusion_grad(LinearCopies(), X, TARGET, n_models=2, n_samples=2, sigma=0.1, seed=0)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002


@pytest.mark.parametrize("method", [noise_grad, fusion_grad])
def test_batch_size_changes_nothing(method):
    make_fn = LinearCopies()
    options = dict(n_models=3, seed=1) | ({} if method is noise_grad else dict(n_samples=3))
    for factory in (make_fn, QUADRATIC):
        maps = [method(factory, X, TARGET, batch_size=b, **options) for b in (1, 3, 64)]
        for other in maps[1:]:
            np.testing.assert_allclose(other, maps[0], rtol=1e-13, atol=1e-15)
    assert max(make_fn.rows) <= 64 and min(make_fn.rows) == 1


@pytest.mark.parametrize("method", [noise_grad, fusion_grad])
def test_one_copy_alive_at_a_time(method):
    alive: list[weakref.ref] = []
    most = []

    class Copy:
        def __init__(self, seed):
            self.noisy = W * noisy_weights(seed, 0.1)

        def __call__(self, x, target):
            return self.noisy[:, target].T.copy()

    def make_fn(seed):
        gc.collect()
        most.append(sum(ref() is not None for ref in alive))
        copy = Copy(seed)
        alive.append(weakref.ref(copy))
        return copy

    options = {} if method is noise_grad else dict(n_samples=2, sigma=0.1)
    method(make_fn, X, TARGET, n_models=4, seed=0, **options)
    assert most == [0, 0, 0, 0]  # every earlier copy is gone when the next is made
    gc.collect()
    assert all(ref() is None for ref in alive)


def test_dtypes_and_any_trailing_shape():
    def make_fn(seed):
        factor = noisy_weights(seed, 0.2, ())
        return lambda x, t: (factor * x.sum(axis=1, keepdims=True)).astype(x.dtype)

    for dtype in (np.float32, np.float64):
        result = noise_grad(make_fn, X.astype(dtype), n_models=2, seed=0)
        assert result.dtype == dtype and result.shape == (4, 1)


def test_maps_keep_one_shape_over_copies():
    shapes = iter([(4, 6), (4, 5)])

    def make_fn(seed):
        shape = next(shapes)
        return lambda x, t: np.ones(shape)

    with pytest.raises(ValueError, match=r"fn of copy 1 call for rows 0..3: expected an array "
                                         r"of shape \(4, 6\)"):
        noise_grad(make_fn, X, n_models=2, seed=0)


# --------------------------------------------------------------------------- FusionGrad


def test_fusion_grad_is_the_mean_of_smoothgrad_over_the_copies():
    root = np.random.SeedSequence(3)
    make_fn = elementwise_copies(lambda e, x: np.sin(e * x))
    expected = np.mean([
        smoothgrad(make_fn(seed), X, TARGET, n_samples=4, sigma=0.2,
                   seed=np.random.SeedSequence(root.entropy, spawn_key=(1, j)))
        for j, seed in enumerate(copy_seeds(3, 3))
    ], axis=0)
    result = fusion_grad(make_fn, X, TARGET, n_models=3, n_samples=4, sigma=0.2, seed=3)
    np.testing.assert_allclose(result, expected, rtol=1e-13)


def test_fusion_grad_without_input_noise_or_input_dependence_is_noise_grad():
    make_fn = LinearCopies()
    noise = noise_grad(make_fn, X, TARGET, n_models=4, seed=6)
    # a gradient that does not depend on x: the input noise changes nothing
    np.testing.assert_allclose(fusion_grad(make_fn, X, TARGET, n_models=4, n_samples=3,
                                           sigma=0.5, seed=6), noise, rtol=1e-13)
    np.testing.assert_allclose(fusion_grad(QUADRATIC, X, TARGET, n_models=4, n_samples=3,
                                           sigma=0.0, seed=6),
                               noise_grad(QUADRATIC, X, TARGET, n_models=4, seed=6), rtol=1e-13)


def test_fusion_grad_of_a_quadratic_with_antithetic_input_noise():
    # S = sum(e * x^2) per copy: gradient 2 e (x + z); antithetic pairs cancel z exactly
    expected = np.mean([2 * noisy_weights(s, 0.2, (6,)) * X for s in copy_seeds(8, 5)], axis=0)
    result = fusion_grad(QUADRATIC, X, TARGET, n_models=5, n_samples=4, noise_level=0.3,
                         noise="antithetic", seed=8)
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- bad input

BAD = [
    ("x", np.full((2, 3), np.nan), ValueError, "x: expected finite values"),
    ("target", [0], ValueError, r"target: expected one index per input"),
    ("n_models", 0, ValueError, "n_models: expected a positive integer, got 0"),
    ("n_models", 2.0, TypeError, "n_models: expected a positive integer"),
    ("batch_size", 0, ValueError, "batch_size: expected a positive integer"),
    ("seed", -1, ValueError, "seed: expected a non-negative int"),
    ("seed", 1.5, TypeError, "seed: expected None, a non-negative int"),
    ("progress", 1, TypeError, "progress: expected True or False"),
]
FUSION_BAD = [
    ("n_samples", 0, ValueError, "n_samples: expected a positive integer"),
    ("noise", "sobol", ValueError, "noise: expected one of "),
    ("sigma", -1.0, ValueError, "sigma: expected a finite non-negative number"),
    ("noise_level", float("nan"), ValueError, "noise_level: expected a finite non-negative"),
]


@pytest.mark.parametrize("method", [noise_grad, fusion_grad])
def test_bad_input_is_refused_before_any_copy_is_made(method):
    cases = BAD + (FUSION_BAD if method is fusion_grad else [])
    for name, value, error, message in cases:
        make_fn = LinearCopies()
        arguments = dict(x=X[:2], target=0, n_models=2) | {name: value}
        x, target = arguments.pop("x"), arguments.pop("target")
        with pytest.raises(error, match=message):
            method(make_fn, x, target, **arguments)
        assert make_fn.copies == 0, name
    with pytest.raises(TypeError, match="make_fn: expected a callable"):
        method("model", X)
    if method is fusion_grad:
        make_fn = LinearCopies()
        with pytest.raises(ValueError, match="expected either noise_level .* or sigma"):
            fusion_grad(make_fn, X, TARGET, noise_level=0.1, sigma=0.1)
        assert make_fn.copies == 0


@pytest.mark.parametrize("method", [noise_grad, fusion_grad])
def test_a_factory_must_return_a_callback(method):
    with pytest.raises(TypeError, match=r"make_fn: expected make_fn\(seed_sequence\) to "
                                        r"return an attribution callback .* got ndarray"):
        method(lambda seed: np.ones(3), X, n_models=2, seed=0)
