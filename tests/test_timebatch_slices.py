"""Slices of one vector combined: the time-batched path against the per-node reference.

A recurrence whose step cuts several slices out of one vector ``z`` (``a = W h(t−1) + U x(t)``
through σ or tanh, or not) and adds and multiplies them — the LSTM's and the GRU's gates cut
from one stacked pre-activation, over ``concat([x, h])`` or not — builds its gradient ``∇z`` as a
sum of scatters of the slices' gradients, which the compiler assembles in place
(``lower._place``: each part written into its slice of one slab). The slices drawn here may
overlap, leave part of ``z`` unread, be one element wide, read ``z`` before or after its
activation, and feed a second loss; τ = 1…5, batched or not, loops forced at two steps or not.
Float64, 1e-12 relative (a sum relative to its terms: tests/timebatch_tolerance.py); failures
of the compiler raised (``timebatch.STRICT``).

Regression: the assembled ``∇z``'s slab was laid out with a row per step, yet the ring pass
(``lower._rings``) could still make the class a ring of one row, read back at row 0 by every
step — silent wrong gradients (e.g. ``h(t) = σ(a)[0:2] ⊙ σ(a)[2:4]``: 6e-2 off at τ = 2), or an
uninitialised row (the stacked LSTM's ∇M[0, 0] = −1.5e−310).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import unfold as uf
from unfold import timebatch
from unfold.timebatch import lower
from timebatch_tolerance import assert_agree as agree

pytestmark = pytest.mark.usefixtures("strict")

ACTIVATIONS = {"sigmoid": uf.sigmoid, "tanh": uf.tanh, "none": lambda v: v}


@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setattr(timebatch, "STRICT", True)


def _check(outputs, feed, loops: bool) -> None:
    with pytest.MonkeyPatch.context() as mp:
        if loops:
            mp.setattr(lower, "LOOP_STEPS", 2)
        program = uf.compile(outputs)
        got = program(feed)
        assert any(p is not None for p in program._batched_plans.values()), \
            "the time-batched compiler gave up on this graph"
    want = uf.evaluate(outputs, feed, mode="reference")
    agree(outputs, got, want, feed, 1e-12)


def _feed(rec, steps, batch, rng, m, targets=None):
    lead = () if batch is None else (batch,)
    feed = {name: rng.standard_normal(p.shape) * 0.6 for name, p in rec.params.items()}
    feed["x"] = rng.standard_normal((steps,) + lead + (m,))
    if targets is not None:
        feed["y"] = rng.integers(0, targets, (steps,) + lead)
    return feed


@st.composite
def sliced_cells(draw):
    """A cell ``h(t) = Σ_terms Π_factors act(z)[slice]`` (+ maybe ``h(t−1) ⊙ a slice``), the
    slices of ``z = act(W h(t−1) + U x(t) + b)`` drawn anywhere (overlapping, width n or 1)."""
    n = draw(st.integers(1, 3))
    width = draw(st.integers(n + 1, 4 * n + 1))
    where = draw(st.sampled_from(["whole", "slice"]))     # activation before or after slicing
    act = draw(st.sampled_from(sorted(ACTIVATIONS)))
    concat = draw(st.booleans())
    starts = st.integers(0, width - n)

    def factor():
        one = n > 1 and draw(st.integers(0, 4)) == 0      # a width-1 slice, broadcast
        a = draw(st.integers(0, width - 1)) if one else draw(starts)
        return a, a + (1 if one else n), draw(st.sampled_from(sorted(ACTIVATIONS)))

    terms = draw(st.lists(st.lists(st.builds(factor), min_size=1, max_size=3).filter(
        lambda fs: any(b - a == n for a, b, _ in fs)), min_size=1, max_size=3))
    carry = draw(st.none() | starts)                      # h(t−1) ⊙ z[carry:carry+n]
    extra = draw(st.none() | st.builds(factor))           # a second loss on another slice
    return dict(n=n, width=width, where=where, act=act, concat=concat, terms=terms,
                carry=carry, extra=extra, steps=draw(st.integers(1, 5)),
                batch=draw(st.sampled_from([None, 1, 3])), loops=draw(st.booleans()),
                mask=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


def _build(d, m=2):
    n, width = d["n"], d["width"]
    rec = uf.Recurrence("sliced")
    x = rec.sequence("x", (m,))
    h = rec.state("h", (n,))
    b = rec.param("b", (width,))
    if d["concat"]:
        a = rec.param("M", (width, m + n)) @ uf.concat([x, h]) + b
    else:
        a = rec.param("W", (width, n)) @ h + rec.param("U", (width, m)) @ x + b
    z = ACTIVATIONS[d["act"]](a) if d["where"] == "whole" else a

    def cut(lo, hi, f):
        piece = z[lo:hi]
        return ACTIVATIONS[f](piece) if d["where"] == "slice" else piece

    total = None
    for factors in d["terms"]:
        prod = None
        for lo, hi, f in factors:
            piece = cut(lo, hi, f)
            prod = piece if prod is None else prod * piece
        total = prod if total is None else total + prod
    if d["carry"] is not None:
        total = total + h * cut(d["carry"], d["carry"] + n, "sigmoid")
    h_t = rec.update(h, total)
    loss = uf.sum(h_t * h_t)
    if d["extra"] is not None:
        lo, hi, f = d["extra"]
        loss = loss + uf.sum(cut(lo, hi, f) ** 2)
    rec.loss("L", loss)
    return rec, m


@settings(max_examples=40, deadline=None)
@given(d=sliced_cells())
def test_products_and_sums_of_slices_of_one_vector_agree(d):
    rec, m = _build(d)
    g = rec.unfold(d["steps"], mask=d["mask"])
    rng = np.random.default_rng(d["seed"])
    feed = _feed(rec, d["steps"], d["batch"], rng, m)
    if d["mask"]:
        lead = () if d["batch"] is None else (d["batch"],)
        lengths = rng.integers(1, d["steps"] + 1, size=lead)
        t = np.arange(d["steps"]).reshape((d["steps"],) + (1,) * len(lead))
        feed["mask"] = (t < lengths).astype(np.float64)
    _check([g.loss] + uf.grad(g.loss, g.params) + [g.final("h")], feed, d["loops"])


@pytest.mark.parametrize("steps", [1, 2, 3, 5])
@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("loops", [False, True])
def test_the_product_of_two_halves_of_one_sigmoid_agrees(steps, batch, loops):
    """The first repro: ``h(t) = σ(a)[0:2] ⊙ σ(a)[2:4]``, ``a = W h(t−1) + U x(t)``."""
    rec = uf.Recurrence("r")
    x, h = rec.sequence("x", (3,)), rec.state("h", (2,))
    z = uf.sigmoid(rec.param("W", (4, 2)) @ h + rec.param("U", (4, 3)) @ x)
    rec.loss("L", uf.sum(rec.update(h, z[0:2] * z[2:4]) ** 2))
    g = rec.unfold(steps)
    feed = _feed(rec, steps, batch, np.random.default_rng(1), 3)
    _check([g.loss] + uf.grad(g.loss, g.params), feed, loops)


def _stacked_lstm(n, m, k, preact: bool):
    """An LSTM with one matrix over ``concat([x, h])``, its gates sliced after one σ (``preact``
    False, as tests/viz_judge_models.py's lstm_stacked) or before four."""
    rec = uf.Recurrence("lstm")
    x, y = rec.sequence("x", (m,)), rec.target("y", ())
    h, s = rec.state("h", (n,)), rec.state("s", (n,))
    a = rec.param("M", (4 * n, m + n)) @ uf.concat([x, h]) + rec.param("bm", (4 * n,))
    if preact:
        f, g, q = (uf.sigmoid(a[j * n:(j + 1) * n]) for j in range(3))
        cand = uf.tanh(a[3 * n:])
    else:
        z = uf.sigmoid(a)
        f, g, q, cand = z[0:n], z[n:2 * n], z[2 * n:3 * n], z[3 * n:]
    s_t = rec.update(s, f * s + g * cand)
    h_t = rec.update(h, uf.tanh(s_t) * q)
    rec.loss("L", uf.cross_entropy(rec.param("V", (k, n)) @ h_t + rec.param("c", (k,)), y))
    return rec


def _stacked_gru(n, m, k):
    """A GRU with its update and reset gates cut from one σ over ``concat([x, h])``."""
    rec = uf.Recurrence("gru")
    x, y = rec.sequence("x", (m,)), rec.target("y", ())
    h = rec.state("h", (n,))
    zr = uf.sigmoid(rec.param("M", (2 * n, m + n)) @ uf.concat([x, h]) + rec.param("bm", (2 * n,)))
    u, r = zr[:n], zr[n:]
    cand = uf.tanh(rec.param("C", (n, m + n)) @ uf.concat([x, r * h]) + rec.param("bc", (n,)))
    h_t = rec.update(h, u * h + (1 - u) * cand)
    rec.loss("L", uf.cross_entropy(rec.param("V", (k, n)) @ h_t, y))
    return rec


@pytest.mark.parametrize("steps", [1, 2, 3, 5])
@pytest.mark.parametrize("batch", [None, 2])
@pytest.mark.parametrize("loops", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "lstm_preact", "gru"])
def test_stacked_lstm_and_gru_over_concat_agree(cell, steps, batch, loops):
    n, m, k = 2, 3, 4
    rec = _stacked_gru(n, m, k) if cell == "gru" else _stacked_lstm(n, m, k, cell == "lstm_preact")
    g = rec.unfold(steps)
    feed = _feed(rec, steps, batch, np.random.default_rng(steps), m, targets=k)
    outputs = [g.loss] + uf.grad(g.loss, g.params) + [g.final("h")]
    _check(outputs, feed, loops)


@pytest.mark.parametrize("delay", [2, 3])
@pytest.mark.parametrize("steps_past", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("loops", [False, True])
def test_a_batched_sum_with_a_delay_and_a_bias_agrees(delay, steps_past, batch, loops):
    """Found by the differential fuzz (tests/test_differential.py): ``a = W1 x(t) + W2 h(t−1) +
    W3 h(t−d) + b``, batched, τ = d + 1: the
    members of ``W3 h(t−d) + b`` reading the initial state are unbatched, the last one is
    not; reassociation (distribute.reassociate) rewrote the regular ones and made the class
    unbatched while its kept member wrote a batch into it — the plan crashed. Now a rewrite
    that would change the batch axis of a class with kept members is not made."""
    steps = delay + steps_past - 1
    rec = uf.Recurrence("r")
    x, h = rec.sequence("x", (1,)), rec.state("h", (2,))
    a = rec.param("W1", (3, 1)) @ x + rec.param("W2", (3, 2)) @ h
    a = a + rec.param("W3", (3, 2)) @ rec.past(h, delay) + rec.param("b", (3,))
    new = rec.update(h, uf.tanh(a[0:2]))
    rec.loss("L", uf.sum(new * new) + uf.sum(a[2:3] ** 2))
    g = rec.unfold(steps)
    feed = _feed(rec, steps, batch, np.random.default_rng(delay), 1)
    _check([g.loss] + uf.grad(g.loss, g.params) + [g.final("h")], feed, loops)


def _bench_lstm(extra: str, batch: int | None, steps: int = 9, n: int = 4):
    """The LSTM of bench W2 (gates cut from one stacked ``z``), with ``extra`` readers of its
    forget gate ``f``: none, an element-wise expression over all steps, a sum, an output."""
    rec = uf.Recurrence("stacked")
    x, y = rec.sequence("x", (3,)), rec.target("y", ())
    U, W, b = rec.param("U", (4 * n, 3)), rec.param("W", (4 * n, n)), rec.param("b", (4 * n,))
    V = rec.param("V", (3, n))
    h, s = rec.state("h", (n,)), rec.state("s", (n,))
    z = U @ x + W @ h + b
    i, f, o = (uf.sigmoid(z[j * n:(j + 1) * n]) for j in range(3))
    s_t = rec.update(s, f * s + i * uf.tanh(z[3 * n:]))
    h_t = rec.update(h, o * uf.tanh(s_t))
    loss = uf.cross_entropy(V @ h_t, y)
    if extra == "elementwise":
        loss = loss + uf.sum(f * 2.0 + i)
    elif extra == "sum":
        loss = loss + uf.sum(f)
    rec.loss("L", loss)
    if extra == "output":
        rec.output("f", f)
    net = rec.unfold(steps)
    outputs = [net.loss] + uf.grad(net.loss, net.params)
    if extra == "output":
        outputs += [net.at("f", steps // 2), net.at("f", steps)]
    rng = np.random.default_rng(5)
    feed = {k: rng.standard_normal(p.shape) / 2 for k, p in rec.params.items()}
    lead = (steps, batch) if batch else (steps,)
    feed.update(x=rng.standard_normal(lead + (3,)), y=rng.integers(0, 3, lead))
    return outputs, feed


@pytest.mark.parametrize("batch", [3, 1, None])
@pytest.mark.parametrize("extra", ["none", "elementwise", "sum", "output"])
def test_gates_cut_from_one_vector_agree_whatever_reads_them(extra, batch):
    """On a batch, a step loop's sibling gates get a block each per step (``_siblings``'s
    spread slab: ``(steps, gates, batch, n)``), one σ call writing them side by side, and
    element-wise readers over all steps run on unfolded rows; a reader that must fold steps
    and batch (a sum) keeps the adjacent layout. Every value is the reference's, the plan
    time-batched."""
    outputs, feed = _bench_lstm(extra, batch)
    program = uf.compile(outputs)
    agree(outputs, program(feed), uf.evaluate(outputs, feed, mode="reference"), feed)
    (plan,) = program._batched_plans.values()
    assert plan is not None


def test_the_stacked_lstm_s_forward_loop_multiplies_contiguous_gate_rows():
    """``i ⊙ g``, ``f ⊙ s(t−1)``, ``o ⊙ tanh s`` in the forward loop read C-contiguous rows
    (numpy is 1.5–2× slower on (batch, n) rows strided 3n apart), and one σ call a step
    computes the three gates."""
    import ast
    outputs, feed = _bench_lstm("none", 3)
    program = uf.compile(outputs)
    program(feed)
    (plan,) = program._batched_plans.values()
    space = plan.run_code.__globals__
    rows = {k: v for k, v in space.items() if k[0] == "I" and isinstance(v, list)}
    for loop in [node for node in ast.walk(ast.parse(plan.run_code.source))
                 if isinstance(node, ast.For) and any(
                     space.get(s.value.func.id[1:]) is timebatch.sigmoid for s in node.body)]:
        names = [e.id for e in loop.iter.args if isinstance(e, ast.Name)]
        calls = [(space.get(s.value.func.id[1:]), [a.id for a in s.value.args])
                 for s in loop.body]
        assert [fn for fn, _ in calls].count(timebatch.sigmoid) == 1
        for fn, args in calls:
            if fn is np.multiply:
                for a in args:
                    view = rows[names[int(a[1:])]][0] if a[0] == "r" else space[a[1:]]
                    assert view.flags.c_contiguous, (a, view.shape, view.strides)
