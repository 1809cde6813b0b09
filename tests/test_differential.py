"""Differential fuzz of the time-batched path: cells drawn as random DAGs against the reference.

``unfold.testing.recurrences.cells`` draws step bodies the way people write cells (stacked
matrices over ``concat([x, h])``, slices of a pre-activation in any order and overlap, σ before
or after slicing, products and sums of slices, several states reading each other, delays,
outputs reading intermediates, losses at some steps). For each drawn recurrence the default
evaluation (time-batched, ``timebatch.STRICT``: a compiler failure raises) and
``mode="reference"`` (node by node) must agree on the loss, every output, the final states and
ALL gradients to 1e-12 relative in float64 (1e-5 in float32; a sum relative to its terms:
tests/timebatch_tolerance.py) — with masks, truncation, batched and unbatched feeds, and with
step loops forced at small τ (``lower.LOOP_STEPS = 2``). The reference itself is checked against
central differences on a subset (no relu: kinks). Defects found are in /work/wt/fuzz/FINDINGS.md;
those still open run below as strict xfails, so that a fix turns them green.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import unfold as uf
from unfold import timebatch
from unfold.testing import gradcheck
from unfold.testing.recurrences import cells
from unfold.timebatch import lower
from timebatch_tolerance import assert_agree

pytestmark = pytest.mark.usefixtures("strict")


@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setattr(timebatch, "STRICT", True)


def _mask(drawn):
    rng = np.random.default_rng(drawn.description["seed"])
    steps, batch = drawn.steps, drawn.batch
    lengths = rng.integers(1, steps + 1, size=() if batch is None else (batch,))
    t = np.arange(steps).reshape((steps,) + (1,) * (batch is not None))
    return (t < lengths).astype(drawn.dtype)


def _outputs(g, drawn) -> list:
    """The loss, every gradient, every state's final value and every output at every step."""
    out = [g.loss] + uf.grad(g.loss, g.params)
    out += [g.final(name) for name in drawn.recurrence.states]
    for name in drawn.recurrence.outputs:
        out += g.over_time(name)
    return out


def check(drawn, mask: bool = False, truncate: int | None = None, loops: bool = False) -> None:
    """Batched against reference for one drawn recurrence (``loops``: step loops at τ ≥ 2)."""
    g = drawn.unfold(mask=mask, truncate=truncate)
    feed = dict(drawn.feed)
    if mask:
        feed["mask"] = _mask(drawn)
    outputs = _outputs(g, drawn)
    want = uf.evaluate(outputs, feed, mode="reference")
    assume(all(np.all(np.isfinite(w)) and np.all(np.abs(w) < 1e8) for w in want))  # (no overflow)
    with pytest.MonkeyPatch.context() as mp:
        if loops:
            mp.setattr(lower, "LOOP_STEPS", 2)
        program = uf.compile(outputs)
        got = program(feed)
    assert any(p is not None for p in program._batched_plans.values()), \
        "the time-batched compiler gave up on this graph"
    rtol = 1e-12 if drawn.dtype == np.float64 else 1e-5
    assert_agree(outputs, got, want, feed, rtol)


@given(drawn=cells(), mask=st.booleans(), truncate=st.sampled_from([None, None, 2]))
def test_drawn_cells_agree_with_the_reference(drawn, mask, truncate):
    check(drawn, mask, truncate)


@settings(max_examples=15)
@given(drawn=cells(max_states=2), mask=st.booleans())
def test_drawn_cells_agree_when_every_run_of_steps_is_a_loop(drawn, mask):
    check(drawn, mask, loops=True)


@settings(max_examples=10)
@given(drawn=cells(max_states=2, dtypes=(np.float32,)), loops=st.booleans())
def test_drawn_float32_cells_agree(drawn, loops):
    check(drawn, loops=loops)


@settings(max_examples=8)
@given(drawn=cells(max_states=2, max_size=3, max_steps=4,
                   activations=("identity", "tanh", "sigmoid", "softsign", "hand sigmoid")))
def test_the_reference_agrees_with_central_differences(drawn):
    """A bug may be on either side: reverse mode on the reference path against finite
    differences, for every parameter of the drawn cell."""
    g = drawn.unfold()
    want = uf.evaluate([g.loss], drawn.feed, mode="reference")
    assume(np.all(np.abs(want[0]) < 1e6))
    gradcheck(g.loss, g.params, drawn.feed, atol=1e-6, rtol=1e-5)
