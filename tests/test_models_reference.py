"""The independent check of issue 10: every builder of ``unfold.models`` against an outside
reference written in plain numpy from the builder's DOCSTRING (its equations, its parameter names
and shapes) — never from unfold's code.

Each reference is a numpy forward pass. Its gradient is taken by the complex step,
``∂L/∂θ_i = Im L(θ + i·10⁻³⁰ e_i) / 10⁻³⁰``: a finite difference without cancellation, exact to
rounding in float64 (every reference is written with analytic functions only — tanh, exp, log,
sqrt of v·v — and takes maxima and argmaxes of real parts, which are constants of the step).
Losses and every parameter gradient (and input gradients where the inputs are real) must agree
to 1e-10 relative to the gradient's largest element — or to 10⁻³ of the model's largest gradient
element, for a gradient that is (nearly) zero — in both evaluation modes of unfold.

Ω (section 10.11.2) is referenced by a hand-written BPTT for ∇h(t) L, complex-stepped as a whole:
its exact gradient then has the second derivatives in it, and "holding a value constant" is
taking its real part.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import unfold as uf
from unfold import models as M
from unfold.dynamics import omega

FEW = max(4, settings().max_examples // 6)
STEP = 1e-30
TOLERANCE = 1e-10
MODES = ("batched", "reference")
CELLS = ("rnn", "lstm", "gru")
VARIANTS = ("book", "common")
#: the largest relative error seen per model, printed with ``pytest -s`` (the report's numbers)
WORST: dict[str, float] = {}


# --- the reference's numpy ------------------------------------------------------------------------

def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def softplus(z):
    return np.log(1.0 + np.exp(z))


def log_softmax(o):
    z = o - o.real.max(axis=-1, keepdims=True)          # a constant shift: exact in any case
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax(o):
    return np.exp(log_softmax(o))


def cross_entropy(o, y):
    """−log softmax(o)_y for o (B, k), y (B,) ints: (B,)."""
    return -np.take_along_axis(log_softmax(o), y[:, None], axis=-1)[:, 0]


def squared(o, y):
    return ((o - y) ** 2).sum(axis=-1)


def one_hot(ids, k):
    return np.eye(k)[ids]


def step_loss(o, y, loss):
    return cross_entropy(o, y) if loss == "cross_entropy" else squared(o, y)


class Names:
    """The parameters of a scope: ``Names(P, "g.{}")["W"]`` is ``P["g.W"]``."""

    def __init__(self, P, pattern="{}"):
        self.P, self.pattern = P, pattern

    def __getitem__(self, name):
        return self.P[self.pattern.format(name)]


def lin(P, bias, **weights):
    """``bias + Σ M v`` in row form (v of shape (B, m), M of shape (n, m))."""
    out = P[bias] if bias is not None else 0.0
    for name, v in weights.items():
        out = out + v @ P[name].T
    return out


# the cells as their docstrings write them; each returns the new states (a dict)

def rnn_cell(P, x, past, **_):
    return {"h": np.tanh(P["b"] + past("h") @ P["W"].T + x @ P["U"].T)}


def lstm_cell(P, x, past, variant="book", **_):
    h = past("h")

    def gate(k):
        return sigmoid(P[f"b_{k}"] + x @ P[f"U_{k}"].T + h @ P[f"W_{k}"].T)
    squash = sigmoid if variant == "book" else np.tanh
    f, g, q = gate("f"), gate("g"), gate("o")
    s = f * past("s") + g * squash(P["b"] + x @ P["U"].T + h @ P["W"].T)
    return {"s": s, "h": np.tanh(s) * q}


def gru_cell(P, x, past, variant="book", **_):
    h = past("h")

    def gate(k):
        return sigmoid(P[f"b_{k}"] + x @ P[f"U_{k}"].T + h @ P[f"W_{k}"].T)
    squash = sigmoid if variant == "book" else np.tanh
    u, r = gate("u"), gate("r")
    if variant == "reset_after":
        candidate = np.tanh(P["b"] + x @ P["U"].T + r * (P["b_W"] + h @ P["W"].T))
    else:
        candidate = squash(P["b"] + x @ P["U"].T + (r * h) @ P["W"].T)
    return {"h": u * h + (1 - u) * candidate}


def leaky_cell(P, x, past, alpha=0.9, **_):
    v = np.tanh(P["b"] + past("h") @ P["W"].T + x @ P["U"].T)
    return {"h": alpha * past("h") + (1 - alpha) * v}


def skip_cell(P, x, past, delay=2, length_one=True, **_):
    a = P["b"] + past("h", delay) @ P["W_d"].T + x @ P["U"].T
    if length_one:
        a = a + past("h") @ P["W"].T
    return {"h": np.tanh(a)}


REF_CELLS = {"rnn": rnn_cell, "lstm": lstm_cell, "gru": gru_cell, "leaky": leaky_cell,
             "skip": skip_cell}
STATES = {"rnn": ("h",), "lstm": ("s", "h"), "gru": ("h",), "leaky": ("h",), "skip": ("h",)}


def run(cell, P, xs, init, backward=False, **options):
    """The states of ``cell`` over the inputs ``xs`` (a list of (B, m)), from ``init`` (state →
    (B, n)); every read before the first step gives the initial state. Returns the list of
    per-step state dicts, in time order."""
    order = range(len(xs) - 1, -1, -1) if backward else range(len(xs))
    done, out = [], [None] * len(xs)
    for t in order:
        def past(name, d=1):
            return done[-d][name] if len(done) >= d else init[name]
        new = cell(P, xs[t], past, **options)
        done.append(new)
        out[t] = new
    return out


def zeros(cell, B, n):
    return {s: np.zeros((B, n)) for s in STATES[cell]}


# --- the comparison -------------------------------------------------------------------------------

def complex_step(loss_of, values, names):
    """∂ loss_of(values) / ∂ values[name] for each name, by the complex step."""
    out = {}
    for name in names:
        base = np.asarray(values[name], dtype=np.float64)
        g = np.empty(base.shape)
        for index in np.ndindex(base.shape):
            moved = base.astype(complex)
            moved[index] += 1j * STEP
            g[index] = np.imag(loss_of({**values, name: moved})) / STEP
        out[name] = g
    return out


def relative(a, b, floor=1e-12):
    """``max |a − b|`` over ``max |b|`` (at least ``floor``: a gradient that is zero in exact
    arithmetic is compared with the model's largest gradient element, not with its own noise)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(float(np.max(np.abs(b), initial=0.0)), floor)
    return float(np.max(np.abs(a - b), initial=0.0)) / scale


def compare(what, loss, graph_params, feed, reference, wrt_inputs=()):
    """Unfold's ``loss`` and its gradients w.r.t. ``graph_params`` (name → node) and the
    per-step inputs ``wrt_inputs`` (name → list of nodes, stacked over time) against the complex
    step of ``reference(values)`` (values: the feed by name), in both evaluation modes."""
    names = list(graph_params)
    inputs = dict(wrt_inputs)
    expected_loss = float(np.real(reference(feed)))
    expected = complex_step(reference, feed, names + list(inputs))
    nodes = [loss, *uf.grad(loss, [graph_params[n] for n in names] +
                            [c for cs in inputs.values() for c in cs])]
    largest = max([float(np.max(np.abs(g), initial=0.0)) for g in expected.values()] + [0.0])
    floor = max(1e-3 * largest, 1e-12)       # as Trainer.check_gradients compares
    worst = 0.0
    for mode in MODES:
        got = uf.evaluate(nodes, feed, mode=mode)
        worst = max(worst, relative(got[0], expected_loss))
        grads = iter(got[1:])
        for name in names:
            worst = max(worst, _check(what, mode, name, next(grads), expected[name], floor))
        for name, copies in inputs.items():
            stacked = np.stack([next(grads) for _ in copies])
            worst = max(worst, _check(what, mode, name, stacked, expected[name], floor))
        assert relative(got[0], expected_loss) < TOLERANCE, (what, mode, got[0], expected_loss)
    WORST[what] = max(WORST.get(what, 0.0), worst)


def _check(what, mode, name, got, expected, floor):
    err = relative(got, expected, floor)
    assert err < TOLERANCE, f"{what} [{mode}]: ∇{name} is off by {err:.2e} (relative)"
    return err


def params_of(model, rng, scale=1.0):
    return {name: rng.uniform(-scale, scale, p.shape) for name, p in model.params.items()}


def classes_feed(model, seed, T, batch, m, k):
    """Random parameters, inputs x (T, [batch,] m) and class targets y (T, [batch]) < k."""
    rng = np.random.default_rng(seed)
    lead = (T,) if batch is None else (T, batch)
    return {**params_of(model, rng), "x": rng.standard_normal(lead + (m,)),
            "y": rng.integers(0, k, lead)}


def batched(v, batch):
    """A per-step array (T, [B,] …) with its batch axis (B = 1 when unbatched)."""
    v = np.asarray(v)
    return v if batch else v[:, None]


def sizes(draw, low=1, high=3):
    return draw(st.integers(low, high))


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if WORST:
        print("\nlargest relative error of loss and gradients, per model:")
        for what, err in sorted(WORST.items()):
            print(f"  {what:45s} {err:.1e}")


# --- chain models: rnn, lstm, gru, leaky, skip ----------------------------------------------------

def chain_reference(cell, options, loss, outputs, inputs, k, n, carry=False):
    def forward(V):
        x = V["x"]
        xs = [one_hot(x[t], V["_m"]) if inputs == "tokens" else x[t] for t in range(len(x))]
        B = xs[0].shape[0]
        init = {s: V[f"{s}0"] for s in STATES[cell]} if carry else zeros(cell, B, n)
        states = run(REF_CELLS[cell], V, xs, init, **options)
        total = 0.0
        steps = range(len(xs)) if outputs == "every" else [len(xs) - 1]
        for t in steps:
            o = V["c"] + states[t]["h"] @ V["V"].T
            total = total + step_loss(o, V["y"][t], loss).sum()
        return total
    return forward


BUILD = {"rnn": M.rnn, "lstm": M.lstm, "gru": M.gru, "leaky": M.leaky_rnn, "skip": M.skip_rnn}


@st.composite
def chains(draw):
    cell = draw(st.sampled_from(sorted(BUILD)))
    m, n, k = sizes(draw), sizes(draw), sizes(draw, 2, 3)
    T, batch = sizes(draw, 1, 4), draw(st.none() | st.integers(1, 2))
    loss = draw(st.sampled_from(M.LOSSES))
    outputs = draw(st.sampled_from(M.OUTPUTS))
    inputs = draw(st.sampled_from(M.INPUTS))
    carry = draw(st.booleans())
    options = {}
    if cell in ("lstm", "gru"):
        options["variant"] = draw(st.sampled_from(VARIANTS + (("reset_after",) if cell == "gru"
                                                              else ())))
    if cell == "leaky":
        options["alpha"] = draw(st.sampled_from([0.0, 0.5, 0.9]))
    if cell == "skip":
        options.update(delay=draw(st.integers(2, 3)), length_one=draw(st.booleans()))
    seed = draw(st.integers(0, 2**32 - 1))
    return cell, m, n, k, T, batch, loss, outputs, inputs, carry, options, seed


@settings(max_examples=3 * FEW)
@given(chains())
def test_chain_models_agree_with_the_numpy_reference(case):
    cell, m, n, k, T, batch, loss, outputs, inputs, carry, options, seed = case
    rec = BUILD[cell](m, n, k, loss=loss, outputs=outputs, inputs=inputs, carry=carry, **options)
    rng = np.random.default_rng(seed)
    lead = (T,) if batch is None else (T, batch)
    feed = params_of(rec, rng)
    feed["x"] = rng.integers(0, m, lead) if inputs == "tokens" else rng.standard_normal(lead + (m,))
    feed["y"] = rng.integers(0, k, lead) if loss == "cross_entropy" else \
        rng.standard_normal(lead + (k,))
    if carry:
        for s in STATES[cell]:
            feed[f"{s}0"] = rng.uniform(-1, 1, lead[1:] + (n,))
    net = rec.unfold(T)
    ref = chain_reference(cell, options, loss, outputs, inputs, k, n, carry)
    wrt = {} if inputs == "tokens" else {"x": net.over_time("x")}

    def reference(V):
        return ref({**V, "_m": m, "x": batched(V["x"], batch), "y": batched(V["y"], batch)})
    compare(f"{cell} {options.get('variant', '')}".strip(), net.loss, net.param_names, feed,
            reference, wrt)


def test_rnn_single_output_is_the_loss_of_the_last_step():
    rng = np.random.default_rng(1)
    rec = M.rnn_single_output(2, 3, 3)
    feed = {**params_of(rec, rng), "x": rng.standard_normal((4, 2, 2)),
            "y": rng.integers(0, 3, (4, 2))}
    ref = chain_reference("rnn", {}, "cross_entropy", "last", "vectors", 3, 3)
    compare("rnn_single_output", rec.unfold(4).loss, rec.unfold(4).param_names, feed, ref)


# --- output recurrences: Fig. 10.4, 10.6, 10.9, 10.10 -------------------------------------------

def fed_reference(kind, mode, feedback, loss, k, n):
    """Figs. 10.4 (kind "output"), 10.6 ("teacher"), 10.9 ("context"), 10.10 ("conditional")."""
    def forward(V):
        x, y = V["x"], V["y"]
        T, B = y.shape[:2]
        truth = [one_hot(y[t], k) if loss == "cross_entropy" else y[t] for t in range(T)]
        h = np.zeros((B, n))
        fed_true = fed_model = fed = np.zeros((B, k))   # y_prev(0) = 0 (and o(0) = 0)
        total = 0.0
        for t in range(T):
            if mode == "scheduled":
                fed = np.where(V["z"][t][:, None] > 0.5, fed_model, fed_true)
            if kind == "output":
                hidden = np.tanh(V["b"] + fed @ V["W"].T + x[t] @ V["U"].T)
            elif kind == "teacher":
                hidden = np.tanh(V["b"] + fed @ V["W"].T + x[t] @ V["U"].T)
            elif kind == "context":
                hidden = h = np.tanh(V["b"] + h @ V["W"].T + x @ V["R"].T + fed @ V["U"].T)
            else:
                hidden = h = np.tanh(V["b"] + h @ V["W"].T + x[t] @ V["U"].T + fed @ V["R"].T)
            o = V["c"] + hidden @ V["V"].T
            total = total + step_loss(o, y[t], loss).sum()
            if loss == "squared_error":
                own = o
            elif feedback == "softmax":
                own = softmax(o)
            else:
                own = one_hot(np.argmax(o.real, axis=-1), k)
            if kind == "output":
                fed = o
            elif mode == "scheduled":
                fed_true, fed_model = truth[t], own
            else:
                fed = truth[t] if mode == "train" else own
        return total
    return forward


@st.composite
def fed_models(draw):
    kind = draw(st.sampled_from(["output", "teacher", "context", "conditional"]))
    mode = "train" if kind == "output" else draw(st.sampled_from(M.MODES))
    feedback = draw(st.sampled_from(M.FEEDBACKS))
    loss = draw(st.sampled_from(M.LOSSES))
    return (kind, mode, feedback, loss, sizes(draw), sizes(draw), sizes(draw, 2, 3),
            sizes(draw, 1, 4), draw(st.none() | st.integers(1, 2)),
            draw(st.integers(0, 2**32 - 1)))


@settings(max_examples=2 * FEW)
@given(fed_models())
def test_output_recurrences_and_teacher_forcing_agree_with_the_numpy_reference(case):
    kind, mode, feedback, loss, m, n, k, T, batch, seed = case
    common = dict(loss=loss)
    if kind == "output":
        rec = M.output_to_hidden(m, n, k, **common)
    elif kind == "teacher":
        rec = M.teacher_forcing(m, n, k, mode=mode, feedback=feedback, **common)
    elif kind == "context":
        rec = M.context_rnn(m, n, k, mode=mode, feedback=feedback, **common)
    else:
        rec = M.conditional_rnn(m, n, k, mode=mode, feedback=feedback, **common)
    rng = np.random.default_rng(seed)
    lead = (T,) if batch is None else (T, batch)
    feed = params_of(rec, rng)
    feed["x"] = rng.standard_normal((lead[1:] if kind == "context" else lead) + (m,))
    feed["y"] = rng.integers(0, k, lead) if loss == "cross_entropy" else \
        rng.standard_normal(lead + (k,))
    if mode == "scheduled":
        feed["z"] = M.scheduled_mask(T, batch, 0.5, rng)
    net = rec.unfold(T)
    ref = fed_reference(kind, mode, feedback, loss, k, n)

    def reference(V):
        W = dict(V)
        if not batch:
            W["x"] = V["x"][None] if kind == "context" else V["x"][:, None]
            W["y"] = V["y"][:, None]
            if "z" in V:
                W["z"] = V["z"][:, None]
        return ref(W)
    wrt = {} if kind == "context" else {"x": net.over_time("x")}
    compare(f"{kind} mode={mode} feedback={feedback}", net.loss, net.param_names, feed,
            reference, wrt)


# --- language models (section 10.2.3) -------------------------------------------------------------

@st.composite
def language_models(draw):
    ending = draw(st.sampled_from(["end", "stop", "remaining", "total"]))
    cell = draw(st.sampled_from(CELLS))
    vocab, n, batch = sizes(draw, 3, 4), sizes(draw), sizes(draw, 1, 3)
    lengths = draw(st.lists(st.integers(1, 4), min_size=batch, max_size=batch))
    return ending, cell, vocab, n, lengths, draw(st.integers(0, 2**32 - 1))


@settings(max_examples=2 * FEW)
@given(language_models())
def test_language_models_and_the_length_output_agree_with_the_numpy_reference(case):
    ending, cell, vocab, n, lengths, seed = case
    rng = np.random.default_rng(seed)
    K = max(lengths) + 1
    kw = dict(stop=ending == "stop")
    if ending in ("remaining", "total"):
        kw.update(max_length=K, length_input=ending)
    rec = M.language_model(vocab, n, cell=cell, **kw)
    symbols = [list(rng.integers(1, vocab - (ending == "end"), L)) for L in lengths]
    data = M.encode(symbols, start=0, end=vocab - 1 if ending == "end" else None,
                    lengths=ending in ("remaining", "total"))
    if ending == "total":
        del data["remaining"]
    feed = {**params_of(rec, rng), **data}
    T = data["x"].shape[0]
    net = rec.unfold(T, mask=True)

    def reference(V):
        x, y, mask = V["x"], V["y"], V["mask"]
        B = x.shape[1]
        xs = []
        for t in range(T):
            v = one_hot(x[t], vocab)
            if ending == "remaining":
                v = np.concatenate([v, one_hot(V["remaining"][t], K)], axis=1)
            elif ending == "total":
                v = np.concatenate([v, one_hot(V["tau"], K + 1)], axis=1)
            xs.append(v)
        states = run(REF_CELLS[cell], V, xs, zeros(cell, B, n))
        total = 0.0
        for t in range(T):
            h = states[t]["h"]
            term = cross_entropy(V["c"] + h @ V["V"].T, y[t])
            if ending == "stop":
                z = V["c_s"] + h @ V["V_s"]
                term = term + cross_entropy(np.stack([np.zeros_like(z), z], axis=1), V["end"][t])
            total = total + (mask[t] * term).sum()
        if ending in ("remaining", "total"):       # o_tau = c_tau + V_tau h(0), h(0) = 0
            o_tau = V["c_tau"] + np.zeros((B, n)) @ V["V_tau"].T
            total = total + cross_entropy(o_tau, V["tau"]).sum()
        return total
    compare(f"language_model {cell} ending={ending}", net.loss, net.param_names, feed, reference)


# --- bidirectional (Fig. 10.11) -------------------------------------------------------------------

@st.composite
def bidirectionals(draw):
    cell = draw(st.sampled_from(CELLS))
    variant = draw(st.sampled_from(VARIANTS))
    return (cell, variant, sizes(draw), sizes(draw), sizes(draw, 2, 3), sizes(draw, 1, 4),
            draw(st.none() | st.integers(1, 2)), draw(st.integers(0, 2**32 - 1)))


@settings(max_examples=2 * FEW)
@given(bidirectionals())
def test_bidirectional_rnns_agree_with_the_numpy_reference(case):
    cell, variant, m, n, k, T, batch, seed = case
    options = {"variant": variant} if cell != "rnn" else {}
    rec = M.bidirectional(m, n, k, cell=cell, **options)
    feed = classes_feed(rec, seed, T, batch, m, k)
    net = rec.unfold(T)

    def reference(V):
        x, y = batched(V["x"], batch), batched(V["y"], batch)
        xs = list(x)
        B = x.shape[1]
        h = run(REF_CELLS[cell], V, xs, zeros(cell, B, n), **options)
        g = run(REF_CELLS[cell], Names(V, "g.{}"), xs, zeros(cell, B, n), backward=True,
                **options)
        return sum(cross_entropy(V["c"] + h[t]["h"] @ V["V"].T + g[t]["h"] @ V["V_g"].T,
                                 y[t]).sum() for t in range(T))
    compare(f"bidirectional {cell} {options.get('variant', '')}".strip(), net.loss,
            net.param_names, feed, reference, {"x": net.over_time("x")})


# --- encoder–decoder (Fig. 10.12) -----------------------------------------------------------------

def seq2seq_reference(enc_cell, dec_cell, context, variant, n, k, x_lengths=None,
                      y_lengths=None):
    def forward(V):
        E, D = Names(V, "encoder.{}"), Names(V, "decoder.{}")
        x, y_prev, y = V["x"], V["y_prev"], V["y"]
        B = x.shape[1]
        opt = {} if enc_cell == "rnn" else {"variant": variant}
        states = [s["h"] for s in run(REF_CELLS[enc_cell], E, list(x), zeros(enc_cell, B, n),
                                      **opt)]
        nx = np.full(B, len(x)) if x_lengths is None else np.asarray(x_lengths)
        if context == "final":
            C = np.stack([states[nx[b] - 1][b] for b in range(B)])
        else:
            C = np.stack([sum(states[t][b] for t in range(nx[b])) / nx[b] for b in range(B)])
        init = zeros(dec_cell, B, n)
        init["h"] = np.tanh(D["b_C"] + C @ D["W_C"].T)     # the decoder's h(0); an LSTM's s(0) = 0
        opt = {} if dec_cell == "rnn" else {"variant": variant}
        inputs = [np.concatenate([one_hot(y_prev[t], k), C], axis=1) for t in range(len(y))]
        states = run(REF_CELLS[dec_cell], D, inputs, init, **opt)
        ny = np.full(B, len(y)) if y_lengths is None else np.asarray(y_lengths)
        total = 0.0
        for t in range(len(y)):
            term = cross_entropy(D["c"] + states[t]["h"] @ D["V"].T, y[t])
            total = total + (term * (t < ny)).sum()
        return total
    return forward


@st.composite
def seq2seqs(draw):
    return (draw(st.sampled_from(CELLS)), draw(st.sampled_from(CELLS)),
            draw(st.sampled_from(M.CONTEXTS)), draw(st.sampled_from(VARIANTS)),
            sizes(draw), sizes(draw), sizes(draw, 2, 4), sizes(draw, 1, 4), sizes(draw, 1, 3),
            draw(st.none() | st.integers(1, 2)), draw(st.integers(0, 2**32 - 1)))


@settings(max_examples=2 * FEW)
@given(seq2seqs())
def test_encoder_decoders_agree_with_the_numpy_reference(case):
    enc, dec, context, variant, m, n, k, n_x, n_y, batch, seed = case
    model = M.encoder_decoder(m, n, k, encoder_cell=enc, decoder_cell=dec, context=context,
                              variant=variant)
    rng = np.random.default_rng(seed)
    lead = () if batch is None else (batch,)
    y = rng.integers(0, k, (n_y,) + lead)
    feed = {**params_of(model, rng), "x": rng.standard_normal((n_x,) + lead + (m,)), "y": y,
            "y_prev": M.teacher_forced(y, 0)}
    net = model.unfold(n_x, n_y)
    ref = seq2seq_reference(enc, dec, context, variant, n, k)

    def reference(V):
        return ref({**V, **{s: batched(V[s], batch) for s in ("x", "y", "y_prev")}})
    compare(f"encoder_decoder {enc}->{dec} C={context}", net.loss, net.param_names, feed,
            reference)


# --- deep RNNs (Fig. 10.13) -----------------------------------------------------------------------

def mlp_ref(V, v, widths, scope, weight):
    for l in range(1, len(widths) + 1):
        v = np.tanh(V[f"{scope}.b_{l}"] + v @ V[f"{scope}.{weight}_{l}"].T)
    return v


@st.composite
def deep_rnns(draw):
    transition = draw(st.sampled_from(["stacked", "deep"]))
    cell = draw(st.sampled_from(CELLS)) if transition == "stacked" else "rnn"
    layers = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    ins = draw(st.lists(st.integers(1, 3), max_size=2))
    outs = draw(st.lists(st.integers(1, 3), max_size=2))
    skip = transition == "deep" and draw(st.booleans())
    return (transition, cell, draw(st.sampled_from(VARIANTS)), layers, ins, outs, skip,
            sizes(draw), sizes(draw, 2, 3), sizes(draw, 1, 3),
            draw(st.none() | st.integers(1, 2)), draw(st.integers(0, 2**32 - 1)))


@settings(max_examples=2 * FEW)
@given(deep_rnns())
def test_deep_rnns_agree_with_the_numpy_reference(case):
    transition, cell, variant, layers, ins, outs, skip, m, k, T, batch, seed = case
    options = {"variant": variant} if cell != "rnn" else {}
    rec = M.deep_rnn(m, layers, k, transition=transition, skip=skip, cell=cell,
                     input_layers=ins, output_layers=outs, **options)
    feed = classes_feed(rec, seed, T, batch, m, k)
    net = rec.unfold(T)

    def reference(V):
        x, y = batched(V["x"], batch), batched(V["y"], batch)
        B = x.shape[1]
        below = [mlp_ref(V, x[t], ins, "in", "U") for t in range(T)]
        if transition == "stacked":
            for l, n in enumerate(layers, start=1):
                states = run(REF_CELLS[cell], Names(V, "{}_%d" % l), below, zeros(cell, B, n),
                             **options)
                below = [s["h"] for s in states]
            top = below
        else:
            *hidden, n = layers
            h, top = np.zeros((B, n)), []
            for t in range(T):
                if not hidden:
                    h = np.tanh(V["b"] + h @ V["W"].T + below[t] @ V["U"].T)
                else:
                    z = np.tanh(V["b_1"] + h @ V["W_1"].T + below[t] @ V["U_1"].T)
                    for l in range(2, len(hidden) + 1):
                        z = np.tanh(V[f"b_{l}"] + z @ V[f"W_{l}"].T)
                    h = np.tanh(V["b"] + z @ V["W"].T + (h @ V["S"].T if skip else 0.0))
                top.append(h)
        return sum(cross_entropy(V["c"] + mlp_ref(V, top[t], outs, "out", "V") @ V["V"].T,
                                 y[t]).sum() for t in range(T))
    compare(f"deep_rnn {transition} {cell} skip={skip}", net.loss, net.param_names, feed,
            reference, {"x": net.over_time("x")})


# --- memory network (Fig. 10.18) ------------------------------------------------------------------

def address_ref(V, head, h, Mem):
    k = V[f"{head}.b_k"] + h @ V[f"{head}.W_k"].T                       # (B, width)
    beta = softplus(V[f"{head}.b_beta"] + h @ V[f"{head}.w_beta"])      # (B,)
    rows = np.sqrt((Mem * Mem).sum(-1) + 1e-6)                          # (B, cells)
    K = np.einsum("bcw,bw->bc", Mem, k) / (rows * np.sqrt((k * k).sum(-1) + 1e-6)[:, None])
    return softmax(beta[:, None] * K)


def memory_reference(controller, variant, n, cells, width, loss_steps):
    def forward(V):
        x, y = V["x"], V["y"]
        T, B = y.shape[:2]
        opt = {} if controller == "rnn" else {"variant": variant}
        st_ = zeros(controller, B, n)
        r = np.zeros((B, width))
        Mem = np.broadcast_to(V["M0"], (B, cells, width))
        total = 0.0
        for t in range(T):
            inp = np.concatenate([x[t], r], axis=1)
            st_ = REF_CELLS[controller](V, inp, lambda s, d=1: st_[s], **opt)
            h = st_["h"]
            w_w = address_ref(V, "write", h, Mem)
            e = sigmoid(V["write.b_e"] + h @ V["write.W_e"].T)
            a = np.tanh(V["write.b_a"] + h @ V["write.W_a"].T)
            Mem = Mem * (1 - w_w[:, :, None] * e[:, None, :]) + w_w[:, :, None] * a[:, None, :]
            w_r = address_ref(V, "read", h, Mem)
            r = np.einsum("bc,bcw->bw", w_r, Mem)
            o = V["c"] + h @ V["V"].T + r @ V["V_r"].T
            if loss_steps is None or t + 1 in loss_steps:
                total = total + cross_entropy(o, y[t]).sum()
        return total
    return forward


@settings(max_examples=2 * FEW)
@given(st.sampled_from(CELLS), st.sampled_from(VARIANTS), st.integers(1, 3), st.integers(1, 3),
       st.integers(2, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.none() | st.integers(1, 2), st.booleans(), st.integers(0, 2**32 - 1))
def test_memory_networks_agree_with_the_numpy_reference(controller, variant, m, n, k, cells,
                                                        width, T, batch, last, seed):
    options = {"variant": variant} if controller != "rnn" else {}
    outputs = [T] if last else "every"
    rec = M.memory_network(m, n, k, cells=cells, width=width, controller=controller,
                           outputs=outputs, **options)
    feed = classes_feed(rec, seed, T, batch, m, k)
    net = rec.unfold(T)
    ref = memory_reference(controller, variant, n, cells, width, [T] if last else None)

    def reference(V):
        return ref({**V, "x": batched(V["x"], batch), "y": batched(V["y"], batch)})
    compare(f"memory_network {controller}", net.loss, net.param_names, feed, reference,
            {"x": net.over_time("x")})


# --- recursive nets (Fig. 10.14) ------------------------------------------------------------------

def tree_reference(trees, loss, inputs, embed, n_in):
    """From the docstring and the documented Tree (children[j] is the pair of node n + j; leaf i
    reads the i-th input of its tree; trees' leaves fed one after the other)."""
    def forward(V):
        x, y = V["x"], V["y"]
        total, first = 0.0, 0
        for k, tree in enumerate(trees):
            h = []
            for i in range(tree.n_leaves):
                v = x[first + i]
                v = one_hot(v, n_in) if inputs == "tokens" else v
                h.append(v @ V["E"].T if embed else v)
            first += tree.n_leaves
            for a, b in tree.children:
                h.append(np.tanh(V["b"] + h[a] @ V["U"].T + h[b] @ V["W"].T))
            o = V["c"] + h[-1] @ V["V"].T
            total = total + step_loss(o, y[k], loss).sum()
        return total
    return forward


def unordered(tree, rng):
    """The same shape with its leaves read in a shuffled order (any binary tree may be given)."""
    perm = rng.permutation(tree.n_leaves)
    children = [tuple(int(perm[c]) if c < tree.n_leaves else c for c in pair)
                for pair in tree.children]
    return M.Tree(tree.n_leaves, children)


@st.composite
def forests(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    trees = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["balanced", "random", "left", "right", "shuffled"]))
        n = draw(st.integers(1, 5))
        tree = M.Tree.balanced(n) if kind == "balanced" else \
            M.Tree.chain(n, kind) if kind in ("left", "right") else M.Tree.random(n, rng)
        trees.append(unordered(tree, rng) if kind == "shuffled" else tree)
    embed = draw(st.booleans())
    inputs = draw(st.sampled_from(M.INPUTS)) if embed else "vectors"
    n = sizes(draw)
    m = sizes(draw, 2, 3) if embed else n
    return (trees, draw(st.sampled_from(M.LOSSES)), inputs, embed, m, n, sizes(draw, 2, 3),
            draw(st.none() | st.integers(1, 2)), rng)


@settings(max_examples=2 * FEW)
@given(forests())
def test_recursive_nets_agree_with_the_numpy_reference(case):
    trees, loss, inputs, embed, m, n, k, batch, rng = case
    rn = M.recursive_net(m, n, k, loss=loss, inputs=inputs, embed=embed)
    leaves = sum(t.n_leaves for t in trees)
    lead = (leaves,) if batch is None else (leaves, batch)
    tlead = (len(trees),) + lead[1:]
    feed = params_of(rn, rng)
    feed["x"] = rng.integers(0, m, lead) if inputs == "tokens" else rng.standard_normal(lead + (m,))
    feed["y"] = rng.integers(0, k, tlead) if loss == "cross_entropy" else \
        rng.standard_normal(tlead + (k,))
    net = rn.unfold(trees)
    ref = tree_reference(trees, loss, inputs, embed, m)

    def reference(V):
        return ref({**V, "x": batched(V["x"], batch), "y": batched(V["y"], batch)})
    params = {p.name: p for p in net.params}
    compare("recursive_net", net.loss, params, feed, reference)


# --- echo state networks (section 10.8) -----------------------------------------------------------

@settings(max_examples=FEW)
@given(st.integers(1, 3), st.integers(2, 6), st.integers(1, 2), st.integers(2, 6),
       st.none() | st.integers(1, 2), st.sampled_from([0.5, 0.95, 1.2]), st.integers(0, 99))
def test_echo_state_networks_agree_with_the_numpy_reference(m, n, k, T, batch, rho, seed):
    rec = M.echo_state(m, n, k, spectral_radius=rho, input_scale=0.5, seed=seed)
    # the documented reservoir, from outside: reservoir(n_hidden, n_in, …, seed=seed)
    W, U = M.reservoir(n, m, spectral_radius=rho, input_scale=0.5, seed=seed)
    assert abs(np.max(np.abs(np.linalg.eigvals(W))) - rho) < 1e-12
    assert np.all(np.abs(U) <= 0.5)
    rng = np.random.default_rng(seed)
    lead = (T,) if batch is None else (T, batch)
    feed = {**params_of(rec, rng), "x": rng.standard_normal(lead + (m,)),
            "y": rng.standard_normal(lead + (k,))}
    assert set(rec.params) == {"V", "c"}
    net = rec.unfold(T)

    def states(x):
        h, out = np.zeros((x.shape[1], n)), []
        for t in range(T):
            h = np.tanh(h @ W.T + x[t] @ U.T)
            out.append(h)
        return out

    def reference(V):
        x, y = batched(V["x"], batch), batched(V["y"], batch)
        return sum(squared(V["c"] + h @ V["V"].T, y[t]).sum() for t, h in enumerate(states(x)))
    compare("echo_state", net.loss, net.param_names, feed, reference, {"x": net.over_time("x")})
    # the ridge readout in closed form, from the normal equations
    ridge, washout = 0.1, T // 3
    H = np.stack(states(batched(feed["x"], batch)))[washout:].reshape(-1, n)
    Y = batched(feed["y"], batch)[washout:].reshape(-1, k)
    Z = np.hstack([H, np.ones((len(H), 1))])
    P = np.diag([ridge] * n + [0.0])
    w = np.linalg.solve(Z.T @ Z + P, Z.T @ Y)
    got = M.ridge_readout(rec, {"x": feed["x"], "y": feed["y"]}, ridge=ridge, washout=washout)
    np.testing.assert_allclose(got["V"], w[:n].T, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(got["c"], w[n], rtol=1e-7, atol=1e-9)


# --- Ω (section 10.11.2, eq. 10.50) ----------------------------------------------------------------

def omega_reference(V, n, k, approximate, hold_states):
    """Ω of the rnn of Fig. 10.3 (cross-entropy at every step), ∇h(t) L by hand-written BPTT:
    h(t) = tanh(b + W h(t−1) + U x(t)), so ∂h(t)/∂h(t−1) = diag(1 − h(t)²) W."""
    x, y = V["x"], V["y"]
    T, B = y.shape
    h, hs = np.zeros((B, n)), []
    for t in range(T):
        h = np.tanh(V["b"] + h @ V["W"].T + x[t] @ V["U"].T)
        hs.append(h)
    # backward: g(t) = ∇h(t) L = V^T (softmax(o(t)) − 1_y) + [(g(t+1) ⊙ (1 − h(t+1)²)) W]
    gs = [None] * T
    carried = np.zeros((B, n))
    for t in range(T - 1, -1, -1):
        o = V["c"] + hs[t] @ V["V"].T
        g = (softmax(o) - one_hot(y[t], k)) @ V["V"] + carried
        gs[t] = g
        carried = (g * (1 - hs[t] ** 2)) @ V["W"]
    total = 0.0
    for t in range(T):
        g = gs[t].real if approximate else gs[t]
        d = 1 - (hs[t].real if hold_states else hs[t]) ** 2
        v = (g * d) @ V["W"]
        ratio = np.sqrt((v * v).sum(-1)) / np.sqrt((g * g).sum(-1)) - 1
        total = total + (ratio * ratio).sum()
    return total


@settings(max_examples=FEW)
@given(st.integers(1, 3), st.integers(1, 3), st.integers(2, 3), st.integers(1, 4),
       st.none() | st.integers(1, 2), st.sampled_from([(False, False), (True, False), (True, True)]),
       st.integers(0, 2**32 - 1))
def test_omega_and_its_gradients_agree_with_the_numpy_reference(m, n, k, T, batch, how, seed):
    approximate, hold = how
    rec = M.rnn(m, n, k)
    feed = classes_feed(rec, seed, T, batch, m, k)
    net = rec.unfold(T)
    Om = omega(net, approximate=approximate, hold_states=hold)

    def reference(V):
        return omega_reference({**V, "x": batched(V["x"], batch), "y": batched(V["y"], batch)},
                               n, k, approximate, hold)
    compare(f"omega approximate={approximate} hold_states={hold}", Om, net.param_names, feed,
            reference)


# --- padded encoder–decoder batches ----------------------------------------------------------------

@settings(max_examples=2 * FEW)
@given(st.sampled_from(CELLS), st.sampled_from(CELLS), st.sampled_from(M.CONTEXTS),
       st.sampled_from(VARIANTS), st.integers(1, 2), st.integers(1, 3), st.integers(2, 3),
       st.lists(st.tuples(st.integers(1, 4), st.integers(1, 3)), min_size=1, max_size=3),
       st.integers(0, 2**32 - 1))
def test_padded_encoder_decoder_batches_agree_with_the_numpy_reference(enc, dec, context, variant,
                                                                      m, n, k, lengths, seed):
    model = M.encoder_decoder(m, n, k, encoder_cell=enc, decoder_cell=dec, context=context,
                              variant=variant)
    rng = np.random.default_rng(seed)
    x_lengths, y_lengths = [a for a, _ in lengths], [b for _, b in lengths]
    n_x, n_y, B = max(x_lengths), max(y_lengths), len(lengths)
    y = rng.integers(0, k, (n_y, B))
    x = rng.standard_normal((n_x, B, m))
    masks = model.masks(x_lengths, y_lengths)
    x[masks["encoder.mask"] == 0] = np.nan                  # the padding never reaches anything
    feed = {**params_of(model, rng), "x": x, "y": y, "y_prev": M.teacher_forced(y, 0), **masks}
    net = model.unfold(n_x, n_y, mask=True)
    clean = np.where(np.isnan(x), 0.0, x)                   # the reference reads padded steps
    ref = seq2seq_reference(enc, dec, context, variant, n, k, x_lengths, y_lengths)
    compare(f"encoder_decoder padded {enc}->{dec} C={context}", net.loss, net.param_names, feed,
            lambda V: ref({**V, "x": clean}))


# --- structural claims, re-checked from outside -----------------------------------------------------

def _depth_from_children(tree):
    """Edges from the root to its farthest leaf, from the documented ``children`` alone."""
    height = [0] * tree.n_leaves
    for a, b in tree.children:
        height.append(1 + max(height[a], height[b]))
    return height[-1]


@settings(max_examples=FEW)
@given(st.integers(1, 70))
def test_a_balanced_tree_unfolds_to_depth_ceil_log2_tau(tau):
    tree = M.Tree.balanced(tau)
    assert tree.n_leaves == tau and sorted(c for pair in tree.children for c in pair) == \
        list(range(2 * tau - 2))                     # every node but the root is a child once
    assert _depth_from_children(tree) == math.ceil(math.log2(tau))
    # in the unfolded graph: the longest chain of combinations (tanh) from a leaf to the root
    net = M.recursive_net(2, 2, 2).unfold(tree)
    longest: dict[int, int] = {}
    for node in uf.graph.topological([net.hidden()]):
        below = max((longest[id(i)] for i in node.inputs if id(i) in longest), default=0)
        longest[id(node)] = below + (node.op.name == "tanh")
    assert longest[id(net.hidden())] == math.ceil(math.log2(tau))


@settings(max_examples=FEW)
@given(st.integers(1, 8), st.integers(1, 3), st.floats(0.1, 1.5), st.integers(0, 99))
def test_the_reservoir_in_the_graph_has_the_documented_spectral_radius(n, m, rho, seed):
    rec = M.echo_state(m, n, 1, spectral_radius=rho, input_scale=0.7, seed=seed)
    constants = {c.name: uf.evaluate([c])[0] for c in rec.body()
                 if c.op.name == "constant" and c.name in ("W", "U")}
    W, U = M.reservoir(n, m, spectral_radius=rho, input_scale=0.7, seed=seed)
    np.testing.assert_array_equal(constants["W"], W)
    np.testing.assert_array_equal(constants["U"], U)
    assert abs(np.max(np.abs(np.linalg.eigvals(constants["W"]))) - rho) < 1e-10 * max(rho, 1)


@settings(max_examples=FEW)
@given(st.sampled_from(CELLS), st.integers(1, 4), st.integers(1, 3), st.integers(1, 4),
       st.sampled_from([0.1, 1.0, 30.0]), st.integers(0, 2**32 - 1))
def test_attention_weights_are_distributions_at_any_scale(controller, cells, width,
                                                                   T, scale, seed):
    rec = M.memory_network(2, 3, 2, cells=cells, width=width, controller=controller)
    rng = np.random.default_rng(seed)
    feed = {**params_of(rec, rng, scale), "x": rng.standard_normal((T, 2, 2)) * scale}
    net = rec.unfold(T)
    for head in ("write.w", "read.w"):
        for w in uf.evaluate(net.over_time(head), feed):
            assert w.shape == (2, cells) and np.all(w >= 0)
            np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-12)


@settings(max_examples=FEW)
@given(st.sampled_from(CELLS), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_the_backward_state_reads_only_the_future_in_the_reference_too(cell, T, seed):
    """Perturbing x(s) moves g(t) exactly for t ≤ s and h(t) for t ≥ s — in unfold's graph, and
    the graph's g(t) equals the numpy backward recurrence g(t) = cell(x(t), g(t+1))."""
    rec = M.bidirectional(2, 2, 2, cell=cell)
    rng = np.random.default_rng(seed)
    feed = {**params_of(rec, rng), "x": rng.standard_normal((T, 1, 2))}
    net = rec.unfold(T)
    g = uf.evaluate(net.over_time("g.h"), feed)
    expected = run(REF_CELLS[cell], Names(feed, "g.{}"), list(feed["x"]), zeros(cell, 1, 2),
                   backward=True)
    for t in range(T):
        np.testing.assert_allclose(g[t], expected[t]["h"], rtol=1e-12, atol=1e-14)
    for s in range(T):
        x = feed["x"].copy()
        x[s] += 0.3
        moved = uf.evaluate(net.over_time("g.h"), {**feed, "x": x})
        assert [not np.array_equal(a, b) for a, b in zip(g, moved)] == [t <= s for t in range(T)]


@settings(max_examples=FEW)
@given(st.sampled_from(CELLS), st.integers(1, 2), st.integers(1, 3),
       st.lists(st.integers(1, 4), min_size=1, max_size=3), st.integers(0, 2**32 - 1))
def test_padded_bidirectional_batches_are_each_example_alone(cell, m, n, lengths, seed):
    """With a mask, the backward state of each example starts at its own last real step."""
    rec = M.bidirectional(m, n, 2, cell=cell)
    rng = np.random.default_rng(seed)
    T, B = max(lengths), len(lengths)
    mask = (np.arange(T)[:, None] < np.array(lengths)[None, :]).astype(float)
    x = rng.standard_normal((T, B, m))
    feed = {**params_of(rec, rng), "x": x, "y": rng.integers(0, 2, (T, B)), "mask": mask}
    net = rec.unfold(T, mask=True)

    def reference(V):
        total = 0.0
        for b, L in enumerate(lengths):
            xs = [V["x"][t, b:b + 1] for t in range(L)]
            h = run(REF_CELLS[cell], V, xs, zeros(cell, 1, n))
            g = run(REF_CELLS[cell], Names(V, "g.{}"), xs, zeros(cell, 1, n), backward=True)
            total = total + sum(cross_entropy(V["c"] + h[t]["h"] @ V["V"].T + g[t]["h"] @
                                              V["V_g"].T, V["y"][t, b:b + 1]).sum()
                                for t in range(L))
        return total
    compare(f"bidirectional padded {cell}", net.loss, net.param_names, feed, reference,
            {"x": net.over_time("x")})


def omega_by_definition(V, cell, n, options, held=None):
    """Ω of eq. 10.50 for any cell, with every state taken jointly (an LSTM's s and h), from its
    definition alone: ∇state(t) L by the complex step through the numpy forward (a kick to the
    state after step t), and ∇state(t) L · ∂state(t)/∂state(t−1) by the complex step through
    one step of the cell. ``held``: the ∇state(t) L to use instead (``approximate=True`` holds
    them constant). Returns (Ω, the ∇state(t) L used)."""
    x, y = V["x"], V["y"]
    T, B = y.shape
    names = STATES[cell]

    def per_example_loss(kick=None):
        state, hist, total = zeros(cell, B, n), [], 0.0
        for t in range(T):
            new = REF_CELLS[cell](V, x[t], lambda s, d=1: state[s], **options)
            if kick is not None and kick[0] == t:
                new = dict(new)
                new[kick[1]] = new[kick[1]] + 1j * STEP * np.eye(n)[kick[2]]
            total = total + cross_entropy(V["c"] + new["h"] @ V["V"].T, y[t])
            hist.append(new)
            state = new
        return total, hist
    _, hist = per_example_loss()
    g = held
    if g is None:
        g = [{s: np.stack([per_example_loss((t, s, i))[0].imag / STEP for i in range(n)], -1)
              for s in names} for t in range(T)]
    total = 0.0
    for t in range(T):
        before = hist[t - 1] if t else zeros(cell, B, n)
        v = {}
        for s in names:
            columns = []
            for i in range(n):
                moved = {q: before[q] + (1j * STEP * np.eye(n)[i] if q == s else 0.0)
                         for q in names}
                new = REF_CELLS[cell](V, x[t], lambda q, d=1: moved[q], **options)
                columns.append(sum((g[t][q] * new[q]).sum(-1) for q in names).imag / STEP)
            v[s] = np.stack(columns, -1)
        ratio = np.sqrt(sum((v[s] ** 2).sum(-1) for s in names)) / \
            np.sqrt(sum((g[t][s] ** 2).sum(-1) for s in names)) - 1
        total = total + (ratio ** 2).sum()
    return total, g


@settings(max_examples=2 * FEW)
@given(st.sampled_from(["lstm", "gru", "leaky", "rnn"]), st.sampled_from(VARIANTS),
       st.integers(1, 2), st.integers(1, 2), st.integers(1, 3), st.integers(1, 2),
       st.booleans(), st.integers(0, 2**32 - 1))
def test_omega_of_any_cell_agrees_with_its_definition(cell, variant, m, n, T, B, approximate,
                                                      seed):
    """Gated cells (states taken jointly): Ω's value to 1e-12, its exact and approximate
    gradients to central differences of the definition (1e-6)."""
    options = {"variant": variant} if cell in ("lstm", "gru") else {}
    rec = BUILD[cell](m, n, 2, **options)
    feed = classes_feed(rec, seed, T, B, m, 2)
    net = rec.unfold(T)
    Om = omega(net, approximate=approximate)
    names = list(net.param_names)
    got = uf.evaluate([Om, *uf.grad(Om, [net.param_names[k] for k in names])], feed)
    value, g = omega_by_definition(feed, cell, n, options)
    assert relative(got[0], np.real(value)) < 1e-12
    held = g if approximate else None
    expected = {}
    for name in names:
        d = np.zeros(feed[name].shape)
        for index in np.ndindex(d.shape):
            sides = []
            for h in (1e-5, -1e-5):
                moved = feed[name].copy()
                moved[index] += h
                sides.append(np.real(omega_by_definition({**feed, name: moved}, cell, n,
                                                         options, held)[0]))
            d[index] = (sides[0] - sides[1]) / 2e-5
        expected[name] = d
    largest = max(float(np.abs(e).max()) for e in expected.values())
    worst = max(relative(a, expected[k], max(1e-3 * largest, 1e-12))
                for k, a in zip(names, got[1:]))
    assert worst < 1e-6, worst
    key = f"omega by definition {cell} approximate={approximate} (central differences)"
    WORST[key] = max(WORST.get(key, 0.0), worst)
