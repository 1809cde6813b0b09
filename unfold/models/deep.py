"""Deep recurrent networks (section 10.5, Fig. 10.13): depth in time and depth in each step —
stacked recurrent layers of any cell, and MLPs in the input→hidden, hidden→hidden and
hidden→output maps."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import arguments, ops
from ..errors import UnfoldTypeError, UnfoldValueError
from ..graph import Node
from ..recurrence import Recurrence
from ._parts import (Scope, _check_choice, affine, builder, input_sequence, new_state, readout,
                     cell_options as cell_options_of)
from .sequence_length import CELLS

TRANSITIONS = ("stacked", "deep")


def _widths(what: str, sizes: Sequence[int], allow_empty: bool = False) -> list[int]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, (Sequence, np.ndarray)):
        raise UnfoldTypeError(f"deep_rnn: {what} must be a list of layer widths, got "
                              f"{sizes!r}")
    widths = [arguments.positive_int(f"deep_rnn: a layer width in {what}", n) for n in sizes]
    if (not widths and not allow_empty) or any(n < 1 for n in widths):
        raise UnfoldValueError(f"deep_rnn: {what} must be positive layer widths, got {sizes!r}")
    return widths


def mlp(rec: Recurrence, v: Node, widths: Sequence[int], scope: str, weight: str) -> Node:
    """``z_1 = tanh(<scope>.b_1 + <scope>.<weight>_1 v)``, ``z_l = tanh(<scope>.b_l +
    <scope>.<weight>_l z_{l−1})``, each named ``<scope>.z_l``; returns the last (``v`` itself for
    no layer)."""
    for l, width in enumerate(widths, start=1):
        v = rec.name_node(f"{scope}.z_{l}", ops.tanh(
            affine(rec, width, f"{scope}.b_{l}", {f"{scope}.{weight}_{l}": v})))
    return v


@builder
def deep_rnn(n_in: int, sizes: Sequence[int], n_out: int, *, transition: str = "stacked",
             skip: bool = False, cell: str = "rnn", input_layers: Sequence[int] = (),
             output_layers: Sequence[int] = (), loss: str = "cross_entropy",
             outputs: str = "every", inputs: str = "vectors", dtype: Any = np.float64,
             **cell_options: Any) -> Recurrence:
    """A deep RNN, in the ways of Fig. 10.13.

    ``transition="stacked"`` (Fig. 10.13 a): a hierarchy of recurrent layers, layer ``l`` reading
    the layer below at the same step (``h_0 = x``), each a ``cell`` — ``"rnn"``::

        h_l(t) = tanh(b_l + W_l h_l(t−1) + U_l h_{l−1}(t)),   l = 1 … len(sizes)

    or ``"lstm"``, ``"gru"`` (``cell_options`` such as ``variant`` go to each): layer ``l``'s
    states and parameters are the cell's with the suffix ``_l`` (``s_1``, ``h_1``, ``W_f_1``,
    ``U_1``, …; see ``unfold.models.lstm_cell``, ``gru_cell``).

    ``transition="deep"`` (Fig. 10.13 b): one state ``h`` whose hidden-to-hidden transition is an
    MLP with hidden layers of ``sizes[:-1]`` units (``z_1 … z_k``), and ``skip=True``
    (Fig. 10.13 c) adds the shorter path ``S h(t−1)`` around it::

        z_1(t) = tanh(b_1 + W_1 h(t−1) + U_1 x(t)),   z_l(t) = tanh(b_l + W_l z_{l−1}(t))
        h(t)   = tanh(b + W z_k(t) [+ S h(t−1)])

    With ``sizes`` of one width it is the plain ``h(t) = tanh(b + W h(t−1) + U x(t))``.

    ``input_layers`` and ``output_layers`` (Fig. 10.13 b: "an MLP in all three") deepen the
    input→hidden and hidden→output maps, for either transition::

        in.z_1(t) = tanh(in.b_1 + in.U_1 x(t)),    in.z_l(t) = tanh(in.b_l + in.U_l in.z_{l−1}(t))
        out.z_1(t) = tanh(out.b_1 + out.V_1 h(t)), out.z_l(t) = tanh(out.b_l + out.V_l out.z_{l−1})

    the recurrence then reading ``in.z_k(t)`` in place of ``x(t)``, and the readout
    ``o(t) = c + V out.z_k(t)`` (``o(t) = c + V h(t)`` without output layers, ``h`` being the top
    layer), with the loss of ``unfold.models.rnn``.
    """
    _check_choice("transition", transition, TRANSITIONS)
    _check_choice("cell", cell, ("rnn", "lstm", "gru"))
    sizes = _widths("sizes", sizes)
    ins, outs = (_widths(w, v, allow_empty=True) for w, v in
                 (("input_layers", input_layers), ("output_layers", output_layers)))
    skip = arguments.flag("deep_rnn: skip", skip)
    if skip and transition != "deep":
        raise UnfoldValueError("deep_rnn: skip=True is the shortcut around a deep transition "
                               "(transition='deep', Fig. 10.13 c)")
    if transition == "deep" and (cell != "rnn" or cell_options):
        raise UnfoldValueError("deep_rnn: a deep transition is an MLP of tanh layers; cell= and "
                               "its options choose the cells of stacked layers "
                               "(transition='stacked')")
    name = f"deep_rnn_{transition}{'_skip' if skip else ''}"
    rec = Recurrence(name if cell == "rnn" else f"{name}_{cell}")
    x = mlp(rec, input_sequence(rec, n_in, inputs, dtype), ins, "in", "U")
    if transition == "stacked":
        top = _stacked(rec, x, sizes, cell, cell_options_of("deep_rnn", CELLS[cell], cell_options))
    else:
        top = _deep(rec, x, sizes, skip)
    readout(rec, mlp(rec, top, outs, "out", "V"), n_out, loss, outputs)
    return rec


def _stacked(rec: Recurrence, x: Node, sizes: list[int], cell: str, options: dict) -> Node:
    below = x
    for l, n in enumerate(sizes, start=1):
        below = CELLS[cell](Scope.suffixed(rec, f"_{l}"), below, n, **options)
    return below


def _deep(rec: Recurrence, x: Node, sizes: list[int], skip: bool) -> Node:
    *hidden, n = sizes
    h = new_state(rec, "h", n, x.dtype)
    z: Node = h
    for l, width in enumerate(hidden, start=1):
        weights = {f"W_{l}": z, f"U_{l}": x} if l == 1 else {f"W_{l}": z}
        z = rec.name_node(f"z_{l}", ops.tanh(affine(rec, width, f"b_{l}", weights)))
    weights = {"W": z, "S": h} if skip else {"W": z}
    if not hidden:                      # no hidden layer: the plain transition of Fig. 10.3
        weights = {"W": h, "U": x}
    return rec.update(h, ops.tanh(affine(rec, n, "b", weights)))
