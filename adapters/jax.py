"""JAX adapter: gradient, layer and prediction callbacks from a pure ``apply_fn``.

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

Guided backpropagation and deconvnet (``gradient_fn(..., relu_rule=...)``) rewrite the
*program*, never the model: ``apply_fn`` is traced to a jaxpr, and that jaxpr is evaluated
by a small interpreter that replaces each :func:`jax.nn.relu` call (a ``custom_jvp`` whose
primal is ``max(x, 0)``; Flax linen's ``nn.relu`` and nnx's ``nnx.relu`` are the same
function, and Equinox and Haiku use it too) by a ``jax.custom_vjp`` ReLU with the same
forward value and the rule's backward pass. It reaches ReLUs inside ``jax.jit``,
``jax.vmap``, ``lax.scan``, ``lax.cond`` and ``jax.checkpoint``; only those of ``apply_fn``
are changed, not the objective's. The interpreter runs once, when the program is traced, so
a rule costs nothing per call; ``jax.nn.relu``, ``apply_fn`` and ``params`` are never
patched, so there is nothing to restore, whatever goes wrong. A model with no
:func:`jax.nn.relu` the interpreter can reach (say ``jnp.maximum(x, 0)``) is refused with a
ValueError rather than silently given the plain gradient.

Grad-CAM needs one layer's activations and the gradients of the score with respect to
them. A JAX model has no named layers to hook, so :func:`layer_fn` takes the model split in
two at that layer: ``features_fn`` (input to activations) and ``head_fn`` (activations to
output). It is compiled and padded like :func:`gradient_fn`.

Nothing here changes ``jax.config`` or any other global state.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

try:
    import jax
    import jax.extend.core as jax_core
    import jax.numpy as jnp
except ImportError as error:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "adapters.jax needs JAX, which is not installed; install it with "
        '`pip install "saliency-toolkit[jax]"` (or `pip install jax`)'
    ) from error

from saliency_core.types import GradientFn, LayerFn, PredictFn

from ._relu_rules import RELU_RULES, check_relu_rule, no_relu_message
from ._targets import as_target_rows, check_target_range, target_needed

__all__ = ["RELU_RULES", "gradient_fn", "layer_fn", "predict_fn"]

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
    target = as_target_rows(target, rows)
    if target is None:
        return None
    int32 = np.iinfo(np.int32)
    if rows and (target.min() < int32.min or target.max() > int32.max):
        raise ValueError(
            f"expected target values that fit in int32, got {target.min()} to {target.max()}"
        )
    return target.astype(np.int32, copy=False)


def _check_range(target: np.ndarray, n_outputs: int) -> None:
    check_target_range(target, n_outputs)


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
        if output.ndim == 2 and output.shape[1] > 1:
            raise target_needed(output.shape[1])
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


# --- ReLU rules: guided backpropagation and deconvnet ----------------------------------

#: The ``relu_rule`` choices besides ``None`` (the plain gradient).

#: Call-like primitives whose body is evaluated in place (inlined): ``jax.jit`` (named
#: ``pjit`` before JAX 0.7) and ``closed_call``. The whole program is compiled as one
#: anyway, so inlining loses nothing.
_INLINED_CALLS = {"jit": "jaxpr", "pjit": "jaxpr", "closed_call": "call_jaxpr",
                  "core_call": "call_jaxpr"}

#: Primitives with their own derivative rule: bound as they are, ReLUs inside included
#: (their backward pass is the one their author wrote).
_OWN_DERIVATIVE = frozenset({"custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr"})


def _check_relu_rule(relu_rule: object) -> None:
    check_relu_rule(relu_rule)


def _relu_value(x):
    return jnp.maximum(x, 0)  # exactly jax.nn.relu's primal


@jax.custom_vjp
def _guided_relu(x):
    return _relu_value(x)


def _guided_forward(x):
    return _relu_value(x), x


def _guided_backward(x, cotangent):
    """Springenberg et al. 2014: pass only positive gradients, and only where ``x > 0``."""
    keep = (x > 0) & (cotangent > 0)
    return (jnp.where(keep, cotangent, jnp.zeros_like(cotangent)),)


_guided_relu.defvjp(_guided_forward, _guided_backward)


@jax.custom_vjp
def _deconvnet_relu(x):
    return _relu_value(x)


def _deconvnet_forward(x):
    return _relu_value(x), None


def _deconvnet_backward(_, cotangent):
    """Zeiler & Fergus 2014: the ReLU applied to the gradient, whatever the input was."""
    return (jnp.maximum(cotangent, jnp.zeros_like(cotangent)),)


_deconvnet_relu.defvjp(_deconvnet_forward, _deconvnet_backward)

_RULE_RELUS = {"guided": _guided_relu, "deconvnet": _deconvnet_relu}


def _is_zero_literal(atom: Any) -> bool:
    if not isinstance(atom, jax_core.Literal):
        return False
    value = np.asarray(atom.val)
    return value.size == 1 and bool(value.reshape(()) == 0)


def _computes_relu(jaxpr: Any) -> bool:
    """True when ``jaxpr`` is ``max(x, 0)`` of its one input, possibly inside jit calls."""
    if len(jaxpr.invars) != 1 or len(jaxpr.outvars) != 1 or len(jaxpr.eqns) != 1:
        return False
    eqn = jaxpr.eqns[0]
    (x,) = jaxpr.invars
    if len(eqn.outvars) != 1 or eqn.outvars[0] is not jaxpr.outvars[0]:
        return False
    name = eqn.primitive.name
    if name in _INLINED_CALLS:
        inner = eqn.params[_INLINED_CALLS[name]]
        return list(eqn.invars) == [x] and _computes_relu(getattr(inner, "jaxpr", inner))
    if name != "max" or len(eqn.invars) != 2:
        return False
    a, b = eqn.invars
    return (a is x and _is_zero_literal(b)) or (b is x and _is_zero_literal(a))


def _is_relu_call(eqn: Any) -> bool:
    """True for a call of :func:`jax.nn.relu` on a floating array (a ``custom_jvp_call``)."""
    if eqn.primitive.name != "custom_jvp_call" or eqn.params.get("num_consts", 0):
        return False
    if len(eqn.invars) != 1 or len(eqn.outvars) != 1:
        return False
    if not jnp.issubdtype(eqn.invars[0].aval.dtype, jnp.floating):
        return False
    return _computes_relu(eqn.params["call_jaxpr"].jaxpr)


def _has_relu(jaxpr: Any) -> bool:
    """True when ``jaxpr`` calls :func:`jax.nn.relu` where a rule can reach it."""
    for eqn in jaxpr.eqns:
        if _is_relu_call(eqn):
            return True
        if eqn.primitive.name not in _OWN_DERIVATIVE and any(
            _has_relu(inner) for inner in jax_core.jaxprs_in_params(eqn.params)
        ):
            return True
    return False


def _bind(eqn: Any, invals: Sequence[Any], params: dict[str, Any]) -> list[Any]:
    """Apply ``eqn``'s primitive to ``invals`` as :func:`jax.core.eval_jaxpr` does."""
    bind_params = eqn.primitive.get_bind_params(params)
    subfuns: Sequence[Any] = ()
    if isinstance(bind_params, tuple):  # JAX < 0.7 returns (subfuns, params)
        subfuns, bind_params = bind_params
    context = getattr(getattr(eqn, "ctx", None), "manager", None) or contextlib.nullcontext()
    with context:
        out = eqn.primitive.bind(*subfuns, *invals, **bind_params)
    return list(out) if eqn.primitive.multiple_results else [out]


class _ReluRewriter:
    """Evaluates a jaxpr with every :func:`jax.nn.relu` replaced by a rule's ReLU.

    Runs while the caller is traced (by :func:`jax.jit`), so it only emits the same
    operations again, with the ReLUs swapped; other primitives are bound unchanged.
    ``count`` is the number of ReLUs replaced.
    """

    def __init__(self, relu_rule: str) -> None:
        self.relu = _RULE_RELUS[relu_rule]
        self.count = 0

    def evaluate(self, jaxpr: Any, consts: Sequence[Any], args: Sequence[Any]) -> list[Any]:
        env: dict[Any, Any] = {}

        def read(atom: Any) -> Any:
            return atom.val if isinstance(atom, jax_core.Literal) else env[atom]

        env.update(zip(jaxpr.constvars, consts, strict=True))
        env.update(zip(jaxpr.invars, args, strict=True))
        for eqn in jaxpr.eqns:
            outvals = self.equation(eqn, [read(atom) for atom in eqn.invars])
            env.update(zip(eqn.outvars, outvals, strict=True))
        return [read(atom) for atom in jaxpr.outvars]

    def equation(self, eqn: Any, invals: list[Any]) -> list[Any]:
        name = eqn.primitive.name
        if _is_relu_call(eqn):
            self.count += 1
            return [self.relu(invals[0])]
        if name in _INLINED_CALLS:
            inner = eqn.params[_INLINED_CALLS[name]]
            return self.evaluate(inner.jaxpr, inner.consts, invals)
        params = eqn.params
        if name not in _OWN_DERIVATIVE and any(
            _has_relu(inner) for inner in jax_core.jaxprs_in_params(params)
        ):
            # scan, cond, checkpoint, ...: the same primitive over rewritten bodies.
            params = {key: self.rewrite_param(name, value) for key, value in params.items()}
        return _bind(eqn, invals, params)

    def rewrite_param(self, primitive: str, value: Any) -> Any:
        if isinstance(value, tuple):
            return tuple(self.rewrite_param(primitive, item) for item in value)
        if isinstance(value, jax_core.ClosedJaxpr):
            return self.rewrite(primitive, value.jaxpr, value.consts)
        if isinstance(value, jax_core.Jaxpr):
            rewritten = self.rewrite(primitive, value, ())
            if rewritten.consts:
                raise ValueError(
                    f"relu_rule: expected to rewrite the ReLUs inside `{primitive}` without "
                    f"new constants, got {len(rewritten.consts)}; this use of `{primitive}` "
                    "is not supported with a relu_rule"
                )
            return rewritten.jaxpr
        return value

    def rewrite(self, primitive: str, jaxpr: Any, consts: Sequence[Any]) -> Any:
        """``jaxpr`` traced again through this interpreter: same types, ReLUs replaced."""
        specs = []
        for var in jaxpr.invars:
            aval = var.aval
            if not hasattr(aval, "shape") or not hasattr(aval, "dtype"):
                raise ValueError(
                    f"relu_rule: expected array inputs in the body of `{primitive}`, got "
                    f"{aval}; this use of `{primitive}` is not supported with a relu_rule"
                )
            specs.append(
                jax.ShapeDtypeStruct(aval.shape, aval.dtype,
                                     weak_type=getattr(aval, "weak_type", False))
            )
        return jax.make_jaxpr(lambda *args: self.evaluate(jaxpr, consts, args))(*specs)


def _with_relu_rule(function: Callable[..., Any], relu_rule: str) -> Callable[..., Any]:
    """``function`` with the backward pass of its :func:`jax.nn.relu` calls replaced.

    The forward value is unchanged (``max(x, 0)``, as :func:`jax.nn.relu` computes it);
    only the gradient through each ReLU follows ``relu_rule``. Raises ValueError, when
    traced, if ``function`` calls no :func:`jax.nn.relu` a rule can reach.
    """

    def rewritten(*args: Any) -> Any:
        closed, out_shape = jax.make_jaxpr(function, return_shape=True)(*args)
        rewriter = _ReluRewriter(relu_rule)
        outputs = rewriter.evaluate(closed.jaxpr, closed.consts, jax.tree.leaves(args))
        if rewriter.count == 0:
            raise ValueError(no_relu_message(
                str(relu_rule),
                "jax.nn.relu (Flax nn.relu and nnx.relu are the same function), not other "
                "forms such as jnp.maximum(x, 0); ReLUs inside a custom_jvp/custom_vjp "
                "function keep that function's own gradient",
            ))
        return jax.tree.unflatten(jax.tree.structure(out_shape), outputs)

    return rewritten


def _shape_only(output, target, objective):
    """Zero rows of the output: its trailing shape (the number of outputs, for the target
    check) is visible from the trace, and nothing is computed or copied for it."""
    return output[:0] if objective is None and target is not None else None


@functools.partial(
    jax.jit,
    static_argnames=("apply_fn", "objective", "has_params", "compute_dtype", "relu_rule"),
)
def _gradients(
    params, x, target, *, apply_fn, objective, has_params, compute_dtype, relu_rule=None
):
    """Per-row gradients of the selected scores, and an empty slice of the output.

    The gradient of the *sum* of the row scores is taken: with rows that do not interact,
    row i of that gradient is d score_i / d x_i. With a ``relu_rule`` the ReLUs of
    ``apply_fn`` (not of ``objective``) pass gradients back by that rule.
    """
    rows = x.shape[0]
    if relu_rule is not None:
        apply_fn = _with_relu_rule(apply_fn, relu_rule)

    def total_score(x):
        output = _forward(apply_fn, has_params, compute_dtype, params, x)
        scores = _scores(output, target, objective, rows)
        scores = scores.astype(jnp.promote_types(scores.dtype, jnp.float32))
        return jnp.sum(scores), output

    gradients, output = jax.grad(total_score, has_aux=True)(x)
    return gradients, _shape_only(output, target, objective)


def _check_activations(activations, rows: int):
    """The layer's activations: a floating array ``(rows, *spatial, C)`` (checked traced)."""
    if not hasattr(activations, "shape"):
        raise TypeError(
            f"expected features_fn to return an array, got {type(activations).__name__}"
        )
    shape = tuple(activations.shape)
    if len(shape) < 3:
        raise ValueError(
            "expected features_fn to return activations with spatial axes, (k, *spatial, C) "
            f"or (k, C, *spatial), got shape {shape}: Grad-CAM needs a layer with spatial "
            "axes (a convolutional layer), not a dense one"
        )
    if shape[0] != rows:
        raise ValueError(
            f"expected features_fn to return one row per input row, ({rows}, ...), got "
            f"shape {shape}"
        )
    if not jnp.issubdtype(activations.dtype, jnp.floating):
        raise TypeError(f"expected floating activations, got dtype {activations.dtype}")


@functools.partial(
    jax.jit,
    static_argnames=("features_fn", "head_fn", "objective", "has_params", "compute_dtype"),
)
def _layer_gradients(
    params, x, target, *, features_fn, head_fn, objective, has_params, compute_dtype
):
    """One layer's activations, the gradients of the row scores with respect to them, and
    an empty slice of the output; activations and gradients at least float32."""
    rows = x.shape[0]
    activations = _forward(features_fn, has_params, compute_dtype, params, x)
    _check_activations(activations, rows)

    def total_score(activations):
        output = head_fn(params, activations) if has_params else head_fn(activations)
        scores = _scores(output, target, objective, rows)
        scores = scores.astype(jnp.promote_types(scores.dtype, jnp.float32))
        return jnp.sum(scores), output

    gradients, output = jax.grad(total_score, has_aux=True)(activations)
    carrier = jnp.promote_types(activations.dtype, jnp.float32)
    return (
        activations.astype(carrier),
        gradients.astype(carrier),
        _shape_only(output, target, objective),
    )


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


class _PaddedProgram:
    """Calls one compiled program on chunks padded to the largest size seen per shape.

    The program takes ``(params, x, target, **static)`` and returns arrays with one row
    per input row, then, last, the zero-row slice of the model output (or None), whose
    trailing shape gives the number of outputs for the target range check.
    """

    def __init__(self, program: Any, params: Any, static: dict[str, Any], *,
                 check_targets: bool) -> None:
        self.program = program
        self.params = params
        self.static = static
        self.check_targets = check_targets
        self.largest: dict[tuple[int, ...], int] = {}
        self.n_outputs: dict[tuple[int, ...], int] = {}

    def __call__(self, x: np.ndarray, target: np.ndarray | None) -> list[np.ndarray]:
        rows = _padded_rows(self.largest, x)
        padded_x = _pad_rows(x, rows)
        padded_target = None if target is None else _pad_rows(target, rows)
        if target is not None and self.check_targets:
            if x.shape[1:] not in self.n_outputs:
                # Tracing here is the same trace the call below reuses (jit caches it).
                traced = self.program.trace(self.params, padded_x, padded_target,
                                            **self.static)
                self.n_outputs[x.shape[1:]] = traced.out_info[-1].shape[-1]
            _check_range(target, self.n_outputs[x.shape[1:]])
        results = self.program(self.params, padded_x, padded_target, **self.static)
        self.largest[x.shape[1:]] = rows
        return [np.array(np.asarray(result)[: x.shape[0]]) for result in results[:-1]]


def gradient_fn(
    apply_fn: Callable[..., Any],
    *,
    params: Any = None,
    objective: Objective | None = None,
    dtype: Any = None,
    relu_rule: str | None = None,
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

    ``relu_rule`` changes only the backward pass through each :func:`jax.nn.relu` call of
    ``apply_fn`` (Flax ``nn.relu``, ``nnx.relu``, and what Equinox and Haiku use), found in
    its jaxpr, also inside ``jax.jit``, ``jax.vmap``, ``lax.scan``, ``lax.cond`` and
    ``jax.checkpoint``; forward values are unchanged. With ``g`` the gradient arriving at
    the ReLU's output and ``x`` its input, the gradient passed back is ``g * (x > 0) *
    (g > 0)`` for ``"guided"`` and ``max(g, 0)`` for ``"deconvnet"``. ReLUs written in
    other ways (``jnp.maximum(x, 0)``) are not recognised, and those inside a
    ``custom_jvp``/``custom_vjp`` function keep that function's own derivative. Nothing is
    patched: the rule is applied to a traced copy of the program, so ``apply_fn``,
    ``params`` and :func:`jax.nn.relu` stay as they were, and callbacks made with another
    rule (or none) are unaffected.

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
        relu_rule: ``None`` for the plain gradient, ``"guided"`` for guided
            backpropagation (Springenberg et al. 2014) or ``"deconvnet"`` (Zeiler & Fergus
            2014).

    Returns:
        The callback. Maps are float32 (float64 only for float64 models, which need
        ``jax_enable_x64``): float16/bfloat16 models give float32 maps, and float64 inputs
        are converted to float32 (the core accumulates in float64 anyway).

    Raises:
        TypeError: ``apply_fn`` or ``objective`` is not callable, ``params`` is not a pytree
            of arrays, ``dtype`` is not floating; when called, ``x`` is not floating or
            ``target`` is not integer.
        ValueError: ``relu_rule`` is not one of the choices; when called: ``target`` is
            ``None`` but the model gives several outputs per row; a target is out of
            ``[0, C - 1]``; shapes disagree; a ``relu_rule`` is given but ``apply_fn``
            calls no :func:`jax.nn.relu`.

    Examples:
        >>> import jax, jax.numpy as jnp, numpy as np
        >>> fn = gradient_fn(lambda p, x: x @ p["w"], params={"w": jnp.eye(3, 2)})
        >>> fn(np.ones((1, 3), np.float32), np.array([1]))
        array([[0., 1., 0.]], dtype=float32)

        Guided backpropagation drops the negative gradient that the plain one passes back:

        >>> relu_net = lambda p, x: jax.nn.relu(x) @ p["w"]
        >>> w = {"w": jnp.array([[1.0], [-1.0]])}
        >>> x = np.array([[2.0, 3.0]], np.float32)
        >>> gradient_fn(relu_net, params=w)(x, None)
        array([[ 1., -1.]], dtype=float32)
        >>> gradient_fn(relu_net, params=w, relu_rule="guided")(x, None)
        array([[1., 0.]], dtype=float32)
    """
    _check_callable(apply_fn, "apply_fn")
    _check_callable(objective, "objective", optional=True)
    _check_relu_rule(relu_rule)
    params = _place(params)
    compute_dtype = _compute_dtype(params, dtype)
    carrier = _carrier_dtype(compute_dtype)
    static = {
        "apply_fn": _static(apply_fn),
        "objective": _static(objective),
        "has_params": params is not None,
        "compute_dtype": compute_dtype,
        "relu_rule": relu_rule,
    }
    program = _PaddedProgram(_gradients, params, static, check_targets=objective is None)

    def gradients(x: np.ndarray, target: np.ndarray | None) -> np.ndarray:
        x = _as_batch(x, carrier)
        target = _as_target(target, x.shape[0])
        if x.shape[0] == 0:
            return np.zeros(x.shape, carrier)
        (result,) = program(x, target)
        return result

    return gradients


def layer_fn(
    features_fn: Callable[..., Any],
    head_fn: Callable[..., Any],
    *,
    params: Any = None,
    objective: Objective | None = None,
    dtype: Any = None,
) -> LayerFn:
    """One layer's activations and the gradients of the score with respect to them.

    The result is a :class:`saliency_core.types.LayerFn` for
    :func:`saliency_core.grad_cam` and :func:`saliency_core.grad_cam_plus_plus`:
    ``fn(x, target) -> (activations, gradients)``, two new numpy arrays of the layer's
    shape ``(k, *layer_shape)``, where ``gradients = d score / d activations``. The model
    is given split at the layer: ``features_fn`` maps the input to the layer's activations
    and ``head_fn`` maps those to the model output, so that ``head_fn(params,
    features_fn(params, x))`` is the model. Targets and ``objective`` mean what they mean
    for :func:`gradient_fn` (the score is taken from ``head_fn``'s output). Compiled once
    per input shape, with ``params`` as an argument and chunks padded as in
    :func:`gradient_fn`.

    Activations of a JAX convolution are usually NHWC: pass ``channel_axis=-1`` (the
    default) to Grad-CAM.

    Args:
        features_fn: ``features_fn(params, x) -> activations`` (or ``features_fn(x)`` when
            ``params`` is ``None``), activations ``(k, *spatial, C)`` or ``(k, C,
            *spatial)`` with at least one spatial axis.
        head_fn: ``head_fn(params, activations) -> output`` (or ``head_fn(activations)``).
        params: pytree of arrays given to both functions, an argument of the compiled
            program. Never modified.
        objective: optional ``objective(output, target) -> scores`` on JAX arrays, one
            score per row.
        dtype: floating dtype the input is cast to; by default that of ``params``.

    Returns:
        The callback; activations and gradients are float32 (float64 for float64 models).

    Raises:
        TypeError: as for :func:`gradient_fn`, or ``features_fn`` or ``head_fn`` is not
            callable.
        ValueError: when called: the activations have no spatial axis (rank below 3, a
            dense layer), or as for :func:`gradient_fn`.

    Examples:
        A linear head on a 2x2x1 layer: the gradient is the head's weights.

        >>> import jax.numpy as jnp, numpy as np
        >>> features = lambda p, x: x * 2.0
        >>> head = lambda p, a: (a * p["w"]).sum(axis=(1, 2))
        >>> fn = layer_fn(features, head, params={"w": jnp.arange(4.0).reshape(2, 2, 1)})
        >>> activations, gradients = fn(np.ones((1, 2, 2, 1), np.float32), None)
        >>> activations[0, :, :, 0], gradients[0, :, :, 0]
        (array([[2., 2.],
               [2., 2.]], dtype=float32), array([[0., 1.],
               [2., 3.]], dtype=float32))
    """
    _check_callable(features_fn, "features_fn")
    _check_callable(head_fn, "head_fn")
    _check_callable(objective, "objective", optional=True)
    params = _place(params)
    compute_dtype = _compute_dtype(params, dtype)
    carrier = _carrier_dtype(compute_dtype)
    static = {
        "features_fn": _static(features_fn),
        "head_fn": _static(head_fn),
        "objective": _static(objective),
        "has_params": params is not None,
        "compute_dtype": compute_dtype,
    }
    program = _PaddedProgram(_layer_gradients, params, static, check_targets=objective is None)

    def activations_and_gradients(
        x: np.ndarray, target: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        x = _as_batch(x, carrier)
        target = _as_target(target, x.shape[0])
        if x.shape[0] == 0:
            # One zero row runs, to learn the layer's shape; none of it comes back.
            one_target = None if target is None else np.zeros(1, np.int32)
            activations, gradients = program(np.zeros((1, *x.shape[1:]), carrier), one_target)
            return activations[:0], gradients[:0]
        activations, gradients = program(x, target)
        return activations.astype(carrier, copy=False), gradients.astype(carrier, copy=False)

    return activations_and_gradients


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
