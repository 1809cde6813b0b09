"""Memory and aliasing: what an evaluation returns belongs to the caller.

A returned array must not change when the program is evaluated again, when the caller mutates
an array it fed, or when it mutates another returned array; nothing the caller fed is ever
written (fed arrays are read in place by the time-batched path, ``timebatch/bind.py``); two
programs over the same nodes, evaluated interleaved with different feeds and batch sizes, give
each its own values. Checked for every way a program runs: time-batched (the default),
``mode="reference"`` and ``checkpoint=k`` (both node by node).

Found here (fuzz, session 6): the node-by-node paths returned the caller's own fed arrays (an
output that is an input or a parameter, a step copy ``x(t)``, a dummy copy ``W(t)``) and views
of them (``x[0:2]``, ``reshape(x)``): mutating the feed afterwards changed the "result"
(``evaluate._owned`` copied only read-only arrays). Fixed by the speed helper: an output
sharing memory with a fed array is copied (``evaluate._owned``). Open: a cached time-batched
plan keeps the arrays it read in place alive after the call (strict xfail below).
"""
from __future__ import annotations

import numpy as np
import pytest

import unfold as uf
from unfold import models as M
from unfold import timebatch
from timebatch_tolerance import assert_agree

pytestmark = pytest.mark.usefixtures("strict")

SEED = 20261201
RUNS = [pytest.param({}, id="batched"),
        pytest.param({"mode": "reference"}, id="reference"),
        pytest.param({"checkpoint": 2}, id="checkpoint")]


@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setattr(timebatch, "STRICT", True)


def _plain():
    x, W = uf.input("x", (3, 4)), uf.param("W", (4, 2))
    rng = np.random.default_rng(SEED)
    feed = {"x": rng.standard_normal((3, 4)), "W": rng.standard_normal((4, 2))}
    return [x, x[0:2], uf.reshape(x, (12,)), x @ W, W], feed


def _recurrence(steps: int = 4, batch: int | None = 3):
    rec = uf.Recurrence("r")
    x = rec.sequence("x", (2,))
    h = rec.state("h", (3,), init=rec.param("h0", (3,)))
    h_t = rec.update(h, uf.tanh(rec.param("W", (3, 3)) @ h + rec.param("U", (3, 2)) @ x))
    rec.loss("L", uf.sum(h_t * h_t))
    g = rec.unfold(steps)
    rng = np.random.default_rng(SEED + 1)
    lead = (steps,) if batch is None else (steps, batch)
    feed = {"x": rng.standard_normal(lead + (2,))}
    feed.update({n: rng.standard_normal(p.shape) for n, p in rec.params.items()})
    outputs = [g.loss] + uf.grad(g.loss, g.params) + g.over_time("x") + g.copies("W") + \
        [g.final("h"), g.at(h, 1), g.at(h_t, 2)]
    return outputs, feed


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("graph", [_plain, _recurrence])
def test_results_do_not_change_when_the_feed_is_mutated(graph, run):
    outputs, feed = graph()
    program = uf.compile(outputs, **run)
    fed = {k: v.copy() for k, v in feed.items()}
    got = program(fed)
    kept = [a.copy() for a in got]
    for v in fed.values():
        v *= 3.0
    changed = [o.label for o, a, b in zip(outputs, got, kept) if not np.array_equal(a, b)]
    assert not changed, f"results changed when the fed arrays were mutated: {changed}"
    shared = [o.label for o, a in zip(outputs, got)
              if any(np.shares_memory(a, v) for v in fed.values())]
    assert not shared, f"results share memory with the feed: {shared}"


@pytest.mark.parametrize("run", [{}, {"mode": "reference"}, {"checkpoint": 2}],
                         ids=["batched", "reference", "checkpoint"])
@pytest.mark.parametrize("graph", [_plain, _recurrence])
def test_results_survive_another_evaluation_and_mutated_results(graph, run):
    outputs, feed = graph()
    program = uf.compile(outputs, **run)
    first = program(feed)
    kept = [a.copy() for a in first]
    for a in program({k: v * 0.5 for k, v in feed.items()}):
        a[...] = 77.0                                  # the caller scribbles on a result
    for o, a, b in zip(outputs, first, kept):
        assert np.array_equal(a, b), f"{o.label} changed when the program ran again"
    for o, a, b in zip(outputs, program(feed), kept):
        np.testing.assert_array_equal(a, b, err_msg=o.label)


@pytest.mark.parametrize("make", [lambda: M.lstm(8, 16, 8), lambda: M.gru(8, 16, 8),
                                  lambda: M.bidirectional(8, 16, 8, cell="lstm")],
                         ids=["lstm", "gru", "bidirectional"])
@pytest.mark.parametrize("batch", [None, 4])
def test_fed_arrays_read_in_place_are_never_written_and_follow_in_place_updates(make, batch):
    """Parameters and sequences above ``bind.BIND_BYTES`` are read where the caller keeps
    them: never written; an update in place (the same array objects fed again) is seen; a
    Fortran-ordered or reversed-strides feed is read correctly (through a copy)."""
    rec, steps = make(), 5
    g = rec.unfold(steps)
    rng = np.random.default_rng(SEED + 2)
    lead = (steps,) if batch is None else (steps, batch)
    feed = {n: rng.standard_normal(p.shape) * 0.3 for n, p in rec.params.items()}
    feed.update(x=rng.standard_normal(lead + (8,)), y=rng.integers(0, 8, lead))
    outputs = [g.loss] + uf.grad(g.loss, g.params) + [g.final("h")]
    program = uf.compile(outputs)
    before = {k: v.copy() for k, v in feed.items()}
    got = program(feed)
    assert all(np.array_equal(feed[k], before[k]) for k in feed), "a fed array was written"
    assert_agree(outputs, got, uf.evaluate(outputs, before, mode="reference"), before)
    for k, v in feed.items():
        if v.dtype.kind == "f":
            v *= 0.5                                   # in place: the same objects fed again
    assert_agree(outputs, program(feed), uf.evaluate(outputs, feed, mode="reference"), feed)
    odd = {k: np.asfortranarray(v) for k, v in before.items()}
    odd["x"] = np.ascontiguousarray(before["x"][::-1])[::-1]
    assert_agree(outputs, program(odd), uf.evaluate(outputs, before, mode="reference"), before)


def test_programs_over_the_same_nodes_evaluated_interleaved_agree():
    """Programs that share nodes (loss and gradients; states and outputs; both) and one over a
    second unfolding, called in turn with different feeds and batch sizes (each call a plan of
    its own batch pattern), each agree with the reference every time."""
    rec = M.lstm(2, 3, 3)
    g, g2 = rec.unfold(4), rec.unfold(4)
    a = [g.loss] + uf.grad(g.loss, g.params)
    b = [g.final("h")] + g.over_time("o")
    d = [g2.loss] + uf.grad(g2.loss, g2.params)
    programs = [(uf.compile(a), a), (uf.compile(b), b), (uf.compile(a + b), a + b),
                (uf.compile(d), d)]
    for rnd in range(2):
        for seed in range(3):
            for batch in (2, None, 1):
                rng = np.random.default_rng(SEED + 10 * seed + batch if batch else SEED + seed)
                lead = (4,) if batch is None else (4, batch)
                feed = {n: rng.standard_normal(p.shape) * 0.5 for n, p in rec.params.items()}
                feed.update(x=rng.standard_normal(lead + (2,)), y=rng.integers(0, 3, lead))
                for program, outputs in programs:
                    assert_agree(outputs, program(feed),
                                 uf.evaluate(outputs, feed, mode="reference"), feed)


@pytest.mark.parametrize("run", [pytest.param({}, id="batched"),
                                 pytest.param({"mode": "reference"}, id="reference"),
                                 pytest.param({"checkpoint": 2}, id="checkpoint")])
def test_a_program_keeps_no_fed_array_alive_after_the_call(run):
    """The program cache is bounded by the bytes it holds (``evaluate.CACHE_BYTES``); a fed
    array the caller drops must be freed, not held by a cached plan behind its back (found by
    the fuzz: an LSTM's x, y and every weight above ``bind.BIND_BYTES`` stayed alive until
    ``clear_cache``)."""
    import gc
    import weakref
    rec = M.lstm(8, 16, 8)
    g = rec.unfold(20)
    rng = np.random.default_rng(SEED + 3)
    feed = {n: rng.standard_normal(p.shape) * 0.3 for n, p in rec.params.items()}
    feed.update(x=rng.standard_normal((20, 16, 8)), y=rng.integers(0, 8, (20, 16)))
    program = uf.compile([g.loss] + uf.grad(g.loss, g.params), **run)
    program(feed)
    refs = {k: weakref.ref(v) for k, v in feed.items()}
    del feed
    gc.collect()
    alive = sorted(k for k, r in refs.items() if r() is not None)
    assert not alive, f"the program keeps the fed arrays {alive} alive"
    program.release()
