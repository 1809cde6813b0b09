"""Strip-mining (unfold/timebatch/strip.py): the passes run chunk by chunk of steps.

The properties of tests/test_timebatch.py and tests/test_differential.py run again here with
chunks of a few steps forced on every graph (``chunked``: each boundary — a loop's state read
across it, an accumulation chain continued, a peeled step — met many times), against the
per-node reference to 1e-12 (float64); the plans are checked to be cut. The default sizes are
checked on an LSTM of the bench's shape: cut, agreeing with the uncut plan and the reference,
and holding a fraction of its bytes.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import unfold as uf
from unfold import timebatch
from unfold.timebatch import strip

import test_differential as differential
import test_timebatch as batched
from timebatch_tolerance import assert_agree

pytestmark = pytest.mark.usefixtures("strict", "chunked")


@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setattr(timebatch, "STRICT", True)


@pytest.fixture
def chunked(monkeypatch):
    """Chunks of 2 steps, on graphs of any size."""
    monkeypatch.setattr(strip, "MIN_BYTES", 0)
    monkeypatch.setattr(strip, "CHUNK_ROWS", 1)
    monkeypatch.setattr(strip, "CHUNKS", 1 << 30)
    monkeypatch.setattr(strip, "chunk_steps", lambda span, batch: 2 if span > 2 else None)


# the properties of the time-batched compiler, with every graph cut into chunks
test_random_recurrences_agree_with_the_reference = \
    batched.test_random_recurrences_agree_with_the_reference
test_recurrences_agree_when_every_run_of_steps_is_a_loop = \
    batched.test_recurrences_agree_when_every_run_of_steps_is_a_loop
test_an_lstm_with_gates_cut_from_one_z_agrees = batched.test_an_lstm_with_gates_cut_from_one_z_agrees
test_a_masked_delay_two_state_is_planned_and_agrees = \
    batched.test_a_masked_delay_two_state_is_planned_and_agrees
test_a_masked_backward_state_is_planned_and_agrees = \
    batched.test_a_masked_backward_state_is_planned_and_agrees
test_float32_recurrences_agree_and_stay_float32 = \
    batched.test_float32_recurrences_agree_and_stay_float32
test_an_encoder_decoder_agrees = batched.test_an_encoder_decoder_agrees
test_gradcheck_passes_through_the_time_batched_path = \
    batched.test_gradcheck_passes_through_the_time_batched_path
test_drawn_cells_agree_with_the_reference = differential.test_drawn_cells_agree_with_the_reference
test_drawn_float32_cells_agree = differential.test_drawn_float32_cells_agree


#: the default sizes, read before ``chunked`` replaces them
DEFAULTS = {k: getattr(strip, k) for k in ("MIN_BYTES", "CHUNK_ROWS", "CHUNKS", "chunk_steps")}


def _outputs(rec, steps: int, batch, seed: int = 7):
    net = rec.unfold(steps)
    rng = np.random.default_rng(seed)
    feed = {k: rng.standard_normal(p.shape) / 2 for k, p in rec.params.items()}
    lead = (steps,) if batch is None else (steps, batch)
    feed.update(x=rng.standard_normal(lead + (rec.sequences["x"].shape[0],)),
                y=rng.integers(0, 2, lead))
    return [net.loss] + uf.grad(net.loss, net.params), feed


@pytest.mark.parametrize("model", ["rnn", "lstm", "bidirectional"])
@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("steps", [3, 7, 10])
def test_chunked_plans_are_cut_and_agree(steps, batch, model):
    rec = getattr(uf.models, model)(3, 4, 2)
    outputs, feed = _outputs(rec, steps, batch)
    program = uf.compile(outputs)
    got = program(feed)
    (plan,) = program._batched_plans.values()
    assert plan.chunks == -(-steps // 2)
    assert_agree(outputs, got, uf.evaluate(outputs, feed, mode="reference"), feed, 1e-12)


@pytest.fixture
def defaults(chunked, monkeypatch):          # (after ``chunked``: undoes it)
    for k, v in DEFAULTS.items():
        monkeypatch.setattr(strip, k, v)


@settings(max_examples=60, deadline=None)
@given(span=st.integers(1, 5000), batch=st.sampled_from([None, 1, 3, 16, 64, 1000]))
def test_chunks_are_of_one_size_and_large(span, batch):
    """At most CHUNKS chunks of at least CHUNK_ROWS rows (steps × batch), of one size but the
    last, which is no larger; none when one chunk would hold every step."""
    rows, most = DEFAULTS["CHUNK_ROWS"], DEFAULTS["CHUNKS"]
    k = DEFAULTS["chunk_steps"](span, batch, rows, most)
    if k is None:                        # (two chunks of enough rows would not fit)
        assert span < 2 * -(-rows // (batch or 1))
        return
    count = -(-span // k)
    assert 2 <= count <= most and k * (batch or 1) >= rows
    assert 0 < span - (count - 1) * k <= k


@pytest.mark.usefixtures("defaults")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_an_lstm_of_the_bench_holds_a_fraction_of_the_uncut_plan(dtype, monkeypatch):
    """An LSTM (the book's) of the bench's small sizes (n = 64, batch 16, τ = 100) by default: cut
    in 4 chunks, its plan holds at most 0.75 of the uncut plan's bytes (measured 0.73), and its
    values are the uncut plan's and the reference's."""
    rec = uf.models.lstm(32, 64, 32, dtype=dtype)
    outputs, feed = _outputs(rec, 100, 16, seed=3)
    feed = {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in feed.items()}
    plans = {}
    for cut in (False, True):
        monkeypatch.setattr(strip, "STRIP", cut)
        program = uf.compile(outputs)
        program.release()                       # (a plan made with this setting)
        plans[cut] = (program(feed), *program._batched_plans.values())
    (cut, plan), (whole, uncut) = plans[True], plans[False]
    assert plan.chunks == 4 and uncut.chunks == 0
    assert plan.nbytes <= 0.75 * uncut.nbytes
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert_agree(outputs, cut, whole, feed, rtol)
    if dtype == np.float64:
        assert_agree(outputs, cut, uf.evaluate(outputs, feed, mode="reference"), feed, rtol)
