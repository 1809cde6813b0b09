"""Explicit memory (section 10.12, Fig. 10.18): a recurrent "task network" (the controller) that
reads and writes a matrix of memory cells through content-based soft attention, differentiable end
to end — the content addressing of the neural Turing machine (Graves et al., 2014)."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import arguments, ops
from ..errors import UnfoldValueError
from ..graph import Node
from ..recurrence import Recurrence
from ._parts import _check_choice, affine, builder, input_sequence, readout
from ._parts import cell_options as cell_options_of
from .sequence_length import CELLS

#: ε of the cosine similarity's norms, ``‖v‖_ε = √(v·v + ε)``
EPSILON = 1e-6


def cosine(M: Node, k: Node) -> Node:
    """``K[M_i, k] = M_i · k / (‖M_i‖_ε ‖k‖_ε)`` for every row (memory cell) ``M_i``."""
    rows = ops.sqrt(ops.sum(M * M, axis=-1) + EPSILON)
    return (M @ k) / (rows * ops.sqrt(ops.sum(k * k) + EPSILON))


def address(rec: Recurrence, head: str, h: Node, M: Node, width: int) -> Node:
    """A head's content-based attention over the cells of ``M``, from the controller's ``h``::

        k    = b_k + W_k h                     the key (one memory word)
        β    = softplus(b_beta + w_beta · h)   the key strength, ≥ 0
        w_i  = softmax_i(β K[M_i, k])          a distribution over the cells

    Params ``<head>.W_k`` (width×n), ``<head>.b_k`` (width), ``<head>.w_beta`` (n),
    ``<head>.b_beta`` (scalar); named values ``<head>.k``, ``<head>.beta``, ``<head>.w``."""
    k = rec.name_node(f"{head}.k", affine(rec, width, f"{head}.b_k", {f"{head}.W_k": h}))
    z = rec.param(f"{head}.b_beta", (), h.dtype) + rec.param(f"{head}.w_beta", h.shape,
                                                             h.dtype) @ h
    beta = rec.name_node(f"{head}.beta", ops.softplus(z))
    return rec.name_node(f"{head}.w", ops.softmax(beta * cosine(M, k)))


@builder
def memory_network(n_in: int, n_hidden: int, n_out: int, *, cells: int = 8, width: int = 8,
                   controller: str = "rnn", loss: str = "cross_entropy",
                   outputs: str | Sequence[int] = "every", inputs: str = "vectors",
                   dtype: Any = np.float64, **cell_options: Any) -> Recurrence:
    """A memory network (Fig. 10.18): a controller with a memory ``M`` of ``cells`` words of
    ``width`` numbers, one write head and one read head, both addressing by content. Step t::

        h(t)   = cell([x(t); r(t−1)], h(t−1))                  controller ("rnn", "lstm", "gru")
        w_w(t) = address("write", h(t), M(t−1))                where to write
        e(t)   = σ(write.b_e + write.W_e h(t))                 erase vector (width)
        a(t)   = tanh(write.b_a + write.W_a h(t))              add vector (width)
        M(t)   = M(t−1) ⊙ (1 − w_w(t) e(t)ᵀ) + w_w(t) a(t)ᵀ    erase, then add
        w_r(t) = address("read", h(t), M(t))                   where to read (after the write)
        r(t)   = M(t)ᵀ w_r(t)                                  the read vector
        o(t)   = c + V h(t) + V_r r(t)

    with ``address`` the content-based attention ``w_i = softmax_i(β K[M_i, k])``, ``k = b_k +
    W_k h``, ``β = softplus(b_beta + w_beta·h)`` and ``K`` the cosine similarity
    ``M_i·k / (‖M_i‖_ε ‖k‖_ε)``, ``‖v‖_ε = √(v·v + 10⁻⁶)``. The loss is that of
    ``unfold.models.rnn`` (``outputs`` may also list the 1-based steps whose loss counts).

    States: ``h`` (zeros at t = 0; and ``s`` for an LSTM), ``read.r`` (the read vector ``r``,
    zeros at t = 0), ``M`` (every example starts at the learned ``M0``: distinct initial words
    give the content addressing something to tell cells apart). Vectors are columns: ``M`` is
    cells×width, ``w_w e(t)ᵀ`` an outer product (cells×width), ``M(t)ᵀ w_r(t)`` a width-vector.
    Params: the controller's (for "rnn": ``U`` n×(n_in+width), its first n_in columns reading
    ``x(t)`` and the last width ``r(t−1)``, ``W``, ``b``; the gates of "lstm" / "gru" alike,
    named as in ``lstm_cell`` / ``gru_cell``), ``M0`` (cells×width), the heads'
    (``write.W_k``, ``write.b_k``, ``write.w_beta``, ``write.b_beta``, ``write.W_e``,
    ``write.b_e``, ``write.W_a``, ``write.b_a``; ``read.W_k``, ``read.b_k``, ``read.w_beta``,
    ``read.b_beta``), and ``V`` (n_out×n), ``V_r`` (n_out×width), ``c``. Named values
    ``write.w``, ``read.w`` (the attention), ``write.e``, ``write.a``, ``write.k`` … for drawings.
    """
    _check_choice("controller", controller, ("rnn", "lstm", "gru"))
    cells, width, n_hidden = (arguments.positive_int(f"memory_network: {what}", n) for what, n in
                              (("cells", cells), ("width", width), ("n_hidden", n_hidden)))
    rec = Recurrence(f"memory_{controller}")
    x = input_sequence(rec, n_in, inputs, dtype)
    r = rec.state("read.r", (width,), dtype=dtype)
    M = rec.state("M", (cells, width), init=rec.param("M0", (cells, width), dtype), dtype=dtype)
    h = CELLS[controller](rec, ops.concat([x, r], axis=0), n_hidden,
                          **cell_options_of("memory_network", CELLS[controller], cell_options))
    w_w = address(rec, "write", h, M, width)
    e = rec.name_node("write.e", ops.sigmoid(affine(rec, width, "write.b_e", {"write.W_e": h})))
    a = rec.name_node("write.a", ops.tanh(affine(rec, width, "write.b_a", {"write.W_a": h})))
    M_t = rec.update(M, M * (1.0 - ops.outer(w_w, e)) + ops.outer(w_w, a))
    w_r = address(rec, "read", h, M_t, width)
    r_t = rec.update(r, w_r @ M_t)
    readout(rec, h, n_out, loss, outputs, extra={"V_r": r_t})
    return rec
