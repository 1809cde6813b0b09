"""Random valid recurrences, and the check of one against finite differences."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from .. import arguments, ops
from ..errors import UnfoldTypeError, UnfoldValueError
from ..graph import Node
from ..recurrence import Recurrence, Unfolded
from . import GradcheckReport, gradcheck

_NONLINEAR = {
    "tanh": ops.tanh,
    "sigmoid": ops.sigmoid,
    "softsign": lambda a: a / (1 + ops.sqrt(1 + a * a)),
}


@dataclass
class RandomRecurrence:
    """A drawn recurrence with everything needed to run it: τ, a feed (by name; sequences of
    shape (τ, …) or (τ, batch, …)) and what was drawn."""

    recurrence: Recurrence
    steps: int
    batch: int | None
    dtype: np.dtype
    feed: dict[str, np.ndarray]
    description: dict[str, Any] = field(default_factory=dict)

    def unfold(self, **kwargs: Any) -> Unfolded:
        return self.recurrence.unfold(self.steps, **kwargs)

    def __repr__(self) -> str:
        return f"RandomRecurrence({self.description})"


def check_gradients(drawn: RandomRecurrence, inputs: bool = True, **tolerances: Any
                    ) -> GradcheckReport:
    """Gradcheck a drawn (float64) recurrence's total loss with respect to every parameter and,
    with ``inputs``, every step copy ``x(t)`` of its input sequence."""
    if not isinstance(drawn, RandomRecurrence):
        raise UnfoldTypeError(f"gradcheck_recurrence checks a recurrence drawn by "
                              f"unfold.testing.strategies.recurrences(), got "
                              f"{type(drawn).__name__}")
    inputs = arguments.flag("gradcheck_recurrence: inputs", inputs)
    g = drawn.unfold()
    wrt = list(g.params)
    if inputs:
        wrt += [c for c in g.over_time("x")]
    return gradcheck(g.loss, wrt, drawn.feed, **tolerances)


def recurrences(max_states: int = 2, max_size: int = 3, max_steps: int = 5, max_batch: int = 3,
                dtypes: tuple = (np.float64,), feedback: bool = True, delays: bool = True,
                backward: bool = True, contexts: bool = True, loss_steps: bool = False
                ) -> st.SearchStrategy[RandomRecurrence]:
    """Random valid recurrences: 1…``max_states`` states (forward, or backward in time as in a
    bidirectional RNN), random sizes and nonlinearities, optional gating, skip connections through
    time (delays > 1), output fed back into the next step, a context vector, learned or zero
    initial states; a squared-error or cross-entropy loss; random τ, batch and dtype. With
    ``loss_steps`` the loss is taken at some steps only (every step, the last, or a drawn set)."""
    counts = [arguments.positive_int(f"recurrences: {what}", n) for what, n in
              (("max_states", max_states), ("max_size", max_size), ("max_steps", max_steps),
               ("max_batch", max_batch))]
    if isinstance(dtypes, (str, bytes)) or not isinstance(dtypes, (tuple, list)) or not dtypes:
        raise UnfoldValueError(f"recurrences: dtypes must be a non-empty tuple of float dtypes, "
                               f"got {dtypes!r}")
    dtypes = tuple(arguments.float_dtype("recurrences: dtypes", d) for d in dtypes)
    flags = [arguments.flag(f"recurrences: {what}", v) for what, v in
             (("feedback", feedback), ("delays", delays), ("backward", backward),
              ("contexts", contexts), ("loss_steps", loss_steps))]
    return _recurrences(*counts, dtypes, *flags)


@st.composite
def _recurrences(draw, max_states: int, max_size: int, max_steps: int, max_batch: int,
                 dtypes: tuple, feedback: bool, delays: bool, backward: bool, contexts: bool,
                 loss_steps: bool) -> RandomRecurrence:
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    m = draw(st.integers(1, max_size))
    k = draw(st.integers(2, max_size + 1))
    steps = draw(st.integers(1, max_steps))
    batch = draw(st.none() | st.integers(1, max_batch))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    rec = Recurrence("random")
    x = rec.sequence("x", (m,), dtype)
    desc: dict[str, Any] = {"m": m, "k": k, "steps": steps, "batch": batch, "seed": seed,
                            "dtype": str(dtype)}
    drive = []                                          # terms every state update may read
    if contexts and draw(st.booleans()):
        desc["context"] = True
        drive.append((rec.context("z", (2,), dtype), "R"))
    fed_back = None
    if feedback and draw(st.booleans()):
        desc["feedback"] = True
        fed_back = rec.state("o_prev", (k,), dtype=dtype)
        drive.append((fed_back, "F"))

    updates = []
    for i in range(draw(st.integers(1, max_states))):
        n = draw(st.integers(1, max_size))
        back = backward and i > 0 and fed_back is None and draw(st.booleans())
        init = rec.param(f"h{i}_0", (n,), dtype) if draw(st.booleans()) else None
        h = rec.state(f"h{i}", (n,), init=init, dtype=dtype, backward=back)
        f = _NONLINEAR[draw(st.sampled_from(sorted(_NONLINEAR)))]
        a = rec.param(f"b{i}", (n,), dtype) + rec.param(f"W{i}", (n, n), dtype) @ h \
            + rec.param(f"U{i}", (n, m), dtype) @ x
        if delays and draw(st.booleans()):
            d = draw(st.integers(2, 3))
            a = a + rec.param(f"S{i}", (n, n), dtype) @ rec.past(h, d)
            desc[f"h{i}.delay"] = d
        for j, (node, letter) in enumerate(drive):
            a = a + rec.param(f"{letter}{i}", (n, node.shape[0]), dtype) @ node
        for j, (prev, _) in enumerate(updates):         # forward states feed later ones
            if not _is_backward(rec, prev):
                a = a + rec.param(f"C{i}{j}", (n, prev.shape[0]), dtype) @ prev
        new = f(a)
        if draw(st.booleans()):                         # a gate, as in leaky and gated units
            gate = ops.sigmoid(rec.param(f"Ug{i}", (n, m), dtype) @ x)
            new = gate * h + (1 - gate) * new
            desc[f"h{i}.gated"] = True
        updates.append((rec.update(h, new), back))
        desc[f"h{i}"] = (n, "backward" if back else "forward", "learned h0" if init is not None
                         else "zero h0")
    o = rec.param("c", (k,), dtype)
    for i, (value, _) in enumerate(updates):
        o = o + rec.param(f"V{i}", (k, value.shape[0]), dtype) @ value
    o = rec.output("o", o)
    if fed_back is not None:
        rec.update(fed_back, ops.tanh(o))
    shape = (steps,) if batch is None else (steps, batch)
    at = None
    if loss_steps:
        at = draw(st.none() | st.just("last") | st.lists(st.integers(1, steps), min_size=1,
                                                           unique=True).map(sorted))
        desc["loss steps"] = at
    if draw(st.booleans()):
        y = rec.target("y", (), np.int64)
        rec.loss("L", ops.cross_entropy(o, y), steps=at)
        feed_y = rng.integers(0, k, size=shape)
        desc["loss"] = "cross_entropy"
    else:
        y = rec.target("y", (k,), dtype)
        rec.loss("L", ops.mse(o, y, reduction="sum"), steps=at)
        feed_y = rng.uniform(-1, 1, size=shape + (k,)).astype(dtype)
        desc["loss"] = "mse"
    feed: dict[str, np.ndarray] = {"x": rng.uniform(-1, 1, shape + (m,)).astype(dtype),
                                   "y": feed_y}
    for name, node in rec.contexts.items():
        feed[name] = rng.uniform(-1, 1, (node.shape if batch is None else
                                         (batch,) + node.shape)).astype(dtype)
    for name, node in rec.params.items():
        fan_in = node.shape[-1] if node.ndim == 2 else 1
        feed[name] = (rng.standard_normal(node.shape) / np.sqrt(fan_in)).astype(dtype)
    return RandomRecurrence(rec, steps, batch, dtype, feed, desc)


def _is_backward(rec: Recurrence, value: Node) -> bool:
    return any(s.value is value and s.backward for s in rec.states.values())
