"""Tokens coloured by their attribution: a PNG with Pillow, and HTML for notebooks.

A text model's map has one value per token (:func:`saliency_core.tokens.token_attributions`),
and it reads best on the text itself: each token on a background whose colour says the
sign and whose depth says the size (white for 0). Signed maps take a diverging colour map
(the paper's ``"blue_grey_red"`` by default: blue pulls the target score down, red pushes
it up); a sequential one (``"viridis"``) shows ``|map|``. :func:`text_image` draws the
tokens with line wrapping and a colour bar; :func:`text_html` writes the same colours as
HTML (the tokens escaped), shown by notebooks as it is (:class:`TokenHTML` has
``_repr_html_``). Several texts share one colour scale, so they can be compared.
"""

from __future__ import annotations

import html
import numbers
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image, ImageDraw, ImageFont

from visualize._checks import as_real_array
from visualize.charts import _label, _shorten
from visualize.colormaps import apply_colormap, colormap_range
from visualize.series import scale_attribution

__all__ = ["TokenHTML", "text_html", "text_image", "token_colours"]

_MARGIN = 8
_GAP = 4
_PAD = 3


class TokenHTML(str):
    """An HTML string that notebooks render as HTML (``_repr_html_``) and print as text.

    Examples:
        >>> page = TokenHTML("<b>bold</b>")
        >>> page._repr_html_() == page, isinstance(page, str)
        (True, True)
    """

    __slots__ = ()

    def _repr_html_(self) -> str:
        return str(self)


def _check_texts(tokens: object, attribution: object) -> tuple[list[list[str]], list[np.ndarray]]:
    """One text or several as lists of tokens, with each text's values (its length)."""
    if isinstance(tokens, str) or not isinstance(tokens, Sequence) or not tokens:
        raise TypeError(
            "tokens: expected a non-empty sequence of token strings (one text) or of such "
            f"sequences (several texts), got {type(tokens).__name__}"
            + (" (split the text into tokens first)" if isinstance(tokens, str) else "")
        )
    several = not isinstance(tokens[0], str)
    texts = [list(text) for text in tokens] if several else [list(tokens)]
    for index, text in enumerate(texts):
        if not text or not all(isinstance(token, str) for token in text):
            where = f"text {index}" if several else "tokens"
            raise TypeError(f"{where}: expected a non-empty sequence of strings, got "
                            f"{[type(t).__name__ for t in text][:5] or 'nothing'}")
    if several and isinstance(attribution, Sequence | np.ndarray) and not (
            isinstance(attribution, np.ndarray) and attribution.ndim == 2):
        rows = list(attribution)
    else:
        rows = None
    if rows is None:
        values = as_real_array(attribution, name="attribution").astype(np.float64)
        if not several:
            if values.shape != (len(texts[0]),):
                raise ValueError(
                    f"attribution: expected one value per token, shape ({len(texts[0])},), "
                    f"got shape {values.shape}"
                )
            return texts, [values]
        longest = max(len(text) for text in texts)
        if values.ndim != 2 or values.shape[0] != len(texts) or values.shape[1] < longest:
            raise ValueError(
                f"attribution: expected one row per text with at least {longest} values "
                f"(the longest text), shape ({len(texts)}, >= {longest}), got shape "
                f"{values.shape}"
            )
        return texts, [values[i, :len(text)] for i, text in enumerate(texts)]
    if len(rows) != len(texts):
        raise ValueError(f"attribution: expected {len(texts)} rows (one per text), got "
                         f"{len(rows)}")
    checked = []
    for index, (text, row) in enumerate(zip(texts, rows, strict=True)):
        values = as_real_array(row, name=f"attribution[{index}]").astype(np.float64)
        if values.shape != (len(text),):
            raise ValueError(
                f"attribution[{index}]: expected one value per token of text {index}, shape "
                f"({len(text)},), got shape {values.shape}"
            )
        checked.append(values)
    return texts, checked


def token_colours(
    attribution: ArrayLike, *, cmap: str = "blue_grey_red", clip_percentile: float = 100.0
) -> tuple[np.ndarray, float]:
    """The background colour of each token: the colour map's colour, blended with white.

    With ``(scaled, cap) = scale_attribution(map)`` (values in ``[-1, 1]`` for a diverging
    colour map, ``[0, 1]`` of ``|map|`` for a sequential one), a token's colour is
    ``255 - |scaled| * (255 - cmap(scaled))``: white where the map is 0, the colour map's
    own colour where ``|map|`` reaches the cap.

    Args:
        attribution: the map, any shape (one value per token).
        cmap: a colour map name :func:`~visualize.apply_colormap` takes.
        clip_percentile: the percentile of ``|map|`` that reaches the end of the colour map.

    Returns:
        ``(colours, cap)``: uint8 ``(*shape, 3)`` and the cap in the map's units.

    Examples:
        >>> colours, cap = token_colours([1.0, -0.5, 0.0])
        >>> colours.tolist(), cap
        ([[255, 0, 0], [160, 160, 223], [255, 255, 255]], 1.0)
    """
    if not isinstance(cmap, str):
        raise TypeError(f"cmap: expected a colour map name, got {type(cmap).__name__}")
    scaled, cap = scale_attribution(attribution, cmap=cmap, clip_percentile=clip_percentile)
    base = apply_colormap(scaled.ravel(), cmap=cmap).reshape(*scaled.shape, 3)
    strength = np.abs(scaled)[..., None]
    blended = 255.0 - strength * (255.0 - base.astype(np.float64))
    return np.clip(np.round(blended), 0, 255).astype(np.uint8), cap


def _ink(colour: np.ndarray) -> tuple[int, int, int]:
    """Black text on light backgrounds, white on dark ones (by perceived luminance)."""
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    return (0, 0, 0) if luminance >= 140 else (255, 255, 255)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def _check_int(value: object, *, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected an integer of at least {minimum}, got {value!r}")
    return int(value)


def _check_labels(labels: object, n_texts: int) -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise TypeError(f"labels: expected a sequence of {n_texts} strings, got "
                        f"{type(labels).__name__}")
    listed = list(labels)
    if len(listed) != n_texts or not all(isinstance(label, str) for label in listed):
        raise ValueError(f"labels: expected {n_texts} strings (one per text), got {listed!r}")
    return listed


def text_image(
    tokens: Sequence[str] | Sequence[Sequence[str]],
    attribution: ArrayLike | Sequence[ArrayLike],
    *,
    cmap: str = "blue_grey_red",
    clip_percentile: float = 100.0,
    labels: Sequence[str] | None = None,
    title: str = "",
    width: int = 640,
    font_size: int = 14,
    colorbar: bool = True,
) -> Image.Image:
    """Draw tokens on backgrounds coloured by their attribution, wrapping lines.

    Tokens are drawn left to right, each in a box of its colour (:func:`token_colours`),
    black or white ink by the box's brightness; a token that does not fit on the line
    starts the next one (a token wider than a line is shortened with ``...``). Several
    texts are drawn one below the other on one colour scale.

    Args:
        tokens: one text's tokens (strings), or several texts' (a sequence of such).
        attribution: one value per token: ``(T,)`` for one text; for several, one 1-D
            array per text, or a 2-D array ``(N, T_max)`` of which row ``i``'s first
            ``len(tokens[i])`` values are used (padding left out).
        cmap: a diverging colour map for signed maps (default ``"blue_grey_red"``) or a
            sequential one for ``|map|``.
        clip_percentile: the percentile of ``|map|`` over every shown token that reaches
            the end of the colour map (100: the largest).
        labels: one line drawn above each text (its label and prediction, say).
        title: drawn at the top.
        width: the picture's width in pixels, at least 160; the height follows.
        font_size: the text's size in pixels, at least 6.
        colorbar: draw a colour bar at the bottom, labelled with the cap, 0 and -cap.

    Returns:
        An RGB ``PIL.Image.Image`` on white.

    Raises:
        TypeError, ValueError: tokens that are not strings (a plain string is refused:
            split it first), attributions of another length or with NaN, an unknown
            colour map, labels of the wrong number, sizes too small.

    Examples:
        >>> picture = text_image(["a", "fine", "film"], [0.1, 0.9, -0.3], title="grad x input")
        >>> picture.mode, picture.width
        ('RGB', 640)
    """
    texts, rows = _check_texts(tokens, attribution)
    shown_labels = _check_labels(labels, len(texts))
    width = _check_int(width, name="width", minimum=160)
    font_size = _check_int(font_size, name="font_size", minimum=6)
    if not isinstance(colorbar, bool | np.bool_):
        raise TypeError(f"colorbar: expected True or False, got {colorbar!r}")
    if not isinstance(title, str):
        raise TypeError(f"title: expected a string, got {type(title).__name__}")
    flat = np.concatenate(rows)
    colours, cap = token_colours(flat, cmap=cmap, clip_percentile=clip_percentile)
    low_colour, _ = colormap_range(cmap)
    font = _font(font_size)
    small = _font(max(font_size - 3, 6))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    box_height = font_size + 2 * _PAD
    line = box_height + _GAP
    usable = width - 2 * _MARGIN

    # layout: (x, y, text, colour index) of every box, in the picture's coordinates
    boxes: list[tuple[float, float, str, int]] = []
    captions: list[tuple[float, str]] = []
    y: float = _MARGIN + (font_size + 8 if title else 0)
    index = 0
    for number, text in enumerate(texts):
        if shown_labels is not None:
            captions.append((y, shown_labels[number]))
            y += font_size + 4
        x: float = _MARGIN
        for token in text:
            shown = _shorten(measure, token, font, usable - 2 * _PAD)
            box_width = measure.textlength(shown, font=font) + 2 * _PAD
            if x > _MARGIN and x + box_width > width - _MARGIN:
                x, y = _MARGIN, y + line
            boxes.append((x, y, shown, index))
            x += box_width + _GAP
            index += 1
        y += line + (_GAP if number < len(texts) - 1 else 0)
    bar_top = y + 4
    height = int(bar_top + (box_height + 2 * font_size if colorbar else 0) + _MARGIN)

    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)
    if title:
        draw.text((_MARGIN, _MARGIN), title, fill="black", font=font)
    for caption_y, caption in captions:
        draw.text((_MARGIN, caption_y), _shorten(measure, caption, font, usable),
                  fill=(90, 90, 90), font=font)
    for x, top, shown, at in boxes:
        colour = colours[at]
        box_width = draw.textlength(shown, font=font) + 2 * _PAD
        draw.rectangle([x, top, x + box_width - 1, top + box_height - 1],
                       fill=tuple(int(c) for c in colour))
        draw.text((x + _PAD, top + _PAD), shown, fill=_ink(colour), font=font)
    if colorbar:
        bar_width = min(240, usable - 80)
        left = _MARGIN + 40
        positions = np.linspace(low_colour, 1.0, bar_width)
        strip, _ = token_colours(positions, cmap=cmap)
        for offset, colour in enumerate(strip):
            draw.line([left + offset, bar_top, left + offset, bar_top + box_height - 1],
                      fill=tuple(int(c) for c in colour))
        draw.rectangle([left - 1, bar_top - 1, left + bar_width, bar_top + box_height],
                       outline=(90, 90, 90))
        marks: list[tuple[float, str]] = [(left, _label(-cap if low_colour < 0 else 0.0)),
                                          (left + bar_width, _label(cap))]
        if low_colour < 0:
            marks.append((left + bar_width / 2, "0"))
        for position, mark in marks:
            size = draw.textlength(mark, font=small)
            draw.text((position - size / 2, bar_top + box_height + 2), mark, fill="black",
                      font=small)
    return picture


def text_html(
    tokens: Sequence[str] | Sequence[Sequence[str]],
    attribution: ArrayLike | Sequence[ArrayLike],
    *,
    cmap: str = "blue_grey_red",
    clip_percentile: float = 100.0,
    labels: Sequence[str] | None = None,
    title: str = "",
    colorbar: bool = True,
    digits: int = 3,
) -> TokenHTML:
    """The tokens as HTML spans on their attribution's colours, for notebooks and pages.

    The colours are :func:`token_colours`' (one scale over every text); each span's
    ``title`` (shown on hover) is the token's value with ``digits`` significant digits.
    Tokens, labels and the title are HTML-escaped, so a token such as ``<script>`` is
    shown, never run. The browser wraps the lines.

    Args:
        tokens, attribution, cmap, clip_percentile, labels, title, colorbar: as in
            :func:`text_image`.
        digits: significant digits of the values in the tooltips, at least 1.

    Returns:
        A :class:`TokenHTML` (a ``str``): ``display(...)`` or the last line of a notebook
        cell shows it as HTML.

    Examples:
        >>> page = text_html(["<b>", "good"], [0.0, 2.0])
        >>> "&lt;b&gt;" in page and "<b>" not in page
        True
        >>> 'background-color:rgb(255,0,0)' in page
        True
    """
    texts, rows = _check_texts(tokens, attribution)
    shown_labels = _check_labels(labels, len(texts))
    digits = _check_int(digits, name="digits", minimum=1)
    if not isinstance(colorbar, bool | np.bool_):
        raise TypeError(f"colorbar: expected True or False, got {colorbar!r}")
    if not isinstance(title, str):
        raise TypeError(f"title: expected a string, got {type(title).__name__}")
    flat = np.concatenate(rows)
    colours, cap = token_colours(flat, cmap=cmap, clip_percentile=clip_percentile)
    low_colour, _ = colormap_range(cmap)
    parts = ['<div class="saliency-text" style="font-family:sans-serif;line-height:1.9">']
    if title:
        parts.append(f'<div style="font-weight:bold">{html.escape(title)}</div>')
    index = 0
    for number, text in enumerate(texts):
        parts.append('<div style="margin:4px 0">')
        if shown_labels is not None:
            parts.append(f'<div style="color:#5a5a5a">{html.escape(shown_labels[number])}</div>')
        spans = []
        for token, value in zip(text, rows[number], strict=True):
            colour = colours[index]
            ink = "#000" if _ink(colour) == (0, 0, 0) else "#fff"
            red, green, blue = (int(c) for c in colour)
            spans.append(
                f'<span title="{float(value):.{digits}g}" style="background-color:'
                f'rgb({red},{green},{blue});color:{ink};padding:1px 3px;border-radius:3px">'
                f"{html.escape(token)}</span>"
            )
            index += 1
        parts.append(" ".join(spans))
        parts.append("</div>")
    if colorbar:
        stops, _ = token_colours(np.linspace(low_colour, 1.0, 9), cmap=cmap)
        gradient = ",".join(f"rgb({r},{g},{b})" for r, g, b in stops.tolist())
        low_text = _label(-cap if low_colour < 0 else 0.0)
        parts.append(
            '<div style="display:flex;align-items:center;gap:6px;font-size:80%">'
            f"<span>{low_text}</span>"
            f'<span style="display:inline-block;width:160px;height:10px;'
            f'background:linear-gradient(to right,{gradient});border:1px solid #5a5a5a">'
            f"</span><span>{_label(cap)}</span></div>"
        )
    parts.append("</div>")
    return TokenHTML("".join(parts))
