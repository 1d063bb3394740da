"""The rules every backend shares, written once in numpy.

``adapters/torch.py``, ``adapters/tensorflow.py`` and ``adapters/jax.py`` each hold only
what their framework does differently: converting arrays, the forward and backward pass,
the ReLU-rule mechanism, capturing a layer, copying weights. Everything a user can get
wrong is decided here, so the three answer it alike, with the same words:

- :func:`as_batch`: what ``x`` may be (a numpy array or anything ``numpy.asarray`` takes;
  bool, int and uint become float32, float16 becomes float32, big-endian becomes native,
  at least two dimensions and no empty axis);
- :func:`as_targets` and :func:`check_target_range`: targets are int64 output indices,
  one per row, within the model's outputs;
- :func:`plan_scores`: how one score per row is read from the model's output (one score
  per row, or a column per target), with the row-count check;
- :func:`check_scores_shape`: what an objective must return;
- :func:`find_named`: layer lookup with close-match hints;
- :func:`carrier_dtype`: the half-precision policy (float16 and bfloat16 models are fed and
  answer float32; float64 models float64; the rest float32);
- :func:`parse_device` and :func:`device_unavailable`: device names;
- :func:`check_callable`, :func:`check_relu_rule`;
- :class:`Callback`: what every callback is (``trace_count``, a readable ``repr``);
- the weight transformations of the weight-copy hook (:func:`reinitialise`,
  :func:`multiplicative_noise`) and their seeding (:func:`layer_generator`).

This module imports numpy only.
"""

from __future__ import annotations

import difflib
import numbers
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "DEVICE_KINDS",
    "HALF_PRECISION",
    "RELU_RULES",
    "Callback",
    "ScorePlan",
    "WeightTransform",
    "apply_transform",
    "as_batch",
    "as_targets",
    "carrier_dtype",
    "check_callable",
    "check_output_rows",
    "check_relu_rule",
    "check_scores_shape",
    "check_target_range",
    "device_unavailable",
    "find_named",
    "layer_generator",
    "multiplicative_noise",
    "no_relu_message",
    "parse_device",
    "plan_scores",
    "reinitialise",
    "select_layers",
    "target_needed",
]

T = TypeVar("T")

#: The values of ``relu_rule`` besides None (the plain gradient): guided backpropagation
#: (Springenberg et al. 2014) and the deconvnet (Zeiler and Fergus 2014).
RELU_RULES = ("guided", "deconvnet")

#: Floating dtypes that numpy cannot hold or that lose too much in a sum: models of these
#: dtypes take float32 inputs (cast inside the framework) and give float32 maps.
HALF_PRECISION = ("float16", "bfloat16")

_INT64 = np.iinfo(np.int64)


def _shape(shape: Iterable[int | None]) -> str:
    items = ["None" if s is None else str(int(s)) for s in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


# --------------------------------------------------------------------------- callables


def check_callable(value: object, name: str) -> None:
    """TypeError unless ``value`` is callable."""
    if not callable(value):
        raise TypeError(f"expected {name} to be callable, got {type(value).__name__}")


class Callback:
    """A numpy-in, numpy-out callback made by a backend.

    Every callback of every backend is one of these, so they look and count alike:
    ``trace_count`` is how many times the framework traced or compiled the model for this
    callback (one per input shape in TensorFlow and JAX; always 0 in PyTorch, which runs
    eagerly), and ``repr`` says what the callback is.
    """

    __slots__ = ("_function", "description", "trace_count")

    def __init__(self, function: Callable[..., Any], description: str) -> None:
        self._function = function
        self.description = description
        self.trace_count = 0

    def __call__(self, *args: Any) -> Any:
        return self._function(*args)

    def __repr__(self) -> str:
        return f"<{self.description}, traces={self.trace_count}>"


# --------------------------------------------------------------------------- inputs


def as_batch(
    x: object, *, native: Callable[[object], np.ndarray | None] | None = None
) -> np.ndarray:
    """``x`` as a numpy batch ``(k, *input_shape)`` of float32 or float64, native byte order.

    Args:
        x: a numpy array, a nested list, or any array-like ``numpy.asarray`` converts (a
            TensorFlow or JAX array, a CPU tensor without gradient).
        native: the backend's converter for its own tensors (a PyTorch tensor that
            requires grad, or lives on a GPU); returns None for anything else.

    Returns:
        float32 for bool, integer, float16 and float32 input; float64 for float64. The
        array may be the caller's own memory (no copy is made when none is needed); a
        backend whose model could write into it copies it.

    Raises:
        TypeError: a dtype that is not real and numeric (complex, object, str), or an
            object numpy cannot convert.
        ValueError: fewer than two dimensions, an empty axis, or a ragged list.
    """
    array = native(x) if native is not None else None
    if array is None:
        if isinstance(x, np.ndarray):
            array = x
        else:
            try:
                array = np.asarray(x)
            except (TypeError, RuntimeError) as error:
                raise TypeError(
                    f"expected x to be a numpy array or an array-like, got a "
                    f"{type(x).__name__} numpy cannot convert ({error})"
                ) from None
            except ValueError as error:
                raise ValueError(
                    f"expected x to be a rectangular batch, got a {type(x).__name__} numpy "
                    f"cannot make an array of ({error})"
                ) from None
    kind = array.dtype.kind
    if kind not in "biuf":
        raise TypeError(
            f"expected x to be a real numeric batch (float, int, uint or bool), got dtype "
            f"{array.dtype}"
        )
    if array.ndim < 2:
        raise ValueError(
            f"expected x to be a batch (k, *input_shape) with at least 2 dimensions, got "
            f"shape {_shape(array.shape)}; add a batch axis with x[None]"
        )
    if 0 in array.shape:
        raise ValueError(
            f"expected x to have no empty axis (at least one row, and inputs of at least "
            f"one element), got shape {_shape(array.shape)}"
        )
    wanted: np.dtype[Any]
    if kind == "f" and array.dtype.itemsize >= 8:
        wanted = np.dtype(np.float64)
    else:
        wanted = np.dtype(np.float32)
    if array.dtype != wanted:  # also turns big-endian float32/float64 native
        array = array.astype(wanted)
    if not _canonical(array):
        array = np.array(array, order="C")
    return array


def _canonical(array: np.ndarray) -> bool:
    """True when ``array`` has the strides of a fresh C-ordered array of its shape.

    numpy calls an array with a size-1 axis C-contiguous whatever that axis's stride
    (``np.moveaxis`` of a grey NHWC batch gives one), but frameworks that read strides
    (PyTorch's ``.view``) do not: such arrays are copied.
    """
    if not array.flags.c_contiguous or not array.flags.aligned:
        return False
    stride = array.itemsize
    for size, step in zip(reversed(array.shape), reversed(array.strides), strict=True):
        if step != stride:
            return False
        stride *= size
    return True


# --------------------------------------------------------------------------- targets


def as_targets(target: object, rows: int) -> np.ndarray | None:
    """None, or the targets as int64 ``(rows,)``; one int applies to every row.

    Range against the model's outputs is checked by :func:`check_target_range` once the
    number of outputs is known.
    """
    if target is None:
        return None
    if isinstance(target, bool | np.bool_):
        raise TypeError(f"expected integer targets (output indices), got the bool {target}")
    if isinstance(target, numbers.Integral):
        value = int(target)
        if not _INT64.min <= value <= _INT64.max:
            raise ValueError(f"expected targets that fit in int64, got {value}")
        return np.full(rows, value, dtype=np.int64)
    try:
        array = np.asarray(target)
    except (TypeError, ValueError, RuntimeError, OverflowError) as error:
        raise TypeError(
            f"expected integer targets (an int or an int array), got a "
            f"{type(target).__name__} ({error})"
        ) from None
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"expected integer targets (output indices), got dtype {array.dtype}; convert "
            "whole-valued floats with .astype(int)"
        )
    if array.ndim == 0:
        return as_targets(int(array), rows)
    if array.shape != (rows,):
        raise ValueError(
            f"expected target of shape ({rows},), one output index per row, "
            f"got shape {_shape(array.shape)}"
        )
    if array.dtype.kind == "u" and array.size and array.max() > _INT64.max:
        raise ValueError(
            f"expected targets that fit in int64, got {int(array.max())} (dtype {array.dtype})"
        )
    return array.astype(np.int64, copy=False)


def check_target_range(target: np.ndarray, n_outputs: int) -> None:
    """ValueError naming the valid range when a target is negative or too large."""
    if not target.size or (target.min() >= 0 and target.max() < n_outputs):
        return  # the common case, in two reductions
    bad = target[(target < 0) | (target >= n_outputs)]
    if bad.size:
        raise ValueError(
            f"expected targets in [0, {n_outputs - 1}] (the model gives {n_outputs} outputs "
            f"per row), got {np.unique(bad)[:10].tolist()}"
        )


def target_needed(n_outputs: int) -> ValueError:
    """The error for ``target=None`` on a model with several outputs per row."""
    return ValueError(
        f"the model gives {n_outputs} outputs per row, so a target is needed: pass target= "
        "(an int, or an int array with one output index per row) or objective="
    )


# --------------------------------------------------------------------------- scores


@dataclass(frozen=True)
class ScorePlan:
    """How one score per row is read from a model output.

    ``column`` False: the output is one score per row, ``(k,)`` or ``(k, 1)``, reshaped to
    ``(k,)``. ``column`` True: ``output[i, target[i]]`` of a ``(k, n_outputs)`` output
    (``n_outputs`` None while a tracer does not know it yet).
    """

    column: bool
    n_outputs: int | None


def plan_scores(
    output_shape: Iterable[int | None] | None, rows: int | None, *, has_target: bool,
    output_type: str = "something else",
) -> ScorePlan:
    """The :class:`ScorePlan` for an output of this shape, or the error that refuses it.

    Args:
        output_shape: the model output's shape (dimensions may be None while tracing), or
            None when the model did not return an array.
        rows: the rows of the batch (None while tracing with an unknown batch size).
        has_target: whether targets were given.
        output_type: what the model returned instead of an array, for the message.
    """
    if output_shape is None:
        raise TypeError(
            f"expected the model to return one array (a tensor), got {output_type}; pass "
            "objective= to turn the output into one score per row"
        )
    shape = tuple(None if s is None else int(s) for s in output_shape)
    if not shape:
        raise ValueError(
            "expected the model to return one row per input row, got a 0-d output (one "
            "number for the whole batch); return per-row outputs, or pass objective="
        )
    if rows is not None and shape[0] is not None and shape[0] != rows:
        raise ValueError(
            f"expected the model to return one row per input row, {rows} rows for this "
            f"batch, got shape {_shape(shape)}"
        )
    single = len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)
    if not has_target:
        if single:
            return ScorePlan(column=False, n_outputs=1)
        if len(shape) == 2:
            if shape[1] is None:  # unknown while tracing: one column is checked at run time
                return ScorePlan(column=False, n_outputs=None)
            raise target_needed(shape[1])
        raise ValueError(
            f"expected a model output of shape (k,) or (k, 1) with target=None, got shape "
            f"{_shape(shape)}; pass objective= to reduce it to one score per row"
        )
    if len(shape) != 2:
        raise ValueError(
            f"expected a model output of shape (k, C) for integer targets, got shape "
            f"{_shape(shape)}; use target=None for one score per row, or objective= for other "
            "outputs"
        )
    return ScorePlan(column=True, n_outputs=shape[1])


def check_output_rows(
    shape: Iterable[int | None] | None, rows: int | None, *,
    output_type: str = "something else",
) -> None:
    """What ``predict_fn`` needs of a model output: an array with one row per input row
    (``rows`` None while a tracer does not know the batch size)."""
    if shape is None:
        raise TypeError(
            f"expected the model to return one array (a tensor), got {output_type}; wrap "
            "the model in a function that returns one"
        )
    shape = tuple(shape)
    if not shape or (rows is not None and shape[0] is not None and shape[0] != rows):
        raise ValueError(
            f"expected the model to return one row per input row, {rows} rows for this "
            f"batch, got shape {_shape(shape)}"
        )


def check_scores_shape(
    shape: Iterable[int | None] | None, rows: int | None, *, floating: bool = True,
    dtype: object = None, output_type: str = "something else",
) -> None:
    """What ``objective(output, target)`` must return: floating scores, ``(rows,)`` or
    ``(rows, 1)``."""
    if shape is None:
        raise TypeError(
            "expected objective(output, target) to return a tensor of one score per row, got "
            f"{output_type}"
        )
    shape = tuple(None if s is None else int(s) for s in shape)
    wanted = (rows,) if rows is not None else None
    fits = len(shape) in (1, 2) and (len(shape) == 1 or shape[1] == 1)
    if fits and wanted is not None and shape[0] is not None:
        fits = shape[0] == rows
    if not fits:
        expected = _shape(wanted) if wanted is not None else "(k,)"
        raise ValueError(
            f"expected objective(output, target) to return one score per row, shape "
            f"{expected}, got shape {_shape(shape)}"
        )
    if not floating:
        raise TypeError(
            f"expected objective(output, target) to return floating-point scores, got dtype "
            f"{dtype}"
        )


# --------------------------------------------------------------------------- dtypes, devices


def carrier_dtype(model_dtype: str) -> np.dtype:
    """The numpy dtype a model's inputs and maps are exchanged in (the half-precision policy).

    float64 models: float64. Every other floating model (float32, float16, bfloat16):
    float32; half-precision inputs are cast inside the framework, and maps come back in
    float32, since numpy has no bfloat16 and float16 sums lose too much.
    """
    return np.dtype(np.float64 if str(model_dtype) == "float64" else np.float32)


_DEVICE = re.compile(r"^(?:/?(?:device:)?)?(?P<kind>[a-z]+)(?::(?P<index>\d+))?$")

#: Names accepted for a kind of device, in every backend.
DEVICE_KINDS = {"cpu": "cpu", "cuda": "gpu", "gpu": "gpu", "mps": "mps", "tpu": "tpu"}


def parse_device(device: object) -> tuple[str, int | None]:
    """``(kind, index)`` of a device name: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"gpu"``,
    ``"/GPU:0"``, ``"mps"``, ``"tpu"``; ``kind`` is one of cpu, gpu, mps, tpu."""
    if not isinstance(device, str):
        raise TypeError(
            f"expected device to be a str such as 'cpu' or 'cuda:0', got {type(device).__name__}"
        )
    match = _DEVICE.match(device.strip().lower())
    kind = DEVICE_KINDS.get(match.group("kind")) if match else None
    if match is None or kind is None:
        raise ValueError(
            f"expected a device such as 'cpu', 'cuda', 'cuda:1', 'gpu' or 'mps', got {device!r}"
        )
    index = match.group("index")
    return kind, None if index is None else int(index)


def device_unavailable(device: object, available: Iterable[str]) -> ValueError:
    """The error for a device this machine does not have."""
    listed = ", ".join(available) or "none"
    return ValueError(
        f"expected a device this machine has, got {device!r}; available: {listed}"
    )


# --------------------------------------------------------------------------- layers


def find_named(name: object, named: Mapping[str, T], *, what: str = "layer") -> T:
    """``named[name]``, or a ValueError listing close matches (or the first names)."""
    if not isinstance(name, str):
        raise TypeError(f"expected a {what} name (str), got {type(name).__name__}")
    if name in named:
        return named[name]
    names = [key for key in named if key]
    close = difflib.get_close_matches(name, names, n=5)
    if close:
        hint = "close matches: " + ", ".join(repr(key) for key in close)
    elif names:
        shown = ", ".join(repr(key) for key in names[:10])
        more = f", ... ({len(names)} in all)" if len(names) > 10 else ""
        hint = f"no close match; the {what}s are {shown}{more}"
    else:
        hint = f"the model has no {what}s"
    raise ValueError(f"no {what} named {name!r}; {hint}")


def select_layers(layers: object, available: list[str]) -> list[str]:
    """The layer names a weight copy transforms: all of ``available`` for None, else the
    given names (a str or a list), each checked against ``available``, in model order."""
    if layers is None:
        return list(available)
    names = [layers] if isinstance(layers, str) else list(layers)  # type: ignore[call-overload]
    lookup = {name: name for name in available}
    chosen = {find_named(name, lookup, what="layer with weights") for name in names}
    return [name for name in available if name in chosen]


# --------------------------------------------------------------------------- rules


def check_relu_rule(rule: object) -> str | None:
    """``rule`` if it is None or one of :data:`RELU_RULES`; TypeError/ValueError otherwise."""
    if rule is not None and not isinstance(rule, str):
        raise TypeError(
            f"expected relu_rule to be None, 'guided' or 'deconvnet', got {type(rule).__name__}"
        )
    if rule is not None and rule not in RELU_RULES:
        raise ValueError(
            f"expected relu_rule to be one of None, 'guided', 'deconvnet', got {rule!r}"
        )
    return rule


def no_relu_message(rule: str, recognised: str) -> str:
    """The error for a rule whose forward pass met no ReLU; ``recognised`` lists the kinds."""
    return (
        f"relu_rule={rule!r} met no ReLU in the model's forward pass, so the map would be the "
        f"plain gradient; the rule recognises {recognised}"
    )


# --------------------------------------------------------------------------- weight copies

#: ``transform(weight, rng) -> new weight``: numpy in, numpy of the same shape out.
WeightTransform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def layer_generator(seed: int | None, layer: str) -> np.random.Generator:
    """The random generator of one layer of a weight copy.

    Each layer's stream depends on the seed and the layer's name only, so the weights a
    layer gets do not change with which other layers are transformed (a cascading
    randomisation re-draws nothing it already drew).
    """
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"expected seed to be None or an int, got {type(seed).__name__}")
    key = zlib.crc32(layer.encode("utf-8"))
    entropy = None if seed is None else int(seed)
    return np.random.default_rng(np.random.SeedSequence(entropy, spawn_key=(key,)))


def reinitialise(weight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A fresh draw for a weight: Gaussian with mean 0 and the weight's own standard deviation.

    The randomisation test of Adebayo et al. (2018) re-initialises a layer's weights; a
    Gaussian of the weight's own scale does so in every framework alike (a weight whose
    values are all equal, such as a zero-initialised bias, stays as it was).
    """
    scale = float(np.std(weight))
    if scale == 0:
        return np.array(weight, copy=True)
    return rng.normal(0.0, scale, size=weight.shape).astype(weight.dtype)


def multiplicative_noise(sigma: float) -> WeightTransform:
    """The transform ``w * N(1, sigma**2)`` element by element (NoiseGrad, Bykov et al. 2022)."""
    if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real):
        raise TypeError(f"expected sigma to be a number, got {type(sigma).__name__}")
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"expected sigma to be finite and non-negative, got {sigma}")

    def noisy(weight: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        factor = rng.normal(1.0, float(sigma), size=weight.shape)
        return (weight * factor).astype(weight.dtype)

    noisy.__name__ = f"multiplicative_noise({sigma})"
    return noisy


def apply_transform(
    transform: WeightTransform, weight: np.ndarray, rng: np.random.Generator, where: str
) -> np.ndarray:
    """``transform(weight, rng)``, checked: a finite numpy array of the weight's shape."""
    result = transform(weight, rng)
    if not isinstance(result, np.ndarray):
        raise TypeError(
            f"expected transform to return a numpy array for {where}, got {type(result).__name__}"
        )
    if result.shape != weight.shape:
        raise ValueError(
            f"expected transform to keep the shape {_shape(weight.shape)} of {where}, got "
            f"shape {_shape(result.shape)}"
        )
    if result.dtype.kind not in "fc" and weight.dtype.kind == "f":
        result = result.astype(weight.dtype)
    if not np.isfinite(result).all():
        raise ValueError(f"expected transform to return finite values for {where}, got NaN or inf")
    return result
