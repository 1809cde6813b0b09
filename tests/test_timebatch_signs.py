"""``timebatch.signs``: σ's input stored negated by its producers (σ in three numpy calls) —
the same numbers bit for bit, and never where anything else reads the negated columns."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

import unfold as uf
from unfold import timebatch
from unfold.timebatch import signs
from unfold.timebatch.kernels import sigmoid, sigmoid_of_negated
from unfold.timebatch.memory import SMALL
from unfold.testing.strategies import recurrences
from bench.workloads import data, unfold_program
from timebatch_tolerance import assert_agree


@pytest.fixture(autouse=True)
def strict(monkeypatch):
    monkeypatch.setattr(timebatch, "STRICT", True)


def _run(program, feed):
    got = program(feed)
    (plan,) = [p for p in program._batched_plans.values() if p is not None]
    return got, plan


def _unfolded(program, feed, monkeypatch):
    """The outputs with the fold off, on a fresh copy of the program."""
    with monkeypatch.context() as m:
        m.setattr(signs, "fold", lambda *_: 0)
        program.release()
        return _run(program, feed)[0]


@pytest.mark.parametrize("size", ["tiny", "small", "long"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_lstm_gates_read_a_negated_input_and_give_the_same_numbers(size, dtype, monkeypatch):
    """The stacked LSTM: ``z = U x + W h + b``'s gate columns are written negated (``Uᵀ``'s and
    ``b``'s gate columns negated once a call, ``W``ᵀ's copy after it is made), σ skips its
    negation, and every output is bit for bit what it was."""
    program = unfold_program("lstm", size, dtype)
    feed = data("lstm", size, dtype)
    got, plan = _run(program, feed)
    assert plan.negated_sigmoids > 0
    loops = plan.run_code.source.split("    for ")[1:]
    space = plan.run_code.__globals__
    negated = [n for n, v in space.items() if v is sigmoid_of_negated]
    assert not [n for n, v in space.items() if v is sigmoid]
    assert any(f" _{n}(" in body for n in negated for body in loops)   # the forward loops
    want = _unfolded(program, feed, monkeypatch)
    for a, b in zip(got, want):
        assert np.array_equal(a, b)
    outputs = list(program.outputs)
    assert_agree(outputs, got, uf.evaluate(outputs, feed, mode="reference"), feed,
                 rtol=1e-12 if dtype == np.float64 else 1e-4)


def _cell(read_twice: str):
    """h(t) = σ(a) ⊙ tanh(·), a = W h(t−1) + U x(t) + b, with ``a`` also read by ``tanh`` (the
    same columns σ reads), or not."""
    rec = uf.Recurrence("cell")
    x = rec.sequence("x", (3,))
    W, U, b = rec.param("W", (4, 4)), rec.param("U", (4, 3)), rec.param("b", (4,))
    h = rec.state("h", (4,))
    a = W @ h + U @ x + b
    other = uf.tanh(a) if read_twice == "tanh" else uf.tanh(h)
    h_t = rec.update(h, uf.sigmoid(a) * other)
    rec.loss("L", uf.sum(h_t * h_t))
    net = rec.unfold(6)
    params = [rec.params[k] for k in ("W", "U", "b")]
    return rec, uf.compile([net.loss] + uf.grad(net.loss, params))


@pytest.mark.parametrize("read_twice", ["tanh", "nothing"])
def test_a_sigmoid_input_read_by_another_op_is_not_negated(read_twice):
    """``a`` read by σ and by ``tanh``: its columns stay as they are (σ in four calls); read by
    σ alone, they are negated. Both agree with the per-node reference."""
    rec, program = _cell(read_twice)
    rng = np.random.default_rng(0)
    feed = {k: rng.standard_normal(p.shape) for k, p in rec.params.items()}
    feed["x"] = rng.standard_normal((6, 3))
    got, plan = _run(program, feed)
    assert (plan.negated_sigmoids > 0) == (read_twice == "nothing")
    outputs = list(program.outputs)
    assert_agree(outputs, got, uf.evaluate(outputs, feed, mode="reference"), feed)


def _held(program) -> int:
    return sum(p.nbytes for p in program._batched_plans.values() if p is not None)


@pytest.mark.parametrize("size", ["tiny", "small", "long"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_fold_holds_no_copy_of_a_weight_matrix(size, dtype, monkeypatch):
    """The LSTM's plan with the fold holds at most a negated copy of ``b`` and one row of ±1
    factors more than without it: ``U x``'s output is negated in place, not ``U``, and
    ``W``ᵀ's copy in place — no matrix of weights or of factors."""
    program = unfold_program("lstm", size, dtype)
    feed = data("lstm", size, dtype)
    _, plan = _run(program, feed)
    assert plan.negated_sigmoids > 0
    on = _held(program)
    with monkeypatch.context() as m:
        m.setattr(signs, "fold", lambda *_: 0)
        program.release()
        program(feed)
        off = _held(program)
    assert on - off <= 2 * feed["b"].nbytes, (on, off)


def test_a_fold_over_its_budget_leaves_the_plan_alone(monkeypatch):
    """With no bytes to spare (``BUDGET`` and ``SMALL`` 0), the LSTM's copy of ``b`` is too
    many: no σ reads a negated input, and the plan holds what it holds without the fold."""
    program = unfold_program("lstm", "tiny", np.float64)
    feed = data("lstm", "tiny", np.float64)
    _run(program, feed)
    on = _held(program)
    monkeypatch.setattr(signs, "BUDGET", 0.0)
    monkeypatch.setattr(signs, "SMALL", 0)
    program.release()
    got, plan = _run(program, feed)
    assert plan.negated_sigmoids == 0
    assert _held(program) < on
    assert not [n for n, v in plan.run_code.__globals__.items() if v is sigmoid_of_negated]
    assert_agree(list(program.outputs), got,
                 uf.evaluate(list(program.outputs), feed, mode="reference"), feed)


@settings(max_examples=30)
@given(drawn=recurrences(max_steps=6))
def test_drawn_recurrences_give_the_same_numbers_with_and_without_the_fold(drawn):
    """Any drawn recurrence (σ among its ops): the plan with σ's inputs negated, where the
    pass finds it may, computes bit for bit what the plan without the pass does, and holds
    at most its budget of bytes more (``signs.BUDGET`` of the buffers, or ``SMALL``)."""
    g = drawn.unfold()
    outputs = [g.loss] + uf.grad(g.loss, g.params)
    folded = uf.compile(outputs)
    got = folded(drawn.feed)
    real = signs.fold
    signs.fold = lambda *_: 0
    try:
        program = uf.compile(outputs)
        program.release()
        want = program(drawn.feed)
    finally:
        signs.fold = real
    for a, b in zip(got, want):
        assert np.array_equal(a, b, equal_nan=True)
    assert _held(folded) - _held(program) <= max(signs.BUDGET * _held(program), SMALL)
