"""TensorFlow/Keras adapter: turn a model into the callbacks the core calls.

Importing this module imports TensorFlow (``adapters`` itself imports no framework). It
works with Keras 3 models (``keras.Model``, and ``tf.keras`` models, which are Keras 3 in
TensorFlow 2.16 and later), ``tf_keras`` models, ``tf.Module`` objects and plain
callables on tensors::

    import saliency_core
    from adapters import tensorflow as tf_adapter

    grad = tf_adapter.gradient_fn(model)            # a saliency_core.types.GradientFn
    logits = tf_adapter.predict_fn(model)(images)   # numpy (N, C)
    maps = saliency_core.smoothgrad(grad, images, logits.argmax(axis=1), seed=0)

    guided = tf_adapter.gradient_fn(model, relu_rule="guided")  # guided backpropagation
    layer = tf_adapter.layer_fn(model, "conv3")     # a saliency_core.types.LayerFn
    cams = saliency_core.grad_cam(layer, images, logits.argmax(axis=1))

How the callbacks run:

* Every forward pass runs inside a ``tf.function`` traced once per trailing input shape,
  with the batch dimension left unknown (``None``), so the core may send chunks of any
  size, a smaller last one included, without re-tracing. The returned callbacks count
  their traces in ``trace_count``. The gradient tape is never run eagerly.
* Models that accept a ``training`` argument (every Keras model does) are called with
  ``training=False``: dropout is off and batch normalisation uses its moving statistics,
  so rows of a batch do not interact and the per-row gradients are exact.
* The model is not changed: no weight, ``trainable`` flag or moving statistic is written
  (an unbuilt Keras model is built by its first call, as any call to it would).
* Dtypes: the batch is converted to the dtype the model expects (the Keras ``Input``
  dtype, else the dtype of the model's floating variables, else float32; ``dtype=``
  overrides). Float16 and bfloat16 models are fed float32 and cast inside the compiled
  function, so their maps come back as float32. Maps are float64 only for float64 models:
  a float64 numpy batch sent to a float32 model is converted to float32, and so is its map.

Guided backpropagation and deconvnet (``gradient_fn(model, relu_rule=...)``):

* ``relu_rule="guided"`` gives each ReLU the backward pass
  ``grad_out * (input > 0) * (grad_out > 0)``, ``"deconvnet"`` gives ``max(grad_out, 0)``;
  the forward pass and every other op's backward pass are unchanged.
* The rule is attached to the ``Relu`` ops of the callback's own traced graph (the
  ``_gradient_function`` that ``tf.gradients`` reads before the gradient registry), so it
  reaches every kind of ReLU (``activation="relu"``, ``keras.layers.ReLU``,
  ``Activation("relu")``, ``tf.nn.relu``, ``keras.activations.relu``, ``keras.ops.relu``)
  without patching any function, layer or registry: the model and every other callback
  (plain ``gradient_fn`` of the same model included) are untouched, also when a trace
  fails. ReLUs of the objective keep their plain gradient; ``relu6``, leaky ReLUs and
  ``tf.maximum(x, 0)`` are other ops and keep theirs too. ReLUs hidden inside a nested
  ``tf.function`` or control flow cannot be reached and are refused with a ``ValueError``.

Layer callbacks for Grad-CAM (``layer_fn(model, layer)``): a functional or Sequential Keras
model is extended to a two-output model (the layer's output and the model's output, the
layers and weights shared, the model itself unchanged); one ``tf.function`` per input
shape gives the layer's activations (NHWC for ``channels_last`` layers) and the gradient
of the score with respect to them, for :func:`saliency_core.grad_cam`.

References:
    Smilkov, Thorat, Kim, Viegas, Wattenberg (2017). SmoothGrad: removing noise by
    adding noise. arXiv:1706.03825.

    Springenberg, Dosovitskiy, Brox, Riedmiller (2014). Striving for simplicity: the all
    convolutional net. arXiv:1412.6806 (guided backpropagation).

    Zeiler, Fergus (2014). Visualizing and understanding convolutional networks. ECCV
    (deconvnet).

    Selvaraju et al. (2017). Grad-CAM: visual explanations from deep networks via
    gradient-based localization. ICCV.
"""

from __future__ import annotations

import difflib
import inspect
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    import tensorflow as tf
except ImportError as error:  # exercised in tests by blocking the import
    raise ImportError(
        "adapters.tensorflow needs TensorFlow, which is not installed; install it with "
        '`pip install "saliency-toolkit[tensorflow]"` (or `pip install tensorflow`).'
    ) from error

from saliency_core.types import GradientFn, LayerFn, PredictFn

from ._relu_rules import RELU_RULES, check_relu_rule, no_relu_message
from ._targets import as_target_rows, check_target_range, target_needed

__all__ = ["RELU_RULES", "Objective", "gradient_fn", "layer_fn", "predict_fn"]

#: ``objective(output, target) -> scores``: TensorFlow tensors in, a ``(k,)`` tensor of
#: one score per row out. ``output`` is what the model returned (any structure), and
#: ``target`` is the target given to the callback, as a tensor, or ``None``.
Objective = Callable[[Any, Any], Any]

#: The ``relu_rule`` values besides ``None`` (the plain gradient): guided backpropagation
#: (Springenberg et al. 2014) and deconvnet (Zeiler and Fergus 2014).

_HALF_DTYPES = (tf.float16, tf.bfloat16)
_FEED_DTYPES = (tf.float32, tf.float64)


class _TraceAborted(Exception):
    """Raised inside a trace to stop it; the reason is kept on the side, raised outside."""


def gradient_fn(
    model: Callable[..., Any],
    *,
    objective: Objective | None = None,
    dtype: str | np.dtype | tf.DType | None = None,
    relu_rule: str | None = None,
) -> GradientFn:
    """Build the gradient callback of a TensorFlow/Keras model.

    The callback follows the contract of :class:`saliency_core.types.GradientFn`:
    ``fn(x, target)`` takes a numpy batch ``(k, *input_shape)`` and returns
    ``d score / d x`` as numpy, shaped like ``x``, one row per input. The score of row
    ``i`` is

    * ``output[i, target[i]]`` for int targets and a ``(k, C)`` output (logits),
    * ``output[i]`` for ``target=None`` and a ``(k,)`` or ``(k, 1)`` output,
    * ``objective(output, target)[i]`` when an objective is given; ``target`` is then
      passed to it as is (as a tensor, or ``None``), for regression heads, segmentation
      (the sum of the output over a mask) or any custom score.

    Args:
        model: a Keras model, a ``tf.Module`` or any callable taking a tensor batch. It
            is called with ``training=False`` when it accepts that argument.
        objective: optional ``objective(output, target) -> (k,)`` scores, written with
            TensorFlow ops (it runs inside the compiled function).
        dtype: the dtype the model expects; ``None`` reads it from the model (the
            Keras ``Input`` dtype, else its floating variables' dtype, else float32).
        relu_rule: ``None`` for the plain gradient, ``"guided"`` for guided
            backpropagation (each ReLU passes back ``grad * (input > 0) * (grad > 0)``)
            or ``"deconvnet"`` (each ReLU passes back ``max(grad, 0)``). Only the
            backward pass of the model's ``Relu`` ops changes; see the module docstring.

    Returns:
        The gradient callback. It traces one ``tf.function`` per trailing input shape
        (``trace_count`` tells how many); maps are float32, or float64 for float64 models.

    Raises:
        TypeError: if ``model`` is not callable, ``objective`` is given but not callable,
            or the model's input dtype is not a floating dtype.
        ValueError: if ``relu_rule`` is not one of ``None``, ``"guided"``,
            ``"deconvnet"``.

    The callback raises ``ValueError`` for a ``(k, C)`` output with ``target=None``, a
    target outside ``[0, C - 1]``, a target not shaped ``(k,)``, or scores that are not
    one per row, and with a ``relu_rule`` for ReLUs it cannot reach (inside a nested
    ``tf.function`` or control flow); and ``TypeError`` for a non-integer target or a
    non-numeric batch.

    Examples:
        >>> import numpy as np, tensorflow as tf
        >>> w = tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        >>> fn = gradient_fn(lambda x: tf.matmul(x, w))
        >>> fn(np.ones((2, 3), np.float32), np.array([1, 0])).tolist()
        [[2.0, 4.0, 6.0], [1.0, 3.0, 5.0]]

        The ReLU rules: here the hidden units have inputs ``[1, -1]`` and upstream
        gradients ``[-1, 2]``.

        >>> w1, w2 = tf.constant([[1.0, -1.0]]), tf.constant([[-1.0], [2.0]])
        >>> net = lambda x: tf.matmul(tf.nn.relu(tf.matmul(x, w1)), w2)
        >>> x = np.ones((1, 1), np.float32)
        >>> [gradient_fn(net, relu_rule=rule)(x, None).item() for rule in (None, *RELU_RULES)]
        [-1.0, 0.0, -2.0]
    """
    _check_callable(model, "model")
    if objective is not None:
        _check_callable(objective, "objective")
    _check_relu_rule(relu_rule)
    return _GradientCallback(model, objective, _floating_dtype(model, dtype), relu_rule)


def predict_fn(
    model: Callable[..., Any],
    *,
    dtype: str | np.dtype | tf.DType | None = None,
) -> PredictFn:
    """Build the prediction callback of a TensorFlow/Keras model: ``fn(x) -> outputs``.

    The forward pass runs in a ``tf.function`` traced once per trailing input shape, with
    ``training=False`` when the model accepts it and no gradient tape. Float16 and
    bfloat16 outputs come back as float32 numpy arrays; a model returning a structure
    (tuple, dict) gives the same structure of numpy arrays.

    Args:
        model: a Keras model, a ``tf.Module`` or any callable taking a tensor batch.
        dtype: the dtype the model expects; ``None`` reads it from the model, as in
            :func:`gradient_fn`.

    Returns:
        The prediction callback, a :class:`saliency_core.types.PredictFn`.

    Raises:
        TypeError: if ``model`` is not callable.

    Examples:
        >>> import numpy as np, tensorflow as tf
        >>> predict = predict_fn(lambda x: 2.0 * x)
        >>> predict(np.ones((1, 2), np.float32)).tolist()
        [[2.0, 2.0]]
    """
    _check_callable(model, "model")
    return _PredictCallback(model, _resolve_dtype(model, dtype))


def layer_fn(
    model: Any,
    layer: Any,
    *,
    objective: Objective | None = None,
    dtype: str | np.dtype | tf.DType | None = None,
) -> LayerFn:
    """Build the layer callback of a Keras model, for Grad-CAM and Grad-CAM++.

    The callback follows :class:`saliency_core.types.LayerFn`: ``fn(x, target)`` takes a
    numpy batch ``(k, *input_shape)`` and returns numpy ``(activations, gradients)``,
    both ``(k, *layer_shape)``: the layer's output and ``d score / d output``. The score
    is the one of :func:`gradient_fn` (``output[i, target[i]]``, ``output[i]`` for
    ``target=None``, or ``objective(output, target)``).

    Args:
        model: a functional or Sequential Keras model with one input (its layers have
            symbolic outputs; a subclassed model has none).
        layer: the layer, by name or as a layer object, among ``model.layers``. Its
            output needs spatial axes: ``(k, H, W, C)`` for a ``channels_last``
            convolution, so pass ``channel_axis=-1`` to the core (the default).
        objective: optional ``objective(output, target) -> (k,)`` scores, as in
            :func:`gradient_fn`.
        dtype: the dtype the model expects; ``None`` reads it from the model.

    Returns:
        The layer callback; one ``tf.function`` per trailing input shape (``trace_count``
        tells how many). Half-precision activations and gradients come back as float32.

    Raises:
        TypeError: if ``model`` is not a functional or Sequential Keras model with
            symbolic inputs, ``layer`` is neither a name nor a layer, ``objective`` is
            not callable, or the input dtype is not a floating dtype.
        ValueError: if no layer has that name (the message lists close matches), the
            layer is not one of the model's, its output is not one tensor with spatial
            axes (a dense layer, say), or it is called more than once in the model.

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
    keras_module = _keras_module_of(model)
    inputs = _keras_inputs(model) if keras_module is not None else []
    if keras_module is None or not inputs:
        raise TypeError(
            "layer_fn needs a functional or Sequential Keras model, whose layers have "
            f"symbolic outputs, got {_describe_model(model)}; build the model from "
            "keras.Input (a subclassed model has no layer outputs to reach)"
        )
    if len(inputs) != 1:
        raise TypeError(f"expected a Keras model with one input, got {len(inputs)} inputs")
    if objective is not None:
        _check_callable(objective, "objective")
    chosen = _find_layer(model, layer)
    activations = _layer_output(chosen)
    outputs = model.outputs
    try:
        features = keras_module.Model(
            inputs, [activations, outputs[0] if len(outputs) == 1 else list(outputs)]
        )
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(
            f"expected layer {chosen.name!r} to lie between the model's input and output, "
            f"got a graph Keras could not cut there: {error}"
        ) from error
    model_dtype = _floating_dtype(model, dtype)
    description = f"layer {chosen.name!r} of {model.name!r}"
    return _LayerCallback(features, objective, model_dtype, description)


class _CompiledModel:
    """What both callbacks share: the model call, dtypes and one trace per input spec."""

    def __init__(self, model: Callable[..., Any], model_dtype: tf.DType) -> None:
        self._model = model
        self._model_dtype = model_dtype
        # Half-precision models are fed float32 and cast inside the compiled function.
        self._feed_dtype = tf.float32 if model_dtype in _HALF_DTYPES else model_dtype
        self._training_kw = {"training": False} if _accepts_training(model) else {}
        self._traces: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._trace_count = 0
        self._trace_info: dict[str, Any] = {}
        self._function = tf.function(self._traced_body)

    @property
    def trace_count(self) -> int:
        """How many times the model was traced (one per trailing input shape and target kind)."""
        return self._trace_count

    def _traced_body(self, *args: Any) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _forward(self, x: tf.Tensor) -> Any:
        """The model output for a fed batch (inside the trace)."""
        if x.dtype != self._model_dtype:
            x = tf.cast(x, self._model_dtype)
        return self._model(x, **self._training_kw)

    def _feed(self, x: Any) -> np.ndarray:
        """The batch as a numpy array of the feed dtype (no copy when it already is one)."""
        array = np.asarray(x)
        if array.ndim == 0:
            raise ValueError(f"expected a batch x of shape (k, *input_shape), got a scalar {x!r}")
        if array.dtype == np.bool_ or not (
            np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
        ):
            raise TypeError(f"expected a real-valued batch x, got dtype {array.dtype}")
        return array.astype(self._feed_dtype.as_numpy_dtype, copy=False)

    def _trace(self, key: tuple[Any, ...], specs: tuple[tf.TensorSpec, ...]) -> dict[str, Any]:
        """The trace for ``key``, made once: the concrete function and what tracing saw."""
        entry = self._traces.get(key)
        if entry is None:
            self._trace_info = {}
            try:
                concrete = self._function.get_concrete_function(*specs)
            except _TraceAborted:
                problem = self._trace_info.get("problem")
                if problem is None:  # pragma: no cover - defensive
                    raise
                raise problem from None
            entry = {**self._trace_info, "concrete": concrete}
            self._traces[key] = entry
        return entry

    def _abort(self, problem: Exception) -> None:
        """Stop the current trace; ``problem`` is raised to the caller, free of TF frames."""
        self._trace_info["problem"] = problem
        raise _TraceAborted()


class _ScoredCallback(_CompiledModel):
    """What the gradient and layer callbacks share: targets, objective and the score."""

    def __init__(
        self, model: Callable[..., Any], objective: Objective | None, model_dtype: tf.DType
    ) -> None:
        super().__init__(model, model_dtype)
        self._objective = objective

    def _run(self, x: Any, target: Any) -> tuple[tf.Tensor, ...]:
        """Check ``x`` and ``target``, run the trace for them; its results, checked."""
        batch = self._feed(x)
        k = batch.shape[0]
        x_spec = tf.TensorSpec((None, *batch.shape[1:]), self._feed_dtype)
        if self._objective is not None:
            outputs = self._run_objective(batch, target, x_spec)
        elif target is None:
            entry = self._trace((batch.shape[1:], None), (x_spec,))
            outputs = entry["concrete"](tf.convert_to_tensor(batch))
            n_classes = entry["n_classes"] or int(outputs[-2])
            if n_classes != 1:
                raise _target_needed(n_classes)
        else:
            indices = as_target_rows(target, k)
            t_spec = tf.TensorSpec((None,), tf.int64)
            entry = self._trace((batch.shape[1:], "int"), (x_spec, t_spec))
            if entry["n_classes"] is not None:
                _check_range(indices, entry["n_classes"])
            elif k and indices.min() < 0:
                raise _out_of_range(indices, None)
            outputs = entry["concrete"](tf.convert_to_tensor(batch), tf.convert_to_tensor(indices))
            if entry["n_classes"] is None:
                _check_range(indices, int(outputs[-2]))
        _check_scores(int(outputs[-1]), k)
        return outputs

    def _run_objective(
        self, batch: np.ndarray, target: Any, x_spec: tf.TensorSpec
    ) -> tuple[tf.Tensor, ...]:
        if target is None:
            entry = self._trace((batch.shape[1:], None), (x_spec,))
            return entry["concrete"](tf.convert_to_tensor(batch))
        value = tf.convert_to_tensor(target)
        shape = (None, *value.shape[1:]) if value.shape.rank else ()
        t_spec = tf.TensorSpec(shape, value.dtype)
        entry = self._trace((batch.shape[1:], shape, value.dtype), (x_spec, t_spec))
        return entry["concrete"](tf.convert_to_tensor(batch), value)

    def _score(self, output: Any, target: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor]:
        """One score per row and the number of classes ``C`` (-1 with an objective)."""
        if self._objective is not None:
            scores = self._objective(output, target)
            n_classes = tf.constant(-1)
        else:
            scores, n_classes = self._select(output, target)
        if not isinstance(scores, tf.Tensor) or scores.shape.rank != 1:
            shape = getattr(scores, "shape", type(scores).__name__)
            self._abort(
                ValueError(
                    f"expected the objective to return one score per row, shape (k,), got {shape}"
                )
            )
        return scores, n_classes

    def _select(self, output: Any, target: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor]:
        """``output[i, target[i]]`` (or ``output[i]``) and the number of classes ``C``."""
        if not isinstance(output, tf.Tensor):
            self._abort(
                ValueError(
                    "expected the model to return one tensor, got "
                    f"{type(output).__name__}; pass objective= to choose the score"
                )
            )
        rank = output.shape.rank
        if rank == 1:
            if target is not None:
                self._abort(
                    ValueError(
                        "expected target=None for a model giving one score per row (output "
                        "shape (k,)), got class indices; pass objective= to use them"
                    )
                )
            self._trace_info["n_classes"] = 1
            return output, tf.constant(1)
        if rank != 2:
            self._abort(
                ValueError(
                    "expected a model output of shape (k,) or (k, C), got shape "
                    f"{tuple(output.shape)}; pass objective= to score other outputs"
                )
            )
        self._trace_info["n_classes"] = output.shape[-1]
        n_classes = tf.shape(output)[-1]
        if target is None:
            if output.shape[-1] not in (1, None):
                self._abort(_target_needed(output.shape[-1]))
            return output[:, 0], n_classes
        # Out-of-range targets are refused in numpy before the call; the clip only keeps
        # the gather from failing when C is unknown while tracing (checked after the call).
        safe = tf.clip_by_value(target, 0, tf.cast(n_classes, target.dtype) - 1)
        return tf.gather(output, safe, batch_dims=1), n_classes


class _GradientCallback(_ScoredCallback):
    """``fn(x, target) -> d score / d x``; see :func:`gradient_fn`."""

    def __init__(
        self,
        model: Callable[..., Any],
        objective: Objective | None,
        model_dtype: tf.DType,
        relu_rule: str | None,
    ) -> None:
        super().__init__(model, objective, model_dtype)
        self._relu_rule = relu_rule

    def __repr__(self) -> str:
        return (
            f"<tensorflow gradient_fn of {type(self._model).__name__}, "
            f"objective={getattr(self._objective, '__name__', self._objective)!r}, "
            f"relu_rule={self._relu_rule!r}, traces={self._trace_count}>"
        )

    def __call__(self, x: Any, target: Any = None, /) -> np.ndarray:
        return self._run(x, target)[0].numpy()

    def _traced_body(self, x: tf.Tensor, target: tf.Tensor | None = None) -> tuple[tf.Tensor, ...]:
        """Forward pass, score and gradient; runs only while tracing and in the graph."""
        self._trace_count += 1
        if self._relu_rule is None:
            with tf.GradientTape() as tape:
                tape.watch(x)
                scores, n_classes = self._score(self._forward(x), target)
            gradient = tape.gradient(scores, x)
        else:
            # The rule is set on the ReLU ops of this trace's own graph, made by the model's
            # forward pass (not the objective's); nothing outside this graph is touched.
            graph = tf.compat.v1.get_default_graph()
            first = len(graph.get_operations())
            output = self._forward(x)
            self._set_relu_gradients(graph, graph.get_operations()[first:])
            scores, n_classes = self._score(output, target)
            gradient = tf.gradients(scores, x)[0]
        if gradient is None:
            self._abort(
                ValueError(
                    "expected a score that depends differentiably on the input, got one "
                    "with no gradient path to it (an argmax, integer cast or stop_gradient "
                    "in the model or objective?)"
                )
            )
        return gradient, n_classes, tf.shape(scores)[0]

    def _set_relu_gradients(self, graph: tf.Graph, operations: list[tf.Operation]) -> None:
        """Give every ``Relu`` op of the forward pass the backward pass of the rule."""
        rule_gradient = _RELU_GRADIENTS[str(self._relu_rule)]
        found = 0
        for operation in operations:
            if operation.type == "Relu":
                # Read by tf.gradients (ops.get_gradient_function) before the registry;
                # the op belongs to this trace's FuncGraph, so no other function sees it.
                operation._gradient_function = rule_gradient
                found += 1
                continue
            hidden = _nested_relu_count(graph, operation)
            if hidden:
                self._abort(
                    ValueError(
                        f"relu_rule={self._relu_rule!r} cannot reach the {hidden} ReLU(s) "
                        f"inside {operation.type} op {operation.name!r} of the model (a "
                        "nested tf.function, tf.cond or tf.while_loop): their backward pass "
                        "would stay plain; call the model's Python code directly, without "
                        "tf.function or control flow around its ReLUs"
                    )
                )
        if not found:
            self._abort(ValueError(no_relu_message(
                str(self._relu_rule),
                "Relu ops: Keras ReLU activations and layers, tf.nn.relu, keras.ops.relu "
                "(not relu6, leaky ReLU, ReLU(max_value=...) or tf.maximum)",
            )))


class _LayerCallback(_ScoredCallback):
    """``fn(x, target) -> (activations, d score / d activations)``; see :func:`layer_fn`."""

    def __init__(
        self,
        features: Callable[..., Any],
        objective: Objective | None,
        model_dtype: tf.DType,
        description: str,
    ) -> None:
        super().__init__(features, objective, model_dtype)
        self._description = description

    def __repr__(self) -> str:
        return (
            f"<tensorflow layer_fn of {self._description}, "
            f"objective={getattr(self._objective, '__name__', self._objective)!r}, "
            f"traces={self._trace_count}>"
        )

    def __call__(self, x: Any, target: Any = None, /) -> tuple[np.ndarray, np.ndarray]:
        outputs = self._run(x, target)
        return outputs[0].numpy(), outputs[1].numpy()

    def _traced_body(self, x: tf.Tensor, target: tf.Tensor | None = None) -> tuple[tf.Tensor, ...]:
        """Forward pass to the layer and the output, score, gradient at the layer."""
        self._trace_count += 1
        with tf.GradientTape() as tape:
            tape.watch(x)  # records every op after x, so the layer's output can be a source
            activations, output = self._forward(x)
            scores, n_classes = self._score(output, target)
        gradient = tape.gradient(scores, activations)
        if gradient is None:
            self._abort(
                ValueError(
                    f"expected a score that depends differentiably on {self._description}, "
                    "got one with no gradient path from that layer to it"
                )
            )
        return _widen(activations), _widen(gradient), n_classes, tf.shape(scores)[0]


class _PredictCallback(_CompiledModel):
    """``fn(x) -> outputs``; see :func:`predict_fn`."""

    def __repr__(self) -> str:
        return (
            f"<tensorflow predict_fn of {type(self._model).__name__}, traces={self._trace_count}>"
        )

    def __call__(self, x: Any, /) -> Any:
        batch = self._feed(x)
        x_spec = tf.TensorSpec((None, *batch.shape[1:]), self._feed_dtype)
        entry = self._trace((batch.shape[1:],), (x_spec,))
        outputs = entry["concrete"](tf.convert_to_tensor(batch))
        return tf.nest.map_structure(lambda tensor: tensor.numpy(), outputs)

    def _traced_body(self, x: tf.Tensor) -> Any:
        """Forward pass only, half-precision outputs widened to float32."""
        self._trace_count += 1
        output = self._forward(x)
        return tf.nest.map_structure(_widen, output)


def _widen(tensor: Any) -> Any:
    if isinstance(tensor, tf.Tensor) and tensor.dtype in _HALF_DTYPES:
        return tf.cast(tensor, tf.float32)
    return tensor


def _check_callable(value: Any, name: str) -> None:
    if not callable(value):
        raise TypeError(f"expected {name} to be callable, got {type(value).__name__}")


def _check_range(indices: np.ndarray, n_classes: int) -> None:
    check_target_range(indices, n_classes)


def _out_of_range(indices: np.ndarray, n_classes: int | None) -> ValueError:
    if n_classes is None:
        valid, upper = "non-negative class indices", np.inf
    else:
        valid = f"class indices in the range [0, {n_classes - 1}] ({n_classes} scores per row)"
        upper = n_classes
    bad = np.unique(indices[(indices < 0) | (indices >= upper)])
    return ValueError(f"target out of range: expected {valid}, got {bad.tolist()[:10]}")


def _target_needed(n_classes: int) -> ValueError:
    return target_needed(n_classes)


def _check_scores(n_scores: int, k: int) -> None:
    if n_scores != k:
        raise ValueError(f"expected one score per row ({k} for this batch), got {n_scores} scores")


def _resolve_dtype(model: Any, dtype: Any) -> tf.DType:
    """The dtype the model expects: given, else read from the model, else float32."""
    if dtype is not None:
        return tf.as_dtype(dtype)
    inputs = _keras_inputs(model)
    if inputs:
        declared = getattr(inputs[0], "dtype", None)
        if declared is not None:
            return tf.as_dtype(declared)
    compute_dtype = getattr(model, "compute_dtype", None)
    if compute_dtype is not None:
        return tf.as_dtype(compute_dtype)
    floating = {
        tf.as_dtype(variable.dtype)
        for variable in getattr(model, "variables", ())
        if tf.as_dtype(variable.dtype).is_floating
    }
    if len(floating) == 1:
        return floating.pop()
    return tf.float32


def _keras_inputs(model: Any) -> list[Any]:
    """The symbolic inputs of a built functional/sequential Keras model, else []."""
    try:
        inputs = getattr(model, "inputs", None)
    except (AttributeError, ValueError):  # an unbuilt Sequential raises on access
        return []
    if not inputs:
        return []
    return tf.nest.flatten(inputs)


def _accepts_training(model: Any) -> bool:
    """True for Keras layers and models, and for callables with a ``training`` parameter."""
    for module_name in ("keras", "tf_keras"):
        module = sys.modules.get(module_name)
        layer_type = getattr(getattr(module, "layers", None), "Layer", None)
        if isinstance(layer_type, type) and isinstance(model, layer_type):
            return True
    try:
        parameters = inspect.signature(model).parameters
    except (TypeError, ValueError):
        return False
    return "training" in parameters


# --- ReLU rules ------------------------------------------------------------------------


def _guided_relu_gradient(operation: tf.Operation, grad: tf.Tensor) -> tf.Tensor:
    """Guided backpropagation at a ReLU: ``grad * (input > 0) * (grad > 0)``."""
    keep = tf.logical_and(operation.inputs[0] > 0, grad > 0)
    return tf.where(keep, grad, tf.zeros_like(grad))


def _deconvnet_relu_gradient(operation: tf.Operation, grad: tf.Tensor) -> tf.Tensor:
    """Deconvnet at a ReLU: ``max(grad, 0)``, whatever the forward input was."""
    del operation
    return tf.maximum(grad, tf.zeros_like(grad))


_RELU_GRADIENTS = {"guided": _guided_relu_gradient, "deconvnet": _deconvnet_relu_gradient}


def _check_relu_rule(relu_rule: Any) -> None:
    check_relu_rule(relu_rule)


def _nested_relu_count(graph: tf.Graph, operation: tf.Operation) -> int:
    """How many ``Relu`` ops the functions that ``operation`` calls hold, at any depth."""
    try:
        calls_functions = any(
            attribute.type in ("func", "list(func)") for attribute in operation.op_def.attr
        )
    except (AttributeError, ValueError, KeyError):  # pragma: no cover - unknown op def
        calls_functions = True
    if not calls_functions:
        return 0
    return _relus_in_functions(graph, _function_names(operation.node_def.attr), set(), {})


def _function_names(attributes: Any) -> list[str]:
    """The names of the functions in a map of ``AttrValue`` protos."""
    names = []
    for value in attributes.values():
        if value.HasField("func"):
            names.append(value.func.name)
        elif value.HasField("list"):
            names.extend(function.name for function in value.list.func)
    return names


def _relus_in_functions(
    graph: tf.Graph, names: list[str], seen: set[str], known: dict[str, Any]
) -> int:
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
        definition = getattr(function, "definition", None)
        for node in getattr(definition, "node_def", ()):
            count += node.op == "Relu"
            called = _function_names(node.attr) + [node.op]  # a function may be an op type
            count += _relus_in_functions(graph, called, seen, known)
    return count


# --- layers ----------------------------------------------------------------------------


def _floating_dtype(model: Any, dtype: Any) -> tf.DType:
    """The model's input dtype, refused unless it is a floating dtype."""
    model_dtype = _resolve_dtype(model, dtype)
    if not model_dtype.is_floating:
        raise TypeError(
            "expected a model with a floating-point input to take gradients through, got "
            f"input dtype {model_dtype.name}; pass dtype= if it was guessed wrongly"
        )
    return model_dtype


def _keras_module_of(model: Any) -> Any:
    """The Keras package (``keras`` or ``tf_keras``) whose ``Model`` ``model`` is, or None."""
    for module_name in ("keras", "tf_keras"):
        model_type = getattr(sys.modules.get(module_name), "Model", None)
        if isinstance(model_type, type) and isinstance(model, model_type):
            return sys.modules[module_name]
    return None


def _describe_model(model: Any) -> str:
    kind = type(model).__name__
    if _keras_module_of(model) is None:
        return f"a {kind}, which is not a Keras model"
    if kind == "Sequential":
        return "a Sequential model that has no inputs yet (not built)"
    return f"a subclassed Keras model ({kind})"


def _find_layer(model: Any, layer: Any) -> Any:
    """``layer`` (a name or a layer object) among ``model.layers``, or a helpful error."""
    layers = list(model.layers)
    if isinstance(layer, str):
        for candidate in layers:
            if candidate.name == layer:
                return candidate
        names = [candidate.name for candidate in layers]
        owner = _nested_owner(layers, layer)
        if owner is not None:
            raise ValueError(
                f"no layer named {layer!r} among the model's own layers; it is inside the "
                f"nested model {owner!r}, whose inner outputs the model cannot reach: pass "
                f"{owner!r} itself, or build the model without nesting"
            )
        close = difflib.get_close_matches(layer, names, n=3)
        if close:
            hint = "close matches: " + ", ".join(repr(name) for name in close)
        else:
            shown = ", ".join(repr(name) for name in names[:30])
            hint = f"the model's layers are {shown}" + (", ..." if len(names) > 30 else "")
        raise ValueError(f"no layer named {layer!r}; {hint}")
    if any(candidate is layer for candidate in layers):
        return layer
    if hasattr(layer, "name") and hasattr(layer, "trainable_weights"):
        raise ValueError(
            f"expected one of the model's layers (model.layers), got layer {layer.name!r}, "
            "which is not among them"
        )
    raise TypeError(
        f"expected layer to be a layer name (str) or a Keras layer of the model, got "
        f"{type(layer).__name__}"
    )


def _nested_owner(layers: list[Any], name: str) -> str | None:
    """The name of the top-level layer (a nested model) that holds a layer ``name``."""
    for candidate in layers:
        inner = getattr(candidate, "layers", None)
        if inner and (any(child.name == name for child in inner) or _nested_owner(inner, name)):
            return candidate.name
    return None


def _layer_output(layer: Any) -> Any:
    """The layer's one symbolic output, refused unless it has spatial axes."""
    calls = len(getattr(layer, "_inbound_nodes", ()))
    if calls > 1:
        raise ValueError(
            f"expected a layer called once, got layer {layer.name!r} called {calls} times "
            "(a shared layer has no single output to explain)"
        )
    try:
        output = layer.output
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"expected a layer with an output in the model's graph, got layer "
            f"{layer.name!r}: {error}"
        ) from error
    if isinstance(output, list | tuple | dict):
        raise ValueError(
            f"expected a layer with one output tensor, got layer {layer.name!r} with "
            f"{len(output)} outputs"
        )
    shape = tuple(output.shape)
    if len(shape) < 3:
        raise ValueError(
            "Grad-CAM needs a layer with spatial axes, an output (k, H, W, C) or "
            f"(k, C, H, W); layer {layer.name!r} gives shape {shape}, which has none (a "
            "dense or pooled layer): pick a convolutional layer"
        )
    return output
