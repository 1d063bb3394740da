"""Randomisation metrics on numpy callbacks and factories with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from saliency_core.metrics.randomisation import (
    ModelRandomisationResult,
    model_randomisation,
    random_logit,
)
from tests.core.callbacks import Counting

N_CLASSES = 4
CLASS_MAPS = np.random.default_rng(0).normal(size=(N_CLASSES, 9, 8))  # one map per class
X = np.random.default_rng(1).normal(size=(5, 9, 8))


def per_class(x, target):
    """A map that depends on the class only: CLASS_MAPS[target] for every row."""
    return CLASS_MAPS[target].copy()


def test_random_logit_compares_with_the_map_of_the_other_class():
    # with two classes the other class is forced: 1 - target
    target = np.array([0, 1, 1, 0, 1])
    maps = CLASS_MAPS[:2]
    flat = maps.reshape(2, -1)
    spearman = stats.spearmanr(flat[0], flat[1])[0]
    pearson = np.corrcoef(flat[0], flat[1])[0, 1]
    for similarity, expected in (("spearman", spearman), ("pearson", pearson)):
        value = random_logit(per_class, X, target, n_classes=2, similarity=similarity, seed=0)
        np.testing.assert_allclose(value, np.full(5, expected), rtol=1e-12)
    metrics = pytest.importorskip("skimage.metrics")
    joint = maps.max() - maps.min()
    expected = metrics.structural_similarity(maps[0], maps[1], data_range=joint)
    value = random_logit(per_class, X, target, n_classes=2, seed=0)  # ssim by default
    np.testing.assert_allclose(value, np.full(5, expected), rtol=1e-10)


def test_random_logit_draws_another_class_uniformly_from_the_seed():
    seen = []

    def record(x, target):
        seen.append(target.copy())
        return per_class(x, target)

    n = 3000
    target = np.arange(n) % N_CLASSES
    x = np.zeros((n, 9, 8))
    random_logit(record, x, target, n_classes=N_CLASSES, similarity="pearson", seed=5,
                 batch_size=256)
    rows = np.concatenate(seen).reshape(n, 2)  # (target, other) per input, in order
    np.testing.assert_array_equal(rows[:, 0], target)
    assert np.all(rows[:, 1] != target)
    counts = np.bincount(rows[:, 1][target == 0], minlength=N_CLASSES)[1:]
    assert counts.sum() == n // N_CLASSES and np.all(np.abs(counts - 250) < 60)  # 4.5 std
    again = Counting(per_class)
    first = random_logit(per_class, X, 1, n_classes=N_CLASSES, seed=7)
    np.testing.assert_array_equal(random_logit(again, X, 1, n_classes=N_CLASSES, seed=7), first)
    assert again.calls == [10]


def test_random_logit_of_a_class_blind_map_is_one():
    blind = lambda x, target: np.sin(x)  # noqa: E731
    for similarity in ("spearman", "pearson", "ssim"):
        value = random_logit(blind, X, 2, n_classes=N_CLASSES, similarity=similarity, seed=0)
        np.testing.assert_allclose(value, np.ones(5), rtol=1e-12)


def test_random_logit_is_the_same_for_every_batch_size():
    def mixed(x, target):
        return np.tanh(x) * CLASS_MAPS[target]

    results = []
    for batch_size in (1, 3, 64):
        counting = Counting(mixed)
        results.append(random_logit(counting, X, 0, n_classes=N_CLASSES, seed=3,
                                    batch_size=batch_size))
        assert max(counting.calls) <= batch_size and sum(counting.calls) == 10
    for value in results[1:]:
        np.testing.assert_allclose(value, results[0], rtol=1e-12)


def test_random_logit_ssim_averages_the_channel_axis_out():
    maps = np.random.default_rng(2).normal(size=(2, 9, 8, 3))
    channels_last = lambda x, target: maps[target] * (1 + 0 * x[..., None])  # noqa: E731
    value = random_logit(channels_last, X, np.array([0, 1, 0, 1, 0]), n_classes=2,
                         channel_axis=-1, seed=0)
    gray = maps.mean(axis=-1)
    metrics = pytest.importorskip("skimage.metrics")
    expected = metrics.structural_similarity(gray[0], gray[1],
                                             data_range=gray.max() - gray.min())
    np.testing.assert_allclose(value, np.full(5, expected), rtol=1e-10)
    with pytest.raises(ValueError, match="pass channel_axis= to average channels out"):
        random_logit(channels_last, X, 0, n_classes=2, seed=0)


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        ({"target": None}, ValueError, "target: expected the explained class of every input"),
        ({"target": 4}, ValueError, r"target: expected classes in \[0, 3\], got 4"),
        ({"n_classes": 1}, ValueError, "n_classes: expected at least 2 classes, got 1"),
        ({"similarity": "cosine"}, ValueError,
         "similarity: expected one of 'spearman', 'pearson', 'ssim', got 'cosine'"),
        ({"channel_axis": 0}, ValueError, "channel_axis: expected a non-batch axis"),
        ({"absolute": "yes"}, TypeError, "absolute: expected True or False"),
        ({"batch_size": 0}, ValueError, "batch_size: expected a positive integer"),
    ],
)
def test_random_logit_refuses_bad_input_before_any_call(arguments, error, match):
    counting = Counting(per_class)
    options = {"target": 0, "n_classes": N_CLASSES, **arguments}
    with pytest.raises(error, match=match):
        random_logit(counting, X, options.pop("target"), **options)
    assert counting.calls == []


class Factory:
    """A model whose layers, once re-initialised, give maps of independent noise.

    The map of ``x`` is ``BASE + 0.1 x`` for the original model; a model with re-initialised
    layers swaps ``BASE`` for noise drawn from the seeds it received (its "weights"), so
    the same seeds give the same model. Records every call.
    """

    def __init__(self, *, ignore: bool = False):
        self.ignore = ignore
        self.calls: list[tuple[tuple[str, ...], tuple[int, ...]]] = []
        self.rows: list[int] = []

    def __call__(self, randomised, seeds):
        self.calls.append((randomised, seeds))

        def explain_fn(x, target):
            self.rows.append(len(x))
            if self.ignore or not randomised:
                return BASE + 0.1 * x
            return np.random.default_rng(list(seeds)).normal(size=BASE.shape) + 0.1 * x

        return explain_fn


BASE = np.random.default_rng(3).normal(size=(32, 32))
X_BIG = np.random.default_rng(4).normal(size=(6, 32, 32))
LAYERS = ["logits", "dense", "conv2", "conv1"]


def test_an_unrandomised_factory_gives_exactly_one_for_every_step():
    factory = Factory(ignore=True)
    result = model_randomisation(factory, X_BIG, layers=LAYERS,
                                 similarity=("spearman", "pearson", "ssim"), seed=0)
    for values in (result.spearman, result.pearson, result.ssim):
        assert values.shape == (6, 4)
        np.testing.assert_allclose(values, np.ones((6, 4)), rtol=0, atol=1e-12)
    assert len(factory.calls) == len(LAYERS) + 1


def test_randomised_maps_drive_the_similarity_to_zero():
    # independent noise maps of 1024 elements: correlations ~ N(0, 1/1024), |r| < 0.15
    result = model_randomisation(Factory(), X_BIG, layers=LAYERS, seed=0, absolute=False,
                                 similarity=("spearman", "pearson"))
    assert np.all(np.abs(result.spearman) < 0.15) and np.all(np.abs(result.pearson) < 0.15)
    assert result.ssim is None
    # of |maps|, both positive: still unrelated, so near 0
    result = model_randomisation(Factory(), X_BIG, layers=LAYERS, seed=0)
    assert np.all(np.abs(result["spearman"]) < 0.15) and np.all(result["ssim"] < 0.2)


def test_cascading_steps_randomise_from_the_top_with_fixed_layer_seeds():
    factory = Factory()
    result = model_randomisation(factory, X_BIG, layers=LAYERS, seed=42)
    randomised = [call[0] for call in factory.calls]
    assert randomised == [(), ("logits",), ("logits", "dense"), ("logits", "dense", "conv2"),
                          ("logits", "dense", "conv2", "conv1")]
    assert result.randomised == tuple(randomised[1:]) and result.cascading
    seeds = factory.calls[-1][1]
    assert factory.calls[0][1] == () and len(set(seeds)) == 4
    for step, (_, layer_seeds) in enumerate(factory.calls[1:]):
        assert layer_seeds == seeds[: step + 1]  # a layer keeps its seed at every step
    assert all(0 <= seed < 2**32 for seed in seeds)

    independent = Factory()
    result = model_randomisation(independent, X_BIG, layers=LAYERS, seed=42, cascading=False)
    assert [call[0] for call in independent.calls[1:]] == [(name,) for name in LAYERS]
    assert [call[1] for call in independent.calls[1:]] == [(seed,) for seed in seeds]
    assert result.randomised == tuple((name,) for name in LAYERS) and not result.cascading


def test_model_randomisation_is_reproducible_and_batch_size_free():
    first = model_randomisation(Factory(), X_BIG, layers=LAYERS, seed=9)
    np.testing.assert_array_equal(
        model_randomisation(Factory(), X_BIG, layers=LAYERS, seed=np.random.SeedSequence(9)).ssim,
        first.ssim,
    )
    factory = Factory()
    chunked = model_randomisation(factory, X_BIG, layers=LAYERS, seed=9, batch_size=4)
    np.testing.assert_array_equal(chunked.spearman, first.spearman)
    assert factory.rows == [4, 2] * (len(LAYERS) + 1)
    other = model_randomisation(Factory(), X_BIG, layers=LAYERS, seed=10)
    assert not np.array_equal(other.spearman, first.spearman)


def test_the_result_is_frozen_and_read_only():
    result = model_randomisation(Factory(), X_BIG[:2], layers=["fc"], seed=0)
    assert isinstance(result, ModelRandomisationResult) and result.layers == ("fc",)
    with pytest.raises(AttributeError):
        result.layers = ("conv",)
    with pytest.raises(ValueError, match="read-only"):
        result.spearman[0, 0] = 2.0
    with pytest.raises(KeyError, match="'pearson' was not computed"):
        result["pearson"]


def test_a_constant_randomised_map_is_nan_and_warns():
    def dead(randomised, seeds):
        if randomised:
            return lambda x, target: np.zeros_like(x)
        return lambda x, target: np.broadcast_to(BASE, x.shape).copy()

    with pytest.warns(RuntimeWarning, match=r"constant after randomising \['fc', 'conv'\]"):
        result = model_randomisation(dead, X_BIG[:2], layers=["fc", "conv"], seed=0)
    assert np.isnan(result.spearman).all() and np.isfinite(result.ssim).all()


@pytest.mark.parametrize(
    ("arguments", "error", "match"),
    [
        ({"layers": []}, ValueError, "layers: expected at least one layer name"),
        ({"layers": ["fc", "conv", "fc"]}, ValueError,
         r"layers: expected each layer once, got \['fc'\] more than once"),
        ({"layers": "fc"}, TypeError, "wrap a single name in a list"),
        ({"layers": ["fc", 3]}, TypeError, r"layers: expected layer names \(str\), got 3"),
        ({"similarity": "hog"}, ValueError,
         "similarity: expected one of 'spearman', 'pearson', 'ssim', got 'hog'"),
        ({"similarity": ()}, ValueError, "similarity: expected a name or a non-empty list"),
        ({"similarity": ("ssim", "ssim")}, ValueError, "expected each similarity once"),
        ({"cascading": None}, TypeError, "cascading: expected True or False"),
        ({"seed": 1.5}, TypeError, "seed: expected None, a non-negative int"),
        ({"x": np.zeros((0, 32, 32))}, ValueError, "x: expected at least one input"),
    ],
)
def test_model_randomisation_refuses_bad_input_before_any_call(arguments, error, match):
    factory = Factory()
    options = {"x": X_BIG, "layers": LAYERS, **arguments}
    with pytest.raises(error, match=match):
        model_randomisation(factory, options.pop("x"), **options)
    assert factory.calls == []


def test_model_randomisation_checks_what_the_factory_gives():
    with pytest.raises(TypeError, match=r"explain_for\(\('fc',\), seeds\): expected an "
                                        "attribution callback"):
        model_randomisation(lambda r, s: None if r else (lambda x, t: x + 1.0), X_BIG,
                            layers=["fc"])

    def reshaping(randomised, seeds):
        return lambda x, target: (x[:, :16] if randomised else x) + 1.0

    with pytest.raises(ValueError, match=r"explain_fn of explain_for\(\('fc',\), seeds\) call "
                                         r"for rows 0\.\.5: expected an array of shape "
                                         r"\(6, 32, 32\), got shape \(6, 16, 32\)"):
        model_randomisation(reshaping, X_BIG, layers=["fc"])

    def broken(randomised, seeds):
        return lambda x, target: np.full(x.shape, np.nan if randomised else 1.0)

    with pytest.raises(ValueError, match=r"explain_for\(\('fc',\), seeds\).*finite values"):
        model_randomisation(broken, X_BIG, layers=["fc"])
