"""JAX adapter: gradient and prediction callbacks from a pure ``apply_fn``.

A JAX model is a function, ``apply_fn(params, x)`` (or ``apply_fn(x)`` when there are no
separate parameters), so every JAX library plugs in the same way:

- Flax linen: ``gradient_fn(model.apply, params={"params": params})``;
- Flax nnx: ``graphdef, state = nnx.split(model)`` and
  ``gradient_fn(lambda state, x: nnx.merge(graphdef, state)(x), params=state)``;
- Equinox: ``params, static = eqx.partition(model, eqx.is_array)`` and
  ``gradient_fn(lambda p, x: jax.vmap(eqx.combine(p, static))(x), params=params)``;
- Haiku: ``gradient_fn(lambda p, x: net.apply(p, None, x), params=params)``.

How the callbacks stay fast:

- One module-level :func:`jax.jit` program per (``apply_fn``, ``objective``, dtype) and
  input shape. ``params`` are *arguments* of that program, never closure constants, so a
  large model is not embedded in the compiled code, and a new callback built from the same
  ``apply_fn`` with new ``params`` of the same shapes reuses the compiled program. Pass the
  same ``apply_fn`` (and ``objective``) object, not a fresh ``lambda`` each time, to
  benefit from this. Like any static argument of ``jax.jit``, those functions (and what they
  close over) stay referenced by JAX's compilation cache until ``jax.clear_caches()``.
- Row padding: a callback pads each chunk up to the largest row count it has already run
  successfully for that input shape (repeating the last row) and slices the result, so the
  last, smaller chunk of :func:`saliency_core.smoothgrad` reuses the program compiled for
  the full chunks. The price is computing at most one chunk's worth of padding rows per
  call of the core. A callback that has run large chunks keeps padding smaller ones up to
  that size; build a new callback if you lower ``batch_size`` for good.
- The target score is gathered inside the compiled program; targets are checked in numpy
  before the call (the output width comes from the cached trace, so the check costs no
  extra trace).

Nothing here changes ``jax.config`` or any other global state.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError as error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "adapters.jax needs JAX, which is not installed; install it with "
        '`pip install "saliency-toolkit[jax]"` (or `pip install jax`)'
    ) from error

from saliency_core.types import GradientFn, PredictFn

__all__ = ["gradient_fn", "predict_fn"]

#: ``objective(output, target) -> scores``: JAX arrays in, one score per row ``(k,)`` out.
Objective = Callable[[Any, Any], Any]


class _ByIdentity:
    """Hashable stand-in for an unhashable callable, compared by identity.

    ``jax.jit`` needs hashable static arguments; an Equinox module used directly as
    ``apply_fn`` is not hashable. Holding a strong reference keeps ``id`` unique.
    """

    __slots__ = ("value",)

    def __init__(self, value: Callable[..., Any]) -> None:
        self.value = value

    def __call__(self, *args: Any) -> Any:
        return self.value(*args)

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.value is self.value


def _static(function: Callable[..., Any] | None) -> Any:
    """Make a callable usable as a static argument of ``jax.jit``."""
    if function is None:
        return None
    try:
        hash(function)
    except TypeError:
        return _ByIdentity(function)
    return function


def _check_callable(value: object, name: str, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not callable(value):
        raise TypeError(f"expected {name} to be callable, got {type(value).__name__}")


def _compute_dtype(params: Any, dtype: Any) -> np.dtype | None:
    """The dtype the input is cast to for the forward pass (None: leave it float32).

    An explicit ``dtype`` wins; otherwise the widest floating dtype among the ``params``
    leaves (so bfloat16/float16 models run in their own precision).
    """
    if dtype is not None:
        resolved = np.dtype(dtype)
        if not jnp.issubdtype(resolved, jnp.floating):
            raise TypeError(f"expected a floating dtype, got {resolved}")
        return np.dtype(jax.dtypes.canonicalize_dtype(resolved))
    floating = [
        leaf.dtype
        for leaf in jax.tree.leaves(params)
        if jnp.issubdtype(getattr(leaf, "dtype", np.dtype(object)), jnp.floating)
    ]
    if not floating:
        return None
    return np.dtype(jnp.result_type(*floating))


def _carrier_dtype(compute_dtype: np.dtype | None) -> np.dtype:
    """The dtype of the arrays exchanged with numpy: float64 for float64 models, else float32."""
    if compute_dtype is not None and compute_dtype == np.float64:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def _place(params: Any) -> Any:
    """Put the parameters on the default device once, not on every call."""
    if params is None:
        return None
    try:
        return jax.device_put(params)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"expected params to be a pytree of arrays, got {type(params).__name__} ({error})"
        ) from error


def _as_batch(x: Any, carrier: np.dtype) -> np.ndarray:
    """``x`` as a numpy batch ``(k, ...)`` in the carrier dtype (no copy when already so)."""
    x = np.asarray(x)
    if x.ndim < 1:
        raise ValueError(f"expected a batch x of shape (k, *input_shape), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"expected a floating-point x, got dtype {x.dtype}")
    return x.astype(carrier, copy=False)


def _as_target(target: Any, rows: int) -> np.ndarray | None:
    """``target`` as an int32 array ``(rows,)``; a scalar applies to every row."""
    if target is None:
        return None
    target = np.asarray(target)
    if not np.issubdtype(target.dtype, np.integer):
        raise TypeError(f"expected an integer target array, got dtype {target.dtype}")
    if target.ndim == 0:
        target = np.broadcast_to(target, (rows,))
    if target.shape != (rows,):
        raise ValueError(f"expected target of shape ({rows},) (one per row), got {target.shape}")
    int32 = np.iinfo(np.int32)
    if rows and (target.min() < int32.min or target.max() > int32.max):
        raise ValueError(
            f"expected target values that fit in int32, got {target.min()} to {target.max()}"
        )
    return target.astype(np.int32, copy=False)


def _check_range(target: np.ndarray, n_outputs: int) -> None:
    low, high = int(target.min()), int(target.max())
    if low < 0 or high >= n_outputs:
        bad = low if low < 0 else high
        raise ValueError(
            f"expected target in the range [0, {n_outputs - 1}] (the model gives {n_outputs} "
            f"outputs per row), got {bad}"
        )


def _pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    """Repeat the last row until ``array`` has ``rows`` rows (padding rows stay realistic)."""
    missing = rows - array.shape[0]
    if missing == 0:
        return array
    filler = np.broadcast_to(array[-1:], (missing, *array.shape[1:]))
    return np.concatenate([array, filler])


def _forward(apply_fn, has_params, compute_dtype, params, x):
    if compute_dtype is not None:
        x = x.astype(compute_dtype)
    return apply_fn(params, x) if has_params else apply_fn(x)


def _one_score_per_row(scores, rows: int, what: str):
    if tuple(scores.shape) not in ((rows,), (rows, 1)):
        raise ValueError(
            f"expected {what} to give one score per row, shape ({rows},) for a batch of "
            f"{rows} rows, got shape {tuple(scores.shape)}"
        )
    return scores.reshape(rows)


def _scores(output, target, objective, rows: int):
    """One score per row, traced: objective, scalar output, or the target's column."""
    if objective is not None:
        return _one_score_per_row(objective(output, target), rows, "objective(output, target)")
    if not hasattr(output, "shape"):
        raise TypeError(
            f"expected apply_fn to return an array, got {type(output).__name__}; pass an "
            "objective to pick one score per row from other outputs"
        )
    if target is None:
        if tuple(output.shape) not in ((rows,), (rows, 1)):
            raise ValueError(
                f"expected target=None only for a model giving one score per row, got "
                f"outputs of shape {tuple(output.shape[1:])} per row; pass target= (an int "
                "array of output indices, one per row) or an objective"
            )
        return output.reshape(rows)
    if output.ndim != 2 or output.shape[0] != rows:
        raise ValueError(
            f"expected a model output of shape ({rows}, n_outputs) for integer targets, got "
            f"shape {tuple(output.shape)}; use target=None for one score per row, or an "
            "objective for other outputs"
        )
    return jnp.take_along_axis(output, target[:, None], axis=1)[:, 0]


@functools.partial(
    jax.jit, static_argnames=("apply_fn", "objective", "has_params", "compute_dtype")
)
def _gradients(params, x, target, *, apply_fn, objective, has_params, compute_dtype):
    """Per-row gradients of the selected scores, and an empty slice of the output.

    The gradient of the *sum* of the row scores is taken: with rows that do not interact,
    row i of that gradient is d score_i / d x_i.
    """
    rows = x.shape[0]

    def total_score(x):
        output = _forward(apply_fn, has_params, compute_dtype, params, x)
        scores = _scores(output, target, objective, rows)
        scores = scores.astype(jnp.promote_types(scores.dtype, jnp.float32))
        return jnp.sum(scores), output

    gradients, output = jax.grad(total_score, has_aux=True)(x)
    # Zero rows of the output: its trailing shape (the number of outputs, for the target
    # check) is visible from the trace, and nothing is computed or copied for it.
    shape_only = output[:0] if objective is None and target is not None else None
    return gradients, shape_only


@functools.partial(jax.jit, static_argnames=("apply_fn", "has_params", "compute_dtype"))
def _outputs(params, x, *, apply_fn, has_params, compute_dtype):
    """Model outputs, floating ones at least float32."""
    output = _forward(apply_fn, has_params, compute_dtype, params, x)
    if not hasattr(output, "shape"):
        raise TypeError(f"expected the model to return an array, got {type(output).__name__}")
    if output.ndim < 1 or output.shape[0] != x.shape[0]:
        raise ValueError(
            "expected the model to return one row per input row, shape "
            f"({x.shape[0]}, ...), got shape {tuple(output.shape)}"
        )
    if jnp.issubdtype(output.dtype, jnp.floating):
        output = output.astype(jnp.promote_types(output.dtype, jnp.float32))
    return output


def _padded_rows(largest: dict[tuple[int, ...], int], x: np.ndarray) -> int:
    return max(x.shape[0], largest.get(x.shape[1:], 0))


def gradient_fn(
    apply_fn: Callable[..., Any],
    *,
    params: Any = None,
    objective: Objective | None = None,
    dtype: Any = None,
) -> GradientFn:
    """Gradients of one score per row with respect to the input, for a JAX model.

    The result is a :class:`saliency_core.types.GradientFn`: ``fn(x, target)`` takes a numpy
    batch ``(k, *input_shape)`` and ``target`` (an int array ``(k,)``, an int, or ``None``)
    and returns ``d score / d x`` as a new numpy array shaped like ``x``.

    The score of row i is ``output[i, target[i]]`` for a ``(k, C)`` output; ``output[i]``
    for a model giving one score per row (``(k,)`` or ``(k, 1)``) with ``target=None``; or
    ``objective(output, target)[i]`` when an objective is given (then ``target`` is passed
    to it as is: ``None``, or a JAX int32 array with one entry per row of ``output``; rows
    beyond ``k`` are padding, copies of the last row).

    Gradients are those of the *sum* of the row scores (one ``jax.grad``), which equals the
    per-row gradients only if rows do not interact: no batch statistics (batch norm in
    training mode, batch-wise normalisation) inside ``apply_fn`` or ``objective``. Because
    a chunk may be padded with copies of its last row, the same assumption makes padding
    harmless.

    Args:
        apply_fn: ``apply_fn(params, x) -> output``, or ``apply_fn(x)`` when ``params`` is
            ``None``; a pure function traced by :func:`jax.jit` (Flax ``model.apply``, an
            nnx merge function, ...). Arrays it closes over become compile-time constants,
            so pass the weights as ``params``.
        params: pytree of arrays given to ``apply_fn`` as its first argument, passed to the
            compiled program as an argument (never baked in). Never modified.
        objective: optional ``objective(output, target) -> scores`` on JAX arrays, giving
            one score per row ``(k,)``: regression heads, a segmentation mask sum, anything
            custom.
        dtype: floating dtype the input is cast to for the forward pass; by default the
            widest floating dtype of ``params`` (float32 when there are none), so float16
            and bfloat16 models run in their own precision.

    Returns:
        The callback. Maps are float32 (float64 only for float64 models, which need
        ``jax_enable_x64``): float16/bfloat16 models give float32 maps, and float64 inputs
        are converted to float32 (the core accumulates in float64 anyway).

    Raises:
        TypeError: ``apply_fn`` or ``objective`` is not callable, ``params`` is not a pytree
            of arrays, ``dtype`` is not floating; when called, ``x`` is not floating or
            ``target`` is not integer.
        ValueError: when called: ``target`` is ``None`` but the model gives several outputs
            per row; a target is out of ``[0, C - 1]``; shapes disagree.

    Examples:
        >>> import jax.numpy as jnp, numpy as np
        >>> fn = gradient_fn(lambda p, x: x @ p["w"], params={"w": jnp.eye(3, 2)})
        >>> fn(np.ones((1, 3), np.float32), np.array([1]))
        array([[0., 1., 0.]], dtype=float32)
    """
    _check_callable(apply_fn, "apply_fn")
    _check_callable(objective, "objective", optional=True)
    params = _place(params)
    compute_dtype = _compute_dtype(params, dtype)
    carrier = _carrier_dtype(compute_dtype)
    static = {
        "apply_fn": _static(apply_fn),
        "objective": _static(objective),
        "has_params": params is not None,
        "compute_dtype": compute_dtype,
    }
    largest: dict[tuple[int, ...], int] = {}
    n_outputs: dict[tuple[int, ...], int] = {}

    def gradients(x: np.ndarray, target: np.ndarray | None) -> np.ndarray:
        x = _as_batch(x, carrier)
        target = _as_target(target, x.shape[0])
        if x.shape[0] == 0:
            return np.zeros(x.shape, carrier)
        rows = _padded_rows(largest, x)
        padded_x = _pad_rows(x, rows)
        padded_target = None if target is None else _pad_rows(target, rows)
        if target is not None and objective is None:
            if x.shape[1:] not in n_outputs:
                # Tracing here is the same trace the call below reuses (jit caches it).
                traced = _gradients.trace(params, padded_x, padded_target, **static)
                n_outputs[x.shape[1:]] = traced.out_info[1].shape[-1]
            _check_range(target, n_outputs[x.shape[1:]])
        result, _ = _gradients(params, padded_x, padded_target, **static)
        largest[x.shape[1:]] = rows
        return np.array(np.asarray(result)[: x.shape[0]])

    return gradients


def predict_fn(
    apply_fn: Callable[..., Any],
    *,
    params: Any = None,
    dtype: Any = None,
) -> PredictFn:
    """Model outputs as numpy, for a JAX model, with no gradient computation.

    The forward pass is compiled once per input shape, with ``params`` as an argument, and
    chunks are padded like :func:`gradient_fn`'s so a smaller last chunk does not
    recompile. Floating outputs come back at least float32 (float16/bfloat16 models give
    float32 outputs).

    Args:
        apply_fn: ``apply_fn(params, x) -> output`` (or ``apply_fn(x)`` when ``params`` is
            ``None``); the output must have one row per input row.
        params: pytree of arrays, passed as an argument of the compiled program.
        dtype: floating dtype the input is cast to; by default that of ``params``.

    Returns:
        ``fn(x) -> outputs``, a :class:`saliency_core.types.PredictFn`; outputs are a new
        numpy array with ``k`` rows.

    Raises:
        TypeError: as for :func:`gradient_fn`.
        ValueError: when called, if the output does not have one row per input row.

    Examples:
        >>> import jax.numpy as jnp, numpy as np
        >>> fn = predict_fn(lambda p, x: x @ p["w"], params={"w": jnp.eye(3, 2)})
        >>> fn(np.array([[1.0, 2.0, 3.0]]))
        array([[1., 2.]], dtype=float32)
    """
    _check_callable(apply_fn, "apply_fn")
    params = _place(params)
    compute_dtype = _compute_dtype(params, dtype)
    carrier = _carrier_dtype(compute_dtype)
    static = {
        "apply_fn": _static(apply_fn),
        "has_params": params is not None,
        "compute_dtype": compute_dtype,
    }
    largest: dict[tuple[int, ...], int] = {}

    def outputs(x: np.ndarray) -> np.ndarray:
        x = _as_batch(x, carrier)
        rows = max(1, _padded_rows(largest, x))
        # An empty batch still runs one (zero) row, to learn the output's trailing shape.
        base = x if x.shape[0] else np.zeros((1, *x.shape[1:]), carrier)
        result = _outputs(params, _pad_rows(base, rows), **static)
        largest[x.shape[1:]] = rows
        return np.array(np.asarray(result)[: x.shape[0]])

    return outputs
