"""The third way of section 10.2.3: an extra output predicting the length τ, and an extra input
telling each step how many remain — against the equations in numpy, gradcheck, sampling that draws
τ first, and a length distribution learned from data."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import unfold as uf
from unfold import models as M
from unfold import train
from unfold.generate import sample
from unfold.testing import gradcheck
from test_models import log_softmax

FEW = max(6, settings().max_examples // 4)


def reference(P, F, vocab, K, mode):
    """Σ_t mask(t) L(t) + L_tau(1), with h(t) = tanh(b + W h(t−1) + U [1_x(t); 1_{τ−t} or 1_τ])."""
    steps, B = F["x"].shape
    h, total = np.zeros((B, P["W"].shape[0])), 0.0
    o_tau = P["c_tau"] + h @ P["V_tau"].T                          # from h(0)
    total += -np.take_along_axis(log_softmax(o_tau), F["tau"][:, None], 1).sum()
    for t in range(steps):
        told = np.eye(K)[F["remaining"][t]] if mode == "remaining" else np.eye(K + 1)[F["tau"]]
        new = np.tanh(P["b"] + h @ P["W"].T +
                      np.concatenate([np.eye(vocab)[F["x"][t]], told], 1) @ P["U"].T)
        m = F["mask"][t][:, None]
        o = P["c"] + new @ P["V"].T
        total += (m[:, 0] * -np.take_along_axis(log_softmax(o), F["y"][t][:, None], 1)[:, 0]).sum()
        h = h + m * (new - h)
    return total


@st.composite
def length_models(draw):
    vocab, n, K = draw(st.integers(2, 4)), draw(st.integers(1, 3)), draw(st.integers(2, 5))
    mode = draw(st.sampled_from(["remaining", "total"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lengths = draw(st.lists(st.integers(1, K), min_size=1, max_size=3))
    data = M.encode([list(rng.integers(0, vocab, L)) for L in lengths], start=0, lengths=True)
    rec = M.language_model(vocab, n, max_length=K, length_input=mode)
    params = {name: rng.uniform(-1, 1, p.shape) for name, p in rec.params.items()}
    return rec, {**params, **data}, (vocab, K, mode)


@settings(max_examples=FEW)
@given(length_models())
def test_the_length_model_follows_its_equations_and_passes_gradcheck(case):
    rec, feed, (vocab, K, mode) = case
    if mode == "total":
        feed = {k: v for k, v in feed.items() if k != "remaining"}
    net = rec.unfold(feed["x"].shape[0], mask=True)
    assert len(net.losses("L_tau")) == 1
    loss, = uf.evaluate([net.loss], feed)
    np.testing.assert_allclose(loss, reference(feed, {**feed, "remaining": M.encode(
        [[0] * int(L) for L in feed["tau"]], 0, lengths=True)["remaining"]}, vocab, K, mode),
        rtol=1e-12)
    gradcheck(net.loss, net.params, feed)


def test_encode_tells_each_step_how_many_remain():
    data = M.encode([[5, 6, 7], [8]], start=0, lengths=True)
    assert data["tau"].tolist() == [3, 1] and "end" not in data
    assert data["remaining"].T.tolist() == [[2, 1, 0], [0, 0, 0]]
    assert data["x"].T.tolist() == [[0, 5, 6], [0, 0, 0]]
    assert data["y"].T.tolist() == [[5, 6, 7], [8, 0, 0]]
    with pytest.raises(ValueError, match="no end symbol"):
        M.encode([[1]], start=0, end=2, lengths=True)
    with pytest.raises(ValueError, match="choose one"):
        M.language_model(4, 3, stop=True, max_length=5)


@pytest.mark.parametrize("mode", ["remaining", "total"])
def test_sampling_draws_the_length_first_then_that_many_symbols(mode):
    rec = M.language_model(4, 5, max_length=6, length_input=mode)
    params = train.init_params(rec, seed=1)
    for tau in (1, 3, 6):
        params["c_tau"] = np.where(np.arange(7) == tau, 40.0, 0.0)
        assert len(sample(rec, params, length=50, prime=[0], rng=0)) == tau
        assert len(sample(rec, params, length=50, prime=[0, 1, 2], rng=0)) == max(tau - 2, 0)
        assert len(sample(rec, params, length=2, prime=[0], rng=0)) == min(tau, 2)


def test_the_length_distribution_is_learned_from_data():
    rng = np.random.default_rng(0)
    rec = M.language_model(3, 6, cell="gru", max_length=5)
    params = train.init_params(rec, seed=0)
    trainer = train.Trainer(rec, params, train.Adam(lr=0.05), mask=True)
    lengths = [2, 4, 4, 5]                       # P(τ = 2) = 1/4, P(4) = 1/2, P(5) = 1/4

    def batch():
        while True:
            taus = rng.choice(lengths, 16)
            yield M.encode([list(rng.integers(1, 3, L)) for L in taus], start=0, lengths=True)
    trainer.fit(batch(), steps=200, progress=False)
    p = np.exp(log_softmax(params["c_tau"]))   # h(0) = 0: P(τ) = softmax(c_tau)
    np.testing.assert_allclose(p, [0, 0, 0.25, 0, 0.5, 0.25], atol=0.06)
    drawn = [len(sample(rec, params, length=20, prime=[0], rng=i)) for i in range(100)]
    assert sum(d in (2, 4, 5) for d in drawn) >= 85 and drawn.count(4) > drawn.count(2)
