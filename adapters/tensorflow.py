"""The TensorFlow/Keras backend: what TensorFlow does differently.

The shared contract (names, keywords, inputs, targets, scores, devices, errors) is in
``adapters/__init__.py`` and ``adapters/_backend.py``. Models: Keras 3 (``tf.keras`` from
TensorFlow 2.16) and ``tf_keras`` models, ``tf.Module`` objects, callables on tensors.

* One ``tf.function`` per callback, traced once per trailing input shape with a free batch
  dimension; gradients are only taken inside it, never with an eager tape.
* Models that accept ``training`` (all Keras models) get ``training=False``; the model is
  never written to (weights, ``trainable`` flags, moving statistics).
* Half-precision models are fed float32, cast inside the trace, and answer float32.
* ``device`` places the trace with ``tf.device`` on one of ``tf.config.list_logical_devices()``.
* ``relu_rule`` sets the rule's backward pass on the ``Relu`` ops of the callback's own
  traced graph (``tf.gradients`` reads an op's ``_gradient_function`` first), so every kind
  of ReLU gets it and nothing else does (the model, other callbacks, the objective's ReLUs).
  ReLUs inside a nested ``tf.function`` or control flow are out of reach: refused.
* ``layer_fn``: a two-output Keras model on the same layers (the layer's output and the
  model's), so functional and Sequential models only.
* ``copy_with_weights``: functional and Sequential models via ``keras.models.clone_model``,
  subclassed ones via ``from_config(get_config())`` (a TypeError when Keras cannot). A
  layer's weights are its parameters, frozen or not; moving statistics are kept.

References:
    Springenberg et al. (2014). Striving for simplicity: the all convolutional net.
    arXiv:1412.6806 (guided backpropagation). Zeiler, Fergus (2014). Visualizing and
    understanding convolutional networks. ECCV (deconvnet). Selvaraju et al. (2017).
    Grad-CAM. ICCV.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Callable
from typing import Any, TypeAlias, cast

import numpy as np

try:
    import tensorflow as tf
except ImportError as error:  # exercised in tests by blocking the import
    raise ImportError(
        "adapters.tensorflow needs TensorFlow, which is not installed; install it with "
        '`pip install "saliency-toolkit[tensorflow]"` (or `pip install tensorflow`).'
    ) from error

from . import _backend
from ._backend import RELU_RULES, Callback, WeightTransform
from ._tokens import EmbeddingCallbacks, as_token_ids, check_embedded

__all__ = ["CHANNEL_AXIS", "NAME", "RELU_RULES", "Objective", "copy_with_weights", "embedding_fn",
           "gradient_fn", "input_spec", "layer_fn", "owns", "predict_fn", "weight_layers"]

NAME = "tensorflow"
CHANNEL_AXIS = -1

#: ``objective(output, target) -> scores``: TensorFlow ops on the model's output (any
#: structure) and the targets (an int64 tensor ``(k,)``, or None), giving ``(k,)`` scores.
Objective = Callable[[Any, Any], Any]

Device: TypeAlias = str | tf.config.LogicalDevice | tf.DeviceSpec | None
DType: TypeAlias = str | np.dtype | tf.DType | None


def owns(model: object) -> bool:
    """True for Keras models and layers (Keras 3 or ``tf_keras``) and ``tf.Module`` objects."""
    return isinstance(model, tf.Module) or _keras_module_of(model, "Layer") is not None


def gradient_fn(
    model: Callable[..., Any],
    *,
    objective: Objective | None = None,
    device: Device = None,
    dtype: DType = None,
    relu_rule: str | None = None,
) -> Callback:
    """The gradient callback ``fn(x, target) -> d score / d x`` of a TensorFlow model.

    Args:
        model: a Keras model, a ``tf.Module`` or a callable on a tensor batch.
        objective: ``objective(output, target) -> (k,)`` scores, in TensorFlow ops.
        device: ``"cpu"``, ``"gpu:1"``, ``"cuda"``, a ``tf.config.LogicalDevice`` or a
            ``tf.DeviceSpec``; None leaves placement to TensorFlow.
        dtype: the dtype the model computes in; None reads it from the model (its Keras
            ``Input``, its compute dtype or its floating variables; else float32).
        relu_rule: None, ``"guided"`` or ``"deconvnet"`` (see the module docstring).

    Returns:
        A :class:`saliency_core.types.GradientFn`; float64 maps for float64 models only.

    Raises:
        TypeError, ValueError: the shared errors of ``_backend``; the callback also raises
            ValueError for ReLUs a rule cannot reach and scores with no gradient path.

    Examples:
        >>> import numpy as np, tensorflow as tf
        >>> w = tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        >>> fn = gradient_fn(lambda x: tf.matmul(x, w))
        >>> fn(np.ones((2, 3), np.float32), np.array([1, 0])).tolist()
        [[2.0, 4.0, 6.0], [1.0, 3.0, 5.0]]

        The ReLU rules, for hidden inputs ``[1, -1]`` and upstream gradients ``[-1, 2]``:

        >>> w1, w2 = tf.constant([[1.0, -1.0]]), tf.constant([[-1.0], [2.0]])
        >>> net = lambda x: tf.matmul(tf.nn.relu(tf.matmul(x, w1)), w2)
        >>> x = np.ones((1, 1), np.float32)
        >>> [gradient_fn(net, relu_rule=rule)(x, None).item() for rule in (None, *RELU_RULES)]
        [-1.0, 0.0, -2.0]
    """
    _backend.check_callable(model, "model")
    if objective is not None:
        _backend.check_callable(objective, "objective")
    rule = _backend.check_relu_rule(relu_rule)
    traced = _Traced(model, device, dtype)

    def body(x: tf.Tensor, target: tf.Tensor | None) -> tuple[tf.Tensor, ...]:
        graph = tf.compat.v1.get_default_graph()
        first = len(graph.get_operations())
        output = traced.forward(x)
        if rule is not None:  # the forward pass's own ops, not the objective's
            _set_relu_rule(traced, rule, graph, graph.get_operations()[first:])
        scores, shape = traced.score(output, target, objective)
        (gradient,) = tf.gradients(scores, x)
        if gradient is None:
            traced.abort(ValueError(
                "expected a score that depends differentiably on the input, got one with no "
                "gradient path to it (an argmax, integer cast or stop_gradient?)"
            ))
        return gradient, shape

    def gradients(x: Any, target: Any = None) -> np.ndarray:
        return traced.run_scored(x, target, objective)[0]

    description = _describe("gradient_fn", model, objective=objective, relu_rule=rule)
    return traced.finish(body, gradients, description)


def predict_fn(model: Callable[..., Any], *, device: Device = None, dtype: DType = None
               ) -> Callback:
    """The prediction callback ``fn(x) -> output`` of a TensorFlow model; no gradient is built.

    ``device`` and ``dtype`` are those of :func:`gradient_fn`; a model whose Keras
    ``Input`` is an integer (token ids) is fed integers, cast inside the traced function.

    Returns:
        A :class:`saliency_core.types.PredictFn` (half-precision outputs as float32).

    Examples:
        >>> import numpy as np
        >>> predict_fn(lambda x: 2.0 * x)(np.ones((1, 2), np.float32)).tolist()
        [[2.0, 2.0]]
    """
    _backend.check_callable(model, "model")
    traced = _Traced(model, device, dtype, floating=False)

    def body(x: tf.Tensor, target: None) -> tuple[tf.Tensor, ...]:
        output = traced.forward(x)
        shape = _static_shape(output)  # rows are checked by the call
        traced.check(_backend.check_output_rows, shape and (None, *shape[1:]))
        return _widen(output), tf.shape(output)

    def predictions(x: Any) -> np.ndarray:
        batch = traced.batch(x)
        output, shape = traced.concrete(batch, None)[0](tf.convert_to_tensor(batch), None)
        _backend.check_output_rows(tuple(shape.numpy().tolist()), batch.shape[0])
        return output.numpy()

    return traced.finish(body, predictions, _describe("predict_fn", model))


def layer_fn(
    model: Any,
    layer: Any,
    *,
    objective: Objective | None = None,
    device: Device = None,
    dtype: DType = None,
) -> Callback:
    """The layer callback ``fn(x, target) -> (activations, d score / d activations)``.

    Args:
        model: a functional or Sequential Keras model with one input.
        layer: a name (or layer object) among ``model.layers``, whose output has spatial
            axes (``(k, H, W, C)`` for ``channels_last``); a nested model is one layer.
        objective: as in :func:`gradient_fn`, and so are ``device`` and ``dtype``.

    Returns:
        A :class:`saliency_core.types.LayerFn` for Grad-CAM.

    Raises:
        TypeError: a model that is not functional or Sequential.
        ValueError: no such layer (close matches named), one inside a nested model, one
            called more than once or without spatial axes.

    Examples:
        >>> import keras, numpy as np
        >>> image = keras.Input((4, 4, 1))
        >>> features = keras.layers.Conv2D(2, 1, use_bias=False, name="conv")(image)
        >>> pooled = keras.layers.GlobalAveragePooling2D()(features)
        >>> model = keras.Model(image, keras.layers.Dense(1, use_bias=False)(pooled))
        >>> activations, gradients = layer_fn(model, "conv")(np.ones((3, 4, 4, 1)), None)
        >>> activations.shape, gradients.shape
        ((3, 4, 4, 2), (3, 4, 4, 2))
        >>> layer_fn(model, "cnv")
        Traceback (most recent call last):
        ...
        ValueError: no layer named 'cnv'; close matches: 'conv'
    """
    keras_module = _keras_module_of(model, "Model")
    inputs = _keras_inputs(model) if keras_module is not None else []
    if not inputs:
        raise TypeError(
            "expected a functional or Sequential Keras model, whose layers have symbolic "
            f"outputs, got {_kind(model)}; build the model from keras.Input"
        )
    if len(inputs) != 1:
        raise TypeError(f"expected a Keras model with one input, got {len(inputs)} inputs")
    if objective is not None:
        _backend.check_callable(objective, "objective")
    chosen = _find_layer(model, layer)
    outputs = model.outputs
    try:  # the same layers and weights; the model itself is not changed
        features = keras_module.Model(
            inputs, [_layer_output(chosen), outputs[0] if len(outputs) == 1 else list(outputs)]
        )
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(
            f"expected layer {chosen.name!r} to lie between the model's input and output, "
            f"got a graph Keras could not cut there: {error}"
        ) from None
    traced = _Traced(features, device, _declared_dtype(model) if dtype is None else dtype)

    def body(x: tf.Tensor, target: tf.Tensor | None) -> tuple[tf.Tensor, ...]:
        activations, output = traced.forward(x)
        scores, shape = traced.score(output, target, objective)
        (gradient,) = tf.gradients(scores, activations)
        if gradient is None:
            traced.abort(ValueError(
                f"expected a score that depends differentiably on layer {chosen.name!r}, got "
                "one with no gradient path from that layer to it"
            ))
        return _widen(activations), _widen(gradient), shape

    def layer_gradients(x: Any, target: Any = None) -> tuple[np.ndarray, np.ndarray]:
        activations, gradient = traced.run_scored(x, target, objective)
        return activations, gradient

    description = _describe("layer_fn", model, layer=chosen.name, objective=objective)
    return traced.finish(body, layer_gradients, description)


# --------------------------------------------------------------------------- embeddings


def embedding_fn(
    model: Any,
    embedding: Any,
    *,
    objective: Objective | None = None,
    device: Device = None,
    dtype: DType = None,
) -> EmbeddingCallbacks:
    """The callbacks of a text model explained through its embeddings: embed, gradient, predict.

    The model is split at its embedding layer: ``embed(ids)`` runs the layer alone on
    integer ids ``(N, T)`` and gives ``(N, T, D)`` numpy; ``gradient(embeddings, target)``
    and ``predict(embeddings)`` are :func:`gradient_fn` and :func:`predict_fn` of a
    Keras model from the layer's output to the model's output (the same layers and
    weights; the model itself is not changed), so any method of the core runs in
    embedding space and :func:`saliency_core.tokens.token_attributions` gives one value
    per token.

    Args:
        model: a functional or Sequential Keras model with one input, the ids.
        embedding: the name (or layer object) of its embedding layer among
            ``model.layers``, whose output is ``(k, T, D)``: a ``keras.layers.Embedding``
            without ``mask_zero`` (a split model cannot pass the padding mask on: build the
            layer with ``mask_zero=False`` and zero the padding positions' attributions
            with ``token_attributions(..., ids=ids, pad_id=0)``), or a layer that adds
            position embeddings to it.
        objective: as in :func:`gradient_fn`; and so are ``device`` and ``dtype``.

    Returns:
        :class:`adapters._tokens.EmbeddingCallbacks` ``(embed, gradient, predict)``.

    Raises:
        TypeError: a model that is not functional or Sequential, or has several inputs.
        ValueError: no such layer (close matches named), a layer called several times,
            with ``mask_zero=True``, without a ``(k, T, D)`` output, or one the rest of
            the model does not reach the output through alone (it also reads the ids);
            when called, ids that are not non-negative integers ``(N, T)`` below the
            layer's ``input_dim``.

    Examples:
        >>> import keras, numpy as np
        >>> ids = keras.Input((None,), dtype="int32")
        >>> vectors = keras.layers.Embedding(5, 2, name="embed")(ids)
        >>> pooled = keras.layers.GlobalAveragePooling1D()(vectors)
        >>> model = keras.Model(ids, keras.layers.Dense(2, name="out")(pooled))
        >>> embed, gradient, predict = embedding_fn(model, "embed")
        >>> tokens = np.array([[1, 4, 3]])
        >>> embeddings = embed(tokens)
        >>> embeddings.shape
        (1, 3, 2)
        >>> expected = model.get_layer("out").kernel.numpy()[:, 1] / 3  # the mean's gradient
        >>> bool(np.allclose(gradient(embeddings, np.array([1]))[0], expected))
        True
        >>> bool(np.allclose(predict(embeddings), model(tokens).numpy()))
        True
    """
    keras_module = _keras_module_of(model, "Model")
    inputs = _keras_inputs(model) if keras_module is not None else []
    if not inputs:
        raise TypeError(
            "expected a functional or Sequential Keras model, whose layers have symbolic "
            f"outputs, got {_kind(model)}; build the model from keras.Input"
        )
    if len(inputs) != 1:
        raise TypeError(f"expected a Keras model with one input (the ids), got {len(inputs)} "
                        "inputs")
    if objective is not None:
        _backend.check_callable(objective, "objective")
    chosen = _find_layer(model, embedding)
    if getattr(chosen, "mask_zero", False):
        raise ValueError(
            f"expected an embedding layer without mask_zero, got layer {chosen.name!r} with "
            "mask_zero=True: the model split at it would lose the padding mask and give "
            "other outputs than the model; build it with mask_zero=False (and zero the "
            "padding positions' attributions with token_attributions(..., pad_id=0))"
        )
    vectors = _embedding_output(chosen)
    outputs = model.outputs
    try:  # the same layers and weights; the model itself is not changed
        head = keras_module.Model(vectors, outputs[0] if len(outputs) == 1 else list(outputs))
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(
            f"expected the model's output to depend on the ids through layer {chosen.name!r} "
            f"only, got a graph Keras could not cut there: {error}"
        ) from None
    device_name = _device_name(device)
    vocabulary = getattr(chosen, "input_dim", None)
    ids_dtype = tf.as_dtype(inputs[0].dtype)
    ids_dtype = ids_dtype if ids_dtype.is_integer else tf.int32
    compute_dtype = _model_dtype(head, dtype, floating=True)

    def embed(ids: Any) -> np.ndarray:
        tokens = as_token_ids(ids, vocabulary_size=vocabulary)
        with tf.device(device_name) if device_name else contextlib.nullcontext():
            output = chosen(tf.constant(tokens, dtype=ids_dtype))
        floating = tf.is_tensor(output) and output.dtype.is_floating
        check_embedded(_static_shape(output), tokens.shape, f"layer {chosen.name!r}",
                       floating=floating)
        if output.dtype != compute_dtype:
            output = tf.cast(output, compute_dtype)
        return _widen(output).numpy()

    return EmbeddingCallbacks(
        Callback(embed, _describe("embedding_fn.embed", model, layer=chosen.name)),
        gradient_fn(head, objective=objective, device=device, dtype=dtype),
        predict_fn(head, device=device, dtype=dtype),
    )


def _embedding_output(layer: Any) -> Any:
    """The layer's one symbolic output, refused unless it is ``(k, T, D)``."""
    output = _single_output(layer, "an embedding layer", "replace")
    if len(output.shape) != 3:
        raise ValueError(
            f"expected an embedding layer with one output (k, T, D), got layer {layer.name!r} "
            f"with output shape {tuple(output.shape)}"
        )
    return output


# --------------------------------------------------------------------------- declared inputs


def input_spec(model: object) -> tuple[int | None, tuple[int, int] | None]:
    """The channels and ``(H, W)`` size of the images a Keras model declares it takes.

    A functional or built Sequential Keras model declares its input shape: one input of
    shape ``(None, H, W, C)`` (NHWC, Keras's default layout) gives ``C`` and ``(H, W)``,
    each where it is fixed (``None`` in the shape gives None). Other models (several
    inputs, inputs that are not images, subclassed or unbuilt models, ``tf.Module``
    objects and plain callables) declare nothing.

    Args:
        model: a Keras model, or anything else.

    Returns:
        ``(channels, size)``, each None where the model does not tell.

    Examples:
        >>> import keras
        >>> net = keras.Sequential([keras.Input((64, 64, 1)), keras.layers.Conv2D(2, 3)])
        >>> input_spec(net)
        (1, (64, 64))
        >>> input_spec(keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(2, 3)]))
        (3, None)
    """
    if _keras_module_of(model, "Model") is None:
        return None, None
    inputs = _keras_inputs(model)
    try:  # a tuple for Keras 3, a TensorShape for tf_keras (of unknown rank: TypeError)
        shape = tuple(inputs[0].shape) if len(inputs) == 1 else ()
    except (AttributeError, TypeError, ValueError):
        shape = ()
    if len(shape) != 4:
        return None, None
    height, width, channels = (int(value) if value is not None else None for value in shape[1:])
    return channels, ((height, width) if height is not None and width is not None else None)


# --------------------------------------------------------------------------- weight copies


def weight_layers(model: Any) -> list[str]:
    """The names of the layers of a Keras model's ``model.layers`` that hold parameters.

    Raises:
        TypeError: anything but a Keras model.

    Examples:
        >>> import keras
        >>> net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, name="hidden"),
        ...                         keras.layers.ReLU(), keras.layers.Dense(1, name="out")])
        >>> weight_layers(net)
        ['hidden', 'out']
    """
    if _keras_module_of(model, "Model") is None:
        raise TypeError(f"expected a Keras model (weights live in its layers), got {_kind(model)}")
    return [layer.name for layer in model.layers
            if (layer.trainable_weights if layer.trainable else layer.weights)]


def copy_with_weights(
    model: Any, transform: WeightTransform, *, layers: str | list[str] | None = None,
    seed: int | None = None,
) -> Any:
    """A copy of a Keras model whose chosen layers' parameters are ``transform(weight, rng)``.

    Args:
        model: a Keras model, left exactly as it was.
        transform: ``transform(weight, rng) -> new weight`` on numpy arrays, such as
            :func:`adapters._backend.reinitialise`.
        layers: names from :func:`weight_layers` (None: all).
        seed: each layer draws from :func:`adapters._backend.layer_generator` of ``seed``
            and its name, its parameters in name order.

    Returns:
        A new model of the same class (functional and Sequential models through
        ``keras.models.clone_model``, subclassed ones through ``from_config``).

    Raises:
        TypeError: not a Keras model, or a subclassed one Keras cannot rebuild; and the
            shared errors of ``_backend.apply_transform`` and ``select_layers``.

    Examples:
        >>> import keras, numpy as np
        >>> net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, name="out")])
        >>> copy = copy_with_weights(net, lambda weight, rng: np.zeros_like(weight))
        >>> float(np.abs(copy.predict_on_batch(np.ones((1, 2)))).sum())
        0.0
    """
    _backend.check_callable(transform, "transform")
    names = _backend.select_layers(layers, weight_layers(model))
    _backend.layer_generator(seed, "")  # refuses a bad seed before anything is copied
    duplicate = _clone(model)
    for name in names:
        rng = _backend.layer_generator(seed, name)
        for weight_name, variable in _parameters(duplicate.get_layer(name)):
            dtype = tf.as_dtype(variable.dtype)
            current = np.asarray(variable.numpy(), "float64" if dtype == tf.float64 else "float32")
            new = _backend.apply_transform(transform, current, rng,
                                           f"layer {name!r} weight {weight_name!r}")
            variable.assign(tf.cast(new, dtype))
    return duplicate


def _clone(model: Any) -> Any:
    """A model of the same architecture and weights, sharing nothing with ``model``."""
    try:
        if _keras_inputs(model):
            duplicate = _keras_module_of(model, "Model").models.clone_model(model)
        else:
            duplicate = type(model).from_config(model.get_config())
            build_config = getattr(model, "get_build_config", lambda: None)()
            if build_config:
                duplicate.build_from_config(build_config)
        duplicate.set_weights(model.get_weights())
    except (TypeError, ValueError, KeyError, NotImplementedError) as error:
        reason = (str(error).strip().splitlines() or [""])[0].split(". ")[0]
        raise TypeError(
            f"expected a Keras model that Keras can rebuild from its config, got "
            f"{type(model).__name__} {model.name!r}, which it cannot ({type(error).__name__}: "
            f"{reason}); give its classes a get_config() returning their constructor's arguments"
        ) from None
    return duplicate


def _parameters(layer: Any) -> list[tuple[str, Any]]:
    """``(name, variable)`` of what a layer of the copy trains, in name order; a frozen
    layer is unfrozen for the look (moving statistics stay out) and frozen again."""
    frozen = not layer.trainable
    if frozen:
        layer.trainable = True
    variables = list(layer.trainable_weights)
    if frozen:
        layer.trainable = False
    prefix = f"{layer.name}/"
    named = [((getattr(variable, "path", None) or variable.name).split(":")[0], variable)
             for variable in variables]
    return sorted(((name.removeprefix(prefix), variable) for name, variable in named),
                  key=lambda item: item[0])


# --------------------------------------------------------------------------- tracing


class _TraceAborted(Exception):
    """Stops a trace; the reason is kept aside and raised outside, free of TF frames."""


class _Traced:
    """A callback's ``tf.function``: one concrete function per trailing shape and target use."""

    def __init__(self, model: Callable[..., Any], device: Device, dtype: DType, *,
                 floating: bool = True) -> None:
        self.device = _device_name(device)
        self.model = model
        self.model_dtype = _model_dtype(model, dtype, floating=floating)
        self.carrier = _backend.carrier_dtype(self.model_dtype.name)
        self.training = {"training": False} if _accepts_training(model) else {}
        self._concrete: dict[tuple[Any, ...], tuple[Any, int | None]] = {}
        self._seen: dict[str, Any] = {}

    def finish(self, body: Callable[..., Any], call: Callable[..., Any], description: str
               ) -> Callback:
        self._body = body
        self._function = tf.function(self._trace)
        self.callback = Callback(call, description)
        return self.callback

    def _trace(self, x: tf.Tensor, target: tf.Tensor | None) -> Any:
        self.callback.trace_count += 1
        with tf.device(self.device) if self.device else contextlib.nullcontext():
            return self._body(x, target)

    def batch(self, x: Any) -> np.ndarray:
        return _backend.as_batch(x).astype(self.carrier, copy=False)

    def concrete(self, batch: np.ndarray, targets: np.ndarray | None) -> tuple[Any, int | None]:
        """The concrete function for this batch, and the model's outputs per row if known."""
        key = (batch.shape[1:], targets is not None)
        if key not in self._concrete:
            # target passed explicitly, None too: a defaulted one makes every call ~20x slower
            specs = (tf.TensorSpec((None, *batch.shape[1:]), self.carrier),
                     None if targets is None else tf.TensorSpec((None,), tf.int64))
            self._seen = {}
            try:
                function = self._function.get_concrete_function(*specs)
            except _TraceAborted:
                function = None
            if function is None:  # raised here, outside the except clause: no TF context
                self._raise(batch.shape[0])
            self._concrete[key] = (function, self._seen.get("n_outputs"))
        return self._concrete[key]

    def run_scored(self, x: Any, target: Any, objective: Objective | None) -> list[np.ndarray]:
        """Run a gradient or layer trace; its results, checked, as numpy."""
        batch = self.batch(x)
        rows = batch.shape[0]
        targets = _backend.as_targets(target, rows)
        function, n_outputs = self.concrete(batch, targets)
        if targets is not None and n_outputs is not None:
            _backend.check_target_range(targets, n_outputs)
        *results, shape = function(tf.convert_to_tensor(batch),
                                   None if targets is None else tf.convert_to_tensor(targets))
        shape = tuple(shape.numpy().tolist())
        if objective is not None:
            _backend.check_scores_shape(shape, rows)
        elif _backend.plan_scores(shape, rows, has_target=targets is not None).column and (
                n_outputs is None):
            # a column plan means targets were given
            _backend.check_target_range(cast(np.ndarray, targets), shape[1])
        return [result.numpy() for result in results]

    # ----- inside the trace

    def forward(self, x: tf.Tensor) -> Any:
        if x.dtype != self.model_dtype:
            x = tf.cast(x, self.model_dtype)
        return self.model(x, **self.training)

    def score(self, output: Any, target: tf.Tensor | None, objective: Objective | None
              ) -> tuple[tf.Tensor, tf.Tensor]:
        """One score per row, and the shape the call checks once it knows its rows."""
        if objective is not None:
            scores = objective(output, target)
            floating = tf.is_tensor(scores) and scores.dtype.is_floating
            self.check(_backend.check_scores_shape, _static_shape(scores), floating=floating,
                       dtype=getattr(getattr(scores, "dtype", None), "name", None))
            return scores, tf.shape(scores)
        plan = self.check(_backend.plan_scores, _static_shape(output),
                          has_target=target is not None)
        if not plan.column:
            return (output if output.shape.rank == 1 else output[:, 0]), tf.shape(output)
        self._seen["n_outputs"] = plan.n_outputs
        target = cast(tf.Tensor, target)  # a column plan means a target was given
        # rows and targets are checked by the call; until then the gather must stay valid
        rows = tf.minimum(tf.shape(output)[0], tf.shape(target)[0])
        last = tf.cast(tf.shape(output)[1], tf.int64) - 1
        index = tf.clip_by_value(target[:rows], 0, last)
        return tf.gather(output[:rows], index, batch_dims=1), tf.shape(output)

    def check(self, check: Callable[..., Any], shape: tuple[int | None, ...] | None,
              **options: Any) -> Any:
        """A shape check of ``_backend`` on a static shape, rows unknown while tracing."""
        try:
            return check(shape, None, **options)
        except (TypeError, ValueError) as error:
            self._seen["problem"] = (error, check, shape, options)
            raise _TraceAborted() from None

    def abort(self, error: Exception) -> None:
        self._seen["problem"] = (error, None, None, {})
        raise _TraceAborted()

    def _raise(self, rows: int) -> None:
        """Raise what stopped the trace; a check is re-run with this batch's rows."""
        error, check, shape, options = self._seen["problem"]
        if check is not None and shape is not None:
            check((rows if shape[0] is None else shape[0], *shape[1:]) if shape else (), rows,
                  **options)
        raise error.with_traceback(None)


def _static_shape(value: Any) -> tuple[int | None, ...] | None:
    if not tf.is_tensor(value) or value.shape.rank is None:
        return None
    return tuple(value.shape.as_list())


def _widen(tensor: tf.Tensor) -> tf.Tensor:
    return tf.cast(tensor, tf.float32) if tensor.dtype in (tf.float16, tf.bfloat16) else tensor


# --------------------------------------------------------------------------- options


def _device_name(device: Device) -> str | None:
    """The name (``/device:GPU:0``) of the logical device ``device`` means; checked now."""
    if device is None:
        return None
    if isinstance(device, tf.config.LogicalDevice):
        device = device.name
    elif isinstance(device, tf.DeviceSpec):
        device = f"{device.device_type or 'cpu'}:{device.device_index or 0}"
    kind, index = _backend.parse_device(device)
    named = {}
    for logical in tf.config.list_logical_devices():
        with contextlib.suppress(ValueError):  # kinds such as TPU_SYSTEM run no ops
            named[_backend.parse_device(logical.name)] = logical.name
    name = named.get((kind, index or 0))
    if name is None:
        shown = [f"{k}:{i}" if (k, i) != ("cpu", 0) else "cpu" for k, i in named]
        raise _backend.device_unavailable(device, shown)
    return name


def _model_dtype(model: Any, dtype: DType, *, floating: bool) -> tf.DType:
    if dtype is None:
        resolved = _declared_dtype(model)
    else:
        try:
            resolved = tf.as_dtype(dtype)
        except TypeError:
            raise TypeError(
                f"expected dtype to be a floating dtype such as 'float32' or tf.float32, got "
                f"{dtype!r}"
            ) from None
    if not resolved.is_floating and (floating or dtype is not None):
        raise TypeError(
            f"expected a floating dtype for the model to compute in, got {resolved.name}"
            + ("" if dtype is not None else " (its input dtype); pass dtype=")
        )
    return resolved


def _declared_dtype(model: Any) -> tf.DType:
    """The Keras ``Input`` dtype, else the compute dtype, else the floating variables'."""
    inputs = _keras_inputs(model)
    if inputs and getattr(inputs[0], "dtype", None) is not None:
        return tf.as_dtype(inputs[0].dtype)
    if getattr(model, "compute_dtype", None) is not None:
        return tf.as_dtype(model.compute_dtype)
    variables = {tf.as_dtype(variable.dtype) for variable in getattr(model, "variables", ())}
    floating = {dtype for dtype in variables if dtype.is_floating}
    return floating.pop() if len(floating) == 1 else tf.float32


def _accepts_training(model: Any) -> bool:
    if _keras_module_of(model, "Layer") is not None:
        return True
    try:
        return "training" in inspect.signature(model).parameters
    except (TypeError, ValueError):
        return False


def _keras_module_of(model: Any, kind: str) -> Any:
    """The imported Keras (``keras`` or ``tf_keras``) whose ``Model`` or ``layers.Layer``
    (``kind``) ``model`` is, else None."""
    for module_name in ("keras", "tf_keras"):
        module = sys.modules.get(module_name)
        base = getattr(module, "Model", None)
        if kind == "Layer":
            base = getattr(getattr(module, "layers", None), "Layer", None)
        if isinstance(base, type) and isinstance(model, base):
            return module
    return None


def _keras_inputs(model: Any) -> list[Any]:
    """The symbolic inputs of a functional or built Sequential Keras model, else []."""
    try:
        inputs = getattr(model, "inputs", None)
    except (AttributeError, ValueError):  # an unbuilt Sequential raises on access
        return []
    return tf.nest.flatten(inputs) if inputs else []


def _kind(model: Any) -> str:
    if _keras_module_of(model, "Model") is None:
        return f"a {type(model).__name__}, which is not a Keras model"
    if type(model).__name__ == "Sequential":
        return "a Sequential model that has no inputs yet (not built)"
    return f"the subclassed Keras model {type(model).__name__}"


def _describe(kind: str, model: Any, **options: Any) -> str:
    name = getattr(model, "name", None)
    what = type(model).__name__ + (f" {name!r}" if isinstance(name, str) and name else "")
    settings = "".join(f", {key}={getattr(value, '__name__', value)!r}"
                       for key, value in options.items() if value is not None)
    return f"tensorflow {kind} of {what}{settings}"


# --------------------------------------------------------------------------- ReLU rules


def _guided(operation: tf.Operation, grad: tf.Tensor) -> tf.Tensor:
    """Guided backpropagation at a ReLU: ``grad * (input > 0) * (grad > 0)``."""
    keep = tf.logical_and(operation.inputs[0] > 0, grad > 0)
    return tf.where(keep, grad, tf.zeros_like(grad))


def _deconvnet(operation: tf.Operation, grad: tf.Tensor) -> tf.Tensor:
    """Deconvnet at a ReLU: ``max(grad, 0)``, whatever the forward input was."""
    return tf.maximum(grad, tf.zeros_like(grad))


def _set_relu_rule(traced: _Traced, rule: str, graph: tf.Graph, operations: list[Any]) -> None:
    """Give the forward pass's ``Relu`` ops the rule's backward pass (in this graph only)."""
    backward = {"guided": _guided, "deconvnet": _deconvnet}[rule]
    found = 0
    for operation in operations:
        if operation.type == "Relu":
            operation._gradient_function = backward  # read by tf.gradients first
            found += 1
            continue
        hidden = _nested_relu_count(graph, operation)
        if hidden:
            traced.abort(ValueError(
                f"relu_rule={rule!r} cannot reach the {hidden} ReLU(s) inside "
                f"{operation.type} op {operation.name!r} of the model (a nested tf.function, "
                "tf.cond or tf.while_loop): their backward pass would stay plain; call the "
                "model's Python code directly, without tf.function or control flow around them"
            ))
    if not found:
        traced.abort(ValueError(_backend.no_relu_message(
            rule, "Relu ops: Keras ReLU activations and layers, tf.nn.relu, keras.ops.relu "
            "(not relu6, leaky ReLU, ReLU(max_value=...) or tf.maximum)",
        )))


def _nested_relu_count(graph: tf.Graph, operation: Any) -> int:
    """How many ``Relu`` ops the functions that ``operation`` calls hold, at any depth."""
    try:
        calls = any(attr.type in ("func", "list(func)") for attr in operation.op_def.attr)
    except (AttributeError, ValueError, KeyError):  # pragma: no cover - unknown op def
        calls = True
    return _relus_in(graph, _function_names(operation.node_def.attr), set(), {}) if calls else 0


def _function_names(attributes: Any) -> list[str]:
    names = []
    for value in attributes.values():
        if value.HasField("func"):
            names.append(value.func.name)
        elif value.HasField("list"):
            names.extend(function.name for function in value.list.func)
    return names


def _relus_in(graph: tf.Graph, names: list[str], seen: set[str], known: dict[str, Any]) -> int:
    count = 0
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        function = known.get(name)
        if function is None and hasattr(graph, "_get_function"):
            function = graph._get_function(name)
        if function is None:
            continue
        for child in getattr(function, "children", ()) or ():
            known.setdefault(getattr(child, "name", ""), child)
        for node in getattr(getattr(function, "definition", None), "node_def", ()):
            count += node.op == "Relu"  # a called function may also appear as an op type
            count += _relus_in(graph, [*_function_names(node.attr), node.op], seen, known)
    return count


# --------------------------------------------------------------------------- layers


def _find_layer(model: Any, layer: Any) -> Any:
    """``layer`` (a name or a layer object) among ``model.layers``, or a helpful error."""
    layers = list(model.layers)
    if not isinstance(layer, str) and hasattr(layer, "trainable_weights"):
        if any(candidate is layer for candidate in layers):
            return layer
        raise ValueError(
            f"expected one of the model's layers (model.layers), got layer {layer.name!r}, "
            "which is not among them"
        )
    named = {candidate.name: candidate for candidate in layers}
    owner = _nested_owner(layers, layer) if isinstance(layer, str) and layer not in named else None
    if owner is not None:
        raise ValueError(
            f"no layer named {layer!r} among the model's own layers; it is inside the nested "
            f"model {owner!r}, whose inner outputs cannot be reached: pass {owner!r} itself, "
            "or build the model without nesting"
        )
    return _backend.find_named(layer, named)


def _nested_owner(layers: list[Any], name: str) -> str | None:
    for candidate in layers:
        inner = getattr(candidate, "layers", None)
        if inner and (any(child.name == name for child in inner) or _nested_owner(inner, name)):
            return candidate.name
    return None


def _single_output(layer: Any, what: str, purpose: str) -> Any:
    """The one symbolic output of a layer called once in the model's graph."""
    calls = len(getattr(layer, "_inbound_nodes", ()))
    if calls > 1:
        raise ValueError(
            f"expected {what} called once, got layer {layer.name!r} called {calls} times (a "
            f"shared layer has no single output to {purpose})"
        )
    try:
        output = layer.output
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"expected {what} with an output in the model's graph, got layer {layer.name!r}: "
            f"{error}"
        ) from None
    if isinstance(output, list | tuple | dict):
        raise ValueError(
            f"expected {what} with one output tensor, got layer {layer.name!r} with "
            f"{len(output)} outputs"
        )
    return output


def _layer_output(layer: Any) -> Any:
    """The layer's one symbolic output, refused unless it has spatial axes."""
    output = _single_output(layer, "a layer", "explain")
    if len(output.shape) < 3:
        raise ValueError(
            "Grad-CAM needs a layer with spatial axes, an output (k, H, W, C) or (k, C, H, W); "
            f"layer {layer.name!r} gives shape {tuple(output.shape)}, which has none (a dense "
            "or pooled layer): pick a convolutional layer"
        )
    return output
