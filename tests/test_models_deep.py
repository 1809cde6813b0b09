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


# --- stacked layers of any cell, and MLPs in all three maps (Fig. 10.13 b) -----------------------

def _mlp(p, v, scope, weight, count):
    for l in range(1, count + 1):
        v = np.tanh(p[f"{scope}.b_{l}"] + v @ p[f"{scope}.{weight}_{l}"].T)
    return v


def _layer(p, l):
    """Layer l's parameters under the cell's own names (W_f_1 → W_f)."""
    suffix = f"_{l}"
    return {k[:-len(suffix)]: v for k, v in p.items() if k.endswith(suffix)}


@given(cell=st.sampled_from(["rnn", "lstm", "gru"]), variant=st.sampled_from(["book", "common"]),
       sizes=st.lists(st.integers(1, 3), min_size=1, max_size=2),
       ins=st.lists(st.integers(1, 3), max_size=2), outs=st.lists(st.integers(1, 3), max_size=2),
       transition=st.sampled_from(["stacked", "deep"]), m=st.integers(1, 3), k=st.integers(2, 3),
       steps=st.integers(1, 3), batch=st.none() | st.integers(1, 2), seed=st.integers(0, 99))
def test_deep_rnns_of_any_cell_with_mlps_in_all_three_maps(cell, variant, sizes, ins, outs,
                                                          transition, m, k, steps, batch, seed):
    from test_models import gru_step, lstm_step
    if transition == "deep":
        cell = "rnn"
    options = {"variant": variant} if cell != "rnn" else {}
    rec = models.deep_rnn(m, sizes, k, transition=transition, cell=cell, input_layers=ins,
                          output_layers=outs, **options)
    g = rec.unfold(steps)
    rng = np.random.default_rng(seed)
    p = {name: rng.uniform(-1, 1, q.shape) for name, q in rec.params.items()}
    lead = (steps, batch or 1)
    x = rng.standard_normal(lead + (m,))
    feed = dict(p, x=x if batch else x[:, 0], y=rng.integers(0, k, lead if batch else steps))
    o = np.array(uf.evaluate(g.over_time("o"), feed)).reshape(steps, batch or 1, k)
    zx = _mlp(p, x, "in", "U", len(ins))
    if transition == "deep":
        h = np.zeros((batch or 1, sizes[-1]))
        expected = []
        for t in range(steps):
            z = h
            for l in range(1, len(sizes)):
                z = np.tanh(p[f"b_{l}"] + z @ p[f"W_{l}"].T +
                            (zx[t] @ p["U_1"].T if l == 1 else 0))
            h = np.tanh(p["b"] + (z @ p["W"].T if len(sizes) > 1 else
                                  h @ p["W"].T + zx[t] @ p["U"].T))
            expected.append(p["c"] + _mlp(p, h, "out", "V", len(outs)) @ p["V"].T)
    else:
        state = [(np.zeros((batch or 1, n)), np.zeros((batch or 1, n))) for n in sizes]
        expected = []
        for t in range(steps):
            below = zx[t]
            for l in range(len(sizes)):
                P, (h, s) = _layer(p, l + 1), state[l]
                o_ = {"variant": variant}
                if cell == "rnn":
                    h = np.tanh(P["b"] + h @ P["W"].T + below @ P["U"].T)
                elif cell == "lstm":
                    h, s = lstm_step(P, below, h, s, o_)
                else:
                    h = gru_step(P, below, h, o_)
                state[l] = (h, s)
                below = h
            expected.append(p["c"] + _mlp(p, below, "out", "V", len(outs)) @ p["V"].T)
    np.testing.assert_allclose(o, np.array(expected), rtol=1e-12, atol=1e-12)
    gradcheck(g.loss, g.params, feed)


def test_deep_rnn_names_layers_and_maps():
    rec = models.deep_rnn(2, [3, 4], 2, cell="lstm", input_layers=[5], output_layers=[6])
    assert {"s_1", "h_1", "s_2", "h_2"} == set(rec.states)
    assert {"W_f_1", "U_o_2", "in.U_1", "in.b_1", "out.V_1", "out.b_1", "V", "c"} <= \
        set(rec.params)
    assert rec.params["U_1"].shape == (3, 5) and rec.params["V"].shape == (2, 6)
    with pytest.raises(ValueError, match="deep transition is an MLP"):
        models.deep_rnn(2, [3, 3], 2, transition="deep", cell="gru")
    with pytest.raises(ValueError, match="output_layers"):
        models.deep_rnn(2, [3], 2, output_layers=[0])
