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
central differences on a subset (no relu: kinks). The defects it found (wrong gradients where
one gradient is assembled from slices; a plan that failed on a batched delay) are fixed and stay
below as explicit regression cases.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import unfold as uf
from unfold import timebatch
from unfold.testing import numeric_grad
from unfold.testing.recurrences import cells
from unfold.timebatch import lower
from timebatch_tolerance import assert_agree
from examples import scaled

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


def _other(feed: dict) -> dict:
    """The feed with every float array scaled by 0.9 (another point to evaluate at)."""
    return {k: v * v.dtype.type(0.9) if v.dtype.kind == "f" and k != "mask" else v
            for k, v in feed.items()}


def _outputs(g, drawn) -> list:
    """The loss, every gradient, every state's final value and every output at every step."""
    out = [g.loss] + uf.grad(g.loss, g.params)
    out += [g.final(name) for name in drawn.recurrence.states]
    for name in drawn.recurrence.outputs:
        out += g.over_time(name)
    return out


def check(drawn, mask: bool | str = False, truncate: int | None = None, loops: bool = False,
          drawn_by_hypothesis: bool = True) -> None:
    """Batched against reference for one drawn recurrence (``mask``: of random lengths, or
    ``"ones"``; ``loops``: step loops at τ ≥ 2)."""
    g = drawn.unfold(mask=bool(mask), truncate=truncate)
    feed = dict(drawn.feed)
    if mask:
        feed["mask"] = _mask(drawn) if mask != "ones" else \
            np.ones(drawn.feed["x"].shape[:-1], drawn.dtype)
    outputs = _outputs(g, drawn)
    with pytest.MonkeyPatch.context() as mp:
        if loops:
            mp.setattr(lower, "LOOP_STEPS", 2)
        program = uf.compile(outputs)
        program(_other(feed))             # (a buffer read before it is written holds this call's
        got = program(feed)               # values, not by chance the reference's)
    assert any(p is not None for p in program._batched_plans.values()), \
        "the time-batched compiler gave up on this graph"
    want = uf.evaluate(outputs, feed, mode="reference")
    bounded = all(np.all(np.isfinite(w)) and np.all(np.abs(w) < 1e8) for w in want)
    if drawn_by_hypothesis:
        assume(bounded)                           # (a drawn cell may overflow: another example)
    assert bounded, "the reference overflows"
    rtol = 1e-12 if drawn.dtype == np.float64 else 1e-5
    assert_agree(outputs, got, want, feed, rtol)


@given(drawn=cells(), mask=st.booleans(), truncate=st.sampled_from([None, None, 2]))
def test_drawn_cells_agree_with_the_reference(drawn, mask, truncate):
    check(drawn, mask, truncate)


@settings(max_examples=scaled(15))
@given(drawn=cells(max_states=2), mask=st.booleans())
def test_drawn_cells_agree_when_every_run_of_steps_is_a_loop(drawn, mask):
    check(drawn, mask, loops=True)


@settings(max_examples=scaled(15))
@given(drawn=cells(max_states=2, dtypes=(np.float32,)), loops=st.booleans())
def test_drawn_float32_cells_agree(drawn, loops):
    check(drawn, loops=loops)


@settings(max_examples=scaled(8))
@given(drawn=cells(max_states=2, max_size=3, max_steps=4,
                   activations=("identity", "tanh", "sigmoid", "softsign", "hand sigmoid")))
def test_the_reference_agrees_with_central_differences(drawn):
    """A bug may be on either side: reverse mode on the reference path (node by node) against
    central differences, for every parameter of the drawn cell (no relu: kinks)."""
    g = drawn.unfold()
    assume(np.all(np.abs(uf.evaluate([g.loss], drawn.feed, mode="reference")[0]) < 1e6))
    analytic = uf.evaluate(uf.grad(g.loss, g.params), drawn.feed, mode="reference")
    numeric = numeric_grad(g.loss, g.params, drawn.feed)
    for p, a, n in zip(g.params, analytic, numeric):
        assert np.allclose(a, n, rtol=1e-5, atol=1e-6), \
            f"∇{p.label}: reference {a} vs central differences {n}"


# --- the defects found, as explicit models: all fixed, they stay as regression cases ------------

def _one_state(body, steps: int, batch=None, act=None, inner=None, width: int = 2,
               n: int = 1, m: int = 1, seed: int = 0, state_loss: bool = False,
               x_first: bool = True, delay: int = 0, bias: bool = False):
    """h(t) = body(z, h) for ONE node z = act(a) (z = a without ``act``), a = W1 x(t) + W2 h(t−1)
    (``width`` rows; W2 h(t−1) + W1 x(t) unless ``x_first``); loss mse(c + V h(t), y), or Σ h(t)²
    with ``state_loss``, plus Σ v² for ``v = inner(z)`` when given; ``+ W3 h(t−delay)``, ``+ b``
    as asked."""
    from unfold.testing.recurrences import RandomRecurrence
    rec = uf.Recurrence("finding")
    x, h = rec.sequence("x", (m,)), rec.state("h", (n,))
    u, w = rec.param("W1", (width, m)) @ x, rec.param("W2", (width, n)) @ h
    a = u + w if x_first else w + u
    if delay:
        a = a + rec.param("W3", (width, n)) @ rec.past(h, delay)
    if bias:
        a = a + rec.param("b", (width,))
    z = a if act is None else act(a)
    new = rec.update(h, body(z, h))
    lead = (steps,) if batch is None else (steps, batch)
    rng = np.random.default_rng(seed)
    feed = {"x": rng.uniform(-1, 1, lead + (m,))}
    if state_loss:
        rec.loss("L", uf.sum(new * new))
    else:
        o = rec.output("o", rec.param("c", (2,)) + rec.param("V", (2, n)) @ new)
        rec.loss("L", uf.mse(o, rec.target("y", (2,), np.float64), reduction="sum"))
        feed["y"] = rng.uniform(-1, 1, lead + (2,))
    if inner is not None:
        v = inner(z)
        rec.loss("L_inner", uf.sum(v * v))
    feed.update({k: rng.standard_normal(p.shape) for k, p in rec.params.items()})
    return RandomRecurrence(rec, steps, batch, np.dtype(np.float64), feed, {"seed": seed})


FOUND = [
    pytest.param(lambda steps, batch, seed, x_first: _one_state(
        lambda z, h: z[0:1], steps, batch, uf.tanh, inner=lambda z: z[1:2], seed=seed, x_first=x_first),
        "ones", id="1-mask-loss-on-the-other-slice-of-tanh(a)"),
    pytest.param(lambda steps, batch, seed, x_first: _one_state(
        lambda z, h: z[0:1] * h + z[0:1] * z[1:2], steps, batch, seed=seed, x_first=x_first),
        False, id="2-a[0:1]*h+a[0:1]*a[1:2]"),
    pytest.param(lambda steps, batch, seed, x_first: _one_state(
        lambda z, h: z[1:2] * h + z[0:1] * z[1:2], steps, batch, seed=seed, x_first=x_first),
        False, id="2-a[1:2]*h+a[0:1]*a[1:2]"),
    pytest.param(lambda steps, batch, seed, x_first: _one_state(
        lambda z, h: z[0:2] * z[2:4], steps, batch, uf.sigmoid, width=4, n=2, m=3,
        seed=seed, x_first=x_first, state_loss=True),
        False, id="lead-18:00-sigmoid(a)[0:2]*sigmoid(a)[2:4]"),
    pytest.param(lambda steps, batch, seed, x_first: _one_state(
        lambda z, h: z[0:1] * z[1:2], steps, batch, uf.tanh, seed=seed, x_first=x_first),
        False, id="lead-18:00-tanh(a)[0:1]*tanh(a)[1:2]"),
    pytest.param(lambda steps, batch, seed, x_first: _one_state(
        lambda z, h: z[0:1], steps + 1, 1 if batch is None else batch, delay=steps, bias=True,
        seed=seed, x_first=x_first),
        False, id="3-batched-bias-delay-d-at-tau-d+1"),
]


@pytest.mark.parametrize("make, mask", FOUND)
def test_found_defects(make, mask):
    """Each model at τ = 2 and 3, unbatched and batched, three seeds, both orders of the terms
    of ``a``: all must agree (a wrong gradient read from an uninitialised buffer is not wrong for
    every value, and the order of a sum's terms decides what the compiler does)."""
    for steps in (2, 3):
        for batch in (None, 3):
            for seed in range(3):
                for x_first in (True, False):
                    check(make(steps, batch, seed, x_first), mask=mask,
                          drawn_by_hypothesis=False)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"max_states": 0}, ValueError, "max_states"),
    ({"dtypes": "float64"}, ValueError, "dtypes"),
    ({"activations": ("tanh", "swish")}, ValueError, "activations"),
    ({"activations": ()}, ValueError, "activations"),
    ({"products": "yes"}, TypeError, "products"),
])
def test_cells_refuses_bad_arguments_when_made(kwargs, error, words):
    with pytest.raises(error, match=words):
        cells(**kwargs)
