"""Checkpointed BPTT (``checkpoint=k``): the same values as the plain schedule, bit for bit, in
O(τ/k + k) memory — and bad values of k refused by name.

The plain schedule holds every step's forward values until the backward pass reads them: O(τ).
With segments of k steps, only the states crossing a segment boundary are kept (τ/k checkpoints)
and one segment is recomputed at a time (k steps), so k ≈ √τ holds O(√τ). The recomputation runs
the same ops on the same inputs, hence the exact equality tested here against
``mode="reference"`` (the plain per-node schedule). Examples are derandomized (tests/conftest.py);
each drawn recurrence prints its feed's seed.
"""
from __future__ import annotations

import gc
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, strategies as st

import unfold as uf
from unfold.testing.recurrences import cells, recurrences

DTYPES = (np.float32, np.float64)


def _both(drawn, k, **unfold):
    """The loss and every parameter's gradient, plain and checkpointed, with both programs."""
    g = drawn.unfold(**unfold)
    outputs = [g.loss] + uf.grad(g.loss, g.params)
    feed = dict(drawn.feed)
    if unfold.get("mask"):
        shape = (drawn.steps,) if drawn.batch is None else (drawn.steps, drawn.batch)
        feed["mask"] = np.random.default_rng(drawn.description["seed"]).random(shape) < 0.7
        feed["mask"][0] = True                     # (every example has a real first step)
    plain = uf.compile(outputs, mode="reference")
    checkpointed = uf.compile(outputs, checkpoint=k)
    return plain, plain(feed), checkpointed, checkpointed(feed)


def _assert_identical(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)


ks = st.one_of(st.integers(1, 14), st.just("sqrt"))


@given(drawn=recurrences(max_states=3, max_steps=12, dtypes=DTYPES, loss_steps=True), k=ks,
       mask=st.booleans(), truncate=st.none() | st.integers(1, 5))
def test_checkpointed_recurrences_equal_the_plain_schedule_bit_for_bit(drawn, k, mask, truncate):
    """Forward and backward states, past(h, d) delays, output feedback, contexts, losses at some
    steps, masks, truncation, float32/64, batched or not, k below, at and beyond τ."""
    plain, a, checkpointed, b = _both(drawn, k, mask=mask, truncate=truncate)
    _assert_identical(a, b)
    assert checkpointed.peak_elements() <= plain.peak_elements()


@given(drawn=cells(max_steps=10, dtypes=DTYPES), k=ks)
def test_checkpointed_cells_equal_the_plain_schedule_bit_for_bit(drawn, k):
    """Random cell DAGs: stacked matrices over concat([x, h]), slices, gates, several states of
    different sizes reading each other, delays, outputs reading intermediates."""
    plain, a, checkpointed, b = _both(drawn, k)
    _assert_identical(a, b)
    assert checkpointed.peak_elements() <= plain.peak_elements()


def test_a_checkpointed_program_gives_the_same_values_on_every_call():
    drawn = _drawn_rnn(30, batch=4)
    _, a, checkpointed, b = _both(drawn, 5)
    _assert_identical(a, b)
    _assert_identical(a, checkpointed(drawn.feed))


@pytest.mark.parametrize("model", ["lstm", "gru", "bidirectional", "deep_rnn"])
def test_checkpointed_models_equal_the_plain_schedule(model):
    make = {"lstm": lambda: uf.models.lstm(3, 4, 2), "gru": lambda: uf.models.gru(3, 4, 2),
            "bidirectional": lambda: uf.models.bidirectional(3, 4, 2),
            "deep_rnn": lambda: uf.models.deep_rnn(3, [4, 3], 2)}[model]
    rec = make()
    steps = 23
    rng = np.random.default_rng(7)
    feed = {name: rng.standard_normal(p.shape) / np.sqrt(p.shape[-1])
            for name, p in rec.params.items()}
    feed.update(x=rng.standard_normal((steps, 2, 3)), y=rng.integers(0, 2, (steps, 2)))
    g = rec.unfold(steps)
    outputs = [g.loss] + uf.grad(g.loss, g.params)
    plain = uf.compile(outputs, mode="reference")
    expected = plain(feed)
    for k in (1, 4, "sqrt", steps):
        checkpointed = uf.compile(outputs, checkpoint=k)
        _assert_identical(expected, checkpointed(feed))
    checkpointed = uf.compile(outputs, checkpoint="sqrt")
    assert plain.peak_elements() / checkpointed.peak_elements() > 1.5
    # the compute: each forward value recomputed about once (twice for a bidirectional net)
    assert len(checkpointed._node_schedule()[0]) < 2.5 * len(plain._node_schedule()[0])


def test_a_bidirectional_net_is_checkpointed_too():
    """Its two backward chains run one after the other, in opposite directions of time, and each
    reads every step's forward values: each segment is recomputed once per chain, and the outer
    products of the output layer wait for their accumulation instead of being made (and held)
    during the output layer's backward pass. What stays O(τ) is a few vectors per step (the
    gradients the second chain's accumulations read), not the plain schedule's every value."""
    rec = uf.models.bidirectional(3, 8, 4)
    peaks = []
    for steps in (100, 400):
        g = rec.unfold(steps)
        outputs = [g.loss] + uf.grad(g.loss, g.params)
        plain = uf.compile(outputs, mode="reference")
        checkpointed = uf.compile(outputs, checkpoint="sqrt")
        peaks.append((plain.peak_elements(), checkpointed.peak_elements()))
        assert len(checkpointed._node_schedule()[0]) < 2 * len(plain._node_schedule()[0])
    (plain_100, ours_100), (plain_400, ours_400) = peaks
    assert plain_100 > 3.5 * ours_100 and plain_400 > 4.2 * ours_400


# --- memory: O(τ/k + k) ---------------------------------------------------------------------------

def _drawn_rnn(steps, batch=None, n=8):
    """Fig. 10.3 (tanh hidden layer, softmax output at every step) with a feed."""
    from unfold.testing.recurrences import RandomRecurrence
    rec = uf.models.rnn(3, n, 4)
    rng = np.random.default_rng(steps)
    shape = (steps,) if batch is None else (steps, batch)
    feed = {name: rng.standard_normal(p.shape) / np.sqrt(p.shape[-1])
            for name, p in rec.params.items()}
    feed.update(x=rng.standard_normal(shape + (3,)), y=rng.integers(0, 4, shape))
    return RandomRecurrence(rec, steps, batch, np.dtype(np.float64), feed, {"seed": steps})


def _program(steps, k, batch=None):
    """Fig. 10.3 unfolded over ``steps``, compiled checkpointed (k) or plain (None: the per-node
    schedule, whose memory is what a call allocates), and its feed."""
    drawn = _drawn_rnn(steps, batch)
    g = drawn.unfold()
    outputs = [g.loss] + uf.grad(g.loss, g.params)
    program = uf.compile(outputs, checkpoint=k) if k else uf.compile(outputs, mode="reference")
    return program, drawn.feed


def test_the_checkpointed_peak_is_within_the_bound_of_its_segments():
    """Fig. 10.3 with n hidden units: at most τ/k checkpoints and the values of one recomputed
    segment (k steps of h, a few per-step values), besides the gradients' accumulators. The
    per-step and the constant costs are read off the plain schedule at two lengths."""
    plain = {t: _program(t, None)[0].peak_elements() for t in (100, 200)}
    per_step = (plain[200] - plain[100]) / 100
    constant = plain[100] - 100 * per_step
    n = 8
    for steps, k in ((100, 10), (144, 12), (144, 3), (144, 48), (200, 1), (200, 200)):
        peak = _program(steps, k)[0].peak_elements()
        segments = math.ceil(steps / k)
        bound = constant + n * segments + per_step * min(k, steps) + 4 * n
        assert peak <= bound, (steps, k, peak, bound)


def _traced_peak(steps, k, batch=4):
    """The bytes a call allocates at its peak (numpy's data and Python objects, tracemalloc)."""
    program, feed = _program(steps, k, batch)
    program(feed)
    gc.collect()
    tracemalloc.start()
    try:
        program(feed)                    # (the first traced call: caches fill)
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        program(feed)
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_a_checkpointed_call_allocates_as_the_square_root_of_tau():
    """Everything a call allocates — arrays, the run's slots, views of the fed sequences — grows
    as √τ with k = √τ: from τ = 256 to 1024, 2× (not the plain schedule's 4×)."""
    small, large = _traced_peak(256, 16), _traced_peak(1024, 32)
    plain_small, plain_large = _traced_peak(256, None), _traced_peak(1024, None)
    assert 3.5 < plain_large / plain_small
    assert large / small < 2.4
    assert large * 6 < plain_large


# --- bad k ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [0, -1, -30, 1.5, 2.0, "Sqrt", "sqrt ", "root", "",
                               True, False, [2], (2,)])
def test_a_bad_checkpoint_is_refused_by_name(k):
    program, feed = _program(6, None)
    with pytest.raises(uf.errors.UnfoldValueError) as raised:
        uf.compile(program.outputs, checkpoint=k)
    message = str(raised.value)
    assert "checkpoint" in message and repr(k) in message and "'sqrt'" in message


@pytest.mark.parametrize("k", [np.int64(3), np.int32(1)])
def test_a_numpy_integer_is_a_number_of_steps(k):
    program, feed = _program(6, None)
    plain = uf.compile(program.outputs, mode="reference")(feed)
    checkpointed = uf.compile(program.outputs, checkpoint=k)
    assert checkpointed.checkpoint == int(k) and type(checkpointed.checkpoint) is int
    _assert_identical(plain, checkpointed(feed))


def _registers(steps, k):
    program, feed = _program(steps, k)
    program(feed)
    (_, regs), = program._plans.values()
    return regs.count


def test_a_run_holds_as_many_slots_as_values_alive_at_once():
    """The run's slots are registers shared by values not alive together: O(τ) on the plain
    schedule (every step's values wait for the backward pass), O(√τ) checkpointed — not one
    per node of the graph (O(τ) whatever the schedule)."""
    plain = _registers(100, None), _registers(400, None)
    checkpointed = _registers(100, 10), _registers(400, 20)
    nodes = len(_program(400, 20)[0].order)
    assert 3.5 < plain[1] / plain[0] < 4.5
    assert checkpointed[1] / checkpointed[0] < 2.5
    assert checkpointed[1] * 20 < nodes
