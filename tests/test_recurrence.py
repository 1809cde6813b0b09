"""Recurrences: unfolding, dummy copies, back-propagation through time (book section 10.2)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

import unfold as uf
from unfold.testing import gradcheck
from unfold.testing import gradcheck_recurrence as check_gradients
from unfold.testing.strategies import recurrences
from examples import encoder_decoder


def fig_10_3(m: int, n: int, k: int, loss: str = "ce"):
    """The book's Fig. 10.3 network, eqs. 10.8–10.11."""
    rec = uf.Recurrence("rnn")
    x = rec.sequence("x", (m,))
    y = rec.target("y", ()) if loss == "ce" else rec.target("y", (k,), np.float64)
    h = rec.state("h", (n,))
    W, U, b = rec.param("W", (n, n)), rec.param("U", (n, m)), rec.param("b", (n,))
    V, c = rec.param("V", (k, n)), rec.param("c", (k,))
    h_t = rec.update(h, uf.tanh(b + W @ h + U @ x))
    o = rec.output("o", c + V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y) if loss == "ce" else uf.mse(o, y, reduction="sum"))
    return rec


def random_feed(rec, steps, batch=None, seed=0, scale=0.7):
    rng = np.random.default_rng(seed)
    lead = (steps,) if batch is None else (steps, batch)
    feed = {}
    for name, p in rec.params.items():
        feed[name] = rng.standard_normal(p.shape) * scale / np.sqrt(p.shape[-1] if p.ndim else 1)
    for name, s in rec.sequences.items():
        if s.dtype.kind == "i":
            feed[name] = rng.integers(0, rec.outputs["o"].shape[0], size=lead)
        else:
            feed[name] = rng.standard_normal(lead + s.shape)
    return feed


sizes = st.integers(1, 4)


# --- the book's BPTT equations -------------------------------------------------------------------

@given(m=sizes, n=sizes, k=st.integers(2, 4), steps=st.integers(1, 6), seed=st.integers(0, 999))
def test_bptt_matches_the_books_equations_10_18_to_10_28(m, n, k, steps, seed):
    rec = fig_10_3(m, n, k)
    g = rec.unfold(steps)
    feed = random_feed(rec, steps, seed=seed)
    W, U, b, V, c = (rec.params[p] for p in "WUbVc")
    o = [g.at("o", t) for t in range(1, steps + 1)]
    h = [g.at("h", t) for t in range(1, steps + 1)]
    copies = {p: g.copies(p) for p in (W, U, b, V, c)}
    wrt = o + h + [W, U, b, V, c] + [w for p in (W, U, b, V, c) for w in copies[p]]
    got = uf.evaluate(uf.grad(g.loss, wrt), feed)
    got_o, got_h = got[:steps], got[steps:2 * steps]
    got_p = dict(zip("WUbVc", got[2 * steps:2 * steps + 5]))
    got_copies = got[2 * steps + 5:]

    # the forward pass, eqs. 10.8–10.11
    Wv, Uv, bv, Vv, cv = (feed[p] for p in "WUbVc")
    x, y = feed["x"], feed["y"]
    hs, yhat = [np.zeros(n)], []
    for t in range(steps):
        hs.append(np.tanh(bv + Wv @ hs[-1] + Uv @ x[t]))
        e = np.exp(cv + Vv @ hs[-1] - (cv + Vv @ hs[-1]).max())
        yhat.append(e / e.sum())
    # eq. 10.18: ∇o(t) = ŷ(t) − 1_y(t)
    grad_o = [yhat[t] - np.eye(k)[y[t]] for t in range(steps)]
    # eq. 10.19: ∇h(τ) = Vᵀ ∇o(τ); eq. 10.21: ∇h(t) = Wᵀ diag(1 − h(t+1)²) ∇h(t+1) + Vᵀ ∇o(t)
    grad_h = [None] * steps
    grad_h[-1] = Vv.T @ grad_o[-1]
    for t in range(steps - 2, -1, -1):
        grad_h[t] = Wv.T @ ((1 - hs[t + 2] ** 2) * grad_h[t + 1]) + Vv.T @ grad_o[t]
    for t in range(steps):
        np.testing.assert_allclose(got_o[t], grad_o[t], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got_h[t], grad_h[t], rtol=1e-10, atol=1e-12)
    # eqs. 10.22–10.28: each parameter's gradient is a sum over t of its dummy copies' gradients
    da = [(1 - hs[t + 1] ** 2) * grad_h[t] for t in range(steps)]
    per_step = {"c": grad_o, "b": da,
                "V": [np.outer(grad_o[t], hs[t + 1]) for t in range(steps)],
                "W": [np.outer(da[t], hs[t]) for t in range(steps)],
                "U": [np.outer(da[t], x[t]) for t in range(steps)]}
    i = 0
    for p in "WUbVc":
        for t in range(steps):
            np.testing.assert_allclose(got_copies[i], per_step[p][t], rtol=1e-10, atol=1e-12)
            i += 1
        np.testing.assert_allclose(got_p[p], sum(per_step[p]), rtol=1e-10, atol=1e-12)


@given(m=sizes, n=sizes, steps=st.integers(1, 6), batch=st.none() | st.integers(1, 3),
       seed=st.integers(0, 999))
def test_parameter_gradient_is_the_sum_of_its_dummy_copies(m, n, steps, batch, seed):
    rec = fig_10_3(m, n, 3)
    g = rec.unfold(steps)
    feed = random_feed(rec, steps, batch, seed)
    params = list(rec.params.values())
    copies = [g.copies(p) for p in params]
    values = uf.evaluate(uf.grad(g.loss, params + [c for cs in copies for c in cs]), feed)
    total, per_copy = values[:len(params)], values[len(params):]
    for p, got in zip(params, total):
        mine = [per_copy.pop(0) for _ in range(steps)]
        np.testing.assert_allclose(got, np.sum(mine, axis=0), rtol=1e-12, atol=1e-14)


def test_each_step_reaches_a_parameter_only_through_its_own_dummy_copy():
    rec = fig_10_3(2, 3, 2)
    steps = 5
    g = rec.unfold(steps)
    nodes = uf.graph.topological([g.loss])
    for p in rec.params.values():
        copies = g.copies(p)
        assert [c.step for c in copies] == list(range(1, steps + 1))
        assert all(c.source is p and c.name == p.name and c.label == f"{p.name}({c.step})"
                   for c in copies)
        users = [n for n in nodes if any(p is i for i in n.inputs)]
        assert set(users) == set(copies)                  # W feeds nothing but W(1) … W(τ)
        for c in copies:
            assert {n.step for n in nodes if any(c is i for i in n.inputs)} == {c.step}
    for t in range(1, steps + 1):
        dummies = [n for n in g.nodes(t) if n.op.name == "alias" and
                   any(n.source is p for p in rec.params.values())]
        assert sorted(n.name for n in dummies) == sorted(rec.params)   # one copy per parameter
    assert set(g.nodes()) >= set(nodes)


def test_unfolding_equals_the_graph_written_step_by_step():
    m, n, k, steps = 3, 4, 3, 5
    rec = fig_10_3(m, n, k)
    g = rec.unfold(steps)
    feed = random_feed(rec, steps, batch=2, seed=3)
    # by hand, with the same parameter nodes and one input per step
    W, U, b, V, c = (rec.params[p] for p in "WUbVc")
    xs = [uf.input(f"x{t}", (m,)) for t in range(steps)]
    ys = [uf.input(f"y{t}", (), dtype="int64") for t in range(steps)]
    h, total = uf.constant(np.zeros(n)), None
    for t in range(steps):
        h = uf.tanh(b + W @ h + U @ xs[t])
        L = uf.cross_entropy(c + V @ h, ys[t])
        total = L if total is None else total + L
    total = uf.batch_sum(total)
    hand_feed = {p: feed[p] for p in "WUbVc"}
    hand_feed.update({f"x{t}": feed["x"][t] for t in range(steps)})
    hand_feed.update({f"y{t}": feed["y"][t] for t in range(steps)})
    params = [W, U, b, V, c]
    ours = uf.evaluate([g.loss] + uf.grad(g.loss, params), feed)
    hand = uf.evaluate([total] + uf.grad(total, params), hand_feed)
    for a, e in zip(ours, hand):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-14)


# --- lookups -------------------------------------------------------------------------------------

def test_lookups_follow_the_books_indexing():
    rec = uf.Recurrence()
    x = rec.sequence("x", (2,))
    h = rec.state("h", (3,))
    h_t = rec.update(h, uf.tanh(rec.param("W", (3, 3)) @ h + rec.param("U", (3, 2)) @ x))
    skip = rec.past(h, 2)
    rec.output("o", h_t + skip)
    g = rec.unfold(4)
    assert g.at(h, 1) is rec.states["h"].init                    # h(0)
    for t in range(2, 5):
        assert g.at(h, t) is g.at(h_t, t - 1)                    # what step t reads: h(t−1)
        assert g.at("h", t).label == f"h({t})"
    assert g.at(skip, 2) is rec.states["h"].init
    assert g.at(skip, 4) is g.at(h_t, 2)                         # the skip connection h(t−2)
    assert g.at(x, 3).step == 3 and g.at(x, 3).source is x
    assert g.final("h") is g.at(h_t, 4)
    assert [n.step for n in g.over_time("o")] == [1, 2, 3, 4]
    with pytest.raises(uf.RecurrenceError, match="outside 1…4"):
        g.at(h_t, 5)
    with pytest.raises(uf.RecurrenceError, match="no variable named 'q'"):
        g.at("q", 1)


def test_the_folded_step_runs_alone_with_its_state_fed():
    rec = fig_10_3(2, 3, 2)
    h_read = rec.states["h"].reads[1]
    feed = random_feed(rec, 1, seed=1)
    one = {p: feed[p] for p in "WUb"}
    one.update({"x": feed["x"][0], h_read: np.zeros(3)})
    h1, = uf.evaluate([rec.states["h"].value], one)
    g = rec.unfold(1)
    expected, = uf.evaluate([g.at("h", 1)], {k: feed[k] for k in "WUbx"})
    np.testing.assert_array_equal(h1, expected)


# --- random recurrences ---------------------------------------------------------------------------

@given(recurrences())
def test_random_recurrences_pass_gradcheck(drawn):
    check_gradients(drawn)


@given(recurrences(max_steps=4, max_batch=3))
def test_a_batch_is_the_sum_of_its_examples(drawn):
    if drawn.batch is None:
        return
    g = drawn.unfold()
    params = g.params
    whole = uf.evaluate([g.loss] + uf.grad(g.loss, params), drawn.feed)
    parts = []
    for i in range(drawn.batch):
        feed = {k: (v[:, i] if k in drawn.recurrence.sequences else
                    v[i] if k in drawn.recurrence.contexts else v)
                for k, v in drawn.feed.items()}
        parts.append(uf.evaluate([g.loss] + uf.grad(g.loss, params), feed))
    for j, value in enumerate(whole):
        np.testing.assert_allclose(value, sum(p[j] for p in parts), rtol=1e-10, atol=1e-12)


# --- variable lengths -----------------------------------------------------------------------------

def test_masked_batch_equals_each_sequence_at_its_own_length():
    rec = fig_10_3(2, 3, 3)
    steps, lengths = 6, [6, 3, 1]
    feed = random_feed(rec, steps, batch=3, seed=5)
    mask = np.array([[1.0 if t < n else 0.0 for n in lengths] for t in range(steps)])
    g = rec.unfold(steps, mask=True)
    params = list(rec.params.values())
    got = uf.evaluate([g.loss, g.final("h")] + uf.grad(g.loss, params),
                      dict(feed, mask=mask))
    expected_loss, expected_grads = 0.0, [0.0] * len(params)
    for i, n in enumerate(lengths):
        short = rec.unfold(n)
        one = {p: feed[p] for p in "WUbVc"}
        one.update(x=feed["x"][:n, i], y=feed["y"][:n, i])
        loss, final, *grads = uf.evaluate([short.loss, short.final("h")] +
                                          uf.grad(short.loss, params), one)
        np.testing.assert_allclose(got[1][i], final, rtol=1e-12)   # padding carries the state
        expected_loss += loss
        expected_grads = [a + b for a, b in zip(expected_grads, grads)]
    np.testing.assert_allclose(got[0], expected_loss, rtol=1e-12)
    for a, e in zip(got[2:], expected_grads):
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-13)


# --- truncation and checkpointing ----------------------------------------------------------------

@given(steps=st.integers(1, 7), extra=st.integers(0, 3), seed=st.integers(0, 99))
def test_truncation_at_or_beyond_tau_is_full_bptt(steps, extra, seed):
    rec = fig_10_3(2, 3, 2)
    feed = random_feed(rec, steps, batch=2, seed=seed)
    params = list(rec.params.values())
    full = rec.unfold(steps)
    cut = rec.unfold(steps, truncate=steps + extra)
    a = uf.evaluate(uf.grad(full.loss, params), feed)
    b = uf.evaluate(uf.grad(cut.loss, params), feed)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


@given(steps=st.integers(2, 9), k=st.integers(1, 4), seed=st.integers(0, 99))
def test_truncated_bptt_is_the_sum_of_chunk_gradients_from_carried_states(steps, k, seed):
    """Definition: chunks of k steps; each chunk starts from the state the previous chunk ended
    in, taken as a constant; gradients flow back only inside a chunk."""
    m, n = 2, 3
    rec = fig_10_3(m, n, 2)
    feed = random_feed(rec, steps, seed=seed)
    params = list(rec.params.values())
    cut = rec.unfold(steps, truncate=k)
    got = uf.evaluate([cut.loss] + uf.grad(cut.loss, params), feed)
    # the definition, chunk by chunk, with the carried state fed as a context input
    chunk = uf.Recurrence("chunk")
    x, y = chunk.sequence("x", (m,)), chunk.target("y", ())
    h0 = chunk.context("h0", (n,))
    h = chunk.state("h", (n,), init=h0)
    P = {name: chunk.param(name, p.shape) for name, p in rec.params.items()}
    h_t = chunk.update(h, uf.tanh(P["b"] + P["W"] @ h + P["U"] @ x))
    chunk.loss("L", uf.cross_entropy(P["c"] + P["V"] @ h_t, y))
    state, loss, grads = np.zeros(n), 0.0, [0.0] * len(params)
    for start in range(0, steps, k):
        stop = min(start + k, steps)
        g = chunk.unfold(stop - start)
        piece = {name: feed[name] for name in P}
        piece.update(x=feed["x"][start:stop], y=feed["y"][start:stop], h0=state)
        value, state, *gs = uf.evaluate([g.loss, g.final("h")] +
                                        uf.grad(g.loss, list(P.values())), piece)
        loss += value
        grads = [a + b for a, b in zip(grads, gs)]
    np.testing.assert_allclose(got[0], loss, rtol=1e-12)
    for a, e in zip(got[1:], grads):
        np.testing.assert_allclose(a, e, rtol=1e-10, atol=1e-13)


@given(drawn=recurrences(max_steps=8), k=st.sampled_from([1, 2, 3, "sqrt", 8]))
def test_checkpointed_gradients_are_identical_to_full_bptt(drawn, k):
    g = drawn.unfold()
    outputs = [g.loss] + uf.grad(g.loss, g.params)
    full = uf.evaluate(outputs, drawn.feed, mode="reference")
    again = uf.evaluate(outputs, drawn.feed, checkpoint=k)
    for a, b in zip(full, again):
        np.testing.assert_array_equal(a, b)


def _peaks(steps):
    """Peak elements held by full BPTT and by checkpointed BPTT (k ≈ √τ) on Fig. 10.3."""
    rec = fig_10_3(2, 4, 3)
    g = rec.unfold(steps)
    outputs = [g.loss] + uf.grad(g.loss, list(rec.params.values()))
    return (uf.compile(outputs).peak_elements(),
            uf.compile(outputs, checkpoint="sqrt").peak_elements())


def test_full_bptt_memory_grows_linearly_and_checkpointing_as_sqrt_tau():
    (p100, s100), (p400, s400), (p1600, s1600) = (_peaks(t) for t in (100, 400, 1600))
    # linear: growth from 100 to 1600 steps is 5× the growth from 100 to 400 (1500 / 300)
    assert 4.5 < (p1600 - p100) / (p400 - p100) < 5.5
    # √τ: (√1600 − √100) / (√400 − √100) = 3
    assert 2.5 < (s1600 - s100) / (s400 - s100) < 3.5
    assert s1600 * 10 < p1600


# --- bidirectional -------------------------------------------------------------------------------

def test_a_backward_state_runs_from_the_end_of_the_sequence():
    rec = uf.Recurrence("birnn")
    x = rec.sequence("x", (2,))
    y = rec.target("y", ())
    h = rec.state("h", (3,))
    gs = rec.state("g", (3,), backward=True)
    h_t = rec.update(h, uf.tanh(rec.param("W", (3, 3)) @ h + rec.param("U", (3, 2)) @ x))
    g_t = rec.update(gs, uf.tanh(rec.param("Wg", (3, 3)) @ gs + rec.param("Ug", (3, 2)) @ x))
    o = rec.output("o", rec.param("V", (2, 3)) @ h_t + rec.param("Vg", (2, 3)) @ g_t)
    rec.loss("L", uf.cross_entropy(o, y))
    steps = 4
    un = rec.unfold(steps)
    assert un.at(gs, steps) is rec.states["g"].init            # g(τ+1) is the init
    assert un.at(gs, 2) is un.at(g_t, 3)                        # step 2 reads g(3)
    assert un.final("g") is un.at(g_t, 1)
    rng = np.random.default_rng(0)
    feed = {name: rng.standard_normal(p.shape) for name, p in rec.params.items()}
    feed.update(x=rng.standard_normal((steps, 2)), y=rng.integers(0, 2, steps))
    gvals = [np.zeros(3)] * (steps + 2)
    for t in range(steps, 0, -1):
        gvals[t] = np.tanh(feed["Wg"] @ gvals[t + 1] + feed["Ug"] @ feed["x"][t - 1])
    got = uf.evaluate([un.at(g_t, t) for t in range(1, steps + 1)],
                      {k: feed[k] for k in ("Wg", "Ug", "x")})
    np.testing.assert_allclose(got, gvals[1:steps + 1], rtol=1e-12)
    gradcheck(un.loss, un.params + un.over_time(x), feed)


# --- validation ---------------------------------------------------------------------------------

def _rnn_parts():
    rec = uf.Recurrence("r")
    x = rec.sequence("x", (2,))
    h = rec.state("h", (3,))
    return rec, x, h, rec.param("W", (3, 3)), rec.param("U", (3, 2))


def test_a_state_never_updated_is_an_error():
    rec, x, h, W, U = _rnn_parts()
    rec.output("o", uf.tanh(W @ h + U @ x))
    with pytest.raises(uf.RecurrenceError, match=r"state 'h' .* is never updated"):
        rec.unfold(3)


def test_a_state_updated_twice_is_an_error():
    rec, x, h, W, U = _rnn_parts()
    rec.update(h, uf.tanh(W @ h))
    with pytest.raises(uf.RecurrenceError, match="state 'h' is updated twice"):
        rec.update(h, uf.tanh(U @ x))


def test_a_cycle_without_a_delay_is_an_error():
    rec, x, h, W, U = _rnn_parts()
    with pytest.raises(uf.RecurrenceError, match="must pass through a delay"):
        rec.past(h, 0)


def test_a_cycle_through_time_between_directions_is_an_error():
    rec, x, h, W, U = _rnn_parts()
    g = rec.state("g", (3,), backward=True)
    rec.update(g, uf.tanh(W @ g + U @ x))
    rec.update(h, uf.tanh(W @ h + g))          # h(t) reads g(t), which needs g(t+1) … h(t+1)
    with pytest.raises(uf.RecurrenceError, match="cycle through time"):
        rec.unfold(3)


def test_an_update_of_the_wrong_shape_is_an_error():
    rec, x, h, W, U = _rnn_parts()
    with pytest.raises(uf.RecurrenceError, match=r"state 'h' is \(3,\) float64 but its update is "
                                                 r".*shape \(2,\)"):
        rec.update(h, uf.tanh(x))


def test_a_sequence_of_the_wrong_length_is_an_error():
    rec, x, h, W, U = _rnn_parts()
    rec.loss("L", uf.sum(rec.update(h, uf.tanh(W @ h + U @ x))))
    g = rec.unfold(4)
    with pytest.raises(uf.FeedError, match=r"sequence 'x' is fed with 3 steps .* unfolded over 4"):
        uf.evaluate([g.loss], {"W": np.eye(3), "U": np.ones((3, 2)), "x": np.ones((3, 2))})


def test_other_declaration_errors():
    rec, x, h, W, U = _rnn_parts()
    stray = uf.input("z", (3,))
    rec.update(h, uf.tanh(W @ h + U @ x + stray))
    with pytest.raises(uf.RecurrenceError, match="'z' .* is used in the step .* not declared"):
        rec.unfold(2)
    with pytest.raises(uf.RecurrenceError, match="already declared"):
        rec.param("W", (3, 3))
    with pytest.raises(uf.RecurrenceError, match="init"):
        rec.state("s", (3,), init=uf.constant(np.zeros(2)))
    with pytest.raises(uf.RecurrenceError, match="scalar per example"):
        rec.loss("L", h)
    with pytest.raises(uf.RecurrenceError, match="positive integer"):
        rec.unfold(0)
    with pytest.raises(uf.RecurrenceError, match="no state 'q'"):
        rec.update("q", h)


def test_a_whole_sequence_feeds_outputs_that_need_only_its_first_steps():
    rec = uf.Recurrence()
    x = rec.sequence("x", (2,))
    h = rec.state("h", (2,))
    h_t = rec.update(h, uf.tanh(h + x))
    g = rec.unfold(5)
    early, = uf.evaluate([g.at(h_t, 2)], {"x": np.ones((5, 2))})
    np.testing.assert_allclose(early, np.tanh(np.tanh(1.0) + 1.0) * np.ones(2))
    with pytest.raises(uf.FeedError, match="fed with 2 steps .* unfolded over 5 steps"):
        uf.evaluate([g.at(h_t, 2)], {"x": np.ones((2, 2))})
    with pytest.raises(uf.FeedError, match="fed with a scalar"):
        uf.evaluate([g.at(h_t, 2)], {"x": 1.0})


# --- joining recurrences: encoder–decoder (Fig. 10.12) ---------------------------------------------

def test_an_encoder_decoder_is_two_recurrences_joined_by_bind():
    m, n, k, nx, ny = 2, 3, 4, 5, 3
    enc, dec = encoder_decoder(m, n, k)
    x, C = enc.sequences["x"], dec.contexts["C"]
    encoded = enc.unfold(nx)
    joined = dec.unfold(ny, bind={"C": encoded.final("h")})

    rng = np.random.default_rng(4)
    feed = {name: rng.standard_normal(p.shape) * 0.6
            for rec in (enc, dec) for name, p in rec.params.items()}
    feed.update(x=rng.standard_normal((nx, m)), y=rng.integers(0, k, ny))
    # by hand
    hv = np.zeros(n)
    for t in range(nx):
        hv = np.tanh(feed["W_e"] @ hv + feed["U_e"] @ feed["x"][t])
    sv, expected = np.tanh(hv), 0.0
    for t in range(ny):
        sv = np.tanh(feed["W_d"] @ sv + feed["R"] @ hv)
        o = feed["V"] @ sv
        expected += np.log(np.exp(o - o.max()).sum()) + o.max() - o[feed["y"][t]]
    loss, = uf.evaluate([joined.loss], feed)
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    params = list(enc.params.values()) + list(dec.params.values())
    gradcheck(joined.loss, params + encoded.over_time(x), feed)   # gradients reach the encoder
    with pytest.raises(uf.RecurrenceError, match="not a context"):
        dec.unfold(2, bind={"y": encoded.final("h")})
    with pytest.raises(uf.RecurrenceError, match="same shape"):
        dec.unfold(2, bind={C: encoded.at(x, 1)})


def test_a_learned_initial_state_is_a_parameter_of_the_unfolded_graph():
    rec = uf.Recurrence()
    x = rec.sequence("x", (2,))
    h0 = rec.param("h0", (3,))
    h = rec.state("h", (3,), init=uf.tanh(h0))
    W = rec.param("W", (3, 3))
    rec.loss("L", uf.sum(rec.update(h, uf.tanh(W @ h + x.sum())) ** 2))
    g = rec.unfold(3)
    assert g.params == [h0, W]
    rng = np.random.default_rng(0)
    gradcheck(g.loss, g.params, {"h0": rng.standard_normal(3), "W": rng.standard_normal((3, 3)),
                                 "x": rng.standard_normal((3, 2))})


def test_a_sequence_fed_with_steps_of_the_wrong_shape_is_named_with_the_fix():
    rec, x, h, W, U = _rnn_parts()
    rec.loss("L", uf.sum(rec.update(h, uf.tanh(W @ h + U @ x))))
    g = rec.unfold(4)
    with pytest.raises(uf.FeedError, match=r"sequence 'x' is fed with steps of shape \(5, 3\); "
                                           r"each step is \(2,\): feed .*\(4,\) \+ \(2,\)"):
        uf.evaluate([g.loss], {"W": np.eye(3), "U": np.ones((3, 2)), "x": np.ones((4, 5, 3))})


def test_the_models_whole_feed_serves_any_of_its_outputs_but_typos_are_caught():
    rec = fig_10_3(2, 3, 2)
    g = rec.unfold(3)
    feed = random_feed(rec, 3, seed=0)
    o, = uf.evaluate([g.at("o", 2)], feed)               # y is not needed, and not an error
    assert o.shape == (2,)
    with pytest.raises(uf.FeedError, match="unknown feed name 'yy'"):
        uf.evaluate([g.at("o", 2)], dict(feed, yy=feed["y"]))
