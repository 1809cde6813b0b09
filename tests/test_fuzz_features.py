"""Differential fuzz of feature combinations the other differential tests leave out.

Each drawn cell (``unfold.testing.recurrences.cells``) is unfolded with a drawn set of options
and asked for more than its loss and gradients: intermediate nodes at several steps at once
(and the same node twice), a reduction over time ``Σ_t v(t)`` and its gradient, gradients with
respect to the streamed history ``h(0), h(−1), …`` (``history=True``) and the values a stream
carries on (``final_history``), gradients of gradients. The time-batched evaluation
(``timebatch.STRICT``: a compiler failure raises) must agree with ``mode="reference"`` to 1e-12
relative in float64 (1e-5 in float32; a sum relative to its terms: tests/timebatch_tolerance.py).
Examples are derandomized (tests/conftest.py); the feed's seed is in each drawn cell's
description, printed with a falsifying example.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import unfold as uf
from unfold import timebatch
from unfold.graph import Node
from unfold.ops.base import is_placeholder
from unfold.testing import gradcheck
from unfold.testing.recurrences import cells
from timebatch_tolerance import assert_agree, compiled_and_reference

pytestmark = pytest.mark.usefixtures("strict")

FEW = max(8, settings().max_examples // 2)        # 12 by default, 150 with HYPOTHESIS_PROFILE=heavy


@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setattr(timebatch, "STRICT", True)


def _inner(rec) -> list[Node]:
    """The folded step's computed nodes (no leaves, no state reads)."""
    return [n for n in rec.body() if n.inputs and not is_placeholder(n)]


def _compare(outputs, feed, dtype, loops: bool) -> None:
    got, want = compiled_and_reference(outputs, feed, loops)
    assert_agree(outputs, got, want, feed, 1e-12 if dtype == np.float64 else 1e-5)


@st.composite
def options(draw, drawn):
    """Options of one unfolding of ``drawn`` and what to ask of it."""
    steps = drawn.steps
    return dict(mask=draw(st.booleans()), truncate=draw(st.sampled_from([None, None, 1, 2])),
                loops=draw(st.booleans()),
                at=draw(st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, steps)),
                                 max_size=4)),
                over_time=draw(st.none() | st.integers(0, 10**6)))


def _lengths_mask(drawn):
    rng = np.random.default_rng(drawn.description["seed"] + 1)
    batch = drawn.batch
    lengths = rng.integers(1, drawn.steps + 1, size=() if batch is None else (batch,))
    t = np.arange(drawn.steps).reshape((drawn.steps,) + (1,) * (batch is not None))
    return (t < lengths).astype(drawn.dtype)


def _asked(g, rec, o) -> list[Node]:
    """Intermediate nodes at drawn steps (the same node at several steps, maybe twice) and a
    reduction over time of one, with its gradient."""
    inner = _inner(rec)
    out = [g.at(inner[i % len(inner)], t) for i, t in o["at"]]
    out += out[:1]                                        # one node asked for twice
    if o["over_time"] is not None:
        v = inner[o["over_time"] % len(inner)]
        total = uf.sum(uf.add_n(g.over_time(v)) if g.steps > 1 else g.at(v, 1))
        out += [total] + uf.grad(total, g.params)
    return out


@settings(max_examples=FEW)
@given(data=st.data(), drawn=cells(max_states=2, max_steps=5))
def test_intermediates_at_several_steps_and_reductions_over_time_agree(data, drawn):
    o = data.draw(options(drawn))
    g = drawn.unfold(mask=o["mask"], truncate=o["truncate"])
    feed = dict(drawn.feed)
    if o["mask"]:
        feed["mask"] = _lengths_mask(drawn)
    outputs = [g.loss] + uf.grad(g.loss, g.params) + _asked(g, drawn.recurrence, o)
    _compare(outputs, feed, drawn.dtype, o["loops"])


@settings(max_examples=FEW)
@given(data=st.data(), drawn=cells(max_states=2, max_steps=5, backward=False,
                                   loss_steps=False))
def test_streamed_history_and_its_gradients_agree(data, drawn):
    """``history=True``: the past is fed (by node, batched like the sequences); the loss's
    gradient with respect to the history inputs and the carried ``final_history`` agree."""
    o = data.draw(options(drawn))
    g = drawn.unfold(history=True, truncate=o["truncate"], mask=o["mask"])
    rec = drawn.recurrence
    feed = dict(drawn.feed)
    if o["mask"]:
        feed["mask"] = _lengths_mask(drawn)
    rng = np.random.default_rng(drawn.description["seed"] + 2)
    past = [p for name in rec.states for p in g.history(name)]
    lead = () if drawn.batch is None else (drawn.batch,)
    for p in past:
        feed[p] = rng.uniform(-1, 1, lead + p.shape).astype(drawn.dtype)
    carried = [v for name in rec.states for v in g.final_history(name)]
    outputs = [g.loss] + uf.grad(g.loss, g.params + past) + carried + _asked(g, rec, o)
    _compare(outputs, feed, drawn.dtype, o["loops"])


@settings(max_examples=max(6, FEW // 2))
@given(drawn=cells(max_states=2, max_size=3, max_steps=4, loss_steps=False))
def test_gradients_of_gradients_agree(drawn):
    """A Hessian-vector product ``∇_θ (vᵀ ∇_θ L)`` (``grad`` of a gradient graph, itself
    tagged by step) through the compiled path."""
    g = drawn.unfold()
    first = uf.grad(g.loss, g.params)
    rng = np.random.default_rng(drawn.description["seed"] + 3)
    projected = [uf.sum(d * uf.constant(rng.uniform(-1, 1, d.shape).astype(drawn.dtype)))
                 for d in first]
    s = projected[0] if len(projected) == 1 else uf.add_n(projected)
    _compare([s] + uf.grad(s, g.params) + first, drawn.feed, drawn.dtype, loops=False)


@settings(max_examples=max(4, FEW // 3))
@given(drawn=cells(max_states=2, max_size=2, max_steps=4, loss_steps=True,
                   activations=("identity", "tanh", "sigmoid", "softsign", "hand sigmoid")))
def test_gradcheck_passes_through_the_compiled_path_on_drawn_cells(drawn):
    """``gradcheck`` evaluates the gradients and the finite differences time-batched (the
    default): both through the compiler, for every parameter and every step of ``x``."""
    g = drawn.unfold()
    assume(np.all(np.abs(uf.evaluate([g.loss], drawn.feed, mode="reference")[0]) < 1e6))
    program = uf.compile(uf.grad(g.loss, g.params))
    program(drawn.feed)
    assert any(p is not None for p in program._batched_plans.values()), \
        "the time-batched compiler gave up on this graph"
    gradcheck(g.loss, g.params + g.over_time("x"), drawn.feed)


@settings(max_examples=max(6, FEW // 2))
@given(drawn=cells(max_states=3, max_steps=5), mask=st.booleans(),
       truncate=st.sampled_from([None, 1, 2]))
def test_generated_unfolding_builds_what_the_loop_builds(drawn, mask, truncate):
    """The batched and the reference evaluations share one unfolded graph, so a wrong graph is
    invisible to them: unfolding's generated step functions (``recurrence.GENERATED``) against
    its loop (``_copy_step``) — the same nodes (op, step, batch flag, shape) and bit-identical
    values, masks and truncation included."""
    from unfold import recurrence
    feed = dict(drawn.feed)
    if mask:
        feed["mask"] = _lengths_mask(drawn)
    built = []
    for generated in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(recurrence, "GENERATED", generated)
            g = drawn.unfold(mask=mask, truncate=truncate)
        outputs = [g.loss] + uf.grad(g.loss, g.params) + \
            [g.final(s) for s in drawn.recurrence.states]
        nodes = sorted((n.op.name, n.step or 0, n.may_batch, n.shape) for n in g.nodes())
        built.append((nodes, uf.evaluate(outputs, feed, mode="reference")))
    (nodes, values), (loop_nodes, loop_values) = built
    assert nodes == loop_nodes
    for a, b in zip(values, loop_values):
        np.testing.assert_array_equal(a, b)
