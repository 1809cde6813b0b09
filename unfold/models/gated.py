"""Gated cells (section 10.10): the LSTM (Fig. 10.16, eqs. 10.40–10.44) and the GRU
(eqs. 10.45–10.47), in the book's exact form and in the common form most libraries use."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..graph import Node
from ..recurrence import Recurrence
from ._parts import _check_choice, affine, builder, chain, new_state

VARIANTS = ("book", "common")
#: the GRU's: also cuDNN's and PyTorch's form, the reset gate applied after ``W``
GRU_VARIANTS = VARIANTS + ("reset_after",)


def _squash(variant: str, variants: tuple[str, ...] = VARIANTS):
    """The nonlinearity of the state input: the book writes σ, most libraries use tanh."""
    _check_choice("variant", variant, variants)
    return ops.sigmoid if variant == "book" else ops.tanh


def _gate(rec: Recurrence, name: str, suffix: str, n: int, x: Node, h: Node) -> Node:
    """``σ(b_s + U_s x(t) + W_s h(t−1))``, named ``name`` (drawings show the gates)."""
    pre = affine(rec, n, f"b_{suffix}", {f"U_{suffix}": x, f"W_{suffix}": h})
    return rec.name_node(name, ops.sigmoid(pre))


def lstm_cell(rec: Recurrence, x: Node, n: int, *, carry: bool = False,
              variant: str = "book") -> Node:
    """The LSTM cell of Fig. 10.16. With ``variant="book"``, exactly eqs. 10.40–10.44::

        f(t) = σ(b_f + U_f x(t) + W_f h(t−1))                      forget gate      (10.40)
        s(t) = f(t) s(t−1) + g(t) σ(b + U x(t) + W h(t−1))         internal state   (10.41)
        g(t) = σ(b_g + U_g x(t) + W_g h(t−1))                      external input gate (10.42)
        h(t) = tanh(s(t)) q(t)                                     output           (10.43)
        q(t) = σ(b_o + U_o x(t) + W_o h(t−1))                      output gate      (10.44)

    ``variant="common"`` squashes the state input with tanh instead of σ,
    ``s(t) = f s(t−1) + g tanh(b + U x(t) + W h(t−1))``, as most libraries (and Hochreiter &
    Schmidhuber's cell input) do: the state can then move down as well as up. Everything else is
    identical. States ``s`` and ``h`` (zeros at t = 0, or inputs ``s0``/``h0`` with carry);
    gates named ``f``, ``g``, ``q``; returns ``h(t)``.

    The common variant is PyTorch's ``nn.LSTM`` (and cuDNN's) exactly. Its ``weight_ih`` stacks
    four blocks of rows ``[i; f; g; o]`` — input gate, forget gate, cell input, output gate —
    and ``weight_hh`` likewise, so that, with ``n`` rows per block::

        U_g = weight_ih[0:n]     U_f = weight_ih[n:2n]     U = weight_ih[2n:3n]     U_o = weight_ih[3n:4n]
        W_g = weight_hh[0:n]     W_f = weight_hh[n:2n]     W = weight_hh[2n:3n]     W_o = weight_hh[3n:4n]
        b_g, b_f, b, b_o       = the same blocks of bias_ih + bias_hh

    (the book's external input gate ``g`` is PyTorch's ``i``; PyTorch's ``g`` is the cell input,
    here ``U``, ``W``, ``b``; the state ``s`` is PyTorch's ``c``).
    """
    squash = _squash(variant)
    s = new_state(rec, "s", n, x.dtype, carry)
    h = new_state(rec, "h", n, x.dtype, carry)
    f = _gate(rec, "f", "f", n, x, h)
    g = _gate(rec, "g", "g", n, x, h)
    q = _gate(rec, "q", "o", n, x, h)
    s_t = rec.update(s, f * s + g * squash(affine(rec, n, "b", {"U": x, "W": h})))
    return rec.update(h, ops.tanh(s_t) * q)


def gru_cell(rec: Recurrence, x: Node, n: int, *, carry: bool = False,
             variant: str = "book") -> Node:
    """The gated recurrent unit, eqs. 10.45–10.47, with ``variant="book"``::

        u(t) = σ(b_u + U_u x(t) + W_u h(t−1))                                update gate (10.46)
        r(t) = σ(b_r + U_r x(t) + W_r h(t−1))                                reset gate  (10.47)
        h(t) = u(t) h(t−1) + (1 − u(t)) σ(b + U x(t) + W (r(t) h(t−1)))                  (10.45)

    The book writes the right-hand side of 10.45 with every index at t−1 (``u(t−1)``,
    ``x(t−1)``, ``r(t−1)``, ``h(t−1)``) and the gates of 10.46–10.47 from ``x(t)``, ``h(t)``:
    shifted by one step, that is the recurrence above, in which step t consumes ``x(t)``.
    ``u = 1`` keeps the old state (the book's convention: ``u`` is the fraction kept, not
    written). ``variant="common"`` uses tanh for the candidate state in place of σ — the GRU of
    Cho et al. (2014) and Keras' ``reset_after=False``. ``variant="reset_after"`` also resets
    *after* the recurrent product, with a bias of its own inside it, as cuDNN and PyTorch do::

        h(t) = u(t) h(t−1) + (1 − u(t)) tanh(b + U x(t) + r(t) (b_W + W h(t−1)))

    which is PyTorch's ``nn.GRU`` exactly: its ``weight_ih`` stacks rows ``[r; z; n]`` (reset,
    update, candidate; ``n`` rows each), so ``U_r, U_u, U = weight_ih`` blocks, ``W_r, W_u, W =
    weight_hh`` blocks, ``b_r = bias_ih[r] + bias_hh[r]``, ``b_u = bias_ih[z] + bias_hh[z]``,
    ``b = bias_ih[n]``, ``b_W = bias_hh[n]`` (PyTorch's update gate ``z`` is ``u``, the fraction
    kept). State ``h``; gates named ``u``, ``r``; returns ``h(t)``.
    """
    squash = _squash(variant, GRU_VARIANTS)
    h = new_state(rec, "h", n, x.dtype, carry)
    u = _gate(rec, "u", "u", n, x, h)
    r = _gate(rec, "r", "r", n, x, h)
    if variant == "reset_after":
        recurrent = affine(rec, n, "b_W", {"W": h})
        candidate = ops.tanh(affine(rec, n, "b", {"U": x}) + r * recurrent)
    else:
        candidate = squash(affine(rec, n, "b", {"U": x, "W": r * h}))
    return rec.update(h, u * h + (1.0 - u) * candidate)


@builder
def lstm(n_in: int, n_hidden: int, n_out: int, *, variant: str = "book",
         loss: str = "cross_entropy", outputs: str = "every", inputs: str = "vectors",
         carry: bool = False, dtype: Any = np.float64) -> Recurrence:
    """An LSTM network: ``lstm_cell`` (eqs. 10.40–10.44; see there for the two variants) read out
    as in Fig. 10.3::

        o(t) = c + V h(t),     L = Σ_t L(t),   L(t) = −log softmax(o(t))_{y(t)}

    (``loss``, ``outputs``, ``inputs`` as in ``unfold.models.rnn``). Params, each W (n×n), U
    (n×n_in), b (n): ``U, W, b`` (state input), ``U_f, W_f, b_f`` (forget gate), ``U_g, W_g,
    b_g`` (external input gate), ``U_o, W_o, b_o`` (output gate); and ``V`` (n_out×n), ``c``.
    (``lstm_cell`` says how PyTorch's ``nn.LSTM`` weights map onto these.)
    """
    return chain(f"lstm_{variant}", lstm_cell, n_in, n_hidden, n_out, loss=loss,
                 outputs=outputs, inputs=inputs, carry=carry, dtype=dtype, variant=variant)


@builder
def gru(n_in: int, n_hidden: int, n_out: int, *, variant: str = "book",
        loss: str = "cross_entropy", outputs: str = "every", inputs: str = "vectors",
        carry: bool = False, dtype: Any = np.float64) -> Recurrence:
    """A GRU network: ``gru_cell`` (eqs. 10.45–10.47; see there for the index shift and the
    variants, and how PyTorch's weights map) read out as ``o(t) = c + V h(t)`` with loss
    ``L = Σ_t L(t)``. Params: ``U, W, b`` (candidate state; and ``b_W`` with
    ``variant="reset_after"``), ``U_u, W_u, b_u`` (update gate), ``U_r, W_r, b_r`` (reset gate),
    ``V``, ``c``.
    """
    return chain(f"gru_{variant}", gru_cell, n_in, n_hidden, n_out, loss=loss,
                 outputs=outputs, inputs=inputs, carry=carry, dtype=dtype, variant=variant)
