"""The ReLU rules every adapter's ``gradient_fn(..., relu_rule=...)`` accepts (numpy only).

At a ReLU with input ``z`` and upstream gradient ``g``:

- ``None``: the gradient, ``g * (z > 0)``;
- ``"guided"``: guided backpropagation (Springenberg et al. 2014), ``g * (z > 0) * (g > 0)``;
- ``"deconvnet"``: the deconvnet (Zeiler and Fergus 2014), ``max(g, 0)``.

A rule changes only the backward pass. A rule whose forward pass meets no ReLU the adapter
can reach is an error in every adapter: the map would silently be the plain gradient.
"""

from __future__ import annotations

__all__ = ["RELU_RULES", "check_relu_rule", "no_relu_message"]

#: The ReLU rules, besides None (the plain gradient).
RELU_RULES = ("guided", "deconvnet")


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
