"""Explicit memory (section 10.12, Fig. 10.18): the memory network against its equations in numpy,
gradcheck over random sizes, controllers, τ and batches, attention weights that are distributions,
and the copy task learned below a stated loss."""
from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import unfold as uf
from unfold import models as M
from unfold import train
from unfold.data.tasks import copy_sequences
from unfold.testing import gradcheck

FEW = max(6, settings().max_examples // 4)
EPS = 1e-6


def softmax(z):
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def address(P, head, h, Mem):
    k = P[f"{head}.b_k"] + h @ P[f"{head}.W_k"].T
    beta = np.log1p(np.exp(P[f"{head}.b_beta"] + h @ P[f"{head}.w_beta"]))
    cos = np.einsum("bij,bj->bi", Mem, k) / (
        np.sqrt((Mem ** 2).sum(-1) + EPS) * np.sqrt((k ** 2).sum(-1, keepdims=True) + EPS))
    return softmax(beta[:, None] * cos)


def reference(P, x, y, o):
    """The docstring's equations with an "rnn" controller, batched on axis 1 of x (τ, B, m)."""
    steps, B = x.shape[:2]
    h, r = np.zeros((B, o["n"])), np.zeros((B, o["width"]))
    Mem = np.broadcast_to(P["M0"], (B,) + P["M0"].shape)
    total = 0.0
    for t in range(steps):
        h = np.tanh(P["b"] + h @ P["W"].T + np.concatenate([x[t], r], 1) @ P["U"].T)
        w_w = address(P, "write", h, Mem)
        e = 1 / (1 + np.exp(-(P["write.b_e"] + h @ P["write.W_e"].T)))
        a = np.tanh(P["write.b_a"] + h @ P["write.W_a"].T)
        Mem = Mem * (1 - w_w[:, :, None] * e[:, None]) + w_w[:, :, None] * a[:, None]
        r = np.einsum("bi,bij->bj", address(P, "read", h, Mem), Mem)
        out = P["c"] + h @ P["V"].T + r @ P["V_r"].T
        total += ((out - y[t]) ** 2).sum()
    return total


@st.composite
def memories(draw, controllers=("rnn",)):
    o = {"m": draw(st.integers(1, 3)), "n": draw(st.integers(1, 3)), "k": draw(st.integers(1, 3)),
         "cells": draw(st.integers(1, 4)), "width": draw(st.integers(1, 3)),
         "steps": draw(st.integers(1, 4)), "batch": draw(st.none() | st.integers(1, 2)),
         "controller": draw(st.sampled_from(controllers))}
    rec = M.memory_network(o["m"], o["n"], o["k"], cells=o["cells"], width=o["width"],
                           controller=o["controller"], loss="squared_error")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lead = (o["steps"],) if o["batch"] is None else (o["steps"], o["batch"])
    feed = {name: rng.uniform(-1, 1, p.shape) for name, p in rec.params.items()}
    feed.update(x=rng.standard_normal(lead + (o["m"],)), y=rng.standard_normal(lead + (o["k"],)))
    return rec, feed, o


@settings(max_examples=FEW)
@given(memories())
def test_the_memory_network_follows_its_equations(case):
    rec, feed, o = case
    net = rec.unfold(o["steps"])
    loss, = uf.evaluate([net.loss], feed)
    x, y = (feed["x"], feed["y"]) if o["batch"] else (feed["x"][:, None], feed["y"][:, None])
    np.testing.assert_allclose(loss, reference(feed, x, y, o), rtol=1e-11, atol=1e-12)


@settings(max_examples=FEW)
@given(memories(controllers=("rnn", "lstm", "gru")))
def test_the_memory_network_passes_gradcheck(case):
    rec, feed, o = case
    net = rec.unfold(o["steps"])
    gradcheck(net.loss, net.params + net.over_time("x"), feed, atol=1e-6, rtol=1e-5)


@settings(max_examples=FEW)
@given(memories(), st.sampled_from([0.1, 1.0, 30.0]))
def test_attention_weights_are_distributions_over_the_cells(case, scale):
    rec, feed, o = case
    feed = {k: v * scale if k in rec.params else v for k, v in feed.items()}
    net = rec.unfold(o["steps"])
    for w in uf.evaluate(net.over_time("write.w") + net.over_time("read.w"), feed):
        assert w.shape[-1] == o["cells"] and np.all(w >= 0) and np.all(np.isfinite(w))
        np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-12)


def test_the_memory_network_learns_the_copy_task():
    """Copy 4 symbols (of 4) after a delimiter: the mean cross-entropy per recalled symbol falls
    below 0.05 nats (chance: log 4 ≈ 1.39) in 300 Adam steps; without its reads the trained net
    does far worse, so the memory carries the sequence."""
    length, symbols = 4, 4
    rec = M.memory_network(symbols + 2, 16, symbols + 2, cells=8, width=8, inputs="tokens",
                           outputs=range(length + 2, 2 * length + 2))
    params = train.init_params(rec, seed=0)
    trainer = train.Trainer(rec, params, train.Adam(lr=0.01), clip=1.0)
    rng = np.random.default_rng(0)
    batches = ({k: d[k] for k in ("x", "y")} for d in iter(
        lambda: copy_sequences(length, symbols, 32, rng), None))
    start = time.perf_counter()
    trainer.fit(batches, steps=300, progress=False)
    held_out = copy_sequences(length, symbols, 500, np.random.default_rng(99))
    feed = {"x": held_out["x"], "y": held_out["y"]}
    loss = trainer.gradients(feed)[0]
    print(f"copy task ({length} of {symbols} symbols): held-out loss {loss:.4f} nats/symbol "
          f"after 300 steps, {time.perf_counter() - start:.1f} s")
    assert loss < 0.05
    params["V_r"][:] = 0.0
    params["U"][:, symbols + 2:] = 0.0              # the controller's input from r(t−1)
    assert trainer.gradients(feed)[0] > 10 * loss


def test_bad_memory_options_are_named():
    with pytest.raises(ValueError, match="controller"):
        M.memory_network(2, 3, 2, controller="transformer")
    with pytest.raises(ValueError, match="cells"):
        M.memory_network(2, 3, 2, cells=0)
