"""The time-batched evaluation (the default) against the per-node reference schedule.

Every property draws a graph — a random recurrence unfolded with random options, a random
expression, an encoder–decoder — evaluates its loss, its gradients and some of its states both
ways and asks for agreement to 1e-12 relative (norm-wise, float64; 1e-5 in float32; a sum
relative to its terms: tests/timebatch_tolerance.py). Failures of the compiler itself are
raised (``timebatch.STRICT``), not rerun on the reference path.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import unfold as uf
from unfold import timebatch
from unfold.testing import gradcheck
from unfold.timebatch import lower
from unfold.testing.strategies import expressions, recurrences
from timebatch_tolerance import assert_agree as agree
from examples import encoder_decoder

pytestmark = pytest.mark.usefixtures("strict")


@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setattr(timebatch, "STRICT", True)


def assert_agree(outputs, feed, rtol=1e-12):
    program = uf.compile(outputs)
    got = program(feed)
    assert program._batched_plans, "the time-batched path was not taken"
    assert any(p is not None for p in program._batched_plans.values()), \
        "the time-batched compiler gave up on this graph"
    want = uf.evaluate(outputs, feed, mode="reference")
    agree(outputs, got, want, feed, rtol)         # (the scale: tests/timebatch_tolerance.py)


def _outputs(g, drawn, states=True):
    out = [g.loss] + uf.grad(g.loss, g.params)
    if states:
        for name, s in drawn.recurrence.states.items():
            out.append(g.final(name))
            out.append(g.at(s.value, 1))
    return out


def _mask(drawn, rng):
    steps, batch = drawn.steps, drawn.batch
    lengths = rng.integers(1, steps + 1, size=() if batch is None else (batch,))
    t = np.arange(steps).reshape((steps,) + (1,) * (batch is not None))
    return (t < lengths).astype(drawn.dtype)


@given(drawn=recurrences(max_steps=7, loss_steps=True), truncate=st.sampled_from([None, 1, 2, 3]),
       mask=st.booleans())
def test_random_recurrences_agree_with_the_reference(drawn, truncate, mask):
    g = drawn.unfold(truncate=truncate, mask=mask)
    feed = dict(drawn.feed)
    if mask:
        feed["mask"] = _mask(drawn, np.random.default_rng(drawn.description["seed"]))
    assert_agree(_outputs(g, drawn), feed)


@settings(max_examples=15)
@given(drawn=recurrences(max_steps=7, loss_steps=True), truncate=st.sampled_from([None, 2, 3]),
       listed=st.booleans())
def test_recurrences_agree_when_every_run_of_steps_is_a_loop(drawn, truncate, listed):
    """The same, with even two consecutive regular steps written as a loop (one template per
    step, arguments as strided rows — or lists of views — and rings)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lower, "LOOP_STEPS", 2)
        mp.setattr(lower, "LIST_VIEWS", 10**9 if listed else 0)
        g = drawn.unfold(truncate=truncate)
        assert_agree(_outputs(g, drawn), drawn.feed)


def _lstm(n, m, k, dtype=np.float64):
    """W2 of the benchmarks: the four gates cut from one z = U x + W h + b."""
    rec = uf.Recurrence("lstm")
    x, y = rec.sequence("x", (m,), dtype), rec.target("y", ())
    U, W = rec.param("U", (4 * n, m), dtype), rec.param("W", (4 * n, n), dtype)
    b = rec.param("b", (4 * n,), dtype)
    h, s = rec.state("h", (n,), dtype=dtype), rec.state("s", (n,), dtype=dtype)
    z = U @ x + W @ h + b
    i, f, o = (uf.sigmoid(z[j * n:(j + 1) * n]) for j in range(3))
    s_t = rec.update(s, f * s + i * uf.tanh(z[3 * n:]))
    h_t = rec.update(h, o * uf.tanh(s_t))
    rec.loss("L", uf.cross_entropy(rec.param("V", (k, n), dtype) @ h_t, y))
    return rec


@settings(max_examples=10)
@given(steps=st.integers(1, 12), batch=st.sampled_from([None, 1, 3]), loops=st.booleans(),
       seed=st.integers(0, 2**16))
def test_an_lstm_with_gates_cut_from_one_z_agrees(steps, batch, loops, seed):
    rec = _lstm(3, 2, 4)
    g = rec.unfold(steps)
    rng = np.random.default_rng(seed)
    lead = () if batch is None else (batch,)
    feed = {name: rng.standard_normal(p.shape) * 0.7 for name, p in rec.params.items()}
    feed.update(x=rng.standard_normal((steps,) + lead + (2,)),
                y=rng.integers(0, 4, (steps,) + lead))
    with pytest.MonkeyPatch.context() as mp:
        if loops:
            mp.setattr(lower, "LOOP_STEPS", 2)
        assert_agree([g.loss] + uf.grad(g.loss, g.params) + [g.final("h")], feed)


@pytest.mark.parametrize("steps", [3, 6])
def test_a_masked_delay_two_state_is_planned_and_agrees(steps):
    """h(t) = tanh(W h(t−1) + S h(t−2) + U x(t)) with a mask: ∇h(t−2) sums the delay-2 read at t
    and the where at t−1 — planned at t−1, not a step late (a loop read both ways; found by
    HYPOTHESIS_PROFILE=heavy)."""
    rec = uf.Recurrence("r")
    x, h = rec.sequence("x", (1,)), rec.state("h", (1,))
    a = rec.param("W", (1, 1)) @ h + rec.param("U", (1, 1)) @ x
    u = rec.update(h, uf.tanh(a + rec.param("S", (1, 1)) @ rec.past(h, 2)))
    g = rec.state("g", (1,))
    v = rec.update(g, uf.tanh(rec.param("R", (1, 1)) @ g + rec.param("C", (1, 1)) @ u))
    rec.loss("L", uf.sum(rec.output("o", rec.param("V", (2, 1)) @ v) ** 2))
    _assert_masked_agrees(rec, steps, "h", seed=0)


@pytest.mark.parametrize("steps", [3, 5])
def test_a_masked_backward_state_is_planned_and_agrees(steps):
    """g(t) = tanh(R g(t+1) + C h(t)) with a mask: the choice where(m(t), g_new, g(t+1)) belongs
    to step t, not to t+1 where its input comes from (found by HYPOTHESIS_PROFILE=heavy)."""
    rec = uf.Recurrence("r")
    x, h = rec.sequence("x", (1,)), rec.state("h", (1,))
    u = rec.update(h, uf.tanh(rec.param("W", (1, 1)) @ h + rec.param("U", (1, 1)) @ x))
    g = rec.state("g", (1,), backward=True)
    v = rec.update(g, uf.tanh(rec.param("R", (1, 1)) @ g + rec.param("C", (1, 1)) @ u))
    rec.loss("L", uf.sum(rec.output("o", rec.param("V", (2, 1)) @ v) ** 2))
    _assert_masked_agrees(rec, steps, "g", seed=1)


def _assert_masked_agrees(rec: uf.Recurrence, steps: int, state: str, seed: int) -> None:
    """``rec`` unfolded with a mask (its last step padded), fed random values: the loss, its
    gradients and the final ``state`` agree with the reference, planned time-batched."""
    net = rec.unfold(steps, mask=True)
    rng = np.random.default_rng(seed)
    feed = {name: rng.standard_normal(p.shape) for name, p in rec.params.items()}
    feed.update(x=rng.standard_normal((steps, 1)), mask=np.arange(steps) < steps - 1)
    assert_agree([net.loss] + uf.grad(net.loss, net.params) + [net.final(state)], feed)


@settings(max_examples=10)
@given(drawn=recurrences(max_steps=6, dtypes=(np.float32,)))
def test_float32_recurrences_agree_and_stay_float32(drawn):
    g = drawn.unfold()
    assert_agree(_outputs(g, drawn), drawn.feed, rtol=1e-5)


@given(expr=expressions(max_ops=8))
def test_random_expressions_and_their_gradients_agree(expr):
    assert_agree([expr.output] + uf.grad(expr.output, expr.leaves), expr.feed)


@settings(max_examples=10)
@given(nx=st.integers(1, 5), ny=st.integers(1, 5), batch=st.sampled_from([None, 2]),
       seed=st.integers(0, 2**16))
def test_an_encoder_decoder_agrees(nx, ny, batch, seed):
    m, n, k = 2, 3, 4
    enc, dec = encoder_decoder(m, n, k)
    encoded = enc.unfold(nx)
    joined = dec.unfold(ny, bind={"C": encoded.final("h")})
    rng = np.random.default_rng(seed)
    lead = () if batch is None else (batch,)
    feed = {name: rng.standard_normal(p.shape) * 0.6
            for rec in (enc, dec) for name, p in rec.params.items()}
    feed.update(x=rng.standard_normal((nx,) + lead + (m,)), y=rng.integers(0, k, (ny,) + lead))
    params = list(enc.params.values()) + list(dec.params.values())
    assert_agree([joined.loss] + uf.grad(joined.loss, params) + [joined.final("s")], feed)


@settings(max_examples=8)
@given(drawn=recurrences(max_steps=5, max_size=2))
def test_gradcheck_passes_through_the_time_batched_path(drawn):
    g = drawn.unfold()
    gradcheck(g.loss, list(g.params), drawn.feed)


def test_the_reference_mode_is_selectable_and_checked():
    x = uf.input("x", (2,))
    assert uf.compile([x * 2], mode="reference").mode == "reference"
    with pytest.raises(ValueError, match="mode"):
        uf.compile([x * 2], mode="fast")


def test_an_rnn_runs_its_off_path_work_once_for_all_steps():
    """Fig. 10.3: U x(t), the output layer, the loss and Σ_t ∇W(t) are one op each; only the
    recurrence runs step by step (as rolled loops)."""
    rec = uf.models.rnn(3, 4, 5)
    g = rec.unfold(30)
    program = uf.compile([g.loss] + uf.grad(g.loss, g.params))
    rng = np.random.default_rng(0)
    feed = {name: rng.standard_normal(p.shape) for name, p in rec.params.items()}
    feed.update(x=rng.standard_normal((30, 2, 3)), y=rng.integers(0, 5, (30, 2)))
    program(feed)
    (plan,) = program._batched_plans.values()
    assert plan.calls < 8 * 30, plan.describe()      # about 7 calls a step, not 30 nodes
    assert "for " in plan.run_code.source             # the steps are a loop


def test_the_program_cache_is_bounded_by_bytes_and_can_be_cleared(monkeypatch):
    ev = sys.modules["unfold.evaluate"]          # the module (unfold.evaluate is the function)
    x = uf.input("x", (3,))
    y, z = x * 2, x * 3
    small = uf.compile([y])
    assert small.nbytes > 0
    monkeypatch.setattr(ev, "CACHE_BYTES", small.nbytes)       # room for one program only
    other = uf.compile([z])
    assert uf.compile([z]) is other
    assert uf.compile([y]) is not small                         # the older one was dropped
    uf.clear_cache()
    assert not ev._CACHE


@pytest.mark.parametrize("make", [
    lambda a: a, lambda a: a.T, lambda a: a[2:5], lambda a: a.reshape(-1, 3)[1:],
    lambda a: a[1:3].reshape(2, 4, 3).transpose(2, 1, 0), lambda a: a[:, 1:],
    lambda a: a[::2], lambda a: a[3, 2], lambda a: a.reshape(-1)[5:5]])
def test_a_bound_view_is_made_again_exactly_on_another_array(make):
    """``Bound`` makes each view of a fed buffer again on the caller's array by a recipe (the
    array, a reshaped flat slice, its transpose, else a general strided view): the same
    shape, strides and place as the planned view, for any view."""
    from unfold.timebatch.bind import Bound
    buffer = np.arange(72.0).reshape(6, 4, 3)
    space = {"v": make(buffer)}
    bound = Bound(buffer, [("v", space["v"])], space)
    other = np.random.default_rng(0).standard_normal(buffer.shape)
    bound.bind(other)
    want = make(other)
    assert space["v"].shape == want.shape and space["v"].strides == want.strides
    assert np.shares_memory(space["v"], other) or want.size == 0
    assert np.array_equal(space["v"], want)
