"""Heat-map post-processing and rendering for saliency maps from any framework.

This package sees only numpy arrays (anything ``np.asarray`` accepts), so it works on the
results of every adapter alike. It imports numpy and Pillow only; matplotlib, when
installed, is imported inside :func:`apply_colormap` for its extra colour maps.

Array functions (:mod:`visualize.maps`, :mod:`visualize.colormaps`,
:mod:`visualize.overlays`):

* :func:`select_sign`, :func:`grayscale`, :func:`diverging`, :func:`times_input`,
  :func:`difference_map`, :func:`discriminativity`
* :func:`apply_colormap`, :func:`colormap_range`
* :func:`overlay`, :func:`masked_image`, :func:`alpha_scaling`

Rendering with Pillow (:mod:`visualize.render`, :mod:`visualize.charts`): :func:`to_uint8`,
:func:`to_image`, :func:`grid`, :func:`save`, :func:`line_chart` (curves, for metrics).

Summary sheets (:mod:`visualize.sheet`): :func:`summary_sheet`, one labelled row of
pictures per input.

Beyond images: :func:`feature_bar_chart` (:mod:`visualize.tabular`, signed bars of
per-feature attributions) and :func:`series_chart` (:mod:`visualize.series`, a series with
its attribution as a colour band or a coloured line); :func:`text_image` and
:func:`text_html` (:mod:`visualize.text`, tokens coloured by attribution, a PNG and HTML for
notebooks).

Examples:
    >>> import numpy as np
    >>> import visualize
    >>> gradients = np.random.default_rng(0).normal(size=(2, 8, 8, 3))  # (N, H, W, C)
    >>> maps = visualize.grayscale(gradients)   # |g| summed over channels, capped at p99
    >>> maps.shape, float(maps.min()), float(maps.max())
    ((2, 8, 8), 0.0, 1.0)
    >>> figure = visualize.grid([list(maps), list(visualize.diverging(gradients))])
    >>> figure.size
    (28, 28)
"""

from visualize.charts import SERIES_COLOURS, line_chart
from visualize.colormaps import (
    BUILTIN_COLORMAPS,
    DIVERGING_COLORMAPS,
    apply_colormap,
    colormap_range,
)
from visualize.maps import (
    REDUCTIONS,
    SIGNS,
    difference_map,
    discriminativity,
    diverging,
    grayscale,
    select_sign,
    times_input,
)
from visualize.overlays import alpha_scaling, masked_image, overlay
from visualize.render import grid, save, to_image, to_uint8
from visualize.series import SERIES_MODES, scale_attribution, series_chart
from visualize.sheet import summary_sheet
from visualize.tabular import BAR_ORDERS, NEGATIVE_COLOUR, POSITIVE_COLOUR, feature_bar_chart
from visualize.text import TokenHTML, text_html, text_image, token_colours

__all__ = [
    "BAR_ORDERS",
    "BUILTIN_COLORMAPS",
    "DIVERGING_COLORMAPS",
    "NEGATIVE_COLOUR",
    "POSITIVE_COLOUR",
    "REDUCTIONS",
    "SERIES_COLOURS",
    "SERIES_MODES",
    "SIGNS",
    "TokenHTML",
    "alpha_scaling",
    "apply_colormap",
    "colormap_range",
    "difference_map",
    "discriminativity",
    "diverging",
    "feature_bar_chart",
    "grayscale",
    "grid",
    "line_chart",
    "masked_image",
    "overlay",
    "save",
    "scale_attribution",
    "select_sign",
    "series_chart",
    "summary_sheet",
    "text_html",
    "text_image",
    "times_input",
    "to_image",
    "to_uint8",
    "token_colours",
]
