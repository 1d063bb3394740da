"""Invariants every public method keeps, driven by one registry of the methods.

Each entry names a method, the options it runs with and the kind of callback it takes; the
tests below hold every entry to the same promises: bad input is refused before any
callback call, the float dtype and the shape of ``x`` are kept, ``x`` and ``target`` are
not modified, and the result does not depend on ``batch_size``. A last test checks that
the registry covers every public method of ``saliency_core``, so a new one cannot be left
out.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import saliency_core
from saliency_core import (
    AGGREGATES,
    DEFAULT_NOISE,
    NOISE_SCHEMES,
    black_white_integrated_gradients,
    blur_integrated_gradients,
    expected_gradients,
    fusion_grad,
    grad_cam,
    grad_cam_plus_plus,
    gradient_x_input,
    guided_grad_cam,
    guided_integrated_gradients,
    integrated_gradients,
    layer_cam,
    noise_grad,
    occlusion,
    rise,
    score_cam,
    smoothgrad,
    vanilla_gradient,
    xrai,
)


@dataclasses.dataclass(frozen=True)
class Method:
    name: str
    function: Callable[..., np.ndarray]
    kwargs: dict[str, Any]
    #: "gradient": fn(x, target) -> like x; "layer": layer_fn(x, target) -> (A, G);
    #: "guided": a gradient callback and layer_fn=; "predict": predict_fn(x) -> (k, C);
    #: "scored-layer": a layer callback and predict_fn=; "copies": a factory of noisy
    #: copies' gradient callbacks, make_fn(seed_sequence) -> fn
    callback: str
    #: True for maps of the input's spatial shape only, (N, H, W)
    spatial: bool = False


REGISTRY = [
    *(Method(f"smoothgrad[{aggregate}]", smoothgrad,
             dict(n_samples=5, sigma=0.3, aggregate=aggregate, seed=0), "gradient")
      for aggregate in AGGREGATES),
    *(Method(f"smoothgrad[{aggregate},{noise}]", smoothgrad,
             dict(n_samples=5, sigma=0.3, aggregate=aggregate, noise=noise, seed=0), "gradient")
      for noise in NOISE_SCHEMES if noise != DEFAULT_NOISE
      for aggregate in ("mean", "variance")),
    Method("vanilla_gradient", vanilla_gradient, {}, "gradient"),
    Method("gradient_x_input", gradient_x_input, {}, "gradient"),
    Method("integrated_gradients", integrated_gradients, dict(steps=7, baseline=0.25),
           "gradient"),
    Method("grad_cam", grad_cam, {}, "layer"),
    Method("grad_cam_plus_plus", grad_cam_plus_plus, {}, "layer"),
    Method("guided_grad_cam", guided_grad_cam, {}, "guided"),
    Method("occlusion", occlusion, dict(window=(2, 2, 3), stride=(1, 1, 3)), "predict"),
    Method("blur_integrated_gradients", blur_integrated_gradients,
           dict(max_sigma=2.0, steps=6), "gradient"),
    Method("guided_integrated_gradients", guided_integrated_gradients,
           dict(steps=8, baseline=0.25), "gradient"),
    Method("expected_gradients", expected_gradients,
           dict(baselines=np.random.default_rng(3).uniform(-1, 1, size=(4, 4, 4, 3)),
                n_samples=6, stdev=0.1, seed=0), "gradient"),
    # a small segmentation size: the default 224 x 224 would take minutes here
    Method("xrai", xrai, dict(segmentation_size=(16, 16), min_size=10, min_pixel_diff=1),
           "gradient", spatial=True),
    Method("xrai[fast,segments]", xrai,
           dict(segments=[[np.arange(16).reshape(4, 4) % 3 == k for k in range(3)]] * 5,
                algorithm="fast", min_pixel_diff=1), "gradient", spatial=True),
    Method("black_white_integrated_gradients", black_white_integrated_gradients,
           dict(steps=7), "gradient"),
    Method("rise", rise, dict(n_masks=12, grid_size=2, seed=0), "predict", spatial=True),
    Method("layer_cam", layer_cam, {}, "layer"),
    Method("score_cam", score_cam, {}, "scored-layer", spatial=True),
    Method("noise_grad", noise_grad, dict(n_models=3, seed=0), "copies"),
    Method("fusion_grad", fusion_grad, dict(n_models=2, n_samples=3, sigma=0.3, seed=0),
           "copies"),
]

#: Public functions of saliency_core that are helpers, not methods ``method(fn, x, target)``.
HELPERS = {
    "embedding_sigma", "feature_sigma", "noise_sigma", "padding_ids", "resize_linear",
    "token_attributions",
}

N_INPUTS = 5
MIXING = np.random.default_rng(0).standard_normal((3, 4))  # input channels -> layer channels
CLASS_WEIGHTS = np.random.default_rng(1).standard_normal((4, 4, 3, 3))  # (H, W, C, classes)


class Counted:
    """A callback that records how many times it ran."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.calls = 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        return self.fn(*args)


def _scale(target: np.ndarray | None, ndim: int) -> np.ndarray | float:
    return 1.0 if target is None else (1.0 + target).reshape((-1,) + (1,) * (ndim - 1))


def gradient(x: np.ndarray, target: np.ndarray | None) -> np.ndarray:
    """A smooth, row-wise, target-dependent gradient in x's dtype."""
    return (np.cos(x) * _scale(target, x.ndim)).astype(x.dtype)


def layer(x: np.ndarray, target: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(k, 2, 2, 4) activations of 2x2-pooled inputs, channels last, with their gradients."""
    pooled = x.reshape(len(x), 2, 2, 2, 2, 3).mean(axis=(2, 4))
    activations = np.tanh(pooled @ MIXING) + 1.0
    gradients = np.sin(pooled @ MIXING + 0.5) * _scale(target, 4)
    return activations.astype(x.dtype), gradients.astype(x.dtype)


def predict(x: np.ndarray) -> np.ndarray:
    """Three class scores per row."""
    return np.einsum("khwc,hwcj->kj", np.sin(x), CLASS_WEIGHTS).astype(x.dtype)


def counted_callbacks(method: Method) -> tuple[list[Counted], dict[str, Any]]:
    """Counting callbacks of the method's kind: all of them, and the ones passed by name."""
    if method.callback == "gradient":
        return [Counted(gradient)], {}
    if method.callback == "layer":
        return [Counted(layer)], {}
    if method.callback == "guided":
        guided, layer_fn = Counted(gradient), Counted(layer)
        return [guided, layer_fn], {"layer_fn": layer_fn}
    if method.callback == "scored-layer":
        layer_fn, predict_fn = Counted(layer), Counted(predict)
        return [layer_fn, predict_fn], {"predict_fn": predict_fn}
    if method.callback == "copies":
        return [Counted(noisy_copy)], {}
    return [Counted(predict)], {}


def noisy_copy(seed_sequence: np.random.SeedSequence) -> Callable[..., np.ndarray]:
    """A factory of noisy copies: the gradient scaled by the copy's own N(1, 0.1) draw."""
    scale = np.random.default_rng(seed_sequence).normal(1.0, 0.1)
    return lambda x, target: (gradient(x, target) * scale).astype(x.dtype)


def run(method: Method, x: Any, target: Any = None, **options: Any) -> tuple[Any, list[Counted]]:
    """Call ``method`` with counting callbacks of its kind; return the result and them."""
    callbacks, named = counted_callbacks(method)
    result = method.function(callbacks[0], x, target, **method.kwargs, **named, **options)
    return result, callbacks


def inputs(dtype: type = np.float64) -> np.ndarray:
    return np.random.default_rng(2).uniform(-1, 1, size=(N_INPUTS, 4, 4, 3)).astype(dtype)


TARGETS = np.array([0, 2, 1, 1, 0])

ids = [method.name for method in REGISTRY]


# (id, x, target, options, error, message)
BAD_INPUTS = [
    ("NaN in x", inputs() * np.where(np.arange(3) == 1, np.nan, 1.0), None, {}, ValueError,
     r"x: expected finite values"),
    ("an empty axis", np.zeros((N_INPUTS, 0, 4, 3)), None, {}, ValueError,
     r"x: expected inputs with at least one element .* got shape \(5, 0, 4, 3\)"),
    ("no batch axis", np.zeros(3), None, {}, ValueError, r"x: expected a batch"),
    ("a 0-d x", np.float64(1.0), None, {}, ValueError, r"x: expected a batch"),
    ("a bool x", np.ones((N_INPUTS, 4, 4, 3), dtype=bool), None, {}, TypeError,
     r"x: expected a real numeric array .* got dtype bool"),
    ("a ragged list", [[1.0, 2.0], [3.0]], None, {}, ValueError, r"x: .* got a ragged list"),
    ("a masked x", np.ma.masked_array(inputs(), mask=inputs() > 0.5), None, {}, TypeError,
     r"x: expected a plain numpy array, got a masked array"),
    ("target 2**70", inputs(), 2**70, {}, ValueError, r"target: .*fits in int64"),
    ("uint64 target beyond int64", inputs(), np.full(N_INPUTS, 2**63, dtype=np.uint64), {},
     ValueError, r"target: .*fit in int64"),
    ("whole float targets", inputs(), TARGETS.astype(float), {}, TypeError,
     r"target: .*whole numbers of dtype float64"),
    ("object targets", inputs(), TARGETS.astype(object), {}, TypeError,
     r"target: .*got dtype object"),
    ("targets of the wrong length", inputs(), TARGETS[:3], {}, ValueError,
     r"target: expected one index per input, shape \(5,\)"),
    ("batch_size 0", inputs(), None, {"batch_size": 0}, ValueError,
     r"batch_size: expected a positive integer, got 0"),
    ("batch_size 2.0", inputs(), None, {"batch_size": 2.0}, TypeError,
     r"batch_size: expected a positive integer, got 2.0"),
    ("batch_size True", inputs(), None, {"batch_size": True}, TypeError,
     r"batch_size: expected a positive integer, got True"),
]


@pytest.mark.parametrize("method", REGISTRY, ids=ids)
def test_bad_input_is_refused_before_any_callback_call(method):
    # one test per method over all cases keeps the suite fast; a failure names its case
    for case, x, target, options, error, message in BAD_INPUTS:
        callbacks, named = counted_callbacks(method)
        try:
            with pytest.raises(error, match=message):
                method.function(callbacks[0], x, target, **method.kwargs, **named, **options)
        except (Exception, pytest.fail.Exception) as failure:
            raise AssertionError(f"{method.name}, {case}: {failure}") from failure
        assert [c.calls for c in callbacks] == [0] * len(callbacks), case


@pytest.mark.parametrize("method", REGISTRY, ids=ids)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtype_is_kept(method, dtype):
    result, callbacks = run(method, inputs(dtype), TARGETS)
    assert result.dtype == dtype
    assert all(c.calls > 0 for c in callbacks)


@pytest.mark.parametrize("method", REGISTRY, ids=ids)
def test_shape_is_kept(method):
    x = inputs()
    result, _ = run(method, x, TARGETS)
    # class activation maps drop the channel axis; every other method returns x's shape
    expected = x.shape[:-1] if method.callback == "layer" or method.spatial else x.shape
    assert result.shape == expected
    assert np.isfinite(result).all() and np.abs(result).max() > 0


@pytest.mark.parametrize("method", REGISTRY, ids=ids)
def test_inputs_are_not_modified(method):
    x, target = inputs(), TARGETS.copy()
    x_before, target_before = x.copy(), target.copy()
    run(method, x, target)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(target, target_before)
    # read-only inputs work too: nothing is written into them
    x.flags.writeable = False
    target.flags.writeable = False
    run(method, x, target)


@pytest.mark.parametrize("method", REGISTRY, ids=ids)
def test_result_does_not_depend_on_batch_size(method):
    x = inputs()
    results = [run(method, x, TARGETS, batch_size=batch_size)[0] for batch_size in (1, 3, 64)]
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=1e-12, atol=1e-14)


def test_the_registry_covers_every_public_method():
    public = {name for name in saliency_core.__all__
              if inspect.isfunction(getattr(saliency_core, name))}
    assert HELPERS <= public, "a helper listed here is no longer public"
    assert {method.function.__name__ for method in REGISTRY} == public - HELPERS, (
        "add the new method to REGISTRY (or to HELPERS if it is not a method)"
    )
    smoothgrad_aggregates = {method.kwargs["aggregate"] for method in REGISTRY
                             if method.function is smoothgrad}
    assert smoothgrad_aggregates == set(AGGREGATES)


@pytest.mark.parametrize("method", REGISTRY, ids=ids)
def test_every_method_has_the_house_signature(method):
    # method(fn, x, target=None, *, options): data positional, options keyword-only
    parameters = list(inspect.signature(method.function).parameters.values())
    assert [p.kind for p in parameters[:3]] == [inspect.Parameter.POSITIONAL_OR_KEYWORD] * 3
    assert parameters[1].name == "x" and parameters[2].name == "target"
    assert parameters[2].default is None
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters[3:])
    assert "batch_size" in {p.name for p in parameters}
