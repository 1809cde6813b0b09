"""Differential fuzz with cells of many ops: matrix, vector and scalar states.

``wide_cells`` draws a step body as a random shape-preserving expression over ``h(t−1)`` (a
matrix (a, b), a vector or a scalar), ``h(t−d)``, and ``U x(t)`` reshaped to the state's shape
(``x`` vectors, or tokens through ``one_hot`` or ``embedding``): unary functions (tanh, σ, sin,
cos, softsign, e^(−u²), log1p(u²), √(1+u²), relu, clip, softplus, expm1, |u|, stop_gradient,
powers, reciprocals), + − ⊙ max min and u / (1 + v²), broadcasts against parameters of shape
(), (b,) and (a, 1), reductions with keepdims (sum, mean, max, min, logsumexp, var, std, prod)
subtracted or multiplied back, softmax and log_softmax along an axis, reshapes, rotations by
concat of slices, reversed slices, stack and index, where(u > v, …), products with square
matrices from either side, einsum and outer. Parameters are reused at several places and
sometimes enter through step-invariant subexpressions (``tanh(p)``, ``p @ tanh(p)``,
``p + constant``). The loss: cross-entropy or squared error of a readout at every step, the
last or drawn steps, maybe plus ``Σ h(t)²``. Time-batched (``timebatch.STRICT``) against
``mode="reference"`` to 1e-12 relative, with masks, truncation and step loops drawn.

A gradient that is 0 in exact arithmetic (a parameter a softmax is invariant to) is computed
as rounding noise by both paths, differently: gradients are compared norm-wise over the whole
gradient (relative to the largest of all the gradients), forward values element-wise relative
to their own scale (tests/timebatch_tolerance.py).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import unfold as uf
from unfold import timebatch
from timebatch_tolerance import assert_agree, compiled_and_reference

pytestmark = pytest.mark.usefixtures("strict")

FEW = max(10, settings().max_examples)       # 25 by default, 300 with HYPOTHESIS_PROFILE=heavy


@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setattr(timebatch, "STRICT", True)


UNARY = {
    "tanh": uf.tanh, "sigmoid": uf.sigmoid, "sin": uf.sin, "cos": uf.cos,
    "softsign": lambda u: u / (1 + uf.abs(u)), "gauss": lambda u: uf.exp(-(u * u)),
    "log1p2": lambda u: uf.log1p(u * u), "sqrt1": lambda u: uf.sqrt(1 + u * u),
    "relu": uf.relu, "clip": lambda u: uf.clip(u, -1.0, 1.0), "softplus": uf.softplus,
    "expm1t": lambda u: uf.expm1(uf.tanh(u)), "neg": lambda u: -u, "sq": lambda u: u ** 2,
    "stop": uf.stop_gradient, "abs": uf.abs, "scaled": lambda u: 0.5 * u,
    "rdiv": lambda u: 1.0 / (2.0 + uf.tanh(u)),
}
BINARY = {"+": lambda u, v: u + v, "-": lambda u, v: u - v, "*": lambda u, v: u * v,
          "max": uf.maximum, "min": uf.minimum, "div": lambda u, v: u / (1.0 + v * v)}
REDUCE = {"sum": uf.sum, "mean": uf.mean, "max": uf.max, "min": uf.min,
          "logsumexp": uf.logsumexp,
          "std1": lambda u, axis, keepdims: uf.sqrt(uf.var(u, axis, keepdims) + 1.0),
          "prod": lambda u, axis, keepdims: uf.prod(uf.tanh(u), axis, keepdims)}
KINDS = ("unary", "binary", "binary", "bcast", "reduce", "softmax", "shape", "where", "mix")


class _Cell:
    """The drawing of one cell over a state of shape ``S``: parameters (reused or new, maybe
    through a step-invariant subexpression), and the expression, node by node."""

    def __init__(self, draw, rec: uf.Recurrence, S: tuple) -> None:
        self.draw, self.rec, self.S = draw, rec, S
        self.made: dict[tuple, list] = {}
        self.desc: list = []
        self.pool: list = []

    def param(self, shape: tuple):
        draw = self.draw
        if self.made.get(shape) and draw(st.booleans()):
            p = draw(st.sampled_from(self.made[shape]))
        else:
            p = self.rec.param(f"p{len(self.rec.params) + 1}", shape)
            self.made.setdefault(shape, []).append(p)
        c = draw(st.integers(0, 5))
        if c == 0:                                        # a step-invariant subexpression
            return uf.tanh(p) * 1.5
        if c == 1 and len(shape) == 2 and shape[0] == shape[1]:
            return p @ uf.tanh(p)                         # … reading p twice
        if c == 2:
            return p + uf.constant(np.full(shape, 0.25))
        return p

    def mix(self, u):
        """A linear map of the state's shape: W u, u W, einsum, outer, uᵀ, a scalar."""
        S, draw = self.S, self.draw
        if len(S) == 2:
            c = draw(st.sampled_from(["left", "right", "einsum", "T"]))
            if c == "left":
                return self.param((S[0], S[0])) @ u
            if c == "right":
                return u @ self.param((S[1], S[1]))
            if c == "einsum":
                return uf.einsum("ij,jk->ik", u, self.param((S[1], S[1])))
            return uf.transpose(u) if S[0] == S[1] else uf.transpose(uf.transpose(u))
        if len(S) == 1:
            c = draw(st.sampled_from(["W", "outer", "einsum"]))
            if c == "W":
                return self.param((S[0], S[0])) @ u
            if c == "outer":
                return uf.sum(uf.outer(u, self.param((S[0],))), axis=1)
            return uf.einsum("ij,j->i", self.param((S[0], S[0])), u)
        return u * self.param(())

    def node(self, depth: int):
        draw, S = self.draw, self.S
        if depth == 0 or draw(st.integers(0, 3)) == 0:
            base = draw(st.sampled_from(self.pool))
            return self.mix(base) if draw(st.booleans()) else base
        kind = draw(st.sampled_from(KINDS))
        u = self.node(depth - 1)
        if kind == "unary":
            name = draw(st.sampled_from(sorted(UNARY)))
            self.desc.append(name)
            return UNARY[name](u)
        if kind == "binary":
            name = draw(st.sampled_from(sorted(BINARY)))
            self.desc.append(name)
            return BINARY[name](u, self.node(depth - 1))
        if kind == "bcast":
            shape = draw(st.sampled_from([(), S[-1:], S[:1] + (1,) if len(S) == 2 else ()]))
            self.desc.append(f"broadcast {shape}")
            p = self.param(shape)
            return u * p if draw(st.booleans()) else u + p
        if kind == "where":
            self.desc.append("where")
            v = self.node(depth - 1)
            return uf.where(u > v, u, v * 0.5)
        if kind == "mix" or not S:
            return self.mix(u)
        axis = draw(st.integers(0, len(S) - 1))
        if kind == "reduce":
            name = draw(st.sampled_from(sorted(REDUCE)))
            self.desc.append(f"{name} over {axis}")
            r = REDUCE[name](u, axis=axis, keepdims=True)
            return u - r if draw(st.booleans()) else u * r
        if kind == "softmax":
            name = draw(st.sampled_from(["softmax", "log_softmax"]))
            self.desc.append(f"{name} over {axis}")
            return getattr(uf, name)(u, axis=axis)
        how = draw(st.sampled_from(["reshape", "roll", "stack", "reverse", "window"]))
        self.desc.append(f"{how} on {axis}")
        n = S[axis]
        k = draw(st.integers(1, n))

        def at(key):
            return (slice(None),) * axis + (key,)
        if how == "reshape":
            size = int(np.prod(S))
            return uf.reshape(uf.reshape(u, (size,)) * self.param((size,)), S)
        if how == "roll":
            return uf.concat([u[at(slice(k, None))], u[at(slice(0, k))]], axis=axis) \
                if k < n else u
        if how == "stack":
            where = draw(st.integers(0, len(S)))
            both = uf.stack([u, self.node(depth - 1)], axis=where)
            return both[(slice(None),) * where + (draw(st.integers(0, 1)),)]
        if how == "reverse":
            return u[at(slice(None, None, -1))]
        return uf.concat([u, u], axis=axis)[at(slice(k, k + n))]


@st.composite
def wide_cells(draw):
    """A recurrence of one state drawn as above, with its τ, batch, feed, options (mask,
    truncation, loops), a description and the feed's seed."""
    kind = draw(st.sampled_from(["matrix", "vector", "scalar"]))
    S = {"matrix": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
         "vector": (draw(st.integers(1, 4)),), "scalar": ()}[kind]
    size = int(np.prod(S))
    m, steps = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    batch = draw(st.none() | st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    tokens = draw(st.sampled_from([None, "one_hot", "embedding"]))
    rec = uf.Recurrence("wide")
    cell = _Cell(draw, rec, S)
    if tokens:
        ids = rec.sequence("x", (), np.int64)
        x = uf.one_hot(ids, 3) if tokens == "one_hot" else uf.embedding(cell.param((3, 2)), ids)
    else:
        x = rec.sequence("x", (m,))
    h = rec.state("h", S, init=cell.param(S) if draw(st.booleans()) else None)
    u_x = cell.param((size, x.shape[0])) @ x
    cell.pool = [h, uf.reshape(u_x, S) if kind != "vector" else u_x]
    delay = draw(st.none() | st.integers(2, 3))
    if delay:
        cell.pool.append(rec.past(h, delay))
    cell.desc += [kind, S, f"tokens {tokens}", f"delay {delay}"]
    new = rec.update(h, uf.tanh(cell.node(draw(st.integers(1, 4)))))
    k = draw(st.integers(2, 3))
    flat = uf.reshape(new, (size,)) if kind != "vector" else new
    o = rec.output("o", cell.param((k, size)) @ flat + cell.param((k,)))
    at = draw(st.none() | st.just("last") |
              st.lists(st.integers(1, steps), min_size=1, unique=True).map(sorted))
    integer = draw(st.booleans())
    if integer:
        rec.loss("L", uf.cross_entropy(o, rec.target("y", (), np.int64)), steps=at)
    else:
        rec.loss("L", uf.mse(o, rec.target("y", (k,), np.float64), reduction="sum"), steps=at)
    if draw(st.booleans()):
        rec.loss("L2", uf.sum(new * new))
    rng = np.random.default_rng(seed)
    lead = (steps,) if batch is None else (steps, batch)
    feed = {"x": rng.integers(0, 3, lead) if tokens else rng.uniform(-1, 1, lead + (m,)),
            "y": rng.integers(0, k, lead) if integer else rng.uniform(-1, 1, lead + (k,))}
    for name, p in rec.params.items():
        feed[name] = rng.standard_normal(p.shape) / np.sqrt(p.shape[-1] if p.ndim == 2 else 1)
    opts = dict(mask=draw(st.booleans()), truncate=draw(st.sampled_from([None, None, 1, 2])),
                loops=draw(st.booleans()))
    cell.desc.append(opts)
    return rec, steps, batch, feed, opts, cell.desc, seed


def _agree(outputs, got, want, feed, gradients: int) -> None:
    """The loss and forward values relative to their own scale; the ``gradients`` outputs
    after the loss norm-wise over the whole gradient."""
    whole = max((float(np.max(np.abs(w))) for w in want[1:1 + gradients] if w.size),
                default=0.0)
    for i, (node, a, b) in enumerate(zip(outputs, got, want)):
        try:
            assert_agree([node], [a], [b], feed, 1e-12)
        except AssertionError:
            if not 1 <= i <= gradients:
                raise
            err = float(np.max(np.abs(a - b)))
            assert err <= 1e-12 * whole, (f"{node.label}: |compiled − reference| = {err:.3g}, "
                                          f"the gradient's scale {whole:.3g}")


@settings(max_examples=FEW)
@given(wide_cells())
def test_cells_of_many_ops_agree_with_the_reference(case):
    rec, steps, batch, feed, opts, desc, seed = case
    g = rec.unfold(steps, mask=opts["mask"], truncate=opts["truncate"])
    feed = dict(feed)
    if opts["mask"]:
        rng = np.random.default_rng(seed + 1)
        lengths = rng.integers(1, steps + 1, size=() if batch is None else (batch,))
        t = np.arange(steps).reshape((steps,) + (1,) * (batch is not None))
        feed["mask"] = (t < lengths).astype(np.float64)
    grads = uf.grad(g.loss, g.params)
    outputs = [g.loss] + grads + [g.final("h")] + g.over_time("o")
    got, want = compiled_and_reference(outputs, feed, opts["loops"])
    _agree(outputs, got, want, feed, len(grads))
