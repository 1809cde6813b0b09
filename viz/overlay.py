"""The gradient overlay: an unfolded view coloured by ``log10 ‖∇‖`` (section 10.7).

``viz.unfolded(rec, steps=τ, gradients=g)`` fills each circle ``v(t)`` found in ``g`` with a
colour from dark (small gradient) to bright (large), thickens its outline in proportion, puts the
value in its tooltip, and adds a legend; vanishing and exploding gradients then show along the
time axis. ``g`` maps variables at steps to gradients (arrays, whose norm is taken, or norms).
Keys may be nodes of the unfolded graph (``u.at("h", 3)``), ``(name, step)`` pairs or labels
``"h(3)"``. ``gradient_norms`` computes such a mapping by back-propagation through time.
"""
from __future__ import annotations

import math
import re
from typing import Any, Iterable, Mapping

import numpy as np

import unfold as uf
from unfold.graph import Node
from unfold.recurrence import Unfolded

from . import labels as L
from .layout import Placement

#: a perceptual dark-to-bright colour ramp (viridis, 7 stops)
RAMP = ("#440154", "#443983", "#31688e", "#21918c", "#35b779", "#90d743", "#fde725")
PEN = (1.0, 4.0)          # outline width for the smallest and the largest gradient


def _key(key: Any) -> tuple[str, int]:
    """``(name, step)`` of a gradient key: a node with a name and a step, a pair, or "h(3)"."""
    if isinstance(key, Node):
        if key.name is None or key.step is None:
            raise ValueError(f"gradient key {key.label!r} is not a named node of an unfolded "
                             f"graph; use u.at(name, t)")
        return key.name, key.step
    if isinstance(key, tuple) and len(key) == 2:
        return str(key[0]), int(key[1])
    if isinstance(key, str):
        m = re.fullmatch(r"(.+)\((\d+)\)", key)
        if m:
            return m.group(1), int(m.group(2))
    raise ValueError(f"gradient key {key!r}: expected an unfolded node, a (name, step) pair or "
                     f"a label like 'h(3)'")


def norms(gradients: Mapping[Any, Any]) -> dict[tuple[str, int], float]:
    """``(name, step) → ‖∇‖``: the Frobenius norm of each array (over the batch too)."""
    out = {}
    for key, value in gradients.items():
        out[_key(key)] = float(np.linalg.norm(np.ravel(np.asarray(value, dtype=np.float64))))
    return out


def colour(fraction: float) -> str:
    """The colour of the ramp at ``fraction`` in [0, 1], linearly interpolated."""
    x = min(max(fraction, 0.0), 1.0) * (len(RAMP) - 1)
    i = min(int(x), len(RAMP) - 2)
    a, b = (tuple(int(c[k:k + 2], 16) for k in (1, 3, 5)) for c in RAMP[i:i + 2])
    mix = [round(p + (q - p) * (x - i)) for p, q in zip(a, b)]
    return "#" + "".join(f"{v:02x}" for v in mix)


def _scale(values: Iterable[float]) -> tuple[float, float]:
    logs = [math.log10(v) for v in values if v > 0]
    if not logs:
        return 0.0, 0.0
    return min(logs), max(logs)


def _fraction(value: float, low: float, high: float) -> float:
    if value <= 0:
        return 0.0
    return 0.5 if high == low else (math.log10(value) - low) / (high - low)


def style(norm: float, low: float, high: float, title: str) -> dict[str, str]:
    """Attributes of one circle: fill colour and outline width by log10 ‖∇‖, and a tooltip."""
    f = _fraction(norm, low, high)
    shown = f"{norm:.3g}" if norm > 0 else "0"
    log = f"{math.log10(norm):.2f}" if norm > 0 else "−∞"
    return {"style": "filled", "fillcolor": colour(f), "color": "#333333",
            "fontcolor": "white" if f < 0.6 else "black",
            "penwidth": f"{PEN[0] + (PEN[1] - PEN[0]) * f:.2f}",
            "tooltip": L.plain(f"‖∇{title}‖ = {shown} (log10 = {log})")}


def legend(low: float, high: float, stops: int = 5) -> str:
    """The legend, an HTML-like table: a colour bar from ``low`` to ``high`` (log10 ‖∇‖)."""
    cells = "".join(f'<TD BGCOLOR="{colour(k / (stops - 1))}" WIDTH="26" HEIGHT="14"></TD>'
                    for k in range(stops))
    values = [round(low + (high - low) * k / (stops - 1), 1) + 0.0 for k in range(stops)]
    ticks = "".join(f'<TD><FONT POINT-SIZE="10">{v:.1f}</FONT></TD>' for v in values)
    return (f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="1">'
            f'<TR><TD COLSPAN="{stops}"><FONT FACE="{L.FONT}" POINT-SIZE="12">'
            f"log<SUB>10</SUB> ‖∇‖</FONT></TD></TR><TR>{cells}</TR><TR>{ticks}</TR></TABLE>>")


def overlay(drawer, placement: Placement, gradients: Mapping[Any, Any]) -> dict:
    """Draw ``placement`` with ``drawer`` (see ``views``), coloured by ``gradients``."""
    columns = placement.columns
    if not all(c.step.isdigit() for c in columns):
        raise ValueError("a gradient overlay needs concrete steps: viz.unfolded(rec, steps=τ, "
                         "gradients=...)")
    values = norms(gradients)
    cells = {(name, int(columns[c].step)): (name, c) for name, c in placement.cells}
    unknown = sorted(k for k in values if k not in cells)
    if unknown:
        raise ValueError(f"gradients given for {[f'{n}({t})' for n, t in unknown][:5]}, which "
                         f"the drawing does not show; it shows {sorted(cells)[:5]}…")
    low, high = _scale(values.values())
    styles = {cells[k]: style(v, low, high, f"{k[0]}({k[1]})") for k, v in values.items()}
    ids = drawer.unfolded(placement, styles)
    drawer.dot.node("[legend]", legend(low, high), shape="plaintext", fixedsize="false",
                    tooltip=L.plain("colour: log10 of the gradient's norm"))
    bottom = min(drawer.ranks)
    row = [n for n in drawer.ranks[bottom]]
    drawer.ranks[bottom].append("[legend]")
    if row:
        drawer.invisible(row[-1], "[legend]")
    return ids


def gradient_norms(unfolded: Unfolded, feed: Mapping[Any, Any],
                   variables: Iterable[str] | None = None) -> dict[tuple[str, int], float]:
    """``‖∂L/∂v(t)‖`` for every step ``t`` and every variable ``v`` (states by default) of an
    unfolded recurrence, by back-propagation through time on ``feed``."""
    rec = unfolded.recurrence
    names = list(variables) if variables is not None else list(rec.states)
    nodes = [n for name in names for n in unfolded.over_time(name)]
    values = uf.evaluate(uf.grad(unfolded.loss, nodes), feed)
    return {(n.name, n.step): float(np.linalg.norm(np.ravel(v))) for n, v in zip(nodes, values)}
