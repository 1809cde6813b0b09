"""Echo state networks (section 10.8): fixed reservoir at the edge of stability, learned readout."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import unfold as uf
from unfold import models, train
from unfold.dynamics import spectral_radius
from unfold.testing import gradcheck


def test_only_the_readout_is_learned_and_the_reservoir_sits_where_asked():
    rec = models.echo_state(3, 12, 2, spectral_radius=0.9, seed=1)
    assert sorted(rec.params) == ["V", "c"]
    W, U = models.reservoir(12, 3, spectral_radius=0.9, seed=1)
    assert abs(spectral_radius(W) - 0.9) < 1e-12 and np.abs(U).max() <= 1.0


@given(m=st.integers(1, 3), n=st.integers(1, 6), k=st.integers(1, 3), steps=st.integers(1, 5),
       batch=st.none() | st.integers(1, 3), seed=st.integers(0, 99))
def test_echo_state_network_matches_its_equations_and_gradcheck(m, n, k, steps, batch, seed):
    rec = models.echo_state(m, n, k, spectral_radius=0.95, seed=seed)
    g = rec.unfold(steps)
    rng = np.random.default_rng(seed)
    lead = (steps,) if batch is None else (steps, batch)
    feed = {"V": rng.standard_normal((k, n)), "c": rng.standard_normal(k),
            "x": rng.standard_normal(lead + (m,)), "y": rng.standard_normal(lead + (k,))}
    W, U = models.reservoir(n, m, spectral_radius=0.95, seed=seed)
    h, expected = np.zeros(lead[1:] + (n,)), 0.0
    for t in range(steps):
        h = np.tanh(h @ W.T + feed["x"][t] @ U.T)
        expected += np.sum((feed["c"] + h @ feed["V"].T - feed["y"][t]) ** 2)
    loss, = uf.evaluate([g.loss], feed)
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    gradcheck(g.loss, g.params + g.over_time("x"), feed)


def test_the_readout_learns_to_recall_the_input_two_steps_back():
    rng = np.random.default_rng(0)
    steps, batch = 30, 16
    rec = models.echo_state(1, 40, 1, spectral_radius=0.9, seed=0)
    params = train.init_params(rec, seed=0)
    trainer = train.Trainer(rec, params, train.Adam(lr=0.05))

    def batch_feed():
        x = rng.uniform(-1, 1, (steps, batch, 1))
        y = np.concatenate([np.zeros((2, batch, 1)), x[:-2]])     # y(t) = x(t − 2)
        return {"x": x, "y": y}
    history = trainer.fit((batch_feed() for _ in range(400)), steps=400, progress=False)
    first, last = history[0].loss, np.mean([r.loss for r in history[-20:]])
    assert last < 0.02 < first          # the target's variance is 1/3: recall is nearly exact


# --- the readout in closed form (ridge regression) ----------------------------------------------

@given(m=st.integers(1, 3), n=st.integers(1, 8), k=st.integers(1, 3), steps=st.integers(2, 12),
       batch=st.none() | st.integers(1, 3), ridge=st.sampled_from([0.0, 0.1, 3.0]),
       seed=st.integers(0, 99))
def test_the_ridge_readout_is_the_minimum_of_the_penalised_loss(m, n, k, steps, batch, ridge,
                                                                seed):
    """At the closed-form readout the gradient of L + ridge ‖V‖² vanishes (the problem is convex,
    so that is where gradient training converges), and any other readout does worse."""
    rec = models.echo_state(m, n, k, spectral_radius=0.9, seed=seed)
    rng = np.random.default_rng(seed)
    lead = (steps,) if batch is None else (steps, batch)
    feed = {"x": rng.uniform(-1, 1, lead + (m,)), "y": rng.standard_normal(lead + (k,))}
    best = models.ridge_readout(rec, feed, ridge=ridge)
    net = rec.unfold(steps)
    V = rec.params["V"]
    objective = net.loss + ridge * uf.sum(V * V)
    value, gV, gc = uf.evaluate([objective, *uf.grad(objective, [V, rec.params["c"]])],
                                {**feed, **best})
    scale = 1.0 + float(np.abs(uf.evaluate(uf.grad(objective, [V]), {
        **feed, "V": np.zeros((k, n)), "c": np.zeros(k)})[0]).max())
    assert np.abs(gV).max() < 1e-8 * scale and np.abs(gc).max() < 1e-8 * scale
    nudged, = uf.evaluate([objective], {**feed, "V": best["V"] + 1e-3, "c": best["c"]})
    assert nudged > value


def test_gradient_training_of_the_readout_converges_to_the_ridge_solution_and_nothing_else_moves():
    rng = np.random.default_rng(0)
    rec = models.echo_state(2, 6, 2, spectral_radius=0.9, seed=3)
    x = rng.uniform(-1, 1, (30, 4, 2))
    feed = {"x": x, "y": np.concatenate([np.zeros((1, 4, 2)), x[:-1]]) ** 2}
    best = models.ridge_readout(rec, feed)
    reservoir_before = {n.name: n.attrs["value"].copy() for n in rec.body()
                        if n.op.name == "constant" and n.name in ("W", "U")}
    params = {"V": np.zeros((2, 6)), "c": np.zeros(2)}
    trainer = train.Trainer(rec, params, train.Adam(lr=0.05))
    for lr, steps in ((0.05, 300), (0.01, 200), (0.002, 100)):
        trainer.optimizer.lr = lr
        trainer.fit([feed], steps=steps, progress=False)
    np.testing.assert_allclose(params["V"], best["V"], atol=1e-8)
    np.testing.assert_allclose(params["c"], best["c"], atol=1e-8)
    assert sorted(params) == sorted(rec.params) == ["V", "c"]     # only the readout is learned
    W, U = models.reservoir(6, 2, spectral_radius=0.9, seed=3)
    np.testing.assert_array_equal(reservoir_before["W"], W)
    np.testing.assert_array_equal(reservoir_before["U"], U)
    assert abs(spectral_radius(reservoir_before["W"]) - 0.9) < 1e-12


def test_an_echo_state_network_predicts_mackey_glass_one_step_ahead():
    from unfold.data.tasks import mackey_glass
    series = mackey_glass(1300)
    z = (series - series.mean()) / series.std()
    rec = models.echo_state(1, 100, 1, spectral_radius=0.99, input_scale=0.3, seed=0)
    train_feed = {"x": z[:1000, None], "y": z[1:1001, None]}
    readout = models.ridge_readout(rec, train_feed, ridge=1e-6, washout=100)
    net = rec.unfold(1299)
    o = np.stack(uf.evaluate(net.over_time("o"), {"x": z[:1299, None], **readout}))[:, 0]
    test = slice(1000, 1299)
    nrmse = np.sqrt(np.mean((o[test] - z[1:1300][test]) ** 2)) / np.std(z[1:1300][test])
    print(f"Mackey–Glass (τ=17), one step ahead, 100 units: NRMSE {nrmse:.2e}")
    assert nrmse < 5e-3


def test_ridge_readout_rejects_what_it_cannot_fit():
    rec = models.echo_state(1, 4, 1)
    feed = {"x": np.zeros((5, 1)), "y": np.zeros((5, 1))}
    with pytest.raises(ValueError, match="ridge must be"):
        models.ridge_readout(rec, feed, ridge=-1.0)
    with pytest.raises(uf.UnfoldError, match="washout"):
        models.ridge_readout(rec, feed, washout=5)
