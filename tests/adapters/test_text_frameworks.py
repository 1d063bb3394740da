"""Per-token attributions of one text classifier in PyTorch, Keras and JAX.

One small classifier (an embedding of 16, a 1-D convolution of width 3 with a ReLU, mean
pooling over the tokens, a dense layer) with the same weights in the three frameworks,
explained through each backend's ``embedding_fn``: the embeddings, outputs and gradients
agree with a numpy forward and backward pass, and gradient x embedding, SmoothGrad (noise
in embedding space) and integrated gradients (from the zero and the padding embedding)
give the same per-token maps in every framework.
"""

from __future__ import annotations

import numpy as np
import pytest

from saliency_core import integrated_gradients, smoothgrad, vanilla_gradient
from saliency_core.tokens import embedding_sigma, padding_ids, token_attributions
from tests.conftest import FRAMEWORKS, require

V, D, F, C, T, WIDTH = 20, 16, 8, 3, 9, 3
PAD = 0
TARGET = np.array([0, 2, 1, 2])


# --------------------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def weights():
    rng = np.random.default_rng(7)
    table = rng.normal(0.0, 1.0, (V, D)).astype(np.float32)
    table[PAD] = 0.0
    return {
        "table": table,
        "kernel": rng.normal(0.0, 0.4, (WIDTH, D, F)).astype(np.float32),
        "conv_bias": rng.normal(0.0, 0.1, F).astype(np.float32),
        "dense": rng.normal(0.0, 0.5, (F, C)).astype(np.float32),
        "dense_bias": rng.normal(0.0, 0.1, C).astype(np.float32),
    }


@pytest.fixture(scope="module")
def ids():
    tokens = np.random.default_rng(8).integers(1, V, size=(4, T))
    tokens[1, 6:] = PAD
    tokens[3, 4:] = PAD
    return tokens


def _convolve(embeddings, w):
    padded = np.pad(embeddings, ((0, 0), (1, 1), (0, 0)))
    return sum(padded[:, j:j + T] @ w["kernel"][j] for j in range(WIDTH)) + w["conv_bias"]


def numpy_forward(w, embeddings):
    hidden = np.maximum(_convolve(embeddings.astype(np.float64), w), 0)
    return hidden.mean(axis=1) @ w["dense"] + w["dense_bias"]


def numpy_gradient(w, embeddings, target):
    pre = _convolve(embeddings.astype(np.float64), w)
    upstream = (w["dense"][:, target].T[:, None, :] / T) * (pre > 0)  # (N, T, F)
    grad = np.zeros((len(embeddings), T + 2, D))
    for j in range(WIDTH):
        grad[:, j:j + T] += upstream @ w["kernel"][j].T
    return grad[:, 1:-1]


def torch_model(w):
    torch = require("torch")

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(V, D, padding_idx=PAD)
            self.conv = torch.nn.Conv1d(D, F, WIDTH, padding=1)
            self.out = torch.nn.Linear(F, C)

        def forward(self, ids):
            vectors = self.embedding(ids).transpose(1, 2)  # (N, D, T)
            return self.out(torch.relu(self.conv(vectors)).mean(dim=2))

    model = Classifier().eval()
    with torch.no_grad():
        model.embedding.weight.copy_(torch.from_numpy(w["table"]))
        model.conv.weight.copy_(torch.from_numpy(w["kernel"].transpose(2, 1, 0).copy()))
        model.conv.bias.copy_(torch.from_numpy(w["conv_bias"]))
        model.out.weight.copy_(torch.from_numpy(w["dense"].T.copy()))
        model.out.bias.copy_(torch.from_numpy(w["dense_bias"]))
    return model


def keras_model(w, *, mask_zero=False):
    keras = require("keras")
    ids = keras.Input((T,), dtype="int32")
    vectors = keras.layers.Embedding(V, D, mask_zero=mask_zero, name="embedding")(ids)
    hidden = keras.layers.Conv1D(F, WIDTH, padding="same", activation="relu", name="conv")(
        vectors)
    pooled = keras.layers.GlobalAveragePooling1D()(hidden)
    model = keras.Model(ids, keras.layers.Dense(C, name="out")(pooled))
    model.get_layer("embedding").set_weights([w["table"]])
    model.get_layer("conv").set_weights([w["kernel"], w["conv_bias"]])
    model.get_layer("out").set_weights([w["dense"], w["dense_bias"]])
    return model


def jax_halves(w):
    jnp = require("jax.numpy")
    params = {key: jnp.asarray(value) for key, value in w.items()}

    def embed_fn(p, ids):
        return p["table"][ids]

    def head_fn(p, embeddings):
        padded = jnp.pad(embeddings, ((0, 0), (1, 1), (0, 0)))
        pre = sum(padded[:, j:j + T] @ p["kernel"][j] for j in range(WIDTH)) + p["conv_bias"]
        return jnp.maximum(pre, 0).mean(axis=1) @ p["dense"] + p["dense_bias"]

    def apply_fn(p, ids):
        return head_fn(p, embed_fn(p, ids))

    return (apply_fn, params), (embed_fn, head_fn)


def callbacks_of(name, w):
    if name == "torch":
        from adapters import torch as adapter

        return adapter.embedding_fn(torch_model(w), "embedding")
    if name == "tensorflow":
        from adapters import tensorflow as adapter

        return adapter.embedding_fn(keras_model(w), "embedding")
    from adapters import jax as adapter

    model, halves = jax_halves(w)
    return adapter.embedding_fn(model, halves)


@pytest.fixture(scope="module")
def callbacks(weights):
    for module in ("torch", "tensorflow", "jax"):
        require(module)
    return {name: callbacks_of(name, weights) for name in FRAMEWORKS}


# --------------------------------------------------------------------------- agreement


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_embed_predict_and_gradient_match_numpy(name, callbacks, weights, ids):
    embed, gradient, predict = callbacks[name]
    embeddings = embed(ids)
    assert embeddings.dtype == np.float32 and embeddings.shape == (4, T, D)
    np.testing.assert_array_equal(embeddings, weights["table"][ids])
    np.testing.assert_allclose(predict(embeddings), numpy_forward(weights, embeddings),
                               rtol=1e-5, atol=1e-5)
    grad = gradient(embeddings, TARGET)
    assert grad.dtype == np.float32 and grad.shape == embeddings.shape
    np.testing.assert_allclose(grad, numpy_gradient(weights, embeddings, TARGET), rtol=1e-4,
                               atol=1e-6)


def test_predict_from_embeddings_is_the_model_on_the_ids(weights, ids):
    torch = require("torch")
    require("tensorflow")
    model = torch_model(weights)
    embed, _, predict = callbacks_of("torch", weights)
    np.testing.assert_allclose(predict(embed(ids)), model(torch.from_numpy(ids)).detach().numpy(),
                               rtol=1e-6, atol=1e-6)
    keras = keras_model(weights)
    callbacks = callbacks_of("tensorflow", weights)
    np.testing.assert_allclose(callbacks.predict(callbacks.embed(ids)), keras(ids).numpy(),
                               rtol=1e-5, atol=1e-6)
    jax_model, _ = jax_halves(weights)
    jax_callbacks = callbacks_of("jax", weights)
    np.testing.assert_allclose(jax_callbacks.predict(jax_callbacks.embed(ids)),
                               np.asarray(jax_model[0](jax_model[1], ids)), rtol=1e-6,
                               atol=1e-6)


def _agree(maps, tolerance=1e-4):
    first = maps[FRAMEWORKS[0]]
    assert first.shape == (4, T) and np.abs(first).max() > 0
    for name in FRAMEWORKS[1:]:
        scale = np.abs(first).max()
        assert np.abs(maps[name] - first).max() / scale < tolerance, name


def test_gradient_x_embedding_is_the_same_in_every_framework(callbacks, weights, ids):
    maps = {}
    for name, (embed, gradient, _) in callbacks.items():
        embeddings = embed(ids)
        maps[name] = token_attributions(vanilla_gradient(gradient, embeddings, TARGET),
                                        embeddings, ids=ids, pad_id=PAD)
    _agree(maps)
    embeddings = weights["table"][ids]
    truth = token_attributions(numpy_gradient(weights, embeddings, TARGET), embeddings)
    truth[ids == PAD] = 0
    np.testing.assert_allclose(maps["torch"], truth, rtol=1e-4, atol=1e-5)
    assert (maps["jax"][ids == PAD] == 0).all()


@pytest.mark.parametrize("reduce", ["grad_x_input", "l2"])
def test_smoothgrad_in_embedding_space_is_the_same_in_every_framework(callbacks, weights, ids,
                                                                      reduce):
    sigma = embedding_sigma(weights["table"], 0.15)
    maps = {}
    for name, (embed, gradient, _) in callbacks.items():
        embeddings = embed(ids)
        smooth = smoothgrad(gradient, embeddings, TARGET, sigma=sigma, n_samples=16,
                            batch_size=24, seed=0)
        maps[name] = token_attributions(smooth, embeddings if reduce == "grad_x_input"
                                        else None, reduce=reduce)
    _agree(maps)
    # the same noise through the numpy model
    embeddings = weights["table"][ids]
    smooth = smoothgrad(lambda x, t: numpy_gradient(weights, x, t), embeddings, TARGET,
                        sigma=sigma, n_samples=16, seed=0)
    truth = token_attributions(smooth, embeddings if reduce == "grad_x_input" else None,
                               reduce=reduce)
    np.testing.assert_allclose(maps["tensorflow"], truth, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("baseline", ["zero", "padding"])
def test_integrated_gradients_is_the_same_in_every_framework_and_complete(callbacks, weights,
                                                                          ids, baseline):
    maps = {}
    for name, (embed, gradient, predict) in callbacks.items():
        embeddings = embed(ids)
        reference = 0.0 if baseline == "zero" else embed(padding_ids(ids, PAD))
        ig = integrated_gradients(gradient, embeddings, TARGET, baseline=reference, steps=64)
        maps[name] = token_attributions(ig, reduce="sum")
        if name == "jax":
            reference_rows = np.broadcast_to(reference, embeddings.shape)
            gap = (predict(embeddings) - predict(reference_rows))[np.arange(4), TARGET]
            np.testing.assert_allclose(maps[name].sum(axis=1), gap, atol=2e-3 * np.abs(gap).max())
    _agree(maps)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(("bad", "error", "message"), [
    (np.zeros((2, T)), TypeError, "integer token ids, got dtype float64; convert"),
    (np.zeros((2, T), bool), TypeError, "got dtype bool"),
    (np.zeros(T, int), ValueError, r"\(N, T\), one row per sequence, got shape \(9,\); add"),
    (np.zeros((0, T), int), ValueError, r"got shape \(0, 9\)"),
    (-np.ones((2, T), int), ValueError, "non-negative token ids"),
    ([[1, 2], [3]], ValueError, "ragged"),
], ids=["float", "bool", "1-d", "empty", "negative", "ragged"])
@pytest.mark.parametrize("name", FRAMEWORKS)
def test_bad_ids_are_refused_alike(name, callbacks, bad, error, message):
    with pytest.raises(error, match=message):
        callbacks[name].embed(bad)


@pytest.mark.parametrize("name", ["torch", "tensorflow"])
def test_ids_past_the_vocabulary_are_refused_where_the_size_is_known(name, callbacks):
    with pytest.raises(ValueError, match=f"below the vocabulary size {V} .* got 20"):
        callbacks[name].embed(np.full((1, T), V))


def test_unknown_layers_and_pairs_are_refused(weights):
    from adapters import jax as jax_adapter
    from adapters import tensorflow as tf_adapter
    from adapters import torch as torch_adapter

    with pytest.raises(ValueError, match="'embeding'.*close matches: 'embedding'"):
        torch_adapter.embedding_fn(torch_model(weights), "embeding")
    with pytest.raises(ValueError, match="'embeding'.*close matches: 'embedding'"):
        tf_adapter.embedding_fn(keras_model(weights), "embeding")
    model, halves = jax_halves(weights)
    with pytest.raises(ValueError, match="no named layers"):
        jax_adapter.embedding_fn(model, "embedding")
    with pytest.raises(TypeError, match=r"\(embed_fn, head_fn\) pair, got function"):
        jax_adapter.embedding_fn(model, halves[0])
    with pytest.raises(TypeError, match="expected model to be a torch.nn.Module"):
        torch_adapter.embedding_fn(lambda ids: ids, "embedding")
    with pytest.raises(TypeError, match="functional or Sequential Keras model"):
        tf_adapter.embedding_fn(lambda ids: ids, "embedding")


@pytest.mark.filterwarnings("ignore:Layer 'conv' .* mask:UserWarning")
def test_keras_refuses_a_masking_embedding_and_a_layer_without_tokens(weights):
    from adapters import tensorflow as tf_adapter

    with pytest.raises(ValueError, match="mask_zero=True: the model split at it would lose"):
        tf_adapter.embedding_fn(keras_model(weights, mask_zero=True), "embedding")
    with pytest.raises(ValueError, match=r"one output \(k, T, D\), got layer 'out'"):
        tf_adapter.embedding_fn(keras_model(weights), "out")


def test_torch_refuses_layers_that_do_not_give_the_embeddings(weights, ids):
    torch = require("torch")
    from adapters import torch as torch_adapter

    model = torch_model(weights)
    embed, gradient, _ = torch_adapter.embedding_fn(model, "conv")
    with pytest.raises(TypeError, match="integer token ids"):  # the conv takes no ids
        embed(ids.astype(float))
    embeddings = weights["table"][ids]
    with pytest.raises(ValueError, match="expected embedding layer 'conv' to output the "
                                         r"embeddings' shape \(4, 9, 16\)"):
        gradient(embeddings, TARGET)

    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(V, D)

        def forward(self, ids):
            return (self.embedding(ids) + self.embedding(ids)).sum(dim=(1, 2))

    _, gradient, _ = torch_adapter.embedding_fn(Twice().eval(), "embedding")
    with pytest.raises(ValueError, match="ran more than once"):
        gradient(embeddings, None)

    class Spare(Twice):
        def __init__(self):
            super().__init__()
            self.spare = torch.nn.Embedding(V, D)

    _, gradient, predict = torch_adapter.embedding_fn(Spare().eval(), "spare")
    with pytest.raises(ValueError, match="layer 'spare' did not run"):
        gradient(embeddings, None)
    with pytest.raises(ValueError, match="layer 'spare' did not run"):
        predict(embeddings)


def test_torch_leaves_the_model_as_it_was_and_warns_in_training_mode(weights, ids):
    torch = require("torch")
    from adapters import torch as torch_adapter

    model = torch_model(weights)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    embed, gradient, predict = torch_adapter.embedding_fn(model, model.embedding)
    embeddings = embed(ids)
    gradient(embeddings, TARGET)
    predict(embeddings)
    assert not model.embedding._forward_hooks and not model.training
    assert all(parameter.grad is None for parameter in model.parameters())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    model.train()
    _, gradient, _ = torch_adapter.embedding_fn(model, "embedding")
    with pytest.warns(UserWarning, match="training mode"):
        gradient(embeddings, TARGET)
    assert model.training


def test_torch_inputs_embeds_calls_the_model_with_the_embeddings(weights, ids):
    torch = require("torch")
    from adapters import torch as torch_adapter

    inner = torch_model(weights)

    class TakesEmbeddings(torch.nn.Module):  # the form of Hugging Face models
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids=None, inputs_embeds=None):
            if inputs_embeds is None:
                inputs_embeds = self.inner.embedding(input_ids)
            hidden = torch.relu(self.inner.conv(inputs_embeds.transpose(1, 2)))
            return self.inner.out(hidden.mean(dim=2))

    model = TakesEmbeddings().eval()
    embed, gradient, predict = torch_adapter.embedding_fn(model, "inner.embedding",
                                                          inputs_embeds=True)
    embeddings = embed(ids)
    np.testing.assert_allclose(gradient(embeddings, TARGET),
                               numpy_gradient(weights, embeddings, TARGET), rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(predict(embeddings), model(torch.from_numpy(ids)).detach().numpy(),
                               rtol=1e-6, atol=1e-6)
    with pytest.raises(TypeError, match="inputs_embeds to be True or False"):
        torch_adapter.embedding_fn(model, "inner.embedding", inputs_embeds=1)


def test_jax_embed_compiles_once_per_shape(weights, ids):
    from adapters import jax as jax_adapter

    model, halves = jax_halves(weights)
    embed = jax_adapter.embedding_fn(model, halves).embed
    embed(ids)
    traces = embed.trace_count
    embed(ids + 0)
    assert embed.trace_count == traces and traces <= 1
    assert "embedding_fn.embed" in repr(embed)


def test_keras_sequential_and_flax_models_split_at_their_embedding(weights, ids):
    keras = require("keras")
    flax_linen = require("flax.linen")
    jnp = require("jax.numpy")
    from adapters import jax as jax_adapter
    from adapters import tensorflow as tf_adapter

    # the gradient of a dense layer on mean-pooled embeddings is its weight column / T
    expected = np.broadcast_to(weights["dense"][:, TARGET].T[:, None, :], (4, T, F))
    sequential = keras.Sequential([
        keras.Input((T,), dtype="int32"),
        keras.layers.Embedding(V, F, name="embedding"),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(C, name="out"),
    ])
    sequential.get_layer("embedding").set_weights([weights["table"][:, :F]])
    sequential.get_layer("out").set_weights([weights["dense"], weights["dense_bias"]])
    embed, gradient, predict = tf_adapter.embedding_fn(sequential, "embedding")
    vectors = embed(ids)
    np.testing.assert_allclose(gradient(vectors, TARGET), expected / T, rtol=1e-6)
    np.testing.assert_allclose(predict(vectors), sequential(ids).numpy(), rtol=1e-5, atol=1e-6)

    class Classifier(flax_linen.Module):
        def setup(self):
            self.table = flax_linen.Embed(V, F)
            self.out = flax_linen.Dense(C)

        def embed(self, tokens):
            return self.table(tokens)

        def head(self, vectors):
            return self.out(vectors.mean(axis=1))

        def __call__(self, tokens):
            return self.head(self.embed(tokens))

    module = Classifier()
    variables = {"params": {"table": {"embedding": jnp.asarray(weights["table"][:, :F])},
                            "out": {"kernel": jnp.asarray(weights["dense"]),
                                    "bias": jnp.asarray(weights["dense_bias"])}}}
    halves = (lambda p, tokens: module.apply(p, tokens, method=Classifier.embed),
              lambda p, vectors: module.apply(p, vectors, method=Classifier.head))
    embed, gradient, predict = jax_adapter.embedding_fn((module.apply, variables), halves)
    vectors = embed(ids)
    np.testing.assert_array_equal(vectors, weights["table"][ids][..., :F])
    np.testing.assert_allclose(gradient(vectors, TARGET), expected / T, rtol=1e-6)
    np.testing.assert_allclose(predict(vectors), np.asarray(module.apply(variables, ids)),
                               rtol=1e-6, atol=1e-6)
