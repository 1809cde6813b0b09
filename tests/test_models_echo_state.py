"""Echo state networks (section 10.8): fixed reservoir at the edge of stability, learned readout."""
import numpy as np
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
