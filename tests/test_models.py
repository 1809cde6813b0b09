"""Every model of ``unfold.models`` against an independent plain-numpy implementation of the
book's equations: the same weights give the same loss, and every parameter gradient of unfold's
reverse mode equals the complex-step derivative of the numpy forward (exact to rounding,
float64); the plain RNN is also checked against the book's own BPTT equations (10.18–10.28).
Each model is gradchecked too (``unfold.testing.gradcheck``, central differences), over random
sizes, τ, batch and weights drawn by hypothesis."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import unfold as uf
from unfold import models as M
from unfold.testing import gradcheck

# a few examples per model by default, many more under HYPOTHESIS_PROFILE=heavy
FEW = max(6, settings().max_examples // 4)


# --- the numpy reference: the book's equations, batched along axis 0 ---------------------------

def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def log_softmax(o):
    shifted = o - o.real.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def one_hot(y, k):
    return (y[..., None] == np.arange(k)).astype(float)


def step_loss(o, y, loss):
    """L(t) per example: −log softmax(o)_y, or Σ (o − y)²."""
    if loss == "cross_entropy":
        return -np.take_along_axis(log_softmax(o), y[:, None], axis=1)[:, 0]
    return ((o - y) ** 2).sum(axis=1)


def lin(P, bias, **weights):
    """bias + Σ M v, with v batched (B, size): v @ Mᵀ."""
    out = P[bias] if bias else 0.0
    for name, v in weights.items():
        out = out + v @ P[name].T
    return out


def x_at(F, t, o):
    x = F["x"][t]
    return one_hot(x, o["m"]) if o.get("inputs") == "tokens" else x


def counts(o, t):
    return o.get("outputs", "every") == "every" or t == o["steps"] - 1


def readout(P, h, F, t, o):
    out = lin(P, "c", V=h)
    return out, (step_loss(out, F["y"][t], o["loss"]) if counts(o, t) else 0.0)


def zeros(F, n):
    return np.zeros((F["y"].shape[1], n))


def init(F, name, n, o):
    return F[f"{name}0"] if o.get("carry") else zeros(F, n)


def ref_rnn(P, F, o):
    """Fig. 10.3: a = b + W h(t−1) + U x(t), h = tanh a, o = c + V h (eqs. 10.8–10.11)."""
    h, total = init(F, "h", o["n"], o), 0.0
    for t in range(o["steps"]):
        h = np.tanh(lin(P, "b", W=h, U=x_at(F, t, o)))
        _, L = readout(P, h, F, t, o)
        total = total + np.sum(L)
    return total


def ref_output_to_hidden(P, F, o):
    """Fig. 10.4: h = tanh(b + W o(t−1) + U x(t)), o = c + V h."""
    out, total = zeros(F, o["k"]), 0.0
    for t in range(o["steps"]):
        h = np.tanh(lin(P, "b", W=out, U=x_at(F, t, o)))
        out, L = readout(P, h, F, t, o)
        total = total + np.sum(L)
    return total


def feedback_of(out, o):
    if o["loss"] == "squared_error":
        return out
    if o["feedback"] == "softmax":
        return np.exp(log_softmax(out))
    return (out.real == out.real.max(axis=1, keepdims=True)).astype(float)


def truth_of(F, t, o):
    y = F["y"][t]
    return one_hot(y, o["k"]) if o["loss"] == "cross_entropy" else y


def fed(F, t, truth, model, o):
    """What step t is fed: the true y(t−1), the model's own output, or a choice by z(t)."""
    if o["mode"] == "train":
        return truth
    if o["mode"] == "free":
        return model
    return np.where(F["z"][t][:, None] > 0.5, model, truth)


def ref_teacher_forcing(P, F, o):
    """Fig. 10.6: h = tanh(b + W y_prev + U x(t)), o = c + V h, y_prev by mode."""
    truth = model = zeros(F, o["k"])
    total = 0.0
    for t in range(o["steps"]):
        h = np.tanh(lin(P, "b", W=fed(F, t, truth, model, o), U=F["x"][t]))
        out, L = readout(P, h, F, t, o)
        total = total + np.sum(L)
        truth, model = truth_of(F, t, o), feedback_of(out, o)
    return total


def ref_conditioned(P, F, o):
    """Fig. 10.9: h = tanh(b + W h + R x + U y_prev); Fig. 10.10: h = tanh(b + W h + U x(t) +
    R y_prev); o = c + V h."""
    h, truth = zeros(F, o["n"]), zeros(F, o["k"])
    model, total = truth, 0.0
    for t in range(o["steps"]):
        y_prev = fed(F, t, truth, model, o)
        if o["model"] == "context_rnn":
            h = np.tanh(lin(P, "b", W=h, R=F["x"], U=y_prev))
        else:
            h = np.tanh(lin(P, "b", W=h, U=F["x"][t], R=y_prev))
        out, L = readout(P, h, F, t, o)
        total = total + np.sum(L)
        truth, model = truth_of(F, t, o), feedback_of(out, o)
    return total


def squash(o):
    return sig if o["variant"] == "book" else np.tanh


def lstm_step(P, x, h, s, o):
    """Eqs. 10.40–10.44 (σ state input for the book, tanh for the common variant)."""
    f = sig(lin(P, "b_f", U_f=x, W_f=h))
    g = sig(lin(P, "b_g", U_g=x, W_g=h))
    q = sig(lin(P, "b_o", U_o=x, W_o=h))
    s = f * s + g * squash(o)(lin(P, "b", U=x, W=h))
    return np.tanh(s) * q, s


def gru_step(P, x, h, o):
    """Eqs. 10.45–10.47, one step shifted: u, r from x(t), h(t−1)."""
    u = sig(lin(P, "b_u", U_u=x, W_u=h))
    r = sig(lin(P, "b_r", U_r=x, W_r=h))
    return u * h + (1 - u) * squash(o)(lin(P, "b", U=x, W=r * h))


def ref_gated(P, F, o):
    h, s, total = init(F, "h", o["n"], o), init(F, "s", o["n"], o), 0.0
    for t in range(o["steps"]):
        x = x_at(F, t, o)
        if o["model"] == "lstm":
            h, s = lstm_step(P, x, h, s, o)
        else:
            h = gru_step(P, x, h, o)
        _, L = readout(P, h, F, t, o)
        total = total + np.sum(L)
    return total


def ref_leaky(P, F, o):
    """Section 10.9.2: h = α h(t−1) + (1 − α) tanh(b + W h(t−1) + U x(t))."""
    h, total, a = zeros(F, o["n"]), 0.0, np.asarray(o["alpha"])
    for t in range(o["steps"]):
        h = a * h + (1 - a) * np.tanh(lin(P, "b", W=h, U=F["x"][t]))
        _, L = readout(P, h, F, t, o)
        total = total + np.sum(L)
    return total


def ref_skip(P, F, o):
    """Section 10.9.1/10.9.3: h = tanh(b + [W h(t−1)] + W_d h(t−d) + U x(t))."""
    hs, total, d = [], 0.0, o["delay"]
    zero = zeros(F, o["n"])
    for t in range(o["steps"]):
        past = {"W_d": hs[t - d] if t - d >= 0 else zero, "U": F["x"][t]}
        if o["length_one"]:
            past["W"] = hs[t - 1] if t >= 1 else zero
        hs.append(np.tanh(lin(P, "b", **past)))
        _, L = readout(P, hs[-1], F, t, o)
        total = total + np.sum(L)
    return total


def ref_language_model(P, F, o):
    """A language model with an optional Bernoulli stop output and a padding mask."""
    h, s, total = zeros(F, o["n"]), zeros(F, o["n"]), 0.0
    mask = F.get("mask")
    for t in range(o["steps"]):
        x = one_hot(F["x"][t], o["m"])
        if o["cell"] == "rnn":
            new_h, new_s = np.tanh(lin(P, "b", W=h, U=x)), s
        elif o["cell"] == "lstm":
            new_h, new_s = lstm_step(P, x, h, s, o)
        else:
            new_h, new_s = gru_step(P, x, h, o), s
        m = 1.0 if mask is None else mask[t][:, None]
        h, s = h + m * (new_h - h), s + m * (new_s - s)
        L = step_loss(lin(P, "c", V=new_h), F["y"][t], "cross_entropy")
        if o["stop"]:
            z = P["c_s"] + new_h @ P["V_s"]
            L = L + np.log(1 + np.exp(np.where(F["end"][t] == 1, -z, z)))
        total = total + np.sum(L if mask is None else L * mask[t])
    return total


# --- drawing a model, its weights and a feed ---------------------------------------------------

@dataclass
class Case:
    build: Callable[[dict], uf.Recurrence]
    reference: Callable[[dict, dict, dict], Any]
    options: Callable[[], st.SearchStrategy] = lambda: st.just({})


LOSS = st.sampled_from(M.LOSSES)
MODE = st.sampled_from(M.MODES)
FEEDBACK = st.sampled_from(M.FEEDBACKS)
VARIANT = st.sampled_from(["book", "common"])

CASES = {
    "rnn": Case(lambda o: M.rnn(o["m"], o["n"], o["k"], loss=o["loss"], outputs=o["outputs"],
                                inputs=o["inputs"], carry=o["carry"]),
                ref_rnn,
                lambda: st.fixed_dictionaries({
                    "loss": LOSS, "outputs": st.sampled_from(M.OUTPUTS),
                    "inputs": st.sampled_from(M.INPUTS), "carry": st.booleans()})),
    "rnn_single_output": Case(
        lambda o: M.rnn_single_output(o["m"], o["n"], o["k"], loss=o["loss"]),
        ref_rnn, lambda: st.fixed_dictionaries({"loss": LOSS, "outputs": st.just("last")})),
    "output_to_hidden": Case(
        lambda o: M.output_to_hidden(o["m"], o["n"], o["k"], loss=o["loss"], inputs=o["inputs"]),
        ref_output_to_hidden,
        lambda: st.fixed_dictionaries({"loss": LOSS,
                                       "inputs": st.sampled_from(M.INPUTS)})),
    "teacher_forcing": Case(
        lambda o: M.teacher_forcing(o["m"], o["n"], o["k"], mode=o["mode"],
                                    feedback=o["feedback"], loss=o["loss"]),
        ref_teacher_forcing,
        lambda: st.fixed_dictionaries({"mode": MODE, "feedback": FEEDBACK, "loss": LOSS})),
    "context_rnn": Case(
        lambda o: M.context_rnn(o["m"], o["n"], o["k"], mode=o["mode"], feedback=o["feedback"]),
        ref_conditioned,
        lambda: st.fixed_dictionaries({"mode": MODE, "feedback": FEEDBACK,
                                       "loss": st.just("cross_entropy"),
                                       "model": st.just("context_rnn")})),
    "conditional_rnn": Case(
        lambda o: M.conditional_rnn(o["m"], o["n"], o["k"], mode=o["mode"],
                                    feedback=o["feedback"]),
        ref_conditioned,
        lambda: st.fixed_dictionaries({"mode": MODE, "feedback": FEEDBACK,
                                       "loss": st.just("cross_entropy"),
                                       "model": st.just("conditional_rnn")})),
    "lstm": Case(
        lambda o: M.lstm(o["m"], o["n"], o["k"], variant=o["variant"], loss=o["loss"],
                         outputs=o["outputs"], carry=o["carry"]),
        ref_gated,
        lambda: st.fixed_dictionaries({"variant": VARIANT, "loss": LOSS, "carry": st.booleans(),
                                       "outputs": st.sampled_from(M.OUTPUTS),
                                       "model": st.just("lstm")})),
    "gru": Case(
        lambda o: M.gru(o["m"], o["n"], o["k"], variant=o["variant"], loss=o["loss"],
                        outputs=o["outputs"], inputs=o["inputs"]),
        ref_gated,
        lambda: st.fixed_dictionaries({"variant": VARIANT, "loss": LOSS, "model": st.just("gru"),
                                       "outputs": st.sampled_from(M.OUTPUTS),
                                       "inputs": st.sampled_from(M.INPUTS)})),
    "leaky_rnn": Case(
        lambda o: M.leaky_rnn(o["m"], o["n"], o["k"], alpha=o["alpha"]),
        ref_leaky,
        lambda: st.fixed_dictionaries({"loss": st.just("cross_entropy"),
                                       "alpha": st.floats(0.0, 1.0)})),
    "skip_rnn": Case(
        lambda o: M.skip_rnn(o["m"], o["n"], o["k"], delay=o["delay"],
                             length_one=o["length_one"]),
        ref_skip,
        lambda: st.fixed_dictionaries({"loss": st.just("cross_entropy"),
                                       "delay": st.integers(2, 3),
                                       "length_one": st.booleans()})),
    "language_model": Case(
        lambda o: M.language_model(o["m"], o["n"], cell=o["cell"], stop=o["stop"],
                                   **({"variant": o["variant"]} if o["cell"] != "rnn" else {})),
        ref_language_model,
        lambda: st.fixed_dictionaries({"cell": st.sampled_from(["rnn", "lstm", "gru"]),
                                       "variant": VARIANT, "stop": st.booleans(),
                                       "mask": st.booleans()})),
}


@st.composite
def drawn(draw, name: str):
    """A model of ``CASES[name]`` with random sizes, τ, batch, options, weights and feed."""
    o = dict(draw(CASES[name].options()))
    o.update(m=draw(st.integers(1, 3)), n=draw(st.integers(1, 3)), k=draw(st.integers(2, 4)),
             steps=draw(st.integers(1, 4)), batch=draw(st.none() | st.integers(1, 3)),
             seed=draw(st.integers(0, 2**32 - 1)), scale=draw(st.sampled_from([0.5, 1.0, 2.0])))
    if name == "language_model":
        o["k"] = o["m"] = max(o["m"], 2)
    if name == "leaky_rnn" and draw(st.booleans()):
        o["alpha"] = list(np.random.default_rng(o["seed"]).uniform(0, 1, o["n"]))
    rec = CASES[name].build(o)
    rng = np.random.default_rng(o["seed"])
    params = {p: np.asarray(rng.uniform(-1, 1, p.shape) * o["scale"])
              for p in rec.params.values()}
    return rec, o, params, make_feed(rec, o, rng)


def make_feed(rec: uf.Recurrence, o: dict, rng: np.random.Generator) -> dict:
    lead = (o["steps"],) if o["batch"] is None else (o["steps"], o["batch"])
    feed = {}
    for name, node in rec.sequences.items():
        shape = lead + node.shape
        if node.dtype.kind == "i":
            high = {"x": o["m"], "y": o["k"], "end": 2}[name]
            feed[name] = rng.integers(0, high, shape)
        elif name == "z":
            feed[name] = (rng.random(shape) < 0.5).astype(float)
        else:
            feed[name] = rng.standard_normal(shape)
    for name, node in rec.contexts.items():
        feed[name] = rng.standard_normal(lead[1:] + node.shape)
    if o.get("mask"):
        feed["mask"] = (rng.random(lead) < 0.7).astype(float)
        feed["mask"][0] = 1.0
    return feed


def batched(feed: dict, o: dict) -> dict:
    """The feed with an explicit batch axis (the reference always runs on a batch)."""
    if o["batch"] is not None:
        return feed
    return {k: (v[:, None] if k in ("x", "y", "z", "end", "mask") and
                not (k == "x" and o.get("model") == "context_rnn") else v[None])
            for k, v in feed.items()}


def unfolded(rec, o):
    return rec.unfold(o["steps"], mask=bool(o.get("mask")))


def complex_step_grads(reference, params: dict, feed: dict, o: dict, h: float = 1e-30) -> dict:
    """∂L/∂θ for every element: Im L(θ + ih e_i) / h — exact to rounding for analytic code."""
    grads = {}
    for name, value in params.items():
        g = np.zeros(value.shape)
        for index in np.ndindex(value.shape):
            P = {k: v.astype(complex) for k, v in params.items()}
            P[name][index] += 1j * h
            g[index] = reference(P, feed, o).imag / h
        grads[name] = g
    return grads


# --- the tests ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_numpy_reference(name):
    """Loss and every parameter gradient equal an independent numpy implementation (float64)."""

    @settings(max_examples=FEW)
    @given(drawn(name))
    def check(case):
        rec, o, params, feed = case
        net = unfolded(rec, o)
        nodes = list(rec.params.values())
        values = uf.evaluate([net.loss, *uf.grad(net.loss, nodes)], {**params, **feed})
        by_name = {p.name: v for p, v in params.items()}
        ref_feed = batched(feed, o)
        expected = CASES[name].reference(by_name, ref_feed, o)
        np.testing.assert_allclose(values[0], expected, rtol=1e-12, atol=1e-12)
        ref_grads = complex_step_grads(CASES[name].reference, by_name, ref_feed, o)
        for p, g in zip(nodes, values[1:]):
            np.testing.assert_allclose(g, ref_grads[p.name], rtol=1e-9, atol=1e-11,
                                       err_msg=f"∇{p.name} of {name} {o}")

    check()


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(name):
    """Reverse mode against central finite differences for every parameter (float64)."""

    @settings(max_examples=FEW)
    @given(drawn(name))
    def check(case):
        rec, o, params, feed = case
        net = unfolded(rec, o)
        gradcheck(net.loss, net.params, {**params, **feed}, atol=1e-6, rtol=1e-5)

    check()


def test_rnn_matches_the_books_bptt_equations():
    """Fig. 10.3's gradients written out as the book does (eqs. 10.18–10.28)."""
    rng = np.random.default_rng(3)
    m, n, k, steps = 3, 4, 5, 6
    rec = M.rnn(m, n, k)
    P = {name: rng.uniform(-1, 1, p.shape) for name, p in rec.params.items()}
    x, y = rng.standard_normal((steps, m)), rng.integers(0, k, steps)
    hs, os_ = [np.zeros(n)], []
    for t in range(steps):
        hs.append(np.tanh(P["b"] + P["W"] @ hs[-1] + P["U"] @ x[t]))
        os_.append(P["c"] + P["V"] @ hs[-1])
    go = [np.exp(log_softmax(o)) - one_hot(np.array(y[t]), k) for t, o in enumerate(os_)]  # 10.18
    gh = [None] * steps
    gh[-1] = P["V"].T @ go[-1]                                                          # 10.19
    for t in range(steps - 2, -1, -1):                                                  # 10.21
        gh[t] = P["W"].T @ ((1 - hs[t + 2] ** 2) * gh[t + 1]) + P["V"].T @ go[t]
    da = [(1 - hs[t + 1] ** 2) * gh[t] for t in range(steps)]
    expected = {"c": sum(go),                                                           # 10.22
                "b": sum(da),                                                           # 10.23
                "V": sum(np.outer(go[t], hs[t + 1]) for t in range(steps)),             # 10.24
                "W": sum(np.outer(da[t], hs[t]) for t in range(steps)),                 # 10.26
                "U": sum(np.outer(da[t], x[t]) for t in range(steps))}                  # 10.28
    net = rec.unfold(steps)
    nodes = [rec.params[name] for name in expected]
    got = uf.evaluate(uf.grad(net.loss, nodes), {**P, "x": x, "y": y})
    for name, g in zip(expected, got):
        np.testing.assert_allclose(g, expected[name], rtol=1e-12, atol=1e-13, err_msg=name)


def test_parameters_have_the_books_names():
    assert set(M.rnn(2, 3, 4).params) == {"U", "W", "b", "V", "c"}
    assert set(M.lstm(2, 3, 4).params) == {"U", "W", "b", "U_f", "W_f", "b_f", "U_g", "W_g",
                                           "b_g", "U_o", "W_o", "b_o", "V", "c"}
    assert set(M.gru(2, 3, 4).params) == {"U", "W", "b", "U_u", "W_u", "b_u", "U_r", "W_r",
                                          "b_r", "V", "c"}
    assert set(M.context_rnn(2, 3, 4).params) == {"R", "W", "U", "b", "V", "c"}
    assert set(M.skip_rnn(2, 3, 4, delay=3, length_one=False).params) == {"U", "W_d", "b",
                                                                            "V", "c"}
    lstm = M.lstm(2, 3, 4)
    assert {"f", "g", "q"} <= set(lstm.named) and set(lstm.states) == {"s", "h"}
    assert {"u", "r"} <= set(M.gru(2, 3, 4).named)
    assert "W" in M.lstm(2, 3, 4).params and M.lstm(2, 3, 4).params["W"].shape == (3, 3)


def test_float32_models_stay_float32():
    rec = M.gru(2, 3, 4, dtype=np.float32)
    net = rec.unfold(3)
    rng = np.random.default_rng(0)
    feed = {p: rng.uniform(-1, 1, p.shape).astype(np.float32) for p in rec.params.values()}
    feed.update(x=rng.standard_normal((3, 2, 2)).astype(np.float32), y=rng.integers(0, 4, (3, 2)))
    values = uf.evaluate([net.loss, *uf.grad(net.loss, net.params)], feed)
    assert all(v.dtype == np.float32 for v in values)


@pytest.mark.parametrize("bad", [dict(loss="hinge"), dict(outputs="some"), dict(inputs="images")])
def test_bad_options_are_named(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        M.rnn(2, 3, 4, **bad)


def test_bad_model_options():
    with pytest.raises(ValueError, match="variant"):
        M.lstm(2, 3, 4, variant="peephole")
    with pytest.raises(ValueError, match="mode"):
        M.teacher_forcing(2, 3, 4, mode="both")
    with pytest.raises(ValueError, match="delay"):
        M.skip_rnn(2, 3, 4, delay=1)
    with pytest.raises(ValueError, match="alpha"):
        M.leaky_rnn(2, 3, 4, alpha=1.5)
    with pytest.raises(ValueError, match="cell"):
        M.language_model(5, 3, cell="transformer")
