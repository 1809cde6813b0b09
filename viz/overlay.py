"""The gradient overlay: an unfolded view coloured by ``log10 ‖∇‖`` (section 10.7).

``viz.unfolded(rec, steps=τ, gradients=g)`` fills each circle ``v(t)`` found in ``g`` with a
colour from dark (small gradient) to bright (large), thickens its outline in proportion, puts the
value in its tooltip, and adds a legend; vanishing and exploding gradients then show along the
time axis. ``g`` maps variables at steps to gradients (arrays, whose norm is taken, or norms).
Keys may be nodes of the unfolded graph (``u.at("h", 3)``), ``(name, step)`` pairs or labels
``"h(3)"``. ``gradient_norms`` computes such a mapping by back-propagation through time.

Drawings that are compared must share their colour scale: ``scale=(low, high)`` (in log10) fixes
it, ``shared_scale(g1, g2, …)`` computes the one that covers several mappings, and
``viz.side_by_side`` uses it for its panels. A norm of 0 takes the colour of the bottom of the
scale, an infinite norm (overflow) a red and NaN a grey, each named in the legend.
"""
from __future__ import annotations

import math
import re
from numbers import Real
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

import unfold as uf
from unfold.errors import UnfoldTypeError, UnfoldValueError
from unfold.graph import Node
from unfold.ops.base import unmasked
from unfold.recurrence import Unfolded

from . import labels as L
from .layout import Placement, shown_steps

#: a perceptual dark-to-bright colour ramp (viridis, 7 stops)
RAMP = ("#440154", "#443983", "#31688e", "#21918c", "#35b779", "#90d743", "#fde725")
PEN = (1.0, 4.0)          # outline width for the smallest and the largest gradient
INFINITE = "#d62728"      # an infinite norm: the gradient overflowed
NAN = "#9e9e9e"           # a NaN norm: no number at all
#: the width (points) of a legend cell, one tick under each: "-12.3" in 10 pt needs 34 (at 28
#: dot warned "cell size too small" on a scale reaching 10⁻¹⁰, as an RNN's does at τ = 50)
_CELL = 34


def _key(key: Any) -> tuple[str, int]:
    """``(name, step)`` of a gradient key: a node with a name and a step, a pair, or "h(3)"."""
    if isinstance(key, Node):
        if key.name is None or key.step is None:
            raise UnfoldValueError(f"gradient key {key.label!r} is not a named node of an "
                                   f"unfolded graph; use u.at(name, t)")
        return key.name, key.step
    if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str) and \
            isinstance(key[1], (int, np.integer)) and not isinstance(key[1], bool):
        return key[0], int(key[1])
    if isinstance(key, str):
        m = re.fullmatch(r"(.+)\((\d+)\)", key)
        if m:
            return m.group(1), int(m.group(2))
    raise UnfoldValueError(f"gradient key {key!r}: expected an unfolded node, a (name, step) "
                           f"pair or a label like 'h(3)'")


def _norm(key: Any, value: Any) -> float:
    if isinstance(value, Node):
        raise UnfoldTypeError(f"gradient for {key!r} is a node, not a value: evaluate it "
                              f"first (viz.gradient_norms does both)")
    value = unmasked(value, f"gradient for {key!r}")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise UnfoldTypeError(f"gradient for {key!r} must be an array or a number, got "
                              f"{type(value).__name__}") from None
    if array.ndim == 0:
        norm = float(array)
        if norm < 0:
            raise UnfoldValueError(f"gradient norm for {key!r} is negative ({norm}); give the "
                                   f"gradient array or its norm")
        return norm
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isnan(array).any():
            return math.nan
        if np.isinf(array).any():
            return math.inf
        return float(np.linalg.norm(np.ravel(array)))


def norms(gradients: Mapping[Any, Any]) -> dict[tuple[str, int], float]:
    """``(name, step) → ‖∇‖``: the Frobenius norm of each array (over the batch too)."""
    if not isinstance(gradients, Mapping):
        raise UnfoldTypeError(f"gradients must be a mapping (node, (name, step) or 'h(3)' → "
                              f"gradient), got {type(gradients).__name__}")
    return {_key(key): _norm(key, value) for key, value in gradients.items()}


def colour(fraction: float) -> str:
    """The colour of the ramp at ``fraction`` in [0, 1], linearly interpolated."""
    x = min(max(fraction, 0.0), 1.0) * (len(RAMP) - 1)
    i = min(int(x), len(RAMP) - 2)
    a, b = (tuple(int(c[k:k + 2], 16) for k in (1, 3, 5)) for c in RAMP[i:i + 2])
    mix = [round(p + (q - p) * (x - i)) for p, q in zip(a, b)]
    return "#" + "".join(f"{v:02x}" for v in mix)


def _finite_logs(values: Iterable[float]) -> list[float]:
    return [math.log10(v) for v in values if 0 < v < math.inf]


def shared_scale(*gradients: Mapping[Any, Any]) -> tuple[float, float] | None:
    """The colour scale (low, high), in log10, that covers every finite positive norm of the
    given mappings: one scale for drawings that are compared. None if there is no such norm."""
    logs = [x for g in gradients for x in _finite_logs(norms(g).values())]
    return (min(logs), max(logs)) if logs else None


def check_scale(scale: Any) -> tuple[float, float]:
    if not (isinstance(scale, (tuple, list)) and len(scale) == 2 and
            all(isinstance(v, Real) and math.isfinite(v) for v in scale) and
            scale[0] <= scale[1]):
        raise UnfoldValueError(f"scale must be (low, high) in log10 with low ≤ high, both "
                               f"finite, e.g. (-6, 0); got {scale!r}")
    return float(scale[0]), float(scale[1])


def _fraction(value: float, low: float, high: float) -> float:
    if value <= 0:
        return 0.0
    return 0.5 if high == low else (math.log10(value) - low) / (high - low)


def style(norm: float, low: float, high: float, title: str) -> dict[str, str]:
    """Attributes of one circle: fill colour and outline width by log10 ‖∇‖, and a tooltip."""
    if math.isnan(norm) or math.isinf(norm):
        what = "NaN" if math.isnan(norm) else "∞ (overflow)"
        return {"style": "filled", "fillcolor": NAN if math.isnan(norm) else INFINITE,
                "color": "#333333", "fontcolor": "white", "penwidth": f"{PEN[1]:.2f}",
                "tooltip": L.tooltip(f"‖∇{title}‖ = {what}")}
    f = _fraction(norm, low, high)
    shown = f"{norm:.3g}" if norm > 0 else "0"
    log = f"{math.log10(norm):.2f}" if norm > 0 else "−∞"
    beyond = "" if norm <= 0 or low <= math.log10(norm) <= high else " (beyond the scale)"
    return {"style": "filled", "fillcolor": colour(f), "color": "#333333",
            "fontcolor": "white" if f < 0.6 else "black",
            "penwidth": f"{PEN[0] + (PEN[1] - PEN[0]) * min(max(f, 0.0), 1.0):.2f}",
            "tooltip": L.tooltip(f"‖∇{title}‖ = {shown} (log10 = {log}){beyond}")}


def _ticks(low: float, high: float, stops: int) -> list[str]:
    """The legend's ``stops`` values from ``low`` to ``high``, written with one decimal, or
    with as few more (up to three) as tell them apart: a scale spanning 0.4 of a decade read
    0.0, 0.0, 0.1, 0.1, 0.1 with one."""
    values = [low + (high - low) * k / (stops - 1) for k in range(stops)]
    for digits in (1, 2, 3):
        shown = [f"{round(v, digits) + 0.0:.{digits}f}" for v in values]
        if len(set(shown)) == stops:
            return shown
    return [f"{round(v, 1) + 0.0:.1f}" for v in values]      # (one value: low == high)


def legend(low: float, high: float, stops: int = 5, special: Iterable[str] = (),
           title: str = "") -> str:
    """The legend, an HTML-like table: a colour bar from ``low`` to ``high`` (log10 ‖∇‖), what
    the outline's width means, the colours of the ``special`` values met (``0``, ``∞``,
    ``NaN``), and ``title``."""
    # (fixed-size cells in a table of their own: in one table with a title wider than the
    # bar, dot stretched the colour cells unevenly and the scale read as non-linear)
    cells = "".join(f'<TD BGCOLOR="{colour(k / (stops - 1))}" FIXEDSIZE="TRUE" WIDTH="{_CELL}" '
                    f'HEIGHT="14"></TD>' for k in range(stops))
    ticks = "".join(f'<TD FIXEDSIZE="TRUE" WIDTH="{_CELL}" HEIGHT="16"><FONT POINT-SIZE="10">'
                    f'{v}</FONT></TD>' for v in _ticks(low, high, stops))
    extra = ""
    swatches = {"0": colour(0.0), "∞": INFINITE, "NaN": NAN}
    for name in special:
        extra += (f'<TR><TD BGCOLOR="{swatches[name]}" FIXEDSIZE="TRUE" WIDTH="{_CELL}" '
                  f'HEIGHT="14"></TD><TD COLSPAN="{stops - 1}" ALIGN="LEFT"><FONT '
                  f'POINT-SIZE="10">'
                  f'{L.esc({"0": "‖∇‖ = 0", "∞": "‖∇‖ = ∞ (overflow)", "NaN": "NaN"}[name])}'
                  f"</FONT></TD></TR>")
    # (the outline's width says it again, for readers who cannot tell the colours apart)
    # (in the outer table: a row wider than the bar in its own table stretched its cells)
    outline = ('<TR><TD><FONT POINT-SIZE="10">dark, thin: small; bright, thick: large'
               "</FONT></TD></TR>")
    font = f'<FONT FACE="{L.FONT}" POINT-SIZE="12">'
    # the title on a row of its own (under the subscript of log₁₀ it touched the next line)
    note = f"<TR><TD>{font}{L.esc(title)}</FONT></TD></TR>" if title else ""
    return (f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1">'
            f"<TR><TD>{font}log<SUB>10</SUB> ‖∇‖</FONT></TD></TR>{note}"
            f'<TR><TD><TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1"><TR>{cells}</TR>'
            f"<TR>{ticks}</TR>{extra}</TABLE></TD></TR>{outline}</TABLE>>")


def overlay(drawer, placement: Placement, gradients: Mapping[Any, Any],
            scale: tuple[float, float] | None = None, *, boxes: bool = False,
            legend_here: bool = True, compared: Sequence[Mapping[Any, Any]] = ()) -> dict:
    """Draw ``placement`` with ``drawer`` (see ``views``), coloured by ``gradients`` on
    ``scale`` (by default that of the values given). ``compared``: the gradients of every
    panel drawn beside it, whose special values (0, ∞, NaN) the one legend also explains."""
    columns = placement.columns
    if not all(c.t is not None for c in columns if c.kind == "step"):
        raise UnfoldValueError("a gradient overlay needs concrete steps: viz.unfolded(rec, "
                               "steps=τ, gradients=...)")
    values = norms(gradients)
    cells = {(name, columns[c].t): (name, c) for name, c in placement.cells
             if columns[c].t is not None}
    names = {name for name, _ in placement.cells}
    elided = [g.span for g in columns if g.span]
    hidden = {k for k in values if k[0] in names and
              any(lo <= k[1] <= hi for lo, hi in elided)}
    unknown = sorted(k for k in values if k not in cells and k not in hidden)
    if unknown:
        tip = " (values inside a cell are drawn with cells='open')" if any(
            v.kind == "cell" for v in drawer.book.variables.values()) else ""
        raise UnfoldValueError(f"gradients given for {[f'{n}({t})' for n, t in unknown][:5]}, "
                               f"which the drawing does not show{tip}; it shows "
                               f"{[f'{n}({t})' for n, t in sorted(cells)][:6]}…")
    low, high = check_scale(scale) if scale is not None else \
        (shared_scale(values) or (0.0, 0.0))
    styles = {cells[k]: style(v, low, high, f"{k[0]}({k[1]})") for k, v in values.items()
              if k in cells}
    ids = drawer.unfolded(placement, styles, boxes=boxes)
    every = [v for g in (values, *map(norms, compared)) for v in g.values()]
    special = [s for s, hit in (("0", any(v == 0 for v in every)),
                                ("∞", any(math.isinf(v) for v in every)),
                                ("NaN", any(math.isnan(v) for v in every))) if hit]
    if legend_here:
        key = "[legend]" + drawer.suffix
        title = shown_steps(columns) if len(compared) < 2 else ""   # (each panel says it)
        drawer.dot.node(key, legend(low, high, special=special, title=title),
                        shape="plaintext", fixedsize="false",
                        tooltip=L.tooltip("colour: log10 of the gradient's norm"))
        bottom = min(drawer.ranks)
        row = list(drawer.ranks[bottom])
        drawer.ranks[bottom].append(key)
        if row:
            drawer.invisible(row[-1], key)
    return ids


def gradient_norms(unfolded: Unfolded, feed: Mapping[Any, Any],
                   variables: Iterable[str] | None = None) -> dict[tuple[str, int], float]:
    """``‖∂L/∂v(t)‖`` for every step ``t`` and every variable ``v`` (states by default) of an
    unfolded recurrence, by back-propagation through time on ``feed``."""
    if not isinstance(unfolded, Unfolded):
        raise UnfoldTypeError(f"gradient_norms needs an unfolded recurrence (rec.unfold(τ)), "
                              f"got {type(unfolded).__name__}")
    rec = unfolded.recurrence
    names = list(variables) if variables is not None else list(rec.states)
    nodes = [n for name in names for n in unfolded.over_time(name)]
    values = uf.evaluate(uf.grad(unfolded.loss, nodes), feed)
    return {(n.name, n.step): _norm(n.label, v) for n, v in zip(nodes, values)}
