"""Buffers of the time-batched plan: reused call after call, shared by liveness, written in place
— and never seen by the caller.

The classic failures of buffer reuse are aliasing: an output handed back to the caller and then
overwritten by the next call, two outputs sharing memory, a value written over while something
still reads it, a fed array written into, stale values from the previous call. Each property
below evaluates a drawn graph several times with different feeds, keeps what it was given, and
compares everything with the per-node reference (float64, 1e-12).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import unfold as uf
from unfold import timebatch
from unfold.timebatch import memory
from unfold.testing.strategies import recurrences
from bench.numpy_batched import BATCHED
from bench.workloads import SIZES, data, unfold_program
from timebatch_tolerance import assert_agree



@pytest.fixture(autouse=True)
def strict(monkeypatch):
    """Failures of the compiler itself are raised, not rerun on the reference path; every
    buffer, however small, is shared and tied, every fed array read in place (the drawn
    graphs are small)."""
    monkeypatch.setattr(timebatch, "STRICT", True)
    monkeypatch.setattr(memory, "SMALL", 0)
    monkeypatch.setattr(timebatch, "BIND_BYTES", 0)


def _agree(outputs, got, feed, rtol=1e-12, want=None):
    """``got`` equals the reference evaluation of ``outputs`` on ``feed`` (within ``rtol`` of
    each output's scale: tests/timebatch_tolerance.py)."""
    if want is None:
        want = uf.evaluate(outputs, feed, mode="reference")
    assert_agree(outputs, got, want, feed, rtol)


def _other_feed(feed: dict, seed: int) -> dict:
    """Another feed of the same layout: new values, same keys, shapes and dtypes."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in feed.items():
        if v.dtype.kind in "iub":
            out[k] = np.ascontiguousarray(v[::-1])            # class indices stay valid
        else:
            out[k] = (0.8 * v + 0.3 * rng.standard_normal(v.shape)).astype(v.dtype)
    return out


def _outputs(g, drawn):
    out = [g.loss] + uf.grad(g.loss, g.params)
    for name, s in drawn.recurrence.states.items():
        out += [g.final(name), g.at(s.value, 1)]
    return list({id(n): n for n in out}.values())   # (a backward state's final is its step 1)


def _no_two_share_memory(arrays):
    for i, a in enumerate(arrays):
        for b in arrays[i + 1:]:
            assert not np.shares_memory(a, b), "two outputs share memory"


def _mask(drawn, seed):
    """A padding mask: each sequence (of the batch) real for its first 1…τ steps."""
    rng = np.random.default_rng(seed)
    steps, batch = drawn.steps, drawn.batch
    lengths = rng.integers(1, steps + 1, size=() if batch is None else (batch,))
    t = np.arange(steps).reshape((steps,) + (1,) * (batch is not None))
    return (t < lengths).astype(drawn.dtype)


@given(drawn=recurrences(max_steps=7, loss_steps=True), truncate=st.sampled_from([None, 2]),
       mask=st.booleans(), seed=st.integers(0, 2**16))
def test_outputs_survive_later_calls_and_stale_values_never_leak(drawn, truncate, mask, seed):
    """Three calls (feeds A, B, A; masked feeds take the per-step feed path): each result
    equals the reference after all calls, no fed array is written, no two results share
    memory."""
    g = drawn.unfold(truncate=truncate, mask=mask)
    outputs = _outputs(g, drawn)
    program = uf.compile(outputs)
    first = dict(drawn.feed, **({"mask": _mask(drawn, seed)} if mask else {}))
    second = _other_feed(drawn.feed, seed)
    if mask:
        second["mask"] = _mask(drawn, seed + 1)
    feeds = [first, second, first]
    fed = [{k: v.copy() for k, v in f.items()} for f in feeds]
    results = [program(f) for f in feeds]     # (time-batched unless the compiler declines)
    for f, kept, got in zip(fed, feeds, results):
        _agree(outputs, got, f)   # after every later call
        for k in f:                                              # feeds are never written
            assert np.array_equal(f[k], kept[k])
    _no_two_share_memory([a for r in results for a in r])


@settings(max_examples=10)
@given(drawn=recurrences(max_steps=6, max_size=2, dtypes=(np.float32,)), seed=st.integers(0, 99))
def test_float32_plans_reused_across_feeds_agree(drawn, seed):
    g = drawn.unfold()
    outputs = _outputs(g, drawn)
    program = uf.compile(outputs)
    for f in (drawn.feed, _other_feed(drawn.feed, seed)):
        _agree(outputs, program(f), f, rtol=1e-5)


@pytest.mark.parametrize("workload", ["rnn", "lstm"])
def test_the_peers_workloads_agree_call_after_call(workload):
    """W1 and W2 at a small size in float64: every call equals the per-node reference; a first
    call's outputs are unchanged by the next."""
    program = unfold_program(workload, "tiny", np.float64)
    outputs = list(program.outputs)
    d1 = data(workload, "tiny", np.float64, seed=1)
    d2 = data(workload, "tiny", np.float64, seed=2)
    first = program(d1)
    kept = [a.copy() for a in first]
    second = program(d2)
    for a, b in zip(first, kept):
        assert np.array_equal(a, b)
    _agree(outputs, first, d1)
    _agree(outputs, second, d2)
    _no_two_share_memory(first + second)


@pytest.mark.parametrize("workload, slabs", [("rnn", 3.1), ("lstm", 15.1)])
def test_a_plan_holds_no_more_than_the_hand_written_workspace(workload, slabs):
    """Buffers are shared by liveness, written in place and packed: the plan of W1 and W2
    (small sizes) holds less than the hand-written time-batched BPTT allocates once
    (bench/numpy_batched.py: 4.4 and 17.5 τ·B·n slabs), counted in τ·B·n float32 slabs — W1
    3: h, ∇h from the outputs, and ``tanh′`` written over by ``∇a`` inside the backward loop;
    W2 15 at the start of the backward pass: ∇z (4, the gate factors computed into its
    slices), the gates i, f, o (3, one slab: one σ a step), g, s, tanh s, h, ∇h from the
    outputs, the factor of ∇s, one derivative on its way. Bytes, not time: deterministic."""
    size = "small"
    program = unfold_program(workload, size, np.float32)
    program(data(workload, size, np.float32))
    (plan,) = program._batched_plans.values()
    hand = BATCHED[workload](*SIZES[size], np.float32)
    held = sum(a.nbytes for a in vars(hand).values() if isinstance(a, np.ndarray))
    m, n, k, B, T = SIZES[size]
    slab = T * B * n * 4
    assert plan.nbytes <= slabs * slab < held, (plan.nbytes / slab, held / slab)


def test_a_step_loop_writes_in_place_over_what_it_reads_last():
    """``memory._calls`` sees a loop's calls step by step, so that a value whose row t is read
    for the last time by the call writing row t of another is written over (W1's backward
    loop: ``∇a(t) = (∇h(t)) ⊙ tanh′(t)`` over ``tanh′``): the two slabs are one."""
    from unfold.timebatch.lower import It, Loop
    a, b = np.arange(12.0).reshape(3, 4), np.empty((3, 4))
    loop = Loop(3, (("rows", a), ("rows", list(b))), ((np.multiply, (It(0), 2.0, It(1))),))
    calls = memory._calls(loop)
    assert [fn for fn, _ in calls] == [np.multiply] * 3
    assert all(args[0] is not None and np.shares_memory(args[0], a) and
               np.shares_memory(args[2], b) for _, args in calls)
    assert [args[0][0] for _, args in calls] == [0.0, 4.0, 8.0]
    program = unfold_program("rnn", "tiny", np.float64)
    program(data("rnn", "tiny", np.float64))
    (plan,) = program._batched_plans.values()
    m, n, k, B, T = SIZES["tiny"]
    assert plan.nbytes < 4 * T * B * n * 8                       # (was 4.3 slabs)


def test_units_writing_disjoint_slices_of_one_slab_are_free_to_move():
    """The schedule orders units that touch common bytes one of them writes — exactly, for
    strided slices side by side (the four gates' slices of an assembled ∇z): units writing
    different slices are not ordered, a unit reading a slice stays after the one writing it."""
    z = np.zeros((5, 2, 8))
    i, f = memory._Span(), memory._Span()
    i.touched.append(z[..., 0:4]); i.write(z[..., 0:4])
    f.touched.append(z[..., 4:8]); f.write(z[..., 4:8])
    reads_f = memory._Span()
    reads_f.touched.append(z[1:, :, 4:8])
    assert list(memory._ordered([0, 1, 2], [i, f, reads_f])) == [(1, 2)]
    whole = memory._Span()
    whole.touched.append(z); whole.write(z)
    assert list(memory._ordered([0, 1, 2], [whole, i, f])) == [(0, 1), (0, 2)]


def test_softmax_cross_entropy_is_one_kernel():
    """Fig. 10.3's loss and its gradient: the log-softmax, the softmax and ``softmax − 1_y`` are
    one call over all steps, not four."""
    from unfold.timebatch.kernels import softmax_cross_entropy
    program = unfold_program("rnn", "tiny", np.float64)
    program(data("rnn", "tiny", np.float64))
    (plan,) = program._batched_plans.values()
    space = plan.run_code.__globals__
    (name,) = [k for k, f in space.items() if f is softmax_cross_entropy]
    assert plan.run_code.source.count(f"{name}(") == 1
    assert not any(getattr(f, "__name__", "") in ("log_softmax", "nll", "minus_one_hot", "exp")
                   or f is np.exp for f in space.values())


def test_a_feed_like_the_last_one_is_still_checked_for_its_values(monkeypatch):
    """The fast path for a feed with the last one's keys, shapes and dtypes skips only what
    depends on those: a conversion that would lose values, a target out of range, an unknown
    name are refused as on a first call."""
    monkeypatch.setattr(timebatch, "STRICT", False)        # what the caller sees
    rec = uf.models.rnn(2, 3, 4, dtype="float32")
    g = rec.unfold(3)
    program = uf.compile([g.loss] + uf.grad(g.loss, g.params))
    rng = np.random.default_rng(0)
    feed = {name: rng.standard_normal(p.shape).astype("float32") for name, p in rec.params.items()}
    feed.update(x=rng.standard_normal((3, 2, 2)), y=rng.integers(0, 4, (3, 2)))   # x: float64
    program(feed)
    program(feed)
    with pytest.raises(uf.FeedError, match="overflows float32"):
        program({**feed, "x": np.full((3, 2, 2), 1e39)})
    with pytest.raises(uf.UnfoldError):
        program({**feed, "y": np.full((3, 2), 7)})                 # class 7 of 4
    with pytest.raises(uf.FeedError, match="unknown feed name"):
        program({**feed, "z": feed["x"]})
    _agree(list(program.outputs), program(feed), feed, 1e-6)


def test_fed_arrays_are_read_in_place_whatever_their_layout():
    """Parameters and whole sequences are read where the caller keeps them: the same array
    updated in place between calls (a training step) is read anew; a strided, Fortran-order
    or read-only array gives the same values as a plain one."""
    program = unfold_program("rnn", "tiny", np.float64)
    outputs = list(program.outputs)
    d = data("rnn", "tiny", np.float64)
    program(d)
    (plan,) = program._batched_plans.values()
    assert plan._bound or plan._bound_sequences           # read in place, not copied
    d["W"] *= 0.5                                           # same array, new values
    _agree(outputs, program(d), d)
    wide = np.zeros(d["x"].shape[:-1] + (2 * d["x"].shape[-1],))
    wide[..., ::2] = d["x"]
    frozen = d["U"].copy()
    frozen.flags.writeable = False
    odd = {**d, "x": wide[..., ::2], "V": np.asfortranarray(d["V"]), "U": frozen}
    want = uf.evaluate(outputs, d, mode="reference")
    _agree(outputs, program(odd), d, want=want)
    _agree(outputs, program(d), d, want=want)


def test_calls_on_slices_side_by_side_join_into_one():
    """``merge_adjacent``: σ on z[:, 0:n], z[:, n:2n] into y[:, 0:n], y[:, n:2n] is one σ on
    z[:, 0:2n]; slices apart, other functions, or a call in between touching their memory
    keep the calls apart."""
    from unfold.timebatch.kernels import sigmoid
    from unfold.timebatch.lower import merge_adjacent
    z, y, w = np.arange(24.0).reshape(2, 12), np.empty((2, 12)), np.empty((2, 4))
    calls = [(sigmoid, (z[:, 0:4], y[:, 0:4])), (sigmoid, (z[:, 4:8], y[:, 4:8])),
             (np.tanh, (z[:, 8:12], y[:, 8:12]))]
    joined = merge_adjacent(calls)
    assert [f for f, _ in joined] == [sigmoid, np.tanh]
    assert joined[0][1][0].shape == (2, 8) and np.shares_memory(joined[0][1][1], y[:, 4:8])
    for fn, args in joined:
        fn(*args)
    assert np.allclose(y, np.concatenate([1 / (1 + np.exp(-z[:, :8])), np.tanh(z[:, 8:])], 1))
    apart = [(sigmoid, (z[:, 0:4], y[:, 0:4])), (sigmoid, (z[:, 8:12], y[:, 4:8]))]
    assert len(merge_adjacent(apart)) == 2
    between = [(sigmoid, (z[:, 0:4], y[:, 0:4])), (np.negative, (y[:, 4:8], w)),
               (sigmoid, (z[:, 4:8], y[:, 4:8]))]
    assert len(merge_adjacent(between)) == 3             # (y[:, 4:8] read before it is written)


def test_a_ufunc_on_slices_side_by_side_and_one_same_array_is_one_stacked_call():
    """``merge_adjacent``: ``s ⊙ e[:, 4:8] → e[:, 4:8]``, ``s ⊙ e[:, 0:4] → e[:, 0:4]`` (an LSTM's
    backward step: ∇s times the factors of ∇z_f and ∇z_i) is one call on ``e[:, 0:8]`` seen as
    (2, 2, 4), ``s`` broadcast; ``s`` among the outputs, slices of other widths, or a call in
    between writing ``s`` keep the calls apart."""
    from unfold.timebatch.lower import merge_adjacent
    rng = np.random.default_rng(0)
    e, s = rng.standard_normal((2, 12)), rng.standard_normal((2, 4))
    want = e.copy()
    want[:, :8] *= np.tile(s, 2)
    calls = [(np.multiply, (s[:], e[:, 4:8], e[:, 4:8])), (np.multiply, (s[:], e[:, 0:4], e[:, 0:4]))]
    (joined,) = merge_adjacent(calls)
    assert joined[1][1].shape == (2, 2, 4) and joined[1][0].shape == (2, 1, 4)
    joined[0](*joined[1])
    assert np.array_equal(e, want)
    three = [(np.multiply, (s, e[:, 4 * j:4 * j + 4], e[:, 4 * j:4 * j + 4])) for j in range(3)]
    assert len(merge_adjacent(three)) == 1
    w = np.empty((2, 12))
    writes_s = [(np.multiply, (s, e[:, 0:4], s)), (np.multiply, (s, e[:, 4:8], s))]
    assert len(merge_adjacent(writes_s)) == 2
    widths = [(np.add, (s, e[:, 0:4], w[:, 0:4])), (np.add, (s[:, :2], e[:, 4:6], w[:, 4:6]))]
    assert len(merge_adjacent(widths)) == 2
    between = [(np.add, (s, e[:, 0:4], w[:, 0:4])), (np.negative, (e[:, 8:12], s)),
               (np.add, (s, e[:, 4:8], w[:, 4:8]))]
    assert len(merge_adjacent(between)) == 3


def test_the_lstm_step_computes_its_three_sigmoid_gates_in_one_call():
    from unfold.timebatch.kernels import sigmoid, sigmoid_of_negated
    program = unfold_program("lstm", "tiny", np.float32)
    program(data("lstm", "tiny", np.float32))
    (plan,) = program._batched_plans.values()
    space = plan.run_code.__globals__
    sigmoids = [n for n, v in space.items() if v is sigmoid or v is sigmoid_of_negated]
    loops = plan.run_code.source.split("    for ")[1:]        # the step loops' bodies
    counts = [sum(body.count(f" _{n}(") for n in sigmoids) for body in loops]   # (as locals)
    assert sorted(counts) == [0, 1], counts                   # backward, forward


def test_a_sum_over_one_peeled_scalar_step_reads_its_buffer():
    """A reduction with a part of one row (the omega regularizer of an RNN: the first step's
    scalar, peeled): the row is read from its buffer at every call, never a value copied
    while planning."""
    from unfold import models
    from unfold.dynamics import omega
    rec = models.rnn(2, 3, 2)
    net = rec.unfold(5)
    outputs = [omega(net)]
    program = uf.compile(outputs)
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        feed = {k: rng.standard_normal(p.shape) for k, p in rec.params.items()}
        feed.update(x=rng.standard_normal((5, 2)), y=rng.integers(0, 2, 5))
        _agree(outputs, program(feed), feed)
