"""The networks of chapter 10 as builders: each returns an ordinary ``unfold.Recurrence`` (draw
it, change it, unfold it) — or, for the structured models, a ``Recursive`` net or an
``EncoderDecoder`` of two recurrences — with parameters named in the book's notation and the
book's equations in its docstring. What a builder built records how (``model.spec``), so that
``rebuild(model.spec)`` makes it again (what a saved model is restored with).

    rec = unfold.models.lstm(n_in=8, n_hidden=16, n_out=8)
    net = rec.unfold(20)
    loss, *grads = unfold.evaluate([net.loss, *unfold.grad(net.loss, net.params)], feed)

==========================  ==========================================================
``rnn``                     Fig. 10.3, eqs. 10.8–10.11 (cross-entropy or squared error)
``rnn_single_output``       Fig. 10.5: one output, at the end
``output_to_hidden``        Fig. 10.4: recurrence through the output only
``teacher_forcing``         Fig. 10.6: train / free-running / scheduled-sampling modes
``context_rnn``             Fig. 10.9: a fixed context vector x through R
``conditional_rnn``         Fig. 10.10: an input sequence, previous target fed back
``lstm``                    Fig. 10.16, eqs. 10.40–10.44 (book and common variants)
``gru``                     eqs. 10.45–10.47 (book, common and PyTorch's reset_after variants)
``leaky_rnn``               section 10.9.2: leaky units with time constant α
``skip_rnn``                sections 10.9.1, 10.9.3: delay-d connections, length-one removed
``language_model``          section 10.2.3: end symbol or Bernoulli stop output
``bidirectional``           Fig. 10.11: h forward and g backward in time, any cell
``encoder_decoder``         Fig. 10.12: encoder, context C, decoder of another length
``deep_rnn``                Fig. 10.13: stacked layers of any cell, MLPs in all three maps
``echo_state``              section 10.8: fixed random reservoir, learned readout
``memory_network``          Fig. 10.18: a controller reading and writing memory cells
``recursive_net``           Fig. 10.14: a tree of shared-weight combinations (``Tree``)
==========================  ==========================================================
"""
from __future__ import annotations

from ._parts import (BUILDERS, FEEDBACKS, INPUTS, LOSSES, MODES, OUTPUTS, Scope, affine, chain,
                     fed_back, new_state, readout, rebuild, scheduled_mask)
from .bidirectional import bidirectional
from .conditioning import conditional_rnn, context_rnn
from .deep import deep_rnn
from .encoder_decoder import CONTEXTS, EncoderDecoder, encoder_decoder, teacher_forced
from .echo_state import echo_state, echo_state_cell, reservoir, ridge_readout
from .gated import gru, gru_cell, lstm, lstm_cell
from .memory import memory_network
from .recursive import Recursive, Tree, UnfoldedTree, recursive_net
from .rnn import output_to_hidden, rnn, rnn_cell, rnn_single_output
from .sequence_length import CELLS, encode, language_model, stop_output
from .teacher_forcing import teacher_forcing
from .time_scales import leaky_cell, leaky_rnn, skip_cell, skip_rnn

__all__ = ["rnn", "rnn_single_output", "output_to_hidden", "teacher_forcing", "context_rnn",
           "conditional_rnn", "lstm", "gru", "leaky_rnn", "skip_rnn", "language_model",
           "deep_rnn", "bidirectional", "encoder_decoder", "EncoderDecoder", "teacher_forced",
           "echo_state", "echo_state_cell", "reservoir", "ridge_readout", "memory_network",
           "recursive_net", "Recursive", "Tree", "UnfoldedTree",
           "encode", "scheduled_mask", "rnn_cell", "lstm_cell", "gru_cell", "leaky_cell",
           "skip_cell", "stop_output", "chain", "affine", "readout", "new_state", "fed_back",
           "Scope", "rebuild", "BUILDERS", "CELLS", "CONTEXTS", "LOSSES", "MODES", "FEEDBACKS", "INPUTS", "OUTPUTS"]
