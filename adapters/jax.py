"""JAX backend: the callbacks of a pure function ``apply_fn(params, x)``.

The contract every backend shares is in :mod:`adapters` and :mod:`adapters._backend`;
this module holds what JAX does its own way.

- A model is ``apply_fn`` with ``params=`` (``apply_fn(x)`` when params is None) or the
  pair ``(apply_fn, params)``: Flax linen ``(model.apply, variables)``; Flax nnx
  ``(lambda s, x: nnx.merge(graphdef, s)(x), state)``; Equinox ``(lambda p, x:
  jax.vmap(eqx.combine(p, static))(x), p)``; Haiku ``(lambda p, x: net.apply(p, None, x),
  params)``.
- One module-level :func:`jax.jit` program per (``apply_fn``, objective, dtype, rule) and
  input shape, params an *argument*, never a constant: callbacks of the same ``apply_fn``
  object (not a new ``lambda`` each time) share compiled programs, which JAX's cache keeps
  until ``jax.clear_caches()``. ``trace_count`` counts the traces a callback's calls caused.
- Without an objective, chunks are padded (repeating the last row) to the largest row
  count run so far for their input shape, so a smaller last chunk compiles nothing new.
  An objective sees exactly the batch's rows: with one, each chunk size is traced once.
- Targets are checked in numpy before the call (the number of outputs comes from the
  cached trace); objectives get them as int32, int64 with ``jax_enable_x64`` (JAX has no
  int64 otherwise).
- ReLU rules rewrite the *program*: an interpreter of ``apply_fn``'s jaxpr replaces each
  :func:`jax.nn.relu` call (Flax ``nn.relu`` and ``nnx.relu`` are that function; Equinox
  and Haiku use it), also inside ``jit``, ``vmap``, ``lax.scan``, ``lax.cond`` and
  ``checkpoint``, by a ``jax.custom_vjp`` ReLU with the same forward value and the rule's
  backward pass. Other forms (``jnp.maximum(x, 0)``) are not recognised: a rule that meets
  none is refused.
- A Grad-CAM layer is the model split in two, ``(features_fn, head_fn)``: JAX models have
  no named layers.
- Devices are ``jax.devices(kind)`` (``"cuda"`` is ``"gpu"``) or a :class:`jax.Device`;
  params and inputs are put there with :func:`jax.device_put`.
- Weight copies make new params. A layer is a container of floating array leaves, named
  by its "/"-joined key path (``"params/Dense_0"``; ``""`` for a flat dict), dicts in
  insertion order (``jax.tree`` sorts their keys); a Flax nnx Variable counts as its array.

Nothing here patches JAX or changes ``jax.config``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Mapping, Sequence
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

from . import _backend
from ._backend import RELU_RULES, Callback
from ._tokens import EmbeddingCallbacks, as_token_ids, check_embedded

__all__ = ["CHANNEL_AXIS", "NAME", "RELU_RULES", "Objective", "copy_with_weights",
           "embedding_fn", "gradient_fn", "input_spec", "layer_fn", "owns", "predict_fn",
           "weight_layers"]

NAME = "jax"

#: JAX image models take NHWC batches.
CHANNEL_AXIS = -1

#: ``objective(output, target) -> scores``: JAX arrays in, one score per row ``(k,)`` out.
Objective = Callable[[Any, Any], Any]

_DEVICE_KINDS = ("cpu", "gpu", "tpu")

# The Python body of a jitted program runs only while JAX traces it; each run adds one
# here. Tracing happens in the calling thread, so a thread's count is its own traces.
_TRACES = threading.local()


def _count_trace() -> None:
    _TRACES.count = getattr(_TRACES, "count", 0) + 1


def _traces() -> int:
    return getattr(_TRACES, "count", 0)


# --------------------------------------------------------------------------- arguments


def owns(model: object) -> bool:
    """True for an ``(apply_fn, params)`` pair, the one JAX model object there is."""
    return isinstance(model, tuple) and len(model) == 2 and callable(model[0])


def _apply_and_params(model: object, params: Any) -> tuple[Callable[..., Any], Any]:
    if owns(model):
        if params is not None:
            raise TypeError(
                "expected params=None when model is an (apply_fn, params) pair, got params= "
                "as well"
            )
        return model  # type: ignore[return-value]
    if not callable(model):
        got = f"a tuple of length {len(model)}" if isinstance(model, tuple) else (
            type(model).__name__)
        raise TypeError(
            f"expected model to be apply_fn (a callable) or an (apply_fn, params) pair, got {got}"
        )
    return model, params


class _ByIdentity:
    """Hashable stand-in, compared by identity, for an unhashable callable (an Equinox
    module) used as a static argument of ``jax.jit``."""

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
    try:
        hash(function)
    except TypeError:
        return _ByIdentity(function)  # type: ignore[arg-type]
    return function


def _devices(kind: str) -> list[Any]:
    try:
        return list(jax.devices(kind))
    except RuntimeError:  # JAX has no such backend here
        return []


def _device(device: object) -> Any:
    """None (JAX's default placement), or the :class:`jax.Device` that ``device`` names."""
    if device is None or isinstance(device, jax.Device):
        return device
    kind, index = _backend.parse_device(device)
    found = _devices(kind) if kind in _DEVICE_KINDS else []
    if (index or 0) >= len(found):
        available = [f"{k}:{i}" for k in _DEVICE_KINDS for i in range(len(_devices(k)))]
        raise _backend.device_unavailable(device, available)
    return found[index or 0]


def _is_floating(leaf: Any) -> bool:
    dtype = getattr(leaf, "dtype", None)
    return hasattr(leaf, "shape") and dtype is not None and jnp.issubdtype(dtype, jnp.floating)


def _compute_dtype(params: Any, dtype: object) -> np.dtype | None:
    """The dtype the input is cast to: ``dtype``, else the widest of the params' floating
    leaves (so float16 and bfloat16 models run in their own precision), else None."""
    if dtype is None:
        floating = [leaf.dtype for leaf in jax.tree.leaves(params) if _is_floating(leaf)]
        return np.dtype(jnp.result_type(*floating)) if floating else None
    try:
        resolved = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(
            f"expected dtype to be a floating dtype or its name, got {dtype!r}"
        ) from None
    if not jnp.issubdtype(resolved, jnp.floating):
        raise TypeError(f"expected dtype to be a floating dtype, got {resolved}")
    return np.dtype(jax.dtypes.canonicalize_dtype(resolved))


def _place(params: Any, device: Any) -> Any:
    """The params on the device, once (not on every call)."""
    if params is None:
        return None
    try:
        return jax.device_put(params, device)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"expected params to be a pytree of arrays, got {type(params).__name__} ({error})"
        ) from None


def _name(function: object) -> str:
    return getattr(function, "__qualname__", None) or type(function).__name__


# --------------------------------------------------------------------------- calling


def _pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    """Repeat the last row until ``array`` has ``rows`` rows (padding rows stay realistic)."""
    missing = rows - array.shape[0]
    if missing == 0:
        return array
    filler = np.broadcast_to(array[-1:], (missing, *array.shape[1:]))
    return np.concatenate([array, filler])


def _index_dtype() -> np.dtype:
    """JAX's integer dtype for targets: int32, or int64 when ``jax_enable_x64`` is set."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.int64))


class _Program:
    """A callback's params on its device, and its jitted ``program(params, x, target,
    **static)`` called on numpy chunks. The program returns arrays with a row per input
    row, then a probe: the model output's zero-row slice when targets are gathered (its
    width, read from the cached trace, is the number of outputs), else None."""

    def __init__(self, program: Any, params: Any, *, device: Any, dtype: Any,
                 objective: Any, **static: Any) -> None:
        if objective is not None:
            _backend.check_callable(objective, "objective")
        self.program, self.objective = program, objective is not None
        self.device = _device(device)
        self.params = _place(params, self.device)
        compute_dtype = _compute_dtype(self.params, dtype)
        self.carrier = _backend.carrier_dtype(str(compute_dtype))
        self.static = {key: _static(value) for key, value in static.items()}
        self.static.update(objective=_static(objective), has_params=params is not None,
                           compute_dtype=compute_dtype)
        self.options = {"objective": None if objective is None else _name(objective),
                        "device": self.device, "dtype": compute_dtype}
        self.largest: dict[tuple[int, ...], int] = {}
        self.n_outputs: dict[tuple[int, ...], int] = {}

    def __call__(self, x: object, target: object, *, targets: bool = True) -> list[np.ndarray]:
        x = _backend.as_batch(x)
        x = x if x.dtype == self.carrier else x.astype(self.carrier)
        rows, shape = x.shape[0], x.shape[1:]
        target = _backend.as_targets(target, rows) if targets else None
        size = rows if self.objective else max(rows, self.largest.get(shape, 0))
        index = None if target is None else _pad_rows(target.astype(_index_dtype()), size)
        args = (_pad_rows(x, size), index)
        if self.device is not None:
            args = jax.device_put(args, self.device)
        if target is not None and self.objective:
            info = np.iinfo(_index_dtype())
            if target.min() < info.min or target.max() > info.max:
                raise ValueError(
                    f"expected targets that fit in {info.dtype} (JAX has no int64 unless "
                    f"jax_enable_x64 is set), got {int(target.min())} to {int(target.max())}"
                )
        elif target is not None:
            if shape not in self.n_outputs:  # the trace the call below reuses
                traced = self.program.trace(self.params, *args, **self.static)
                self.n_outputs[shape] = traced.out_info[-1].shape[-1]
            _backend.check_target_range(target, self.n_outputs[shape])
        results = self.program(self.params, *args, **self.static)
        if not self.objective:
            self.largest[shape] = size
        return [np.array(np.asarray(result)[:rows]) for result in results[:-1]]

    def callback(self, run: Callable[..., Any], what: str, model: object,
                 **options: object) -> Callback:
        """``run`` as a :class:`Callback` that counts the traces its calls cause."""
        shown = "".join(f", {key}={value}" for key, value in {**options, **self.options}.items()
                        if value is not None)
        callback: Callback

        def counted(*args: Any) -> Any:
            before = _traces()
            try:
                return run(*args)
            finally:
                callback.trace_count += _traces() - before

        callback = Callback(counted, f"adapters.jax.{what}({_name(model)}{shown})")
        return callback


def _forward(function: Any, has_params: bool, compute_dtype: Any, params: Any, x: Any) -> Any:
    if compute_dtype is not None:
        x = x.astype(compute_dtype)
    return function(params, x) if has_params else function(x)


def _total_score(output: Any, target: Any, objective: Any, rows: int) -> Any:
    """The sum of the row scores (traced): the objective's, or the model's own."""
    if objective is not None:
        scores = objective(output, target)
        shape, dtype = getattr(scores, "shape", None), getattr(scores, "dtype", None)
        floating = dtype is not None and jnp.issubdtype(dtype, jnp.floating)
        _backend.check_scores_shape(shape, rows, floating=floating, dtype=dtype)
    else:
        plan = _backend.plan_scores(getattr(output, "shape", None), rows,
                                    has_target=target is not None)
        scores = output
        if plan.column:
            scores = jnp.take_along_axis(output, target[:, None], axis=1)[:, 0]
    scores = scores.reshape(rows)
    return jnp.sum(scores.astype(jnp.promote_types(scores.dtype, jnp.float32)))


def _probe(output: Any, target: Any, objective: Any) -> Any:
    return output[:0] if objective is None and target is not None else None


@functools.partial(
    jax.jit, static_argnames=("apply_fn", "objective", "has_params", "compute_dtype", "relu_rule")
)
def _gradients(params, x, target, *, apply_fn, objective, has_params, compute_dtype, relu_rule):
    """Gradients of the sum of the row scores (per row while rows do not interact)."""
    _count_trace()
    if relu_rule is not None:
        apply_fn = _with_relu_rule(apply_fn, relu_rule)

    def total(x):
        output = _forward(apply_fn, has_params, compute_dtype, params, x)
        return _total_score(output, target, objective, x.shape[0]), output

    gradients, output = jax.grad(total, has_aux=True)(x)
    return gradients, _probe(output, target, objective)


def _check_activations(activations: Any, rows: int) -> None:
    shape = getattr(activations, "shape", None)
    if shape is None or not jnp.issubdtype(activations.dtype, jnp.floating):
        raise TypeError(f"expected features_fn to return a floating array, got "
                        f"{getattr(activations, 'dtype', type(activations).__name__)}")
    if len(shape) < 3 or shape[0] != rows:
        raise ValueError(
            f"expected features_fn to return activations with spatial axes, ({rows}, *spatial, "
            f"C) or ({rows}, C, *spatial), got shape {tuple(shape)}: Grad-CAM needs a layer "
            "with spatial axes (a convolutional layer), not a dense one"
        )


@functools.partial(
    jax.jit,
    static_argnames=("features_fn", "head_fn", "objective", "has_params", "compute_dtype"),
)
def _layer_gradients(params, x, target, *, features_fn, head_fn, objective, has_params,
                     compute_dtype):
    """The layer's activations and the gradients of the row scores with respect to them."""
    _count_trace()
    activations = _forward(features_fn, has_params, compute_dtype, params, x)
    _check_activations(activations, x.shape[0])

    def total(activations):
        output = head_fn(params, activations) if has_params else head_fn(activations)
        return _total_score(output, target, objective, x.shape[0]), output

    gradients, output = jax.grad(total, has_aux=True)(activations)
    carrier = jnp.promote_types(activations.dtype, jnp.float32)
    return activations.astype(carrier), gradients.astype(carrier), _probe(output, target,
                                                                           objective)


@functools.partial(
    jax.jit, static_argnames=("apply_fn", "objective", "has_params", "compute_dtype")
)
def _outputs(params, x, target, *, apply_fn, objective, has_params, compute_dtype):
    """Model outputs, floating ones at least float32."""
    del target, objective
    _count_trace()
    output = _forward(apply_fn, has_params, compute_dtype, params, x)
    if not hasattr(output, "shape"):
        raise TypeError(
            f"expected the model to return one array (a tensor), got {type(output).__name__}"
        )
    if output.ndim < 1 or output.shape[0] != x.shape[0]:
        raise ValueError(
            f"expected the model to return one row per input row, {x.shape[0]} rows for this "
            f"batch, got shape {tuple(output.shape)}"
        )
    if jnp.issubdtype(output.dtype, jnp.floating):
        output = output.astype(jnp.promote_types(output.dtype, jnp.float32))
    return output, None


# --------------------------------------------------------------------------- ReLU rules

#: Call-like primitives whose body is evaluated in place (``jax.jit``, named ``pjit``
#: before JAX 0.7, and ``closed_call``): the program is compiled as one anyway.
_INLINED_CALLS = {"jit": "jaxpr", "pjit": "jaxpr", "closed_call": "call_jaxpr",
                  "core_call": "call_jaxpr"}

#: Primitives with their own derivative rule: bound as they are, ReLUs inside included.
_OWN_DERIVATIVE = frozenset({"custom_jvp_call", "custom_vjp_call", "custom_vjp_call_jaxpr"})


def _rule_relu(backward: Callable[[Any, Any], tuple[Any]]) -> Callable[[Any], Any]:
    """A ReLU with :func:`jax.nn.relu`'s forward value and ``backward(x, gradient)``."""
    relu = jax.custom_vjp(lambda x: jnp.maximum(x, 0))
    relu.defvjp(lambda x: (jnp.maximum(x, 0), x), backward)
    return relu


_RULE_RELUS = {
    # Springenberg et al. 2014: only positive gradients pass, and only where x > 0
    "guided": _rule_relu(lambda x, g: (jnp.where((x > 0) & (g > 0), g, jnp.zeros_like(g)),)),
    # Zeiler and Fergus 2014: the ReLU of the gradient, whatever the input was
    "deconvnet": _rule_relu(lambda x, g: (jnp.maximum(g, jnp.zeros_like(g)),)),
}


def _is_zero(atom: Any) -> bool:
    value = np.asarray(atom.val) if isinstance(atom, jax_core.Literal) else None
    return value is not None and value.size == 1 and bool(value.reshape(()) == 0)


def _computes_relu(jaxpr: Any) -> bool:
    """True when ``jaxpr`` is ``max(x, 0)`` of its one input, possibly inside jit calls."""
    if len(jaxpr.invars) != 1 or len(jaxpr.outvars) != 1 or len(jaxpr.eqns) != 1:
        return False
    eqn, (x,) = jaxpr.eqns[0], jaxpr.invars
    if len(eqn.outvars) != 1 or eqn.outvars[0] is not jaxpr.outvars[0]:
        return False
    if eqn.primitive.name in _INLINED_CALLS:
        inner = eqn.params[_INLINED_CALLS[eqn.primitive.name]]
        return list(eqn.invars) == [x] and _computes_relu(getattr(inner, "jaxpr", inner))
    if eqn.primitive.name != "max" or len(eqn.invars) != 2:
        return False
    a, b = eqn.invars
    return (a is x and _is_zero(b)) or (b is x and _is_zero(a))


def _is_relu_call(eqn: Any) -> bool:
    """True for a call of :func:`jax.nn.relu` (a ``custom_jvp_call``) on a floating array."""
    if eqn.primitive.name != "custom_jvp_call" or eqn.params.get("num_consts", 0):
        return False
    if len(eqn.invars) != 1 or len(eqn.outvars) != 1:
        return False
    floating = jnp.issubdtype(eqn.invars[0].aval.dtype, jnp.floating)
    return floating and _computes_relu(eqn.params["call_jaxpr"].jaxpr)


def _has_relu(jaxpr: Any) -> bool:
    return any(
        _is_relu_call(eqn) or (eqn.primitive.name not in _OWN_DERIVATIVE and any(
            _has_relu(inner) for inner in jax_core.jaxprs_in_params(eqn.params)))
        for eqn in jaxpr.eqns
    )


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
    """Evaluates a jaxpr (while the caller is traced) with every :func:`jax.nn.relu`
    replaced by a rule's ReLU; other primitives are bound unchanged. ``count`` is the
    number of ReLUs replaced."""

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
        ):  # scan, cond, checkpoint, ...: the same primitive over rewritten bodies
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
            specs.append(jax.ShapeDtypeStruct(aval.shape, aval.dtype,
                                              weak_type=getattr(aval, "weak_type", False)))
        return jax.make_jaxpr(lambda *args: self.evaluate(jaxpr, consts, args))(*specs)


def _with_relu_rule(function: Callable[..., Any], relu_rule: str) -> Callable[..., Any]:
    """``function`` with the backward pass of its :func:`jax.nn.relu` calls replaced; a
    ValueError, when traced, if it calls none a rule can reach."""

    def rewritten(*args: Any) -> Any:
        closed, out_shape = jax.make_jaxpr(function, return_shape=True)(*args)
        rewriter = _ReluRewriter(relu_rule)
        outputs = rewriter.evaluate(closed.jaxpr, closed.consts, jax.tree.leaves(args))
        if rewriter.count == 0:
            raise ValueError(_backend.no_relu_message(
                relu_rule,
                "jax.nn.relu (Flax nn.relu and nnx.relu are the same function), not other "
                "forms such as jnp.maximum(x, 0); ReLUs inside a custom_jvp/custom_vjp "
                "function keep that function's own gradient",
            ))
        return jax.tree.unflatten(jax.tree.structure(out_shape), outputs)

    return rewritten


# --------------------------------------------------------------------------- callbacks


def gradient_fn(
    model: Any,
    *,
    params: Any = None,
    objective: Objective | None = None,
    device: Any = None,
    dtype: Any = None,
    relu_rule: str | None = None,
) -> Callback:
    """A :class:`saliency_core.types.GradientFn`: ``fn(x, target) -> d score / d x``.

    One ``jax.grad`` of the *sum* of the row scores: row i's own gradient while rows do not
    interact (no batch statistics in the model or objective), which padding relies on too.
    ``relu_rule`` changes the backward pass of ``apply_fn``'s :func:`jax.nn.relu` calls only
    (not the objective's): with ``g`` the gradient at a ReLU's output and ``x`` its input,
    ``g * (x > 0) * (g > 0)`` for ``"guided"`` (Springenberg et al. 2014) and ``max(g, 0)``
    for ``"deconvnet"`` (Zeiler and Fergus 2014).

    Args:
        model: ``apply_fn(params, x) -> output`` (``apply_fn(x)`` when params is None), a
            pure function :func:`jax.jit` traces, or an ``(apply_fn, params)`` pair; arrays
            it closes over become compile-time constants, so pass weights as params.
        params: pytree of arrays, ``apply_fn``'s first argument; never modified.
        objective: ``objective(output, target) -> (k,)`` scores on JAX arrays.
        device: None, a name such as ``"cpu"`` or ``"gpu:1"``, or a :class:`jax.Device`.
        dtype: the floating dtype the input is cast to; by default the widest floating
            dtype of the params (float32 when there is none).
        relu_rule: None, ``"guided"`` or ``"deconvnet"``.

    Raises:
        TypeError, ValueError: as :mod:`adapters` says; when called, also a rule on a model
            without :func:`jax.nn.relu`.

    Examples:
        >>> import jax, jax.numpy as jnp, numpy as np
        >>> fn = gradient_fn(lambda p, x: x @ p["w"], params={"w": jnp.eye(3, 2)})
        >>> fn(np.ones((1, 3), np.float32), np.array([1]))
        array([[0., 1., 0.]], dtype=float32)

        Guided backpropagation drops the negative gradient the plain one passes back:

        >>> model = (lambda p, x: jax.nn.relu(x) @ p["w"], {"w": jnp.array([[1.0], [-1.0]])})
        >>> x = np.array([[2.0, 3.0]], np.float32)
        >>> gradient_fn(model)(x, None), gradient_fn(model, relu_rule="guided")(x, None)
        (array([[ 1., -1.]], dtype=float32), array([[1., 0.]], dtype=float32))
    """
    apply_fn, params = _apply_and_params(model, params)
    relu_rule = _backend.check_relu_rule(relu_rule)
    program = _Program(_gradients, params, device=device, dtype=dtype, objective=objective,
                       apply_fn=apply_fn, relu_rule=relu_rule)

    def gradients(x: np.ndarray, target: np.ndarray | None) -> np.ndarray:
        return program(x, target)[0]

    return program.callback(gradients, "gradient_fn", apply_fn,
                            relu_rule=None if relu_rule is None else repr(relu_rule))



def _split(pair: Any, name: str, first: str, how: str) -> tuple[Callable, Callable]:
    """A model split in two, ``(first, head_fn)``, both callable; a name is refused with ``how``."""
    article = "an" if first[0] in "aeiou" else "a"
    if isinstance(pair, str):
        raise ValueError(
            f"expected {name} to be {article} ({first}, head_fn) pair, got the str {pair!r}: "
            f"{how}"
        )
    if not isinstance(pair, tuple | list) or len(pair) != 2:
        raise TypeError(
            f"expected {name} to be {article} ({first}, head_fn) pair, got "
            f"{type(pair).__name__}"
        )
    _backend.check_callable(pair[0], first)
    _backend.check_callable(pair[1], "head_fn")
    return pair[0], pair[1]


def layer_fn(
    model: Any,
    layer: tuple[Callable[..., Any], Callable[..., Any]],
    *,
    params: Any = None,
    objective: Objective | None = None,
    device: Any = None,
    dtype: Any = None,
) -> Callback:
    """A :class:`saliency_core.types.LayerFn`: ``fn(x, target) -> (activations, gradients)``.

    ``layer`` is the model split at the layer, ``(features_fn, head_fn)``:
    ``features_fn(params, x) -> activations``, with spatial axes (NHWC: Grad-CAM's
    ``channel_axis=-1``), and ``head_fn(params, activations) -> output``, each without
    params when params is None. Scores are taken from ``head_fn``'s output as
    :func:`gradient_fn` takes them from the model's; ``model``'s params are the halves'.

    Raises:
        ValueError: a layer name (a str): JAX models have no named layers; when called,
            activations without spatial axes.
        TypeError: ``layer`` is not a pair of callables.

    Examples:
        A linear head on a 2x2x1 layer: the gradient is the head's weights.

        >>> import jax.numpy as jnp, numpy as np
        >>> features = lambda p, x: x * 2.0
        >>> head = lambda p, a: (a * p["w"]).sum(axis=(1, 2))
        >>> model = (lambda p, x: head(p, features(p, x)), {"w": jnp.arange(4.0).reshape(2, 2, 1)})
        >>> activations, gradients = layer_fn(model, (features, head))(np.ones((1, 2, 2, 1)), None)
        >>> activations[0, :, :, 0], gradients[0, :, :, 0]
        (array([[2., 2.],
               [2., 2.]], dtype=float32), array([[0., 1.],
               [2., 3.]], dtype=float32))
    """
    apply_fn, params = _apply_and_params(model, params)
    features_fn, head_fn = _split(
        layer, "layer", "features_fn",
        "a JAX model has no named layers, so split it there, features_fn(params, x) -> "
        "activations and head_fn(params, activations) -> output")
    program = _Program(_layer_gradients, params, device=device, dtype=dtype,
                       objective=objective, features_fn=features_fn, head_fn=head_fn)

    def activations_and_gradients(
        x: np.ndarray, target: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        activations, gradients = program(x, target)
        return activations, gradients

    return program.callback(activations_and_gradients, "layer_fn", apply_fn,
                            layer=f"({_name(features_fn)}, {_name(head_fn)})")


def predict_fn(model: Any, *, params: Any = None, device: Any = None,
               dtype: Any = None) -> Callback:
    """A :class:`saliency_core.types.PredictFn`: ``fn(x) -> outputs``, compiled and padded
    like :func:`gradient_fn`'s; floating outputs come back at least float32.

    Examples:
        >>> import jax.numpy as jnp, numpy as np
        >>> fn = predict_fn((lambda p, x: x @ p["w"], {"w": jnp.eye(3, 2)}))
        >>> fn(np.array([[1.0, 2.0, 3.0]]))
        array([[1., 2.]], dtype=float32)
    """
    apply_fn, params = _apply_and_params(model, params)
    program = _Program(_outputs, params, device=device, dtype=dtype, objective=None,
                       apply_fn=apply_fn)

    def outputs(x: np.ndarray) -> np.ndarray:
        return program(x, None, targets=False)[0]

    return program.callback(outputs, "predict_fn", apply_fn)


# --------------------------------------------------------------------------- embeddings


@functools.partial(jax.jit, static_argnames=("embed_fn", "has_params"))
def _embedded(params, ids, *, embed_fn, has_params):
    """The embedding half on integer ids, floating results at least float32."""
    _count_trace()
    output = embed_fn(params, ids) if has_params else embed_fn(ids)
    dtype = getattr(output, "dtype", None)
    floating = dtype is not None and jnp.issubdtype(dtype, jnp.floating)
    check_embedded(tuple(output.shape) if hasattr(output, "shape") else None, ids.shape,
                   "embed_fn", floating=floating)
    return output.astype(jnp.promote_types(output.dtype, jnp.float32))


def embedding_fn(
    model: Any,
    embedding: tuple[Callable[..., Any], Callable[..., Any]],
    *,
    params: Any = None,
    objective: Objective | None = None,
    device: Any = None,
    dtype: Any = None,
) -> EmbeddingCallbacks:
    """The callbacks of a text model explained through its embeddings: embed, gradient, predict.

    ``embedding`` is the model split at its embedding, ``(embed_fn, head_fn)``:
    ``embed_fn(params, ids) -> (k, T, D)`` (a table lookup, ``params["embedding"][ids]``
    or a Flax ``Embed``'s apply) and ``head_fn(params, embeddings) -> output``, each
    without params when params is None; ``model``'s params are the halves'. ``embed(ids)``
    runs ``embed_fn`` (compiled once per ids shape) and gives ``(N, T, D)`` numpy;
    ``gradient`` and ``predict`` are :func:`gradient_fn` and :func:`predict_fn` of
    ``head_fn``, so any method of the core runs in embedding space and
    :func:`saliency_core.tokens.token_attributions` gives one value per token.

    Ids reach ``embed_fn`` as int32 (int64 with ``jax_enable_x64``). JAX does not say how
    many rows a table has, and indexing past its end is clamped, not refused: check ids
    against the vocabulary before calling, or look them up with ``mode="fill"``.

    Raises:
        ValueError: an ``embedding`` given as a str (JAX models have no named layers);
            when called, ids that are not non-negative integers ``(N, T)`` within int32
            (without ``jax_enable_x64``), an ``embed_fn`` output that is not ``(N, T, D)``
            floats.
        TypeError: ``embedding`` is not a pair of callables.

    Examples:
        >>> import jax.numpy as jnp, numpy as np
        >>> from saliency_core.tokens import token_attributions
        >>> params = {"table": jnp.arange(10.0).reshape(5, 2), "w": jnp.array([1.0, -1.0])}
        >>> embed_fn = lambda p, ids: p["table"][ids]
        >>> head_fn = lambda p, e: e.sum(axis=1) @ p["w"]
        >>> model = (lambda p, ids: head_fn(p, embed_fn(p, ids)), params)
        >>> embed, gradient, predict = embedding_fn(model, (embed_fn, head_fn))
        >>> embeddings = embed(np.array([[1, 3]]))
        >>> embeddings
        array([[[2., 3.],
                [6., 7.]]], dtype=float32)
        >>> token_attributions(gradient(embeddings, None), embeddings), predict(embeddings)
        (array([[-1., -1.]], dtype=float32), array([-2.], dtype=float32))
    """
    _, params = _apply_and_params(model, params)
    embed_fn, head_fn = _split(
        embedding, "embedding", "embed_fn",
        "a JAX model has no named layers, so split it at the embedding, "
        "embed_fn(params, ids) -> embeddings and head_fn(params, embeddings) -> output")
    gradient = gradient_fn(head_fn, params=params, objective=objective, device=device,
                           dtype=dtype)
    predict = predict_fn(head_fn, params=params, device=device, dtype=dtype)
    placed_device = _device(device)
    placed = _place(params, placed_device)
    static = {"embed_fn": _static(embed_fn), "has_params": params is not None}
    callback: Callback

    def embed(ids: Any) -> np.ndarray:
        tokens = as_token_ids(ids)
        info = np.iinfo(_index_dtype())
        if tokens.max() > info.max:
            raise ValueError(
                f"expected token ids that fit in {info.dtype} (JAX has no int64 unless "
                f"jax_enable_x64 is set), got {int(tokens.max())}"
            )
        values = tokens.astype(_index_dtype())
        if placed_device is not None:
            values = jax.device_put(values, placed_device)
        before = _traces()
        try:
            output = _embedded(placed, values, **static)
        finally:
            callback.trace_count += _traces() - before
        return np.array(np.asarray(output))

    callback = Callback(embed, f"adapters.jax.embedding_fn.embed({_name(embed_fn)})")
    return EmbeddingCallbacks(callback, gradient, predict)


# --------------------------------------------------------------------------- declared inputs


def input_spec(model: object) -> tuple[None, None]:
    """The channels and ``(H, W)`` size of the images a JAX model declares: never known.

    A JAX model is a function and its parameters; neither says what shape of input the
    function takes (the shape of a first kernel in the parameters does not say which
    layer comes first), so this is ``(None, None)`` for every model. It exists so that
    every backend answers the same question (see :func:`adapters.torch.input_spec`).

    Examples:
        >>> input_spec((lambda params, x: x, {}))
        (None, None)
    """
    del model
    return None, None


# --------------------------------------------------------------------------- weight copies


def _key_name(key: Any) -> str:
    for attribute in ("key", "name", "idx"):  # DictKey, GetAttrKey, SequenceKey
        if hasattr(key, attribute):
            return str(getattr(key, attribute))
    return str(key)


def _rank(params: Any, path: Sequence[Any]) -> list[int]:
    """Where a layer's dicts put it: the keys' insertion positions, which jax.tree (sorting
    dict keys) forgets. Flax linen and Haiku create their dicts input to output."""
    rank, node = [], params
    for key in path:
        if isinstance(key, jax.tree_util.DictKey) and isinstance(node, Mapping):
            rank.append(list(node).index(key.key))
            node = node[key.key]
        elif isinstance(key, jax.tree_util.SequenceKey):
            rank.append(key.idx)
            node = node[key.idx]
        else:  # other pytrees flatten in their own order: kept
            break
    return rank


def _weights(params: Any, flat: list[tuple[Any, Any]]) -> dict[str, list[tuple[str, int]]]:
    """Layer name -> ``(weight name, leaf index)`` of its floating array leaves, layers in
    their dicts' insertion order, then in ``jax.tree`` order."""
    layers: dict[str, list[tuple[str, int]]] = {}
    ranks: dict[str, list[int]] = {}
    for index, (path, leaf) in enumerate(flat):
        if not _is_floating(leaf):
            continue
        names = [_key_name(key) for key in path]
        if len(names) > 1 and isinstance(path[-1], jax.tree_util.GetAttrKey) and (
                names[-1] == "value"):
            names, path = names[:-1], path[:-1]  # a Flax nnx Variable: its .value
        layer = "/".join(names[:-1])
        ranks.setdefault(layer, _rank(params, path[:-1]))
        layers.setdefault(layer, []).append((names[-1] if names else "", index))
    return {layer: layers[layer] for layer in sorted(layers, key=ranks.__getitem__)}


def _in_order(original: Any, copied: Any) -> Any:
    """``copied`` with its dicts' keys in ``original``'s order (``jax.tree`` sorts them)."""
    if type(original) is dict and type(copied) is dict:
        return {key: _in_order(original[key], copied[key]) for key in original}
    if type(original) in (list, tuple) and type(copied) is type(original):
        return type(original)(_in_order(a, b) for a, b in zip(original, copied, strict=True))
    return copied


def _params_of(model: Any) -> Any:
    return model[1] if owns(model) else model


def weight_layers(model: Any) -> list[str]:
    """The layers that hold floating weights: dicts in insertion order (input to output for
    Flax linen, Haiku and dicts written so), other containers in ``jax.tree`` order.

    Args:
        model: an ``(apply_fn, params)`` pair, or a params pytree.

    Examples:
        >>> import jax.numpy as jnp
        >>> weight_layers({"params": {"dense": {"kernel": jnp.ones((2, 2))}, "step": 3}})
        ['params/dense']
    """
    params = _params_of(model)
    return list(_weights(params, jax.tree_util.tree_flatten_with_path(params)[0]))


def copy_with_weights(model: Any, transform: _backend.WeightTransform, *,
                      layers: str | Sequence[str] | None = None, seed: int | None = None) -> Any:
    """New params whose chosen layers' weights are ``transform(weight, rng)``.

    Each chosen layer's weights, sorted by name, are replaced by new arrays of the same
    dtypes on the same devices (bfloat16 weights reach ``transform`` as float32); other
    leaves are kept as they are (JAX arrays are immutable), and the original params are
    untouched.

    Args:
        model: an ``(apply_fn, params)`` pair (a pair comes back) or a params pytree (a
            pytree comes back).
        transform: ``transform(weight, rng) -> new weight`` on numpy arrays, such as
            :func:`adapters._backend.reinitialise`.
        layers: a name or names from :func:`weight_layers`; None for all.
        seed: the seed of the layers' generators (:func:`adapters._backend.layer_generator`).

    Examples:
        >>> import jax.numpy as jnp
        >>> params = {"dense": {"w": jnp.ones(3)}}
        >>> copy_with_weights(params, lambda w, rng: 2 * w)["dense"]["w"], params["dense"]["w"]
        (Array([2., 2., 2.], dtype=float32), Array([1., 1., 1.], dtype=float32))
    """
    _backend.check_callable(transform, "transform")
    _backend.layer_generator(seed, "")  # the seed is checked even when no layer is chosen
    params = _params_of(model)
    flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    weights = _weights(params, flat)
    leaves = [leaf for _, leaf in flat]
    for layer in _backend.select_layers(layers, list(weights)):
        rng = _backend.layer_generator(seed, layer)
        for name, index in sorted(weights[layer]):
            leaf = leaves[index]
            dtype = np.dtype(leaf.dtype)
            weight = np.array(leaf, dtype=dtype if dtype.kind == "f" else np.float32)
            new = _backend.apply_transform(transform, weight, rng,
                                           where=f"layer {layer!r} weight {name!r}")
            new = new.astype(dtype)
            leaves[index] = jax.device_put(new, leaf.sharding) if isinstance(
                leaf, jax.Array) else new
    copied = _in_order(params, jax.tree_util.tree_unflatten(treedef, leaves))
    return (model[0], copied) if owns(model) else copied
