"""Per-token attributions (saliency_core.tokens) against closed forms.

The model of most tests is a linear bag of embeddings, ``score_c(E) = sum_t E_t . W[:, c]
+ b_c``: its gradient with respect to every token's embedding is ``W[:, c]``, gradient x
embedding of token ``t`` is ``E_t . W[:, c]`` (exactly its contribution to the score), and
integrated gradients from the zero embedding equals gradient x embedding. A quadratic
model checks completeness of integrated gradients from a padding baseline (the midpoint
rule is exact for a gradient linear along the path).
"""

from __future__ import annotations

import numpy as np
import pytest

from saliency_core import integrated_gradients, smoothgrad, vanilla_gradient
from saliency_core.metrics import deletion
from saliency_core.smoothing import feature_sigma
from saliency_core.tokens import (
    EMBEDDING_SPREADS,
    TOKEN_REDUCTIONS,
    embedding_sigma,
    padding_ids,
    token_attributions,
)

V, T, D, C = 12, 6, 5, 3


@pytest.fixture(scope="module")
def table():
    return np.random.default_rng(0).normal(size=(V, D))


@pytest.fixture(scope="module")
def weights():
    rng = np.random.default_rng(1)
    return rng.normal(size=(D, C)), rng.normal(size=C)


@pytest.fixture(scope="module")
def ids():
    rng = np.random.default_rng(2)
    tokens = rng.integers(1, V, size=(4, T))
    tokens[0, 4:] = 0  # padding at the end of two sentences
    tokens[2, 3:] = 0
    return tokens


def linear_gradient(w):
    def fn(x, target):
        return np.ascontiguousarray(np.broadcast_to(w[:, target].T[:, None, :], x.shape))
    return fn


def linear_scores(x, w, b):
    return x.sum(axis=1) @ w + b


def test_grad_x_input_is_each_tokens_contribution_to_the_logit(table, weights, ids):
    w, b = weights
    embeddings = table[ids]
    target = np.array([0, 1, 2, 1])
    gradients = vanilla_gradient(linear_gradient(w), embeddings, target)
    tokens = token_attributions(gradients, embeddings)
    expected = np.einsum("ntd,dn->nt", embeddings, w[:, target])
    np.testing.assert_allclose(tokens, expected, rtol=1e-12, atol=1e-12)
    scores = linear_scores(embeddings, w, b)[np.arange(4), target]
    np.testing.assert_allclose(tokens.sum(axis=1), scores - b[target], rtol=1e-12)


@pytest.mark.parametrize("steps", [1, 7])
def test_integrated_gradients_from_the_zero_embedding_equals_grad_x_input(table, weights, ids,
                                                                            steps):
    w, _ = weights
    embeddings = table[ids]
    fn = linear_gradient(w)
    ig = integrated_gradients(fn, embeddings, 2, baseline=0.0, steps=steps)
    np.testing.assert_allclose(token_attributions(ig, reduce="sum"),
                               token_attributions(vanilla_gradient(fn, embeddings, 2),
                                                  embeddings), rtol=1e-12, atol=1e-12)


def test_integrated_gradients_from_the_padding_baseline_is_complete(table, ids):
    # S(E) = sum_t (E_t . u)^2: the gradient 2 (E_t . u) u is linear along the path, so
    # the midpoint rule is exact and the token sums equal S(E) - S(baseline)
    u = np.random.default_rng(3).normal(size=D)
    table = table.copy()
    table[0] = np.random.default_rng(4).normal(size=D)  # a padding embedding that is not 0

    def score(x):
        return ((x @ u) ** 2).sum(axis=1)

    def fn(x, target):
        return 2 * (x @ u)[..., None] * u

    embeddings = table[ids]
    baseline = table[padding_ids(ids, 0)]
    ig = integrated_gradients(fn, embeddings, baseline=baseline, steps=3)
    tokens = token_attributions(ig, reduce="sum")
    np.testing.assert_allclose(tokens.sum(axis=1), score(embeddings) - score(baseline),
                               rtol=1e-12)
    # padded positions are equal in the sentence and the baseline: nothing to attribute
    assert (tokens[ids == 0] == 0).all()


@pytest.mark.parametrize("spread", EMBEDDING_SPREADS)
@pytest.mark.parametrize("per_dimension", [False, True])
def test_smoothgrad_of_a_linear_model_is_its_gradient(table, weights, ids, spread,
                                                      per_dimension):
    w, _ = weights
    embeddings = table[ids]
    sigma = embedding_sigma(table, 0.2, spread=spread, per_dimension=per_dimension)
    fn = linear_gradient(w)
    smooth = smoothgrad(fn, embeddings, 1, sigma=sigma, n_samples=8, seed=0)
    np.testing.assert_allclose(token_attributions(smooth, embeddings),
                               token_attributions(vanilla_gradient(fn, embeddings, 1),
                                                  embeddings), rtol=1e-12, atol=1e-12)


def test_embedding_sigma_over_the_table_and_per_dimension(table):
    assert embedding_sigma(table, 0.1) == pytest.approx(0.1 * (table.max() - table.min()))
    assert embedding_sigma(table, 0.3, spread="std") == pytest.approx(0.3 * table.std())
    per_dimension = embedding_sigma(table, 0.1, per_dimension=True)
    assert per_dimension.shape == (1, D)
    np.testing.assert_allclose(per_dimension[0], feature_sigma(table, 0.1))
    np.testing.assert_allclose(embedding_sigma(table, 0.1, spread="std", per_dimension=True)[0],
                               feature_sigma(table, 0.1, spread="std"))
    assert embedding_sigma(table, 0.0) == 0.0


def test_per_dimension_sigma_scales_each_dimensions_noise(table):
    rows = []

    def record(x, target):
        rows.append(x.copy())
        return x.copy()

    sigma = embedding_sigma(table, 0.5, spread="std", per_dimension=True)
    sigma = sigma * np.arange(1, D + 1)  # dimensions on different scales
    embeddings = np.zeros((1, T, D))
    smoothgrad(record, embeddings, sigma=sigma, n_samples=400, noise="iid", seed=3)
    noise = np.concatenate(rows).reshape(-1, D)
    np.testing.assert_allclose(noise.std(axis=0), sigma[0], rtol=0.06)


def test_l2_is_the_norm_of_the_gradient_and_does_not_overflow(weights, table, ids):
    w, _ = weights
    gradients = vanilla_gradient(linear_gradient(w), table[ids], 0)
    np.testing.assert_allclose(token_attributions(gradients, reduce="l2"),
                               np.full((4, T), np.linalg.norm(w[:, 0])), rtol=1e-12)
    huge = np.full((1, 2, 3), 1e200)
    np.testing.assert_allclose(token_attributions(huge, reduce="l2"), [[np.sqrt(3) * 1e200] * 2])
    assert (token_attributions(np.zeros((1, 2, 3)), reduce="l2") == 0).all()


def test_padding_positions_get_zero_and_the_rest_is_unchanged(table, weights, ids):
    w, _ = weights
    embeddings = table[ids]
    embeddings[ids == 0] += 1.0  # a padding embedding that is not 0 still gets 0
    gradients = vanilla_gradient(linear_gradient(w), embeddings, 0)
    for reduce, second in (("grad_x_input", embeddings), ("sum", None), ("l2", None)):
        plain = token_attributions(gradients, second, reduce=reduce)
        masked = token_attributions(gradients, second, reduce=reduce, ids=ids, pad_id=0)
        assert (masked[ids == 0] == 0).all() and (plain[ids == 0] != 0).all()
        np.testing.assert_array_equal(masked[ids != 0], plain[ids != 0])


def test_results_keep_the_maps_float_dtype(table, ids):
    embeddings = table[ids].astype(np.float32)
    out = token_attributions(embeddings, embeddings)
    assert out.dtype == np.float32 and out.shape == (4, T)
    assert token_attributions(table[ids], reduce="sum").dtype == np.float64


def test_deletion_over_tokens_removes_contributions_largest_first(table, weights, ids):
    w, b = weights
    embeddings = table[ids[:1]]
    tokens = token_attributions(vanilla_gradient(linear_gradient(w), embeddings, 0), embeddings)
    curve = deletion(lambda x: linear_scores(x, w, b), embeddings, tokens, 0, steps=T,
                     baseline=0.0, channel_axis=-1)
    order = np.argsort(-tokens[0], kind="stable")
    expected = linear_scores(embeddings, w, b)[0, 0] - np.concatenate(
        [[0.0], np.cumsum(tokens[0][order])])
    np.testing.assert_allclose(curve.scores[0], expected, rtol=1e-12, atol=1e-12)


def test_padding_ids_keeps_the_special_tokens():
    ids = np.array([[101, 5, 6, 102, 0], [101, 9, 102, 0, 0]])
    np.testing.assert_array_equal(padding_ids(ids, 0, keep=[101, 102]),
                                  [[101, 0, 0, 102, 0], [101, 0, 102, 0, 0]])
    np.testing.assert_array_equal(padding_ids(ids, 1), np.ones_like(ids))
    out = padding_ids(ids.astype(np.uint8), 0)
    assert out.dtype == np.int64 and not np.shares_memory(out, ids)


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda m, e: token_attributions(m[0], e[0]), ValueError, r"\(N, T, D\), got shape \(6, 5\)"),
    (lambda m, e: token_attributions(m, e[:, :3]), ValueError, "expected the maps' shape"),
    (lambda m, e: token_attributions(m), ValueError, "pass the embeddings"),
    (lambda m, e: token_attributions(m, e, reduce="sum"), ValueError, "does not use"),
    (lambda m, e: token_attributions(m, e, reduce="mean"), ValueError, "'grad_x_input', 'sum'"),
    (lambda m, e: token_attributions(m, e, reduce=2), TypeError, "expected one of"),
    (lambda m, e: token_attributions(m.astype(complex), e), TypeError, "complex"),
    (lambda m, e: token_attributions(np.where(m > 0, np.nan, m), e), ValueError, "finite"),
    (lambda m, e: token_attributions(m, e, ids=np.zeros((4, T), int)), ValueError,
     "both .* or neither, got ids alone"),
    (lambda m, e: token_attributions(m, e, pad_id=0), ValueError, "got pad_id alone"),
    (lambda m, e: token_attributions(m, e, ids=np.zeros((4, T)), pad_id=0), TypeError,
     "integer token ids, got dtype float64; convert"),
    (lambda m, e: token_attributions(m, e, ids=np.zeros((4, T), bool), pad_id=0), TypeError,
     "got dtype bool"),
    (lambda m, e: token_attributions(m, e, ids=np.zeros((4, T - 1), int), pad_id=0),
     ValueError, r"one id per token, shape \(4, 6\), got shape \(4, 5\)"),
    (lambda m, e: token_attributions(m, e, ids=-np.ones((4, T), int), pad_id=0), ValueError,
     "non-negative"),
    (lambda m, e: token_attributions(m, e, ids=np.zeros((4, T), int), pad_id=1.0), TypeError,
     "pad_id: expected an integer"),
    (lambda m, e: token_attributions(m, e, ids=np.zeros((4, T), int), pad_id=True), TypeError,
     "pad_id: expected an integer"),
    (lambda m, e: embedding_sigma(e), ValueError, r"\(V, D\)"),
    (lambda m, e: embedding_sigma(e[0], -1.0), ValueError, "non-negative"),
    (lambda m, e: embedding_sigma(e[0], spread="var"), ValueError, "'range', 'std'"),
    (lambda m, e: embedding_sigma(e[0], per_dimension=1), TypeError, "True or False"),
    (lambda m, e: embedding_sigma(np.array([[1e308], [-1e308]]), 1.0), ValueError, "overflow"),
    (lambda m, e: padding_ids(np.zeros(3, int), 0), ValueError, r"\(N, T\)"),
    (lambda m, e: padding_ids([[1, 2], [3]], 0), ValueError, "ragged"),
    (lambda m, e: padding_ids(np.zeros((1, 3), int), 0, keep="ab"), TypeError, "collection"),
    (lambda m, e: padding_ids(np.zeros((1, 3), int), 0, keep=[-1]), ValueError,
     "non-negative"),
], ids=lambda value: None)
def test_bad_input_is_refused_with_what_was_expected(call, error, message, table, ids):
    embeddings = table[ids]
    with pytest.raises(error, match=message):
        call(np.ones_like(embeddings), embeddings)


def test_the_reductions_are_listed():
    assert TOKEN_REDUCTIONS == ("grad_x_input", "sum", "l2")
