"""Random valid recurrences, and the check of one against finite differences.

``recurrences()`` draws RNN-like bodies ``f(b + W h + U x [+ S h(t−d)])`` (optionally gated);
``cells()`` draws a step body as a random DAG the way people write cells — a stacked matrix over
``concat([x, h])`` or over ``h`` and ``x`` separately, slices of the pre-activation (covering it or
not, overlapping, in any order, of width 1, strided), σ / tanh / relu / softsign / a hand-written
``1 / (1 + exp(−a))`` on the whole vector or on slices, products and sums of slices (``f ⊙ s +
i ⊙ g``, ``(1 − u) ⊙ h + u ⊙ c``, ``W (r ⊙ h)``), several states of different sizes reading each
other, delays, outputs reading intermediates, losses at some steps.
"""
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
    counts, dtypes, flags = _checked("recurrences", (max_states, max_size, max_steps, max_batch),
                                     dtypes, feedback=feedback, delays=delays, backward=backward,
                                     contexts=contexts, loss_steps=loss_steps)
    return _recurrences(*counts, dtypes, *flags)


def _checked(strategy: str, counts: tuple, dtypes: Any, **flags: Any) -> tuple[list, tuple, list]:
    """The arguments of a strategy, refused with a message when wrong: the counts (max_states,
    max_size, max_steps, max_batch) positive, the dtypes a non-empty tuple of float dtypes, the
    flags booleans."""
    names = ("max_states", "max_size", "max_steps", "max_batch")
    counts = [arguments.positive_int(f"{strategy}: {what}", n) for what, n in zip(names, counts)]
    if isinstance(dtypes, (str, bytes)) or not isinstance(dtypes, (tuple, list)) or not dtypes:
        raise UnfoldValueError(f"{strategy}: dtypes must be a non-empty tuple of float dtypes, "
                               f"got {dtypes!r}")
    dtypes = tuple(arguments.float_dtype(f"{strategy}: dtypes", d) for d in dtypes)
    return counts, dtypes, [arguments.flag(f"{strategy}: {what}", v) for what, v in flags.items()]


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


_ACTIVATIONS = {
    "identity": lambda a: a,
    "tanh": ops.tanh,
    "sigmoid": ops.sigmoid,
    "relu": ops.relu,
    "softsign": lambda a: a / (1 + ops.abs(a)),
    "hand sigmoid": lambda a: 1 / (1 + ops.exp(-a)),
}
_GATES = ("sigmoid", "hand sigmoid")


def cells(max_states: int = 3, max_size: int = 4, max_steps: int = 6, max_batch: int = 3,
          dtypes: tuple = (np.float64,), activations: tuple = tuple(_ACTIVATIONS),
          backward: bool = True, delays: bool = True, loss_steps: bool = True,
          products: bool = True) -> st.SearchStrategy[RandomRecurrence]:
    """Random recurrences whose step body is a random DAG written the way people write cells.

    Each of 1…``max_states`` states (sizes 1…``max_size``; forward, or ``backward`` in time after
    the first) is updated from a pre-activation ``a = M concat([x, h, …]) + b`` or ``a = Σ W_j
    src_j + b`` over its own previous value, other states' previous or new values, an optional
    GRU-style reset ``r ⊙ h`` inside the matmul and an optional delay ``h(t−d)``; ``a`` is wider
    than the state (up to 4 parts, plus spare rows) and cut into windows at random offsets
    (overlapping, in any order, not covering all of ``a``; width-1 broadcast gates, strided
    slices, concatenations of narrow slices), each activated after slicing or cut from one
    activated vector. The windows are combined by one of: a window itself, a product or sum of
    two, an LSTM cell ``f ⊙ s + i ⊙ g``, a GRU mix ``(1 − u) ⊙ h + u ⊙ c``, ``o ⊙ tanh(s(t))`` of
    an earlier state's new value, or a random tree of ``+ − ⊙``. One or two outputs read states
    and intermediates; a squared-error or cross-entropy loss on one of them, at every step or (with
    ``loss_steps``) at drawn steps, plus sometimes a second loss on an intermediate. ``activations``
    limits the nonlinearities (e.g. without ``"relu"`` for a finite-difference check); without
    ``products`` no two windows are multiplied (only sums of windows and ``window ⊙ h``). Examples are
    small (sizes ≤ 4, τ ≤ 6) so that each costs milliseconds.
    """
    counts, dtypes, flags = _checked("cells", (max_states, max_size, max_steps, max_batch),
                                     dtypes, backward=backward, delays=delays,
                                     loss_steps=loss_steps, products=products)
    if isinstance(activations, str) or not isinstance(activations, (tuple, list)) or \
            not activations or any(a not in _ACTIVATIONS for a in activations):
        raise UnfoldValueError(f"cells: activations must be a non-empty tuple of names from "
                               f"{sorted(_ACTIVATIONS)}, got {activations!r}")
    return _cells(*counts, dtypes, tuple(activations), *flags)


class _Body:
    """The drawing of one cell: the recurrence, what was drawn, and fresh parameter names."""

    def __init__(self, draw, rec: Recurrence, dtype: np.dtype, activations: tuple):
        self.draw, self.rec, self.dtype, self.activations = draw, rec, dtype, activations
        self.desc: dict[str, Any] = {}
        self.count = 0

    def param(self, letter: str, shape: tuple) -> Node:
        self.count += 1
        return self.rec.param(f"{letter}{self.count}", shape, self.dtype)

    def act(self, a: Node, gates: bool = False) -> tuple[str, Node]:
        names = [n for n in self.activations if n in _GATES] if gates else []
        name = self.draw(st.sampled_from(names or list(self.activations)))
        return name, _ACTIVATIONS[name](a)

    def preactivation(self, sources: list[Node], width: int, what: str) -> Node:
        """``M concat(sources) + b`` or ``Σ W_j src_j + b`` of ``width`` rows."""
        draw = self.draw
        names = [_name(s) for s in sources]
        if len(sources) > 1 and draw(st.booleans()):
            joined = ops.concat(sources)
            a = self.param("M", (width, joined.shape[0])) @ joined
            self.desc[what] = f"M concat({', '.join(names)}), {width} rows"
        else:
            a = None
            for src in sources:
                term = self.param("W", (width, src.shape[0])) @ src
                a = term if a is None else a + term
            self.desc[what] = " + ".join(f"W {n}" for n in names) + f", {width} rows"
        if draw(st.booleans()):
            a = a + self.param("b", (width,))
            self.desc[what] += " + b"
        return a

    def windows(self, a: Node, n: int, count: int, what: str) -> list[Node]:
        """``count`` vectors of width ``n`` cut from ``a``: windows at random offsets, activated
        after slicing or cut from one activated vector; now and then a strided slice, a
        concatenation of narrow slices, or a width-1 (broadcast) window."""
        draw, width = self.draw, a.shape[0]
        whole = None
        if draw(st.booleans()):
            name, whole = self.act(a)
            self.desc[f"{what} act before slicing"] = name
        out, cuts = [], []
        for c in range(count):                           # (the first is never a width-1 one)
            kind = draw(st.sampled_from(["window", "window", "window", "strided", "concat"]
                                        + ["one"] * (c > 0)))
            source = whole if whole is not None else a
            if kind == "strided" and width >= 2 * n - 1 + 1 and n > 1:
                start = draw(st.integers(0, width - 2 * n + 1))
                part, cut = source[start:start + 2 * n - 1:2], f"{start}:{start + 2 * n - 1}:2"
            elif kind == "concat" and n > 1:
                split = draw(st.integers(1, n - 1))
                i = draw(st.integers(0, width - split))
                j = draw(st.integers(0, width - (n - split)))
                part = ops.concat([source[i:i + split], source[j:j + n - split]])
                cut = f"concat({i}:{i + split}, {j}:{j + n - split})"
            elif kind == "one" and n > 1:
                i = draw(st.integers(0, width - 1))
                part, cut = source[i:i + 1], f"{i}:{i + 1}"
            else:
                i = draw(st.integers(0, width - n))
                part, cut = source[i:i + n], f"{i}:{i + n}"
            if whole is None:
                name, part = self.act(part)
                cut = f"{name}(a[{cut}])"
            out.append(part)
            cuts.append(cut)
        self.desc[f"{what} windows"] = cuts
        return out


@st.composite
def _cells(draw, max_states: int, max_size: int, max_steps: int, max_batch: int,
           dtypes: tuple, activations: tuple, backward: bool, delays: bool, loss_steps: bool,
           products: bool) -> RandomRecurrence:
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    m = draw(st.integers(1, max_size))
    steps = draw(st.integers(1, max_steps))
    batch = draw(st.none() | st.integers(1, max_batch))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    rec = Recurrence("cell")
    body = _Body(draw, rec, dtype, activations)
    x = rec.sequence("x", (m,), dtype)
    desc = body.desc
    desc.update(m=m, steps=steps, batch=batch, seed=seed, dtype=str(dtype))
    states: list[tuple[Node, bool]] = []                 # (previous value, backward)
    new: list[tuple[Node, bool]] = []                    # (new value, backward)
    inner: list[Node] = []                               # intermediates outputs may read
    names: list[str] = []                                # (what each is, for the description)
    for i in range(draw(st.integers(1, max_states))):
        n = draw(st.integers(1, max_size))
        back = backward and i > 0 and draw(st.booleans())
        init = rec.param(f"h{i}_0", (n,), dtype) if draw(st.booleans()) else None
        h = rec.state(f"h{i}", (n,), init=init, dtype=dtype, backward=back)
        states.append((h, back))
        desc[f"h{i}"] = (n, "backward" if back else "forward",
                         "learned h0" if init is not None else "zero h0")
        # what the update may read: x, its own h, same-direction previous values, new values of
        # earlier forward states (a forward state never reads a backward one)
        others = [p for p, b in states[:-1] if b == back and draw(st.booleans())] + \
                 [v for v, b in new if not b or back if draw(st.booleans())]
        hidden = h
        if draw(st.booleans()):                          # GRU: r ⊙ h inside the matmul
            ra = body.preactivation([x, h], n, f"h{i} reset")
            r = _ACTIVATIONS[draw(st.sampled_from([a for a in activations if a in _GATES]
                                                  or list(activations)))](ra)
            hidden = r * h
            inner.append(r)
            names.append(f"r{i}")
            desc[f"h{i} reset"] = True
        sources = [x, hidden] + others
        if delays and draw(st.booleans()):
            d = draw(st.integers(2, 3))
            sources.append(rec.past(h, d))
            desc[f"h{i} delay"] = d
        sources = draw(st.permutations(sources))
        parts = draw(st.integers(1, 4))
        width = n * parts + draw(st.integers(0, 2))
        a = body.preactivation(sources, width, f"h{i} a")
        inner.append(a)
        names.append(f"a{i}")
        w = body.windows(a, n, draw(st.integers(2, 4)), f"h{i}")
        inner.extend(w)
        names.extend(f"h{i} window {c}" for c in range(len(w)))
        pool = w + [h] + [ops.tanh(v) for v, b in new if v.shape == (n,) and (not b or back)]
        how = draw(st.sampled_from(["window", "product", "sum", "lstm", "gru", "o tanh(s)",
                                    "tree", "tree"] if products else
                                   ["window", "sum", "gated", "tree", "tree"]))
        if how == "window":
            value = w[0]
        elif how == "product":
            value = w[0] * w[1]
        elif how == "sum":
            value = w[0] + w[1]
        elif how == "lstm":
            value = w[0] * h + w[1] * (w[2] if len(w) > 2 else w[0])
        elif how == "gru":
            value = (1 - w[0]) * h + w[0] * w[1]
        elif how == "o tanh(s)" and len(pool) > len(w) + 1:
            value = w[0] * pool[-1]
        elif how == "gated":
            value = w[0] * h + w[1]
        else:
            how = "tree"
            value = draw(st.sampled_from(pool))
            for _ in range(draw(st.integers(1, 3))):
                other = draw(st.sampled_from(pool))
                op = draw(st.sampled_from(["+", "-", "*"] if products else ["+", "-", "* h"]))
                value = value + other if op == "+" else value - other if op == "-" \
                    else value * h if op == "* h" else value * other
        if value.shape != (n,):                          # a tree of width-1 gates only
            value = value * w[0]
        desc[f"h{i} update"] = how
        if draw(st.booleans()):
            name, value = body.act(value)
            desc[f"h{i} final act"] = name
        new.append((rec.update(h, value), back))
    outputs = []
    for j in range(draw(st.integers(1, 2))):
        k = draw(st.integers(2, max_size + 1))
        readable = [v for v, _ in new] + inner
        reads = draw(st.lists(st.integers(0, len(readable) - 1), min_size=1, max_size=3))
        o = rec.param(f"c{j}", (k,), dtype)
        for r in reads:
            o = o + body.param("V", (k, readable[r].shape[0])) @ readable[r]
        outputs.append(rec.output(f"o{j}", o))
        desc[f"o{j}"] = (k, [f"h{r}(t)" if r < len(new) else names[r - len(new)]
                             for r in reads])
    shape = (steps,) if batch is None else (steps, batch)
    at = None
    if loss_steps:
        at = draw(st.none() | st.just("last") | st.lists(st.integers(1, steps), min_size=1,
                                                           unique=True).map(sorted))
        desc["loss steps"] = at
    o = draw(st.sampled_from(outputs))
    k = o.shape[0]
    feed: dict[str, np.ndarray] = {"x": rng.uniform(-1, 1, shape + (m,)).astype(dtype)}
    if draw(st.booleans()):
        rec.loss("L", ops.cross_entropy(o, rec.target("y", (), np.int64)), steps=at)
        feed["y"] = rng.integers(0, k, size=shape)
        desc["loss"] = "cross_entropy"
    else:
        rec.loss("L", ops.mse(o, rec.target("y", (k,), dtype), reduction="sum"), steps=at)
        feed["y"] = rng.uniform(-1, 1, size=shape + (k,)).astype(dtype)
        desc["loss"] = "mse"
    if draw(st.booleans()):                  # a second loss, Σ v², on a state or an intermediate
        which = draw(st.integers(0, len(new) + len(inner) - 1))
        v = new[which][0] if which < len(new) else inner[which - len(new)]
        rec.loss("L_inner", ops.sum(v * v), steps=draw(st.none() | st.just("last")))
        desc["inner loss"] = f"h{which}(t)" if which < len(new) else names[which - len(new)]
    for name, node in rec.params.items():
        fan_in = node.shape[-1] if node.ndim == 2 else 1
        feed[name] = (rng.standard_normal(node.shape) / np.sqrt(fan_in)).astype(dtype)
    return RandomRecurrence(rec, steps, batch, dtype, feed, desc)


def _name(node: Node) -> str:
    """How a source of a pre-activation reads in a description: x, h0 (its previous value),
    past(h0, 2), r ⊙ h0, h1(t) (a new value)."""
    if node.op.name == "state":
        d = node.attrs.get("delay", 1)
        return node.name if d == 1 else f"past({node.name}, {d})"
    if node.op.name in ("mul", "multiply"):
        return f"r ⊙ {_name(node.inputs[1])}"
    return node.name if node.name == "x" else f"{node.name}(t)"


def _is_backward(rec: Recurrence, value: Node) -> bool:
    return any(s.value is value and s.backward for s in rec.states.values())
