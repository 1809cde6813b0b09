"""Deep RNNs (Fig. 10.13): against their equations in numpy, and gradcheck."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import unfold as uf
from unfold import models
from unfold.testing import gradcheck


def _reference(kind, skip, p, x, sizes):
    """The forward pass of ``deep_rnn`` written out in numpy; returns o(t) for every t."""
    T, lead = x.shape[0], x.shape[1:-1]
    out = []
    if kind == "stacked":
        hs = [np.zeros(lead + (n,)) for n in sizes]
        for t in range(T):
            below = x[t]
            for l in range(len(sizes)):
                hs[l] = np.tanh(p[f"b_{l+1}"] + hs[l] @ p[f"W_{l+1}"].T + below @ p[f"U_{l+1}"].T)
                below = hs[l]
            out.append(p["c"] + below @ p["V"].T)
    else:
        h = np.zeros(lead + (sizes[-1],))
        for t in range(T):
            z = h
            for l in range(1, len(sizes)):
                a = p[f"b_{l}"] + z @ p[f"W_{l}"].T + (x[t] @ p["U_1"].T if l == 1 else 0)
                z = np.tanh(a)
            a = p["b"] + z @ p["W"].T + (h @ p["S"].T if skip else 0)
            if len(sizes) == 1:
                a = p["b"] + h @ p["W"].T + x[t] @ p["U"].T
            h = np.tanh(a)
            out.append(p["c"] + h @ p["V"].T)
    return np.array(out)


@given(kind=st.sampled_from([("stacked", False), ("deep", False), ("deep", True)]),
       sizes=st.lists(st.integers(1, 3), min_size=1, max_size=3), m=st.integers(1, 3),
       k=st.integers(2, 3), steps=st.integers(1, 4), batch=st.none() | st.integers(1, 2),
       seed=st.integers(0, 99))
def test_deep_rnns_follow_fig_10_13(kind, sizes, m, k, steps, batch, seed):
    transition, skip = kind
    if skip and len(sizes) == 1:
        sizes = sizes * 2
    rec = models.deep_rnn(m, sizes, k, transition=transition, skip=skip)
    g = rec.unfold(steps)
    rng = np.random.default_rng(seed)
    feed = {name: rng.standard_normal(p.shape) * 0.7 for name, p in rec.params.items()}
    lead = (steps,) if batch is None else (steps, batch)
    feed.update(x=rng.standard_normal(lead + (m,)), y=rng.integers(0, k, lead))
    o = uf.evaluate(g.over_time("o"), feed)
    np.testing.assert_allclose(o, _reference(transition, skip, feed, feed["x"], sizes),
                               rtol=1e-12, atol=1e-12)
    gradcheck(g.loss, g.params, feed)


def test_deep_rnn_refuses_what_fig_10_13_does_not_draw():
    with pytest.raises(ValueError, match="transition must be one of"):
        models.deep_rnn(2, [3], 2, transition="wide")
    with pytest.raises(ValueError, match="skip=True is the shortcut"):
        models.deep_rnn(2, [3, 3], 2, skip=True)
    with pytest.raises(ValueError, match="positive layer widths"):
        models.deep_rnn(2, [], 2)
