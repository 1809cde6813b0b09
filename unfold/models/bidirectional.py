"""Bidirectional RNNs (section 10.3, Fig. 10.11): a state running forward in time and one running
backward, both read by the output of every step."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..recurrence import Recurrence
from ._parts import Scope, _check_choice, builder, input_sequence, readout
from ._parts import cell_options as cell_options_of
from .sequence_length import CELLS


def backward_scope(rec: Recurrence) -> Scope:
    """How the backward direction declares its cell: every name ``n`` becomes ``g.n`` (the
    hidden state ``g.h``, ``g.W``, ``g.s`` …), and its states run backward in time."""
    return Scope.prefixed(rec, "g.", backward=True)


@builder
def bidirectional(n_in: int, n_hidden: int, n_out: int, *, cell: str = "rnn",
                  loss: str = "cross_entropy", outputs: str = "every", inputs: str = "vectors",
                  dtype: Any = np.float64, **cell_options: Any) -> Recurrence:
    """The bidirectional RNN of Fig. 10.11: ``h`` summarises the past, ``g`` the future, and the
    output of step t sees both::

        h(t) = cell(x(t), h(t−1))        h(0) = 0          forward in time
        g(t) = cell(x(t), g(t+1))        g(τ+1) = 0        backward in time
        o(t) = c + V h(t) + V_g g(t)
        L    = Σ_t L(t)                  (the loss of unfold.models.rnn)

    ``cell`` is ``"rnn"`` (``h(t) = tanh(b + W h(t−1) + U x(t))``), ``"lstm"`` or ``"gru"`` (the
    book's variants, or ``variant="common"``), or ``"leaky"``, ``"skip"``. The forward direction
    has the cell's own names (``U``, ``W``, ``b``, gates ``W_f`` …, states ``h`` and ``s``); the
    backward one the same prefixed with ``g.`` (``g.U``, ``g.W``, ``g.b``, ``g.W_f`` …, states
    ``g.h`` — the book's ``g`` — and ``g.s``). Params also ``V``, ``V_g`` (n_out×n_hidden), ``c``.
    """
    _check_choice("cell", cell, tuple(CELLS))
    cell_options = cell_options_of("bidirectional", CELLS[cell], cell_options)
    rec = Recurrence(f"bidirectional_{cell}")
    x = input_sequence(rec, n_in, inputs, dtype)
    h = CELLS[cell](rec, x, n_hidden, **cell_options)
    g = CELLS[cell](backward_scope(rec), x, n_hidden, **cell_options)
    readout(rec, h, n_out, loss, outputs, extra={"V_g": g})
    return rec
