"""Language models and the length of a sequence (section 10.2.3).

An RNN that generates must also decide when to stop. The book gives two ways, both here:

* an **end-of-sequence symbol**: one more symbol in the vocabulary, appended to every training
  sequence; generation stops when it is produced (``encode(..., end=EOS)``);
* a **Bernoulli "stop" output**: at every step a sigmoid unit gives the probability that the
  sequence ends after this symbol, trained with the log-likelihood of ``end(t)`` (1 at the
  last step); generation stops when a draw from it says so (``stop_output=True``).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import arguments, ops
from ..errors import UnfoldTypeError, UnfoldValueError
from ..graph import Node
from ..recurrence import Recurrence
from ._parts import Cell, _check_choice, input_sequence, readout
from .gated import gru_cell, lstm_cell
from .rnn import rnn_cell
from .time_scales import leaky_cell, skip_cell

CELLS: dict[str, Cell] = {"rnn": rnn_cell, "lstm": lstm_cell, "gru": gru_cell,
                          "leaky": leaky_cell, "skip": skip_cell}


def stop_output(rec: Recurrence, h: Node) -> Node:
    """The Bernoulli output deciding whether the sequence ends after step t::

        z(t) = c_s + V_s · h(t),    P(end(t) = 1) = σ(z(t))
        L_stop(t) = −log P(end(t)) = −[end log σ(z) + (1 − end) log σ(−z)]

    computed stably as the cross-entropy of the two logits (0, z). Declares the target sequence
    ``end`` (int 0/1), the output ``stop`` (the logit z), the loss ``L_stop`` and params ``V_s``
    (n,) and ``c_s`` (scalar)."""
    end = rec.target("end", (), np.int64)
    z = rec.output("stop", rec.param("c_s", (), h.dtype) + rec.param("V_s", h.shape, h.dtype) @ h)
    rec.loss("L_stop", ops.cross_entropy(ops.stack([ops.constant(np.zeros((), h.dtype)), z]),
                                         end))
    return z


def language_model(vocab: int, n_hidden: int, *, cell: str = "rnn", stop: bool = False,
                   carry: bool = False, dtype: Any = np.float64, **cell_options: Any
                   ) -> Recurrence:
    """A language model over ``vocab`` symbols: step t reads the symbol ``x(t)`` (an integer id,
    one-hot inside), updates the cell (``"rnn"``, ``"lstm"``, ``"gru"``, ``"leaky"``,
    ``"skip"``; ``cell_options`` such as ``variant`` go to it) and predicts the next symbol::

        o(t) = c + V h(t),    L(t) = −log softmax(o(t))_{y(t)},   y(t) = x(t+1)

    ``stop=True`` adds the Bernoulli stop output (``stop_output``). Sequences ``x`` and ``y``
    (τ, [batch]) int64; ``encode`` builds them (and ``end``, ``mask``) from symbol lists.
    """
    _check_choice("cell", cell, tuple(CELLS))
    stop = arguments.flag("language_model: stop", stop)
    rec = Recurrence(f"language_model_{cell}")
    x = input_sequence(rec, vocab, "tokens", dtype)
    h = CELLS[cell](rec, x, n_hidden, carry=carry, **cell_options)
    readout(rec, h, vocab)
    if stop:
        stop_output(rec, h)
    return rec


def encode(sequences: Sequence[Sequence[int]], start: int, end: int | None = None
           ) -> dict[str, np.ndarray]:
    """Training arrays for a batch of symbol sequences of different lengths, padded to the
    longest, with the ``mask`` of ``rec.unfold(τ, mask=True)`` (1 on real steps)::

        with an end symbol:   x = start s₁ … s_L     y = s₁ … s_L end     (τ = L + 1)
        with a stop output:   x = start s₁ … s_{L−1} y = s₁ … s_L         end = 0 … 0 1

    Returns ``{"x", "y", "mask"}`` (+ ``"end"`` without an end symbol), each (τ, batch)."""
    start = arguments.positive_int("encode: start (a symbol)", start, minimum=0)
    end = None if end is None else arguments.positive_int("encode: end (a symbol)", end,
                                                           minimum=0)
    sequences = [_symbols(s) for s in _symbols(sequences, nested=True)]
    if not sequences or any(len(s) == 0 for s in sequences):
        raise UnfoldValueError("encode: give at least one sequence, each of at least one "
                               "symbol")
    with_end = end is not None
    steps = max(len(s) for s in sequences) + with_end
    batch = len(sequences)
    x = np.full((steps, batch), start, np.int64)
    y = np.full((steps, batch), start if end is None else end, np.int64)
    mask = np.zeros((steps, batch))
    stops = np.zeros((steps, batch), np.int64)
    for i, s in enumerate(sequences):
        s = list(s)
        inputs, targets = [start] + s[:len(s) - 1 + with_end], s + ([end] if with_end else [])
        x[:len(inputs), i], y[:len(targets), i] = inputs, targets
        mask[:len(targets), i] = 1.0
        stops[len(targets) - 1, i] = 1
    out = {"x": x, "y": y, "mask": mask}
    if not with_end:
        out["end"] = stops
    return out


def _symbols(values: Any, nested: bool = False) -> list:
    """A list of symbols (integers ≥ 0), or — ``nested`` — a list of such lists."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise UnfoldTypeError(f"encode: expected a list of {'symbol lists' if nested else 'symbols'}"
                              f", got {type(values).__name__} {values!r}")
    if nested:
        return list(values)
    return [arguments.positive_int("encode: a symbol", v, minimum=0) for v in values]
