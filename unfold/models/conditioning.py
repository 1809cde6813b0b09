"""Sequences conditioned on context (section 10.2.4): a fixed vector (Fig. 10.9) or an input
sequence (Fig. 10.10), with the previous target fed back to the hidden units."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import arguments, ops
from ..graph import Node
from ..recurrence import Recurrence
from ._parts import (affine, as_feedback, builder, check_size, fed_back, new_state, one_hot_like,
                     readout)


def _conditioned(rec: Recurrence, x: Node, x_weight: str, y_weight: str, n_hidden: int,
                 n_out: int, mode: str, feedback: str, loss: str, carry: bool) -> Recurrence:
    """``h(t) = tanh(b + W h(t−1) + [x_weight] x + [y_weight] y_prev(t−1))``, ``o = c + V h``,
    with ``y_prev`` fed as ``fed_back`` says (teacher forcing by default)."""
    h = new_state(rec, "h", n_hidden, x.dtype, carry)
    fed, close = fed_back(rec, n_out, x.dtype, mode, carry)
    a = rec.name_node("a", affine(rec, n_hidden, "b", {"W": h, x_weight: x, y_weight: fed}))
    o = readout(rec, rec.update(h, ops.tanh(a)), n_out, loss)
    close(one_hot_like(rec.sequences["y"], n_out, x.dtype), as_feedback(o, loss, feedback))
    return rec


@builder
def context_rnn(n_context: int, n_hidden: int, n_out: int, *, mode: str = "train",
                feedback: str = "argmax", loss: str = "cross_entropy", carry: bool = False,
                dtype: Any = np.float64) -> Recurrence:
    """Fig. 10.9: a fixed-length vector ``x`` (a context input, the same at every step) mapped to
    a distribution over sequences ``y``; ``xᵀR`` is an extra input of the hidden units at every
    step and each ``y(t)`` is both the target of step t and an input of step t+1::

        h(t) = tanh(b + W h(t−1) + R x + U y_prev(t−1))     y_prev(t) = 1_{y(t)}, y_prev(0) = 0
        o(t) = c + V h(t),     L = Σ_t −log softmax(o(t))_{y(t)}

    (The book's drawing indexes the fed-back target as the input of the same step that predicts
    the next one; here step t reads ``y(t−1)`` and predicts ``y(t)`` — the same graph.) ``mode``
    and ``feedback`` close the loop as in ``teacher_forcing``: ``mode="free"`` generates.

    Inputs: context ``x`` ([batch,] n_context), target ``y`` (τ, [batch]). Params: ``R``
    (n_hidden×n_context), ``W``, ``U`` (n_hidden×n_out), ``b``, ``V``, ``c``.
    """
    rec = Recurrence("context_rnn")
    x = rec.context("x", (check_size(rec, "n_context", n_context),),
                    arguments.float_dtype("context_rnn: dtype", dtype))
    return _conditioned(rec, x, "R", "U", n_hidden, n_out, mode, feedback, loss, carry)


@builder
def conditional_rnn(n_in: int, n_hidden: int, n_out: int, *, mode: str = "train",
                    feedback: str = "argmax", loss: str = "cross_entropy", carry: bool = False,
                    dtype: Any = np.float64) -> Recurrence:
    """Fig. 10.10: ``y`` conditioned on an input sequence ``x`` of the same length, with the
    previous target fed back (so the outputs are no longer conditionally independent given
    ``x``)::

        h(t) = tanh(b + W h(t−1) + U x(t) + R y_prev(t−1))    y_prev(t) = 1_{y(t)}, y_prev(0) = 0
        o(t) = c + V h(t),     L = Σ_t −log softmax(o(t))_{y(t)}

    ``mode`` and ``feedback`` close the loop as in ``teacher_forcing``. Sequences: ``x``
    (τ, [batch,] n_in), ``y`` (τ, [batch]). Params: ``U`` (n_hidden×n_in), ``W``, ``R``
    (n_hidden×n_out), ``b``, ``V``, ``c``.
    """
    rec = Recurrence("conditional_rnn")
    x = rec.sequence("x", (check_size(rec, "n_in", n_in),),
                     arguments.float_dtype("conditional_rnn: dtype", dtype))
    return _conditioned(rec, x, "U", "R", n_hidden, n_out, mode, feedback, loss, carry)
