"""The chain RNNs of section 10.2: hidden-to-hidden (Fig. 10.3), output-to-hidden (Fig. 10.4) and
a single output at the end (Fig. 10.5)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..graph import Node
from ..recurrence import Recurrence
from ._parts import affine, builder, chain, input_sequence, new_state, readout


def rnn_cell(rec: Recurrence, x: Node, n: int, *, carry: bool = False) -> Node:
    """The hidden units of Fig. 10.3 (eqs. 10.8–10.9)::

        a(t) = b + W h(t−1) + U x(t)
        h(t) = tanh(a(t))

    Declares state ``h`` and params ``W`` (n×n), ``U`` (n×m), ``b`` (n); returns ``h(t)``."""
    h = new_state(rec, "h", n, x.dtype, carry)
    a = rec.name_node("a", affine(rec, n, "b", {"W": h, "U": x}))
    return rec.update(h, ops.tanh(a))


@builder
def rnn(n_in: int, n_hidden: int, n_out: int, *, loss: str = "cross_entropy",
        outputs: str = "every", inputs: str = "vectors", carry: bool = False,
        dtype: Any = np.float64) -> Recurrence:
    """The recurrent network of Fig. 10.3, eqs. 10.8–10.11::

        a(t) = b + W h(t−1) + U x(t)        h(0) = 0 (or the input h0 with carry=True)
        h(t) = tanh(a(t))
        o(t) = c + V h(t)
        ŷ(t) = softmax(o(t))
        L    = Σ_t L(t),   L(t) = −log ŷ(t)_{y(t)}

    ``loss="squared_error"`` replaces ``L(t)`` by ``Σ_i (o_i(t) − y_i(t))²`` for real-valued
    targets ``y(t)`` of size ``n_out`` (section 10.2.3). ``outputs="last"`` keeps only the loss of
    the last step: a single output at the end summarising the sequence (Fig. 10.5).
    ``inputs="tokens"`` feeds ``x(t)`` as integer ids in ``[0, n_in)`` (one-hot inside).

    Sequences: ``x`` (τ, [batch,] n_in) and ``y`` (τ, [batch]) int64 class indices (or
    (τ, [batch,] n_out) floats). Params: ``U`` (n_hidden×n_in), ``W`` (n_hidden×n_hidden),
    ``b`` (n_hidden), ``V`` (n_out×n_hidden), ``c`` (n_out).
    """
    return chain("rnn", rnn_cell, n_in, n_hidden, n_out, loss=loss, outputs=outputs,
                 inputs=inputs, carry=carry, dtype=dtype)


@builder
def rnn_single_output(n_in: int, n_hidden: int, n_out: int, *, loss: str = "cross_entropy",
                      inputs: str = "vectors", carry: bool = False,
                      dtype: Any = np.float64) -> Recurrence:
    """Fig. 10.5: the network of Fig. 10.3 read once, at the end of the sequence::

        h(t) = tanh(b + W h(t−1) + U x(t)),   o(τ) = c + V h(τ),   L = L(τ)

    (``o(t)`` is still computed at every step; only ``L(τ)`` enters the loss.) Same sequences
    and params as ``rnn``."""
    return rnn(n_in, n_hidden, n_out, loss=loss, outputs="last", inputs=inputs, carry=carry,
               dtype=dtype)


def output_step(rec: Recurrence, fed: Node, x: Node, n_hidden: int, n_out: int,
                loss: str, state: Node | None = None) -> Node:
    """One step of a network whose only recurrence goes through the output (Figs. 10.4, 10.6)::

        h(t) = tanh(b + W fed(t−1) + U x(t))
        o(t) = c + V h(t)

    ``fed`` is what the step reads of the previous step (``o(t−1)`` in Fig. 10.4, ``y(t−1)``
    under teacher forcing); returns ``o(t)``."""
    h = rec.name_node("h", ops.tanh(affine(rec, n_hidden, "b", {"W": fed, "U": x})))
    return readout(rec, h, n_out, loss, state=state)


@builder
def output_to_hidden(n_in: int, n_hidden: int, n_out: int, *, loss: str = "cross_entropy",
                     inputs: str = "vectors", carry: bool = False,
                     dtype: Any = np.float64) -> Recurrence:
    """Fig. 10.4: the only recurrence is from the output to the hidden units::

        h(t) = tanh(b + W o(t−1) + U x(t))     o(0) = 0 (or the input o0 with carry=True)
        o(t) = c + V h(t)
        L    = Σ_t L(t)

    ``o`` is the state. Less powerful than Fig. 10.3 (``o`` must carry all the past), but with
    ``y(t−1)`` in place of ``o(t−1)`` the steps decouple: teacher forcing (``teacher_forcing``).
    Params: ``U`` (n_hidden×n_in), ``W`` (n_hidden×n_out), ``b``, ``V``, ``c``.
    """
    rec = Recurrence("output_to_hidden")
    x = input_sequence(rec, n_in, inputs, dtype)
    o = new_state(rec, "o", n_out, dtype, carry)
    output_step(rec, o, x, n_hidden, n_out, loss, state=o)
    return rec
