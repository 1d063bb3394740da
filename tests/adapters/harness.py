"""What every ``harness_<framework>.py`` offers, so one test suite runs over all three.

The shared tests (``test_contract.py``, ``test_agreement.py``) are parametrised over
``tests.conftest.FRAMEWORKS`` and reach a framework only through its harness module::

    h = load_harness("torch")          # imports torch, or skips (fails in CI)
    model = h.reference_model(weights)  # the network of tests/adapters/reference.py
    fn = h.gradient_fn(model, objective=None)   # adapters.<framework>.gradient_fn(...)
    g = h.from_native(fn(h.to_native(x_nhwc), target))

A harness module defines:

``adapter``
    the adapter module (``adapters.torch``, ``adapters.tensorflow``, ``adapters.jax``).
``reference_model(weights, *, dtype="float32")``
    the reference network built from the numpy weights, as a *model handle*: a
    ``torch.nn.Module`` (NCHW input), a Keras model (NHWC), or for JAX an
    ``(apply_fn, params)`` pair (NHWC). ``dtype`` may be "float32", "float16", "bfloat16".
``linear_model(w)``
    handle of the model ``x @ w`` for ``x`` of shape (k, D) and ``w`` (D, C), float32.
``scalar_model(v)``
    handle of the model ``x @ v`` for ``v`` of shape (D,), giving one score per row (k,).
``gradient_fn(handle, **options)`` / ``predict_fn(handle, **options)``
    the adapter's callbacks for a handle (for JAX: ``apply_fn`` with ``params=``).
``square_sum_objective()``
    a framework-native ``objective(output, target) -> (k,)`` computing
    ``sum(output ** 2, axis=1)`` (target ignored).
``to_native(x_nhwc)`` / ``from_native(array)``
    numpy layout conversion of image batches for the reference model (identity except
    PyTorch, NHWC <-> NCHW).
``snapshot(handle)``
    a dict of numpy arrays and flags (weights, train/eval mode, ``.grad`` presence,
    ``requires_grad`` ...) that must be equal before and after any adapter call.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from tests.conftest import require

_FRAMEWORK_MODULE = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}


def load_harness(framework: str) -> ModuleType:
    """Import ``tests.adapters.harness_<framework>`` after checking the framework exists."""
    require(_FRAMEWORK_MODULE[framework])
    return importlib.import_module(f"tests.adapters.harness_{framework}")
