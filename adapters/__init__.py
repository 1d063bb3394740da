"""Adapters turn a model of one framework into the callbacks the core calls.

``adapters.torch``, ``adapters.tensorflow`` and ``adapters.jax`` each import their own
framework when imported; this package imports none, so ``import adapters`` is free::

    from adapters import torch as torch_adapter      # imports torch here, not before
    fn = torch_adapter.gradient_fn(model)

Where things live:

- the bridges: ``torch.py``, ``tensorflow.py``, ``jax.py`` (one backend each), and
  ``_backend.py``, the rules they share (numpy only);
- ``models.py``: :class:`adapters.models.Model`, one channels-last view of a model of any
  framework;
- ``cli/``: the ``saliency`` command; ``demo/``: the shipped digits model.

Every backend module offers the same names, with the same keywords and meanings:

``NAME``, ``CHANNEL_AXIS``
    the framework's name, and the axis where its image models take channels (1 for
    PyTorch's NCHW, -1 for NHWC in TensorFlow and JAX).
``owns(model) -> bool``
    whether a model object belongs to this framework (only looked at when the framework
    is already imported).
``gradient_fn(model, *, objective=None, device=None, dtype=None, relu_rule=None)``
    a :class:`saliency_core.types.GradientFn`.
``predict_fn(model, *, device=None, dtype=None)``
    a :class:`saliency_core.types.PredictFn`.
``layer_fn(model, layer, *, objective=None, device=None, dtype=None)``
    a :class:`saliency_core.types.LayerFn` for Grad-CAM.
``weight_layers(model)`` and ``copy_with_weights(model, transform, *, layers=None, seed=None)``
    the weight-copy hook: the names of the layers that hold weights, input to output, and
    a copy of the model whose chosen layers' weights are replaced by
    ``transform(weight, rng)`` (the original is untouched); used by the model
    randomisation test and by NoiseGrad.
``embedding_fn(model, embedding, *, objective=None, device=None, dtype=None)``
    a text model through its embedding layer: ``(embed, gradient, predict)``, ids
    ``(N, T)`` to embeddings ``(N, T, D)`` and the gradient and prediction callbacks over
    embeddings (a PyTorch module or its dotted name, with ``inputs_embeds=True`` for models
    that take it; a Keras layer name; for JAX an ``(embed_fn, head_fn)`` pair).
``input_spec(model) -> (channels, (H, W))``
    the image shape a model declares, each None where it does not tell: a Keras
    model's input shape; a torch.export module's example input, else the input
    channels of a PyTorch model's first Conv2d; never for JAX.
``RELU_RULES``, ``Objective``
    the ReLU rules and the type of an objective.

Every callback is an :class:`adapters._backend.Callback` with a ``trace_count``. For JAX,
``model`` is ``apply_fn`` with ``params=``, or an ``(apply_fn, params)`` pair, and a layer
is a ``(features_fn, head_fn)`` pair.
"""

__all__: list[str] = []
