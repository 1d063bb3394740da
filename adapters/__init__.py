"""Adapters turn a model of one framework into the callbacks the core calls.

``adapters.torch``, ``adapters.tensorflow`` and ``adapters.jax`` each import their own
framework when imported; this package imports none, so ``import adapters`` is free::

    from adapters import torch as torch_adapter      # imports torch here, not before
    fn = torch_adapter.gradient_fn(model)

Every adapter offers ``gradient_fn(model, ...)`` (a :class:`saliency_core.types.GradientFn`)
and ``predict_fn(model, ...)``.
"""

__all__: list[str] = []
