"""Metrics that measure a saliency map, in numpy, over the same callbacks as the methods.

``from saliency_core import metrics``. Every metric takes the callbacks it needs
(``predict_fn(x) -> outputs``, or an attribution callback ``explain_fn(x, target) -> maps``
for the metrics that re-explain perturbed inputs, such as
``functools.partial(smoothgrad, grad_fn, n_samples=20, seed=0)``), the batch ``x``, the maps,
the targets and keyword-only options, and returns one value (or one curve) per input. Model
calls are batched in chunks of ``batch_size`` rows across inputs and steps; memory does not
grow with the number of steps or samples; randomness comes from ``seed``. Where a definition
coincides with Quantus 0.6's, the numbers are Quantus's (the test suite checks them against
Quantus itself); where ours differs on purpose, the function's docstring says how.

- complexity (:mod:`~saliency_core.metrics.complexity`): :func:`sparseness`, :func:`complexity`;
- localisation (:mod:`~saliency_core.metrics.localisation`): :func:`pointing_game`,
  :func:`relevance_mass_accuracy`, :func:`relevance_rank_accuracy`, :func:`top_k_intersection`,
  :func:`bounding_box`, :func:`box_iou`;
- faithfulness (:mod:`~saliency_core.metrics.faithfulness`): :func:`deletion`,
  :func:`insertion`, :func:`faithfulness_correlation`, :func:`infidelity`;
- robustness (:mod:`~saliency_core.metrics.robustness`): :func:`avg_sensitivity`,
  :func:`max_sensitivity`, :func:`local_lipschitz`, :func:`stability`;
- randomisation (:mod:`~saliency_core.metrics.randomisation`): :func:`model_randomisation`,
  :func:`random_logit`;
- similarity of maps (:mod:`~saliency_core.metrics.similarity`): :func:`spearman`,
  :func:`pearson`, :func:`ssim`.

Examples:
    >>> import numpy as np
    >>> from saliency_core import metrics
    >>> one_hot = np.zeros((1, 4, 4)); one_hot[0, 1, 2] = 1.0
    >>> float(metrics.sparseness(one_hot)[0])  # 1 - 1/F for F = 16 elements
    0.9375
"""

from .complexity import complexity, sparseness
from .faithfulness import Curve, deletion, faithfulness_correlation, infidelity, insertion
from .localisation import (
    bounding_box,
    box_iou,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    top_k_intersection,
)
from .randomisation import (
    ExplainFactory,
    ModelRandomisationResult,
    model_randomisation,
    random_logit,
)
from .robustness import avg_sensitivity, local_lipschitz, max_sensitivity, stability
from .similarity import SIMILARITIES, pearson, spearman, ssim

__all__ = [
    "SIMILARITIES",
    "Curve",
    "ExplainFactory",
    "ModelRandomisationResult",
    "avg_sensitivity",
    "bounding_box",
    "box_iou",
    "complexity",
    "deletion",
    "faithfulness_correlation",
    "infidelity",
    "insertion",
    "local_lipschitz",
    "max_sensitivity",
    "model_randomisation",
    "pearson",
    "pointing_game",
    "random_logit",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "sparseness",
    "spearman",
    "ssim",
    "stability",
    "top_k_intersection",
]
