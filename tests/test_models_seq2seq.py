"""Bidirectional RNNs (Fig. 10.11) and encoder–decoders (Fig. 10.12): against their equations in
numpy, gradcheck, what depends on what (perturbations, the context C), greedy decoding."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import unfold as uf
from unfold import models as M
from unfold.generate import greedy_decode
from unfold.graph import topological
from unfold.testing import gradcheck
from test_models import gru_step, log_softmax, lstm_step

FEW = max(6, settings().max_examples // 4)
CELL = st.sampled_from(["rnn", "lstm", "gru"])
VARIANT = st.sampled_from(["book", "common"])


def cell_step(cell, P, x, h, s, variant):
    """One step of a cell in numpy under its own parameter names: (h, s)."""
    if cell == "rnn":
        return np.tanh(P["b"] + h @ P["W"].T + x @ P["U"].T), s
    if cell == "lstm":
        return lstm_step(P, x, h, s, {"variant": variant})
    return gru_step(P, x, h, {"variant": variant}), s


def scoped(P, prefix):
    return {k[len(prefix):]: v for k, v in P.items() if k.startswith(prefix)}


def ce(o, y):
    return -np.take_along_axis(log_softmax(o), y[:, None], axis=1)[:, 0]


# --- bidirectional ---------------------------------------------------------------------------------

def bidirectional_reference(P, x, y, cell, variant, n):
    steps, B = x.shape[:2]
    forward, backward = [None] * steps, [None] * steps
    h = s = np.zeros((B, n))
    for t in range(steps):
        h, s = cell_step(cell, P, x[t], h, s, variant)
        forward[t] = h
    G = scoped(P, "g.")
    g = s = np.zeros((B, n))
    for t in range(steps - 1, -1, -1):
        g, s = cell_step(cell, G, x[t], g, s, variant)
        backward[t] = g
    outs = [P["c"] + forward[t] @ P["V"].T + backward[t] @ P["V_g"].T for t in range(steps)]
    return sum(ce(o, y[t]).sum() for t, o in enumerate(outs)), forward, backward


@st.composite
def bidirectionals(draw):
    cell, variant = draw(CELL), draw(VARIANT)
    m, n, k = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(2, 3))
    steps, batch = draw(st.integers(1, 4)), draw(st.none() | st.integers(1, 2))
    options = {"variant": variant} if cell != "rnn" else {}
    rec = M.bidirectional(m, n, k, cell=cell, **options)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lead = (steps,) if batch is None else (steps, batch)
    feed = {name: rng.uniform(-1, 1, p.shape) for name, p in rec.params.items()}
    feed.update(x=rng.standard_normal(lead + (m,)), y=rng.integers(0, k, lead))
    return rec, feed, dict(cell=cell, variant=variant, n=n, steps=steps, batch=batch)


@settings(max_examples=FEW)
@given(bidirectionals())
def test_the_bidirectional_rnn_follows_fig_10_11_and_passes_gradcheck(case):
    rec, feed, o = case
    net = rec.unfold(o["steps"])
    x, y = (feed["x"], feed["y"]) if o["batch"] else (feed["x"][:, None], feed["y"][:, None])
    expected, _, _ = bidirectional_reference(feed, x, y, o["cell"], o["variant"], o["n"])
    np.testing.assert_allclose(uf.evaluate([net.loss], feed)[0], expected, rtol=1e-12)
    gradcheck(net.loss, net.params + net.over_time("x"), feed)


@settings(max_examples=FEW)
@given(bidirectionals())
def test_the_backward_state_at_t_depends_only_on_inputs_t_to_tau(case):
    rec, feed, o = case
    net = rec.unfold(o["steps"])
    nodes = net.over_time("h") + net.over_time("g.h")
    base = uf.evaluate(nodes, feed)
    tau = o["steps"]
    for s in range(tau):
        x = np.array(feed["x"])
        x[s] += 0.5
        moved = uf.evaluate(nodes, {**feed, "x": x})
        changed = [not np.allclose(a, b, rtol=0, atol=1e-14) for a, b in zip(base, moved)]
        h_changed, g_changed = changed[:tau], changed[tau:]
        assert h_changed == [t >= s for t in range(tau)]        # h(t): inputs 1 … t
        assert g_changed == [t <= s for t in range(tau)]        # g(t): inputs t … τ


# --- encoder–decoder ------------------------------------------------------------------------------

def seq2seq_reference(P, x, y_prev, y, o):
    """Fig. 10.12 as the docstring of encoder_decoder writes it, batched on axis 1."""
    E, D = scoped(P, "encoder."), scoped(P, "decoder.")
    B, n = x.shape[1], o["n"]
    h = s = np.zeros((B, n))
    states = []
    for t in range(len(x)):
        h, s = cell_step(o["encoder_cell"], E, x[t], h, s, o["variant"])
        states.append(h)
    C = states[-1] if o["context"] == "final" else np.mean(states, axis=0)
    h, s = np.tanh(D["b_C"] + C @ D["W_C"].T), np.zeros((B, n))
    total = 0.0
    for t in range(len(y)):
        inp = np.concatenate([np.eye(o["k"])[y_prev[t]], C], axis=1)
        h, s = cell_step(o["decoder_cell"], D, inp, h, s, o["variant"])
        total += ce(D["c"] + h @ D["V"].T, y[t]).sum()
    return total


@st.composite
def seq2seqs(draw):
    o = {"encoder_cell": draw(CELL), "decoder_cell": draw(CELL), "variant": draw(VARIANT),
         "context": draw(st.sampled_from(M.CONTEXTS)), "m": draw(st.integers(1, 3)),
         "n": draw(st.integers(1, 3)), "k": draw(st.integers(2, 4)),
         "n_x": draw(st.integers(1, 4)), "n_y": draw(st.integers(1, 4)),
         "batch": draw(st.none() | st.integers(1, 2))}
    model = M.encoder_decoder(o["m"], o["n"], o["k"], encoder_cell=o["encoder_cell"],
                              decoder_cell=o["decoder_cell"], context=o["context"],
                              variant=o["variant"])
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    lead = () if o["batch"] is None else (o["batch"],)
    feed = {name: rng.uniform(-1, 1, p.shape) for name, p in model.params.items()}
    y = rng.integers(0, o["k"], (o["n_y"],) + lead)
    feed.update(x=rng.standard_normal((o["n_x"],) + lead + (o["m"],)), y=y,
                y_prev=M.teacher_forced(y, 0))
    return model, feed, o


@settings(max_examples=FEW)
@given(seq2seqs())
def test_the_encoder_decoder_follows_fig_10_12_and_passes_gradcheck(case):
    model, feed, o = case
    net = model.unfold(o["n_x"], o["n_y"])
    assert sorted(net.param_names) == sorted(model.params)
    b = feed if o["batch"] else {k: (v[:, None] if k in ("x", "y", "y_prev") else v)
                                 for k, v in feed.items()}
    expected = seq2seq_reference(b, b["x"], b["y_prev"], b["y"], o)
    np.testing.assert_allclose(uf.evaluate([net.loss], feed)[0], expected, rtol=1e-12)
    gradcheck(net.loss, net.params, feed)


@settings(max_examples=FEW)
@given(seq2seqs())
def test_the_decoder_depends_on_the_input_only_through_the_context(case):
    model, feed, o = case
    encoded = model.encoder.unfold(o["n_x"])
    C = model.context_of(encoded)
    joined = model.decoder.unfold(o["n_y"], bind={"C": C})
    # every path from an input x(t) to the loss passes through C
    inputs = set(encoded.over_time("x"))
    seen, stack = set(), [joined.loss]
    while stack:
        node = stack.pop()
        if node in seen or node is C:
            continue
        seen.add(node)
        assert node not in inputs, f"{node.label} reaches the decoder around C"
        stack.extend(node.inputs)
    # and the decoder fed the value of C alone gives the joined graph's loss and gradients
    enc, dec = model.split({k: v for k, v in feed.items() if k in model.params})
    c_value, = uf.evaluate([C], {**enc, "x": feed["x"]})
    alone = model.decoder.unfold(o["n_y"])
    dec_feed = {**dec, "C": c_value, "y": feed["y"], "y_prev": feed["y_prev"]}
    nodes = list(model.decoder.params.values())
    expected = uf.evaluate([alone.loss, *uf.grad(alone.loss, nodes)], dec_feed)
    got = uf.evaluate([joined.loss, *uf.grad(joined.loss, nodes)], feed)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_greedy_decoding_follows_the_argmax_and_stops_at_the_end_symbol():
    rng = np.random.default_rng(3)
    model = M.encoder_decoder(2, 4, 5, encoder_cell="lstm", decoder_cell="gru", context="mean")
    params = {k: rng.uniform(-1, 1, p.shape) for k, p in model.params.items()}
    x = rng.standard_normal((6, 3, 2))
    decoded = greedy_decode(model, params, x, start=0, max_length=7)
    assert [len(d) for d in decoded] == [7, 7, 7]
    # each choice is the argmax of o(t) given the previous choices (teacher-forced on them)
    y = np.array(decoded).T
    net = model.unfold(6, 7)
    o = uf.evaluate(net.over_time("o"), {**params, "x": x, "y_prev": M.teacher_forced(y, 0)})
    np.testing.assert_array_equal(np.argmax(np.stack(o), -1), y)
    assert greedy_decode(model, params, x[:, 1], start=0, max_length=7) == decoded[1]
    # the end symbol ends a sequence (and is not returned)
    end = int(y[2, 0])
    stopped = greedy_decode(model, params, x, start=0, end=end, max_length=7)
    for d, full in zip(stopped, decoded):
        assert d == (full[:full.index(end)] if end in full else full)
    certain = dict(params, **{"decoder.V": np.zeros((5, 4)), "decoder.c": np.eye(5)[4] * 50})
    assert greedy_decode(model, certain, x, start=0, end=4, max_length=7) == [[], [], []]


def test_encoder_decoder_options_and_names():
    model = M.encoder_decoder(3, 4, 6, encoder_cell="rnn", decoder_cell="lstm")
    assert {"encoder.U", "encoder.W", "decoder.W_C", "decoder.U_f", "decoder.V"} <= \
        set(model.params)
    assert model.params["decoder.U"].shape == (4, 6 + 4)
    assert set(model.sequences) == {"x", "y_prev", "y"}
    assert model.lengths({"x": np.zeros((5, 3)), "y": np.zeros(2), "y_prev": np.zeros(2)}) == \
        (5, 2)
    with pytest.raises(ValueError, match="context must be one of"):
        M.encoder_decoder(3, 4, 6, context="attention")
    with pytest.raises(KeyError, match="not a parameter"):
        model.split({"W": 0})
    twin = uf.Recurrence("encoder")
    twin.context("C", (4,))
    with pytest.raises(uf.RecurrenceError, match="distinct names"):
        M.EncoderDecoder(model.encoder, twin)


def test_decoding_samples_from_the_decoder_and_is_greedy_when_cold():
    from unfold.generate import decode
    rng = np.random.default_rng(5)
    model = M.encoder_decoder(2, 3, 4)
    params = {k: rng.uniform(-2, 2, p.shape) for k, p in model.params.items()}
    x = rng.standard_normal((3, 2))
    greedy = greedy_decode(model, params, x, start=0, max_length=6)
    assert decode(model, params, x, start=0, max_length=6, temperature=0) == greedy
    drawn = [tuple(decode(model, params, x, start=0, max_length=6, rng=i)) for i in range(30)]
    assert len(set(drawn)) > 1 and all(len(d) == 6 for d in drawn)
    assert decode(model, params, x, start=0, max_length=6, rng=7) == \
        decode(model, params, x, start=0, max_length=6, rng=7)
    with pytest.raises(ValueError, match="temperature"):
        decode(model, params, x, start=0, temperature=-1.0)
