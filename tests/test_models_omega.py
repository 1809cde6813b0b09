"""Ω, the regulariser of section 10.11.2 (Pascanu et al. 2013, eq. 10.50): its value against the
BPTT equations in numpy, its exact gradient (a gradient of gradients) against finite differences on
random recurrences, and the paper's approximations (∇h(t) L, and the states, held constant)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import unfold as uf
from unfold import models as M
from unfold.dynamics import omega
from unfold.testing import gradcheck, numeric_grad
from unfold.testing.strategies import recurrences

FEW = max(6, settings().max_examples // 4)


def forward(P, x, y):
    """Fig. 10.3 forward and BPTT (eqs. 10.18–10.21), batched on axis 1 of x: (τ, B, m)."""
    steps, B = x.shape[:2]
    hs = [np.zeros((B, P["W"].shape[0]))]
    go = []
    for t in range(steps):
        hs.append(np.tanh(P["b"] + hs[-1] @ P["W"].T + x[t] @ P["U"].T))
        o = P["c"] + hs[-1] @ P["V"].T
        p = np.exp(o - o.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        go.append(p - np.eye(o.shape[1])[y[t]])
    g = [None] * steps
    for t in range(steps - 1, -1, -1):
        g[t] = go[t] @ P["V"]
        if t + 1 < steps:
            g[t] = g[t] + ((1 - hs[t + 2] ** 2) * g[t + 1]) @ P["W"]
    return hs[1:], g


def omega_of(W, hs, g):
    """Σ_t (‖gᵀ diag(1 − h(t)²) W‖ / ‖g‖ − 1)², summed over the batch."""
    total = 0.0
    for h, gt in zip(hs, g):
        v = ((1 - h ** 2) * gt) @ W
        total += np.sum((np.linalg.norm(v, axis=1) / np.linalg.norm(gt, axis=1) - 1) ** 2)
    return total


@st.composite
def rnns(draw):
    m, n, k = draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(2, 3))
    steps, batch = draw(st.integers(1, 5)), draw(st.none() | st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rec = M.rnn(m, n, k)
    lead = (steps,) if batch is None else (steps, batch)
    feed = {name: rng.uniform(-1, 1, p.shape) for name, p in rec.params.items()}
    feed.update(x=rng.standard_normal(lead + (m,)), y=rng.integers(0, k, lead))
    batched = feed if batch is not None else dict(feed, x=feed["x"][:, None],
                                                  y=feed["y"][:, None])
    return rec, steps, feed, batched


@settings(max_examples=FEW)
@given(rnns())
def test_omega_is_eq_10_50_on_fig_10_3(case):
    rec, steps, feed, batched = case
    net = rec.unfold(steps)
    hs, g = forward(batched, batched["x"], batched["y"])
    expected = omega_of(feed["W"], hs, g)
    values = uf.evaluate([omega(net), omega(net, approximate=True),
                          omega(net, approximate=True, hold_states=True)], feed)
    np.testing.assert_allclose(values, [expected] * 3, rtol=1e-10, atol=1e-12)


@settings(max_examples=FEW)
@given(recurrences(max_states=2, max_size=2, max_steps=4, max_batch=2))
def test_the_exact_gradient_of_omega_passes_gradcheck_on_any_recurrence(drawn):
    net = drawn.unfold()
    gradcheck(omega(net), net.params, drawn.feed, atol=1e-5, rtol=1e-4)


@settings(max_examples=FEW)
@given(rnns())
def test_the_approximations_hold_the_right_things_constant(case):
    rec, steps, feed, batched = case
    net = rec.unfold(steps)
    names = ["W", "U", "b", "V", "c"]
    nodes = [rec.params[k] for k in names]
    hs, g = forward(batched, batched["x"], batched["y"])
    approx = dict(zip(names, uf.evaluate(uf.grad(omega(net, approximate=True), nodes), feed)))
    held = dict(zip(names, uf.evaluate(
        uf.grad(omega(net, approximate=True, hold_states=True), nodes), feed)))
    # ∇h(t) L held: V and c reach Ω only through it
    assert not approx["V"].any() and not approx["c"].any()
    # states held too: only W's direct place in the Jacobian diag(1 − h²) W is left
    assert all(not held[k].any() for k in ("U", "b", "V", "c"))
    eps = 1e-6
    for name in ("W", "U", "b"):
        numeric = np.zeros(feed[name].shape)
        for index in np.ndindex(numeric.shape):
            values = []
            for d in (eps, -eps):
                P = {k: np.array(v) for k, v in batched.items()}
                P[name] = P[name].astype(float)
                P[name][index] += d
                moved, _ = forward(P, P["x"], P["y"])       # states move, ∇h(t) L stays
                values.append(omega_of(P["W"], moved, g))
            numeric[index] = (values[0] - values[1]) / (2 * eps)
        np.testing.assert_allclose(approx[name], numeric, rtol=1e-5, atol=1e-7, err_msg=name)
    numeric = np.zeros(feed["W"].shape)
    for index in np.ndindex(numeric.shape):
        values = []
        for d in (eps, -eps):
            W = np.array(feed["W"], dtype=float)
            W[index] += d
            values.append(omega_of(W, hs, g))
        numeric[index] = (values[0] - values[1]) / (2 * eps)
    np.testing.assert_allclose(held["W"], numeric, rtol=1e-5, atol=1e-7)


def test_the_approximate_gradient_differs_from_the_exact_one():
    rng = np.random.default_rng(0)
    rec = M.rnn(2, 3, 2)
    net = rec.unfold(5)
    feed = {k: rng.standard_normal(p.shape) for k, p in rec.params.items()}
    feed.update(x=rng.standard_normal((5, 2)), y=rng.integers(0, 2, 5))
    exact = uf.evaluate(uf.grad(omega(net), net.params), feed)
    approx = uf.evaluate(uf.grad(omega(net, approximate=True), net.params), feed)
    numeric = numeric_grad(omega(net), net.params, feed)
    for e, a, n in zip(exact, approx, numeric):
        np.testing.assert_allclose(e, n, rtol=1e-5, atol=1e-7)
    assert max(np.abs(e - a).max() for e, a in zip(exact, approx)) > 1e-2


def test_omega_over_an_lstm_takes_its_states_jointly_and_ignores_padding():
    rng = np.random.default_rng(1)
    rec = M.lstm(2, 3, 2)
    net = rec.unfold(4, mask=True)
    feed = {k: rng.uniform(-1, 1, p.shape) for k, p in rec.params.items()}
    feed.update(x=rng.standard_normal((4, 3, 2)), y=rng.integers(0, 2, (4, 3)),
                mask=np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 0, 0]], float))
    joint = omega(net)
    value, *grads = uf.evaluate([joint, *uf.grad(joint, net.params)], feed)
    assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads)
    # the example of length 1 adds only its first step: the same as unfolding it alone
    alone = rec.unfold(1)
    single = {**{k: feed[k] for k in rec.params}, "x": feed["x"][:1, 2], "y": feed["y"][:1, 2]}
    per_example = uf.evaluate([omega(net)], {**feed, "x": feed["x"][:, 2:], "y": feed["y"][:, 2:],
                                             "mask": feed["mask"][:, 2:]})[0]
    np.testing.assert_allclose(per_example, uf.evaluate([omega(alone)], single)[0], rtol=1e-12)
    unmasked = {k: v for k, v in feed.items() if k != "mask"}   # an unmasked graph refuses it
    gradcheck(omega(rec.unfold(2), states=["s", "h"]), rec.unfold(2).params,
              {**unmasked, "x": feed["x"][:2, 0], "y": feed["y"][:2, 0]}, atol=1e-5, rtol=1e-4)


def test_training_with_omega_as_a_penalty_brings_the_ratios_towards_one():
    rng = np.random.default_rng(2)
    rec = M.rnn(2, 4, 2)
    net = rec.unfold(8)
    feed = {k: rng.standard_normal(p.shape) * (0.3 if k == "W" else 1.0)
            for k, p in rec.params.items()}
    feed.update(x=rng.standard_normal((8, 4, 2)), y=rng.integers(0, 2, (8, 4)))
    penalty = omega(net, approximate=True)
    program = uf.compile([penalty, *uf.grad(net.loss + 0.1 * penalty, net.params)])
    first = program(feed)[0]
    for _ in range(30):
        value, *grads = program(feed)
        for p, g in zip(net.params, grads):
            feed[p.name] = feed[p.name] - 0.05 * g
    assert program(feed)[0] < 0.5 * first


def test_omega_names_a_state_it_does_not_know_and_refuses_mixed_directions():
    rec = uf.Recurrence("bi")
    x = rec.sequence("x", (2,))
    h, g = rec.state("h", (2,)), rec.state("g", (2,), backward=True)
    rec.update(h, uf.tanh(h + x))
    rec.update(g, uf.tanh(g + x))
    rec.loss("L", uf.sum(h * x))
    net = rec.unfold(3)
    with pytest.raises(uf.RecurrenceError, match="no state"):
        omega(net, "q")
    with pytest.raises(uf.RecurrenceError, match="both directions"):
        omega(net, ["h", "g"])
