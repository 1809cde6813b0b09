"""Running the folded step one step at a time (generation), the length of generated sequences
(end symbol, Bernoulli stop output), and the long-term-dependency helpers of section 10.7."""
from __future__ import annotations

import numpy as np
import pytest

import unfold as uf
from unfold import dynamics as D
from unfold import generate as G
from unfold import models as M
from unfold.train import init_params


@pytest.mark.parametrize("build", [
    lambda: M.rnn(3, 4, 5), lambda: M.lstm(3, 4, 5), lambda: M.gru(3, 4, 5, variant="common"),
    lambda: M.skip_rnn(3, 4, 5, delay=3), lambda: M.leaky_rnn(3, 4, 5, alpha=0.5),
    lambda: M.output_to_hidden(3, 4, 5)])
def test_stepping_the_folded_graph_equals_the_unfolded_graph(build):
    rec = build()
    params = init_params(rec, seed=1)
    x = np.random.default_rng(0).standard_normal((7, 3))
    expected = uf.evaluate(rec.unfold(7).over_time("o"), {**params, "x": x})
    stepper = G.Stepper(rec, params)
    got = []
    for t in range(7):
        outputs = stepper.step({"x": x[t]})
        got.append(stepper.state("o") if "o" in rec.states else outputs["o"])
    np.testing.assert_allclose(np.stack(got), np.stack(expected), rtol=1e-12, atol=1e-14)
    stepper.reset()
    assert np.all(stepper.state("h" if "h" in rec.states else "o") == 0)


def lm(cell="gru", stop=False, vocab=6, seed=0):
    rec = M.language_model(vocab, 8, cell=cell, stop=stop)
    return rec, init_params(rec, seed=seed)


def test_greedy_sampling_is_deterministic_and_follows_argmax():
    rec, params = lm()
    a = G.sample(rec, params, length=12, prime=[0, 2], temperature=0)
    b = G.sample(rec, params, length=12, prime=[0, 2], temperature=0, rng=99)
    assert a == b and len(a) == 12
    stepper = G.Stepper(rec, params, ["o"])
    stepper.step({"x": np.int64(0)})
    token, chain = 2, []
    for _ in range(12):
        token = int(np.argmax(stepper.step({"x": np.int64(token)})["o"]))
        chain.append(token)
    assert chain == a


def test_sampling_stops_at_the_end_symbol():
    rec, params = lm(vocab=4)
    params["c"] = np.array([0.0, 0.0, 0.0, 50.0])        # symbol 3 is (almost) always drawn
    assert G.sample(rec, params, length=10, prime=[0], end=3, rng=0) == []
    params["c"] = np.array([0.0, 0.0, 0.0, -50.0])       # never drawn: runs to the length
    out = G.sample(rec, params, length=10, prime=[0], end=3, rng=0)
    assert len(out) == 10 and 3 not in out


def test_sampling_stops_when_the_bernoulli_output_says_so():
    rec, params = lm(stop=True)
    params["c_s"] = np.array(50.0)                       # P(stop) ≈ 1: one symbol, then stop
    assert len(G.sample(rec, params, length=10, prime=[0], rng=0)) == 1
    params["c_s"] = np.array(-50.0)
    assert len(G.sample(rec, params, length=10, prime=[0], rng=0)) == 10


def test_temperature_sharpens_the_distribution():
    rec, params = lm(vocab=5)
    params["c"] = np.array([2.0, 1.0, 0.0, 0.0, 0.0])
    params["V"] = np.zeros_like(params["V"])
    cold = G.sample(rec, params, length=200, prime=[0], temperature=0.2, rng=1)
    hot = G.sample(rec, params, length=200, prime=[0], temperature=5.0, rng=1)
    assert cold.count(0) > 190 and hot.count(0) < 100


def test_sample_rejects_bad_arguments():
    rec, params = lm()
    with pytest.raises(ValueError, match="prime"):
        G.sample(rec, params, length=3, prime=[])
    with pytest.raises(ValueError, match="temperature"):
        G.sample(rec, params, length=3, temperature=-1)
    with pytest.raises(ValueError, match="outputs"):
        G.Stepper(rec, params, ["nope"])


def test_encode_with_an_end_symbol_and_with_a_stop_output():
    d = M.encode([[1, 2, 3], [4]], start=0, end=5)
    np.testing.assert_array_equal(d["x"], [[0, 0], [1, 4], [2, 0], [3, 0]])
    np.testing.assert_array_equal(d["y"], [[1, 4], [2, 5], [3, 5], [5, 5]])
    np.testing.assert_array_equal(d["mask"], [[1, 1], [1, 1], [1, 0], [1, 0]])
    d = M.encode([[1, 2, 3], [4]], start=0)
    np.testing.assert_array_equal(d["x"], [[0, 0], [1, 0], [2, 0]])
    np.testing.assert_array_equal(d["y"][:, 0], [1, 2, 3])
    np.testing.assert_array_equal(d["end"], [[0, 1], [0, 0], [1, 0]])
    np.testing.assert_array_equal(d["mask"], [[1, 1], [1, 0], [1, 0]])
    with pytest.raises(ValueError):
        M.encode([[]], start=0)


def test_a_language_model_learns_where_sequences_end():
    """Trained on sequences that end after a fixed symbol, the stop output learns to stop."""
    from unfold.train import Adam, Trainer
    rec = M.language_model(4, 6, cell="gru", stop=True)
    params = init_params(rec, seed=0)
    data = M.encode([[1, 2, 3], [2, 3], [1, 1, 2, 3], [3]], start=0)
    trainer = Trainer(rec, params, Adam(0.05), mask=True)
    trainer.fit([data], steps=150, progress=False)
    assert trainer.history.losses[-1] < 0.6 * trainer.history.losses[0]
    lengths = [len(G.sample(rec, params, length=20, prime=[0], rng=s)) for s in range(20)]
    assert max(lengths) < 20


def test_hidden_gradient_norms_are_the_norms_of_the_state_gradients():
    rec = M.rnn(2, 3, 4, outputs="last")
    params = init_params(rec, seed=0)
    rng = np.random.default_rng(0)
    net = rec.unfold(6)
    feed = {**params, "x": rng.standard_normal((6, 5, 2)), "y": rng.integers(0, 4, (6, 5))}
    norms = D.hidden_gradient_norms(net, feed)
    grads = uf.evaluate(uf.grad(net.loss, net.over_time("h")), feed)
    expected = [np.linalg.norm(g, axis=1).mean() for g in grads]
    np.testing.assert_allclose(norms, expected, rtol=1e-12)
    assert norms.shape == (6,) and D.hidden_gradient_norms(net, feed) is not norms


def test_gradients_vanish_through_a_contracting_recurrence():
    """Section 10.7: with a small recurrent weight, ‖∇h(t) L‖ shrinks geometrically as t moves
    away from the loss at τ."""
    rec = M.rnn(2, 4, 3, outputs="last")
    params = init_params(rec, seed=0)
    params["W"] = 0.3 * params["W"]
    rng = np.random.default_rng(1)
    net = rec.unfold(12)
    norms = D.hidden_gradient_norms(net, {**params, "x": rng.standard_normal((12, 2)),
                                          "y": rng.integers(0, 3, 12)})
    assert norms[0] < 1e-4 * norms[-1]
    assert np.all(np.diff(np.log(norms)) > 0)


def test_spectrum_helpers():
    Q = np.linalg.qr(np.random.default_rng(0).standard_normal((5, 5)))[0]
    assert D.spectral_radius(Q) == pytest.approx(1.0)
    W = np.diag([0.5, -2.0, 1.0])
    np.testing.assert_allclose(D.eigenvalues(W), [-2.0, 1.0, 0.5])
    assert D.spectral_radius(W) == 2.0
    np.testing.assert_allclose(D.power_norms(np.diag([0.5, 0.25]), 3), [0.5, 0.25, 0.125])
    with pytest.raises(ValueError, match="square"):
        D.eigenvalues(np.ones((2, 3)))
