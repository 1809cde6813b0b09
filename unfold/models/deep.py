"""Deep recurrent networks (section 10.5, Fig. 10.13)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import arguments, ops
from ..errors import UnfoldTypeError, UnfoldValueError
from ..graph import Node
from ..recurrence import Recurrence
from ._parts import affine, input_sequence, new_state, readout

TRANSITIONS = ("stacked", "deep")


def deep_rnn(n_in: int, sizes: Sequence[int], n_out: int, *, transition: str = "stacked",
             skip: bool = False, loss: str = "cross_entropy", outputs: str = "every",
             inputs: str = "vectors", dtype: Any = np.float64) -> Recurrence:
    """A deep RNN, in one of the ways of Fig. 10.13.

    ``transition="stacked"`` (Fig. 10.13 a): a hierarchy of recurrent layers, layer ``l`` reading
    the layer below at the same step (``h_0 = x``)::

        h_l(t) = tanh(b_l + W_l h_l(t−1) + U_l h_{l−1}(t)),   l = 1 … len(sizes)

    ``transition="deep"`` (Fig. 10.13 b): one state ``h`` whose hidden-to-hidden transition is an
    MLP with hidden layers of ``sizes[:-1]`` units (``z_1 … z_k``), and ``skip=True``
    (Fig. 10.13 c) adds the shorter path ``S h(t−1)`` around it::

        z_1(t) = tanh(b_1 + W_1 h(t−1) + U_1 x(t)),   z_l(t) = tanh(b_l + W_l z_{l−1}(t))
        h(t)   = tanh(b + W z_k(t) [+ S h(t−1)])

    Both read out from the top, ``o(t) = c + V h(t)``, with the loss of ``unfold.models.rnn``.
    """
    arguments.choice("transition", transition, TRANSITIONS)
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise UnfoldTypeError(f"deep_rnn: sizes must be a list of positive layer widths, got "
                              f"{sizes!r}")
    if not sizes:
        raise UnfoldValueError("deep_rnn: sizes must be positive layer widths, at least one")
    sizes = [arguments.positive_int("deep_rnn: a layer width in sizes", n) for n in sizes]
    if arguments.flag("deep_rnn: skip", skip) and transition != "deep":
        raise UnfoldValueError("deep_rnn: skip=True is the shortcut around a deep "
                                         "transition (transition='deep', Fig. 10.13 c)")
    rec = Recurrence(f"deep_rnn_{transition}{'_skip' if skip else ''}")
    x = input_sequence(rec, n_in, inputs, dtype)
    top = _stacked(rec, x, sizes) if transition == "stacked" else _deep(rec, x, sizes, skip)
    readout(rec, top, n_out, loss, outputs)
    return rec


def _stacked(rec: Recurrence, x: Node, sizes: list[int]) -> Node:
    below = x
    for l, n in enumerate(sizes, start=1):
        h = new_state(rec, f"h_{l}", n, x.dtype)
        below = rec.update(h, ops.tanh(affine(rec, n, f"b_{l}", {f"W_{l}": h, f"U_{l}": below})))
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
