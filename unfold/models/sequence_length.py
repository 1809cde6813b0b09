"""Language models and the length of a sequence (section 10.2.3).

An RNN that generates must also decide when to stop. The book gives three ways, all here:

* an **end-of-sequence symbol**: one more symbol in the vocabulary, appended to every training
  sequence; generation stops when it is produced (``encode(..., end=EOS)``);
* a **Bernoulli "stop" output**: at every step a sigmoid unit gives the probability that the
  sequence ends after this symbol, trained with the log-likelihood of ``end(t)`` (1 at the
  last step); generation stops when a draw from it says so (``stop=True``);
* an **extra output predicting the length τ** itself, ``P(x(1) … x(τ)) = P(τ) P(x(1) … x(τ) |
  τ)``: τ is drawn first, then τ symbols, each step told how many remain (``max_length=K``).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .. import arguments, ops
from ..errors import UnfoldTypeError, UnfoldValueError
from ..graph import Node
from ..recurrence import Recurrence
from ._parts import Cell, _check_choice, affine, builder, input_sequence, readout
from ._parts import cell_options as cell_options_of
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


LENGTH_INPUTS = ("remaining", "total")


def length_output(rec: Recurrence, h_before: Node, tau: Node, max_length: int) -> Node:
    """The extra output predicting the length τ (the third way of section 10.2.3), read from the
    state before the first step, ``h(0)``::

        o_tau = c_tau + V_tau h(0),    P(τ = j) = softmax(o_tau)_j,   j = 0 … max_length
        L_tau = −log P(τ)                                    (at the first step only)

    (class 0 is no length; nothing trains it up.) ``h_before`` is the state's read ``h(t−1)``,
    so ``o_tau`` is computed at every step but only ``L_tau(1)`` counts. With ``h(0) = 0`` this is
    the distribution ``softmax(c_tau)`` of lengths; a context or carried ``h(0)`` conditions it.
    ``tau`` is the context holding the sequence's length (int64). Declares the output ``o_tau``,
    the loss ``L_tau`` and params ``V_tau`` (max_length+1 × n), ``c_tau`` (max_length+1)."""
    o_tau = rec.output("o_tau", affine(rec, max_length + 1, "c_tau", {"V_tau": h_before}))
    rec.loss("L_tau", ops.cross_entropy(o_tau, tau), steps="first")
    return o_tau


@builder
def language_model(vocab: int, n_hidden: int, *, cell: str = "rnn", stop: bool = False,
                   max_length: int | None = None, length_input: str = "remaining",
                   carry: bool = False, dtype: Any = np.float64, **cell_options: Any
                   ) -> Recurrence:
    """A language model over ``vocab`` symbols: step t reads the symbol ``x(t)`` (an integer id,
    one-hot inside), updates the cell (``"rnn"``, ``"lstm"``, ``"gru"``, ``"leaky"``,
    ``"skip"``; ``cell_options`` such as ``variant`` go to it) and predicts the next symbol::

        o(t) = c + V h(t),    L(t) = −log softmax(o(t))_{y(t)},   y(t) = x(t+1)

    ``stop=True`` adds the Bernoulli stop output (``stop_output``). ``max_length=K`` instead adds
    the output predicting the length τ ≤ K (``length_output``; the context ``tau``) and tells
    every step where it is: the cell reads ``[1_{x(t)}; 1_{τ−t}]``, the one-hot number of steps
    that remain after this one, fed as the sequence ``remaining`` (``length_input="remaining"``),
    or ``[1_{x(t)}; 1_τ]`` (``"total"``), so that it knows when the end is near. Sequences ``x``
    and ``y`` (τ, [batch]) int64; ``encode`` builds them (and ``end``, or ``remaining`` and
    ``tau``, and ``mask``) from symbol lists. Unfolded with ``mask=True`` over a padded batch,
    the loss is ``L = Σ_t mask(t) (L(t) [+ L_stop(t)]) [+ L_tau]`` summed over the examples.

    Params: ``U`` (n×(vocab [+ K or K+1])): its first ``vocab`` columns read ``x(t)``, the rest
    the one-hot length input; the cell's ``W``, ``b`` and gates; ``V`` (vocab×n), ``c``; and
    ``V_s``, ``c_s`` (stop) or ``V_tau``, ``c_tau`` (length).
    """
    _check_choice("cell", cell, tuple(CELLS))
    stop = arguments.flag("language_model: stop", stop)
    _check_choice("length_input", length_input, LENGTH_INPUTS)
    if max_length is not None and stop:
        raise UnfoldValueError("language_model: max_length (predicting τ) and stop=True (a stop "
                               "output) are two ways of ending a sequence; choose one")
    if max_length is not None:
        max_length = arguments.positive_int("language_model: max_length", max_length)
    rec = Recurrence(f"language_model_{cell}" + ("_length" if max_length else ""))
    x = input_sequence(rec, vocab, "tokens", dtype)
    if max_length is not None:
        tau = rec.context("tau", (), np.int64)
        told = ops.one_hot(rec.sequence("remaining", (), np.int64), max_length, dtype) \
            if length_input == "remaining" else ops.one_hot(tau, max_length + 1, dtype)
        x = ops.concat([x, told], axis=0)
    h = CELLS[cell](rec, x, n_hidden, carry=carry,
                    **cell_options_of("language_model", CELLS[cell], cell_options, ("carry",)))
    readout(rec, h, vocab)
    if stop:
        stop_output(rec, h)
    if max_length is not None:
        length_output(rec, rec.past("h", 1), tau, max_length)
    return rec


def encode(sequences: Sequence[Sequence[int]], start: int, end: int | None = None,
           lengths: bool = False) -> dict[str, np.ndarray]:
    """Training arrays for a batch of symbol sequences of different lengths, padded to the
    longest, with the ``mask`` of ``rec.unfold(τ, mask=True)`` (1 on real steps)::

        with an end symbol:   x = start s₁ … s_L     y = s₁ … s_L end     (τ = L + 1)
        with a stop output:   x = start s₁ … s_{L−1} y = s₁ … s_L         end = 0 … 0 1
        predicting τ:         x = start s₁ … s_{L−1} y = s₁ … s_L         remaining = L−1 … 0

    Returns ``{"x", "y", "mask"}`` (τ, batch) and, without an end symbol, ``"end"`` (τ, batch)
    — or, with ``lengths=True``, ``"remaining"`` (τ, batch) and ``"tau"`` (batch,) = L."""
    start = arguments.positive_int("encode: start (a symbol)", start, minimum=0)
    lengths = arguments.flag("encode: lengths", lengths)
    end = None if end is None else arguments.positive_int("encode: end (a symbol)", end,
                                                           minimum=0)
    sequences = [_symbols(s) for s in _symbols(sequences, nested=True)]
    if not sequences or any(len(s) == 0 for s in sequences):
        raise UnfoldValueError("encode: give at least one sequence, each of at least one "
                               "symbol")
    if lengths and end is not None:
        raise UnfoldValueError("encode: lengths=True (a model predicting τ) has no end symbol")
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
    if lengths:
        size = np.array([len(s) for s in sequences], np.int64)
        out["tau"] = size
        out["remaining"] = np.maximum(size[None, :] - 1 - np.arange(steps)[:, None], 0)
    elif not with_end:
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
