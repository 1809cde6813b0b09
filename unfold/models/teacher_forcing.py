"""Teacher forcing (Fig. 10.6): one set of parameters, two ways of closing the loop."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..recurrence import Recurrence
from ._parts import as_feedback, builder, fed_back, input_sequence, one_hot_like
from .rnn import output_step


@builder
def teacher_forcing(n_in: int, n_hidden: int, n_out: int, *, mode: str = "train",
                    feedback: str = "argmax", loss: str = "cross_entropy",
                    inputs: str = "vectors", carry: bool = False,
                    dtype: Any = np.float64) -> Recurrence:
    """The output-to-hidden network of Fig. 10.4 run as in Fig. 10.6::

        h(t) = tanh(b + W y_prev(t−1) + U x(t))      y_prev(0) = 0
        o(t) = c + V h(t),        L = Σ_t L(t)

    where ``y_prev`` (a state of ``n_out`` units) holds what the step is fed of the previous one:

    * ``mode="train"`` — teacher forcing: the true target, ``y_prev(t) = 1_{y(t)}`` (one-hot of
      the class; ``y(t)`` itself for ``loss="squared_error"``). The steps decouple: each ``L(t)``
      depends on ``h(t)`` only through the data.
    * ``mode="free"`` — test time, the closed loop: the model's own output. For classes the
      output must become a vector of the target's kind: ``feedback="argmax"`` feeds the one-hot
      vector of its most probable class (greedy decoding; no gradient flows through the choice),
      ``feedback="softmax"`` feeds the distribution ``softmax(o(t))`` (differentiable, so training
      in this mode back-propagates through the fed-back outputs). For real targets, ``o(t)``.
      (To feed *sampled* symbols, run the folded step one step at a time: ``unfold.generate``.)
    * ``mode="scheduled"`` — the mix the book mentions (scheduled sampling): a per-step,
      per-example sequence ``z`` of 0/1 chooses what step t is fed, the model's output of step
      t−1 where ``z(t) = 1`` and the truth where ``z(t) = 0`` (states ``y_true`` and
      ``y_model`` hold both; ``y_prev`` names the choice). ``scheduled_mask(τ, batch, p)``
      draws ``z`` with probability ``p`` of feeding the model's output (``p = 0``: train mode,
      ``p = 1``: free running).

    All modes have the same parameters ``U`` (n_hidden×n_in), ``W`` (n_hidden×n_out), ``b``,
    ``V`` (n_out×n_hidden), ``c``: train in one mode, evaluate in another with the same weights.
    """
    rec = Recurrence(f"teacher_forcing_{mode}")
    x = input_sequence(rec, n_in, inputs, dtype)
    fed, close = fed_back(rec, n_out, dtype, mode, carry)
    o = output_step(rec, fed, x, n_hidden, n_out, loss)
    close(one_hot_like(rec.sequences["y"], n_out, dtype), as_feedback(o, loss, feedback))
    return rec
