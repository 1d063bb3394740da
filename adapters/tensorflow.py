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
  dtype, else the dtype of the model's floating variables, else float32; ``input_dtype=``
  overrides). Float16 and bfloat16 models are fed float32 and cast inside the compiled
  function, so their maps come back as float32. Maps are float64 only for float64 models:
  a float64 numpy batch sent to a float32 model is converted to float32, and so is its map.

References:
    Smilkov, Thorat, Kim, Viegas, Wattenberg (2017). SmoothGrad: removing noise by
    adding noise. arXiv:1706.03825.
"""

from __future__ import annotations

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

from saliency_core.types import GradientFn, PredictFn

__all__ = ["Objective", "gradient_fn", "predict_fn"]

#: ``objective(output, target) -> scores``: TensorFlow tensors in, a ``(k,)`` tensor of
#: one score per row out. ``output`` is what the model returned (any structure), and
#: ``target`` is the target given to the callback, as a tensor, or ``None``.
Objective = Callable[[Any, Any], Any]

_HALF_DTYPES = (tf.float16, tf.bfloat16)
_FEED_DTYPES = (tf.float32, tf.float64)


class _TraceAborted(Exception):
    """Raised inside a trace to stop it; the reason is kept on the side, raised outside."""


def gradient_fn(
    model: Callable[..., Any],
    *,
    objective: Objective | None = None,
    input_dtype: str | np.dtype | tf.DType | None = None,
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
        input_dtype: the dtype the model expects; ``None`` reads it from the model (the
            Keras ``Input`` dtype, else its floating variables' dtype, else float32).

    Returns:
        The gradient callback. It traces one ``tf.function`` per trailing input shape
        (``trace_count`` tells how many); maps are float32, or float64 for float64 models.

    Raises:
        TypeError: if ``model`` is not callable, ``objective`` is given but not callable,
            or the model's input dtype is not a floating dtype.

    The callback raises ``ValueError`` for a ``(k, C)`` output with ``target=None``, a
    target outside ``[0, C - 1]``, a target not shaped ``(k,)``, or scores that are not
    one per row; and ``TypeError`` for a non-integer target or a non-numeric batch.

    Examples:
        >>> import numpy as np, tensorflow as tf
        >>> w = tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        >>> fn = gradient_fn(lambda x: tf.matmul(x, w))
        >>> fn(np.ones((2, 3), np.float32), np.array([1, 0])).tolist()
        [[2.0, 4.0, 6.0], [1.0, 3.0, 5.0]]
    """
    _check_callable(model, "model")
    if objective is not None:
        _check_callable(objective, "objective")
    model_dtype = _resolve_dtype(model, input_dtype)
    if not model_dtype.is_floating:
        raise TypeError(
            "expected a model with a floating-point input to take gradients through, got "
            f"input dtype {model_dtype.name}; pass input_dtype= if it was guessed wrongly"
        )
    return _GradientCallback(model, objective, model_dtype)


def predict_fn(
    model: Callable[..., Any],
    *,
    input_dtype: str | np.dtype | tf.DType | None = None,
) -> PredictFn:
    """Build the prediction callback of a TensorFlow/Keras model: ``fn(x) -> outputs``.

    The forward pass runs in a ``tf.function`` traced once per trailing input shape, with
    ``training=False`` when the model accepts it and no gradient tape. Float16 and
    bfloat16 outputs come back as float32 numpy arrays; a model returning a structure
    (tuple, dict) gives the same structure of numpy arrays.

    Args:
        model: a Keras model, a ``tf.Module`` or any callable taking a tensor batch.
        input_dtype: the dtype the model expects; ``None`` reads it from the model, as in
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
    return _PredictCallback(model, _resolve_dtype(model, input_dtype))


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


class _GradientCallback(_CompiledModel):
    """``fn(x, target) -> d score / d x``; see :func:`gradient_fn`."""

    def __init__(
        self, model: Callable[..., Any], objective: Objective | None, model_dtype: tf.DType
    ) -> None:
        super().__init__(model, model_dtype)
        self._objective = objective

    def __repr__(self) -> str:
        return (
            f"<tensorflow gradient_fn of {type(self._model).__name__}, "
            f"objective={getattr(self._objective, '__name__', self._objective)!r}, "
            f"traces={self._trace_count}>"
        )

    def __call__(self, x: Any, target: Any = None, /) -> np.ndarray:
        batch = self._feed(x)
        k = batch.shape[0]
        x_spec = tf.TensorSpec((None, *batch.shape[1:]), self._feed_dtype)
        if self._objective is not None:
            return self._call_objective(batch, target, x_spec)
        if target is None:
            entry = self._trace((batch.shape[1:], None), (x_spec,))
            outputs = entry["concrete"](tf.convert_to_tensor(batch))
            n_classes = entry["n_classes"] or int(outputs[1])
            if n_classes != 1:
                raise _target_needed(n_classes)
        else:
            indices = _check_target(target, k)
            t_spec = tf.TensorSpec((None,), tf.int64)
            entry = self._trace((batch.shape[1:], "int"), (x_spec, t_spec))
            if entry["n_classes"] is not None:
                _check_range(indices, entry["n_classes"])
            elif k and indices.min() < 0:
                raise _out_of_range(indices, None)
            outputs = entry["concrete"](tf.convert_to_tensor(batch), tf.convert_to_tensor(indices))
            if entry["n_classes"] is None:
                _check_range(indices, int(outputs[1]))
        _check_scores(int(outputs[2]), k)
        return outputs[0].numpy()

    def _call_objective(self, batch: np.ndarray, target: Any, x_spec: tf.TensorSpec) -> np.ndarray:
        if target is None:
            entry = self._trace((batch.shape[1:], None), (x_spec,))
            outputs = entry["concrete"](tf.convert_to_tensor(batch))
        else:
            value = tf.convert_to_tensor(target)
            shape = (None, *value.shape[1:]) if value.shape.rank else ()
            t_spec = tf.TensorSpec(shape, value.dtype)
            entry = self._trace((batch.shape[1:], shape, value.dtype), (x_spec, t_spec))
            outputs = entry["concrete"](tf.convert_to_tensor(batch), value)
        _check_scores(int(outputs[2]), batch.shape[0])
        return outputs[0].numpy()

    def _traced_body(self, x: tf.Tensor, target: tf.Tensor | None = None) -> tuple[tf.Tensor, ...]:
        """Forward pass, score and gradient; runs only while tracing and in the graph."""
        self._trace_count += 1
        with tf.GradientTape() as tape:
            tape.watch(x)
            output = self._forward(x)
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
        gradient = tape.gradient(scores, x)
        if gradient is None:
            self._abort(
                ValueError(
                    "expected a score that depends differentiably on the input, got one "
                    "with no gradient path to it (an argmax, integer cast or stop_gradient "
                    "in the model or objective?)"
                )
            )
        return gradient, n_classes, tf.shape(scores)[0]

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


def _check_target(target: Any, k: int) -> np.ndarray:
    """The target as int64 indices of shape ``(k,)`` (a scalar is used for every row)."""
    indices = np.asarray(target)
    if indices.dtype == np.bool_ or not np.issubdtype(indices.dtype, np.integer):
        raise TypeError(f"expected an integer target (class indices), got dtype {indices.dtype}")
    if indices.ndim == 0:
        indices = np.broadcast_to(indices, (k,))
    if indices.shape != (k,):
        raise ValueError(
            f"expected target of shape ({k},), one class index per row, got {indices.shape}"
        )
    return indices.astype(np.int64, copy=False)


def _check_range(indices: np.ndarray, n_classes: int) -> None:
    if indices.size and (indices.min() < 0 or indices.max() >= n_classes):
        raise _out_of_range(indices, n_classes)


def _out_of_range(indices: np.ndarray, n_classes: int | None) -> ValueError:
    if n_classes is None:
        valid, upper = "non-negative class indices", np.inf
    else:
        valid = f"class indices in the range [0, {n_classes - 1}] ({n_classes} scores per row)"
        upper = n_classes
    bad = np.unique(indices[(indices < 0) | (indices >= upper)])
    return ValueError(f"target out of range: expected {valid}, got {bad.tolist()[:10]}")


def _target_needed(n_classes: int) -> ValueError:
    return ValueError(
        f"the model gives {n_classes} scores per row, so a target is needed: pass target= "
        "(an int array of class indices, one per row) or objective="
    )


def _check_scores(n_scores: int, k: int) -> None:
    if n_scores != k:
        raise ValueError(f"expected one score per row ({k} for this batch), got {n_scores} scores")


def _resolve_dtype(model: Any, input_dtype: Any) -> tf.DType:
    """The dtype the model expects: given, else read from the model, else float32."""
    if input_dtype is not None:
        return tf.as_dtype(input_dtype)
    inputs = _keras_inputs(model)
    if inputs:
        dtype = getattr(inputs[0], "dtype", None)
        if dtype is not None:
            return tf.as_dtype(dtype)
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
