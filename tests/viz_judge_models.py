"""Recurrences written by an outsider, in many styles, for the independent check of the renderer
(tests/test_viz_judge.py). None of them comes from ``unfold.models``: each builder writes the
step its own way. Builders of one *family* compute the same thing and must draw the same.

Sizes are tiny (the drawings only need shapes): n_in = 3, n_hidden = 2, n_out = 4.
"""
from __future__ import annotations

import numpy as np

import unfold as uf

NI, NH, NO = 3, 2, 4


def _p(rec, name, *shape):
    return rec.param(name, shape)


def my_sigmoid(a):
    return 1.0 / (1.0 + uf.exp(-a))


# ---------------------------------------------------------------- Fig. 10.3 RNN, many styles

def rnn_readme():
    """Returned nodes used downstream, target declared with rec.target."""
    rec = uf.Recurrence("rnn")
    x = rec.sequence("x", (NI,))
    y = rec.target("y", ())
    h = rec.state("h", (NH,))
    W, U, b = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "b", NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    h_t = rec.update(h, uf.tanh(b + W @ h + U @ x))
    o = rec.output("o", c + V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def rnn_expression():
    """The expression passed to rec.output/rec.update used downstream, not the returned node;
    the target declared as a sequence read only by the loss."""
    rec = uf.Recurrence("rnn")
    x = rec.sequence("x", (NI,))
    y = rec.sequence("y", (), dtype="int64")
    h = rec.state("h", (NH,))
    W, U, b = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "b", NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    new = uf.tanh(U @ x + W @ h + b)
    rec.update(h, new)
    expr = c + V @ new
    rec.output("o", expr)
    rec.loss("L", uf.cross_entropy(expr, y))
    return rec


def rnn_reordered():
    """Parameters declared first, in another order; the loss declared before the output, the
    state updated last; numpy ufuncs on nodes; x @ U.T style."""
    rec = uf.Recurrence("rnn")
    c, V = _p(rec, "c", NO), _p(rec, "V", NO, NH)
    b, U, W = _p(rec, "b", NH), _p(rec, "U", NI, NH), _p(rec, "W", NH, NH)
    h = rec.state("h", (NH,))
    y = rec.sequence("y", (), dtype="int64")
    x = rec.sequence("x", (NI,))
    new = np.tanh(W @ h + U.T @ x + b)
    logits = V @ new + c
    rec.loss("L", uf.cross_entropy(logits, y))
    rec.output("o", logits)
    rec.update(h, new)
    return rec


def rnn_constants_inline():
    """'Bad' but legal: constants inline (a 1.0 *, a + 0.0, a numpy constant)."""
    rec = uf.Recurrence("rnn")
    x = rec.sequence("x", (NI,))
    y = rec.target("y", ())
    h = rec.state("h", (NH,))
    W, U, b = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "b", NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    h_t = rec.update(h, uf.tanh(1.0 * (W @ h) + U @ x + b + np.zeros(NH)))
    o = rec.output("o", c + V @ h_t + 0.0)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


RNN_STYLES = [rnn_readme, rnn_expression, rnn_reordered, rnn_constants_inline]


def rnn_unused_sequence():
    """'Bad' but legal: a declared sequence nothing reads."""
    rec = rnn_readme()
    rec.sequence("z", (NI,))
    return rec


def rnn_output_unused():
    """'Bad' but legal: an output no loss reads (a second readout)."""
    rec = uf.Recurrence("rnn")
    x = rec.sequence("x", (NI,))
    y = rec.target("y", ())
    h = rec.state("h", (NH,))
    W, U = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI)
    V, V2 = _p(rec, "V", NO, NH), _p(rec, "Q", NO, NH)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    o = rec.output("o", V @ h_t)
    rec.output("p", V2 @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def rnn_two_param_path():
    """o = V @ tanh(V2 @ h): a path through two parameters in sequence."""
    rec = uf.Recurrence("rnn")
    x = rec.sequence("x", (NI,))
    y = rec.target("y", ())
    h = rec.state("h", (NH,))
    W, U = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI)
    V, V2 = _p(rec, "V", NO, NH), _p(rec, "V2", NH, NH)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    o = rec.output("o", V @ uf.tanh(V2 @ h_t))
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def rnn_parallel_params():
    """h(t) = tanh(W h + S h + U x): two parameters on parallel paths (may share an edge)."""
    rec = uf.Recurrence("rnn")
    x = rec.sequence("x", (NI,))
    y = rec.target("y", ())
    h = rec.state("h", (NH,))
    W, S, U = _p(rec, "W", NH, NH), _p(rec, "S", NH, NH), _p(rec, "U", NH, NI)
    V = _p(rec, "V", NO, NH)
    h_t = rec.update(h, uf.tanh(W @ h + S @ h + U @ x))
    o = rec.output("o", V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


# ---------------------------------------------------------------- LSTM (eqs. 10.40-10.44)

def _lstm_decl(rec, order="sh"):
    x = rec.sequence("x", (NI,))
    y = rec.target("y", ())
    if order == "sh":
        s = rec.state("s", (NH,))
        h = rec.state("h", (NH,))
    else:
        h = rec.state("h", (NH,))
        s = rec.state("s", (NH,))
    return x, y, s, h


def _gate_params(rec, tag):
    return (_p(rec, "U" + tag, NH, NI), _p(rec, "W" + tag, NH, NH), _p(rec, "b" + tag, NH))


def lstm_named():
    """Separate matrices per gate, gates named with rec.name_node, uf.sigmoid."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    Uf, Wf, bf = _gate_params(rec, "f")
    Ug, Wg, bg = _gate_params(rec, "g")
    Uq, Wq, bq = _gate_params(rec, "q")
    U, W, b = _gate_params(rec, "")
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    f = rec.name_node("f", uf.sigmoid(bf + Uf @ x + Wf @ h))
    g = rec.name_node("g", uf.sigmoid(bg + Ug @ x + Wg @ h))
    q = rec.name_node("q", uf.sigmoid(bq + Uq @ x + Wq @ h))
    s_t = rec.update(s, f * s + g * uf.sigmoid(b + U @ x + W @ h))
    h_t = rec.update(h, uf.tanh(s_t) * q)
    o = rec.output("o", c + V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def lstm_inline():
    """Separate matrices, gates written inline with uf.sigmoid and never named."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    Uf, Wf, bf = _gate_params(rec, "f")
    Ug, Wg, bg = _gate_params(rec, "g")
    Uq, Wq, bq = _gate_params(rec, "q")
    U, W, b = _gate_params(rec, "")
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    s_t = rec.update(s, uf.sigmoid(bf + Uf @ x + Wf @ h) * s
                     + uf.sigmoid(bg + Ug @ x + Wg @ h) * uf.sigmoid(b + U @ x + W @ h))
    h_t = rec.update(h, uf.tanh(s_t) * uf.sigmoid(bq + Uq @ x + Wq @ h))
    o = rec.output("o", c + V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def lstm_my_sigmoid():
    """Gates with a user-written sigmoid 1/(1+exp(-a)) and numpy ufuncs (np.tanh) on nodes;
    states declared h before s; the expression, not the returned node, used downstream."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec, order="hs")
    Uf, Wf, bf = _gate_params(rec, "f")
    Ug, Wg, bg = _gate_params(rec, "g")
    Uq, Wq, bq = _gate_params(rec, "q")
    U, W, b = _gate_params(rec, "")
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    f = my_sigmoid(Wf @ h + Uf @ x + bf)
    g = my_sigmoid(Wg @ h + Ug @ x + bg)
    q = my_sigmoid(Wq @ h + Uq @ x + bq)
    s_new = f * s + g * my_sigmoid(W @ h + U @ x + b)
    h_new = np.tanh(s_new) * q
    rec.update(s, s_new)
    rec.update(h, h_new)
    logits = V @ h_new + c
    rec.output("o", logits)
    rec.loss("L", uf.cross_entropy(logits, y))
    return rec


def lstm_reordered():
    """uf.sigmoid inline; states declared h before s; the loss declared before the output, the
    states updated last; the expressions (not the returned nodes) used downstream; np.tanh."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec, order="hs")
    Uf, Wf, bf = _gate_params(rec, "f")
    Ug, Wg, bg = _gate_params(rec, "g")
    Uq, Wq, bq = _gate_params(rec, "q")
    U, W, b = _gate_params(rec, "")
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    f = uf.sigmoid(Wf @ h + Uf @ x + bf)
    g = uf.sigmoid(Wg @ h + Ug @ x + bg)
    q = uf.sigmoid(Wq @ h + Uq @ x + bq)
    s_new = f * s + g * uf.sigmoid(W @ h + U @ x + b)
    h_new = np.tanh(s_new) * q
    logits = V @ h_new + c
    rec.loss("L", uf.cross_entropy(logits, y))
    rec.output("o", logits)
    rec.update(h, h_new)
    rec.update(s, s_new)
    return rec


def lstm_stacked():
    """One stacked matrix for the four gates, sliced; concatenated [x; h] input."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    M = _p(rec, "M", 4 * NH, NI + NH)
    bm = _p(rec, "bm", 4 * NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    z = uf.sigmoid(M @ uf.concat([x, h]) + bm)
    f, g, q, cand = z[0:NH], z[NH:2 * NH], z[2 * NH:3 * NH], z[3 * NH:]
    s_t = rec.update(s, f * s + g * cand)
    h_t = rec.update(h, uf.tanh(s_t) * q)
    o = rec.output("o", c + V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def lstm_stacked_preact():
    """One stacked matrix, sliced BEFORE the sigmoids (the common way: one GEMM, four σ)."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    Ux, Wh = _p(rec, "Ux", 4 * NH, NI), _p(rec, "Wh", 4 * NH, NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    a = Ux @ x + Wh @ h
    f = uf.sigmoid(a[0:NH])
    g = uf.sigmoid(a[NH:2 * NH])
    q = uf.sigmoid(a[2 * NH:3 * NH])
    cand = uf.sigmoid(a[3 * NH:])
    s_t = rec.update(s, f * s + g * cand)
    h_t = rec.update(h, uf.tanh(s_t) * q)
    o = rec.output("o", c + V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def lstm_peephole():
    """Gates that also read the cell state s(t-1) through diagonal peephole weights."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    Uf, Wf, bf = _gate_params(rec, "f")
    Ug, Wg, bg = _gate_params(rec, "g")
    Uq, Wq, bq = _gate_params(rec, "q")
    U, W, b = _gate_params(rec, "")
    Pf, Pg, Pq = _p(rec, "Pf", NH), _p(rec, "Pg", NH), _p(rec, "Pq", NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    f = uf.sigmoid(bf + Uf @ x + Wf @ h + Pf * s)
    g = uf.sigmoid(bg + Ug @ x + Wg @ h + Pg * s)
    s_t = rec.update(s, f * s + g * uf.tanh(b + U @ x + W @ h))
    q = uf.sigmoid(bq + Uq @ x + Wq @ h + Pq * s_t)
    h_t = rec.update(h, uf.tanh(s_t) * q)
    o = rec.output("o", c + V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def lstm_coupled():
    """Coupled input and forget gates: g = 1 - f."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    Uf, Wf, bf = _gate_params(rec, "f")
    Uq, Wq, bq = _gate_params(rec, "q")
    U, W, b = _gate_params(rec, "")
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    f = uf.sigmoid(bf + Uf @ x + Wf @ h)
    s_t = rec.update(s, f * s + (1.0 - f) * uf.tanh(b + U @ x + W @ h))
    h_t = rec.update(h, uf.tanh(s_t) * uf.sigmoid(bq + Uq @ x + Wq @ h))
    o = rec.output("o", c + V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


LSTM_SAME = [lstm_named, lstm_inline, lstm_reordered, lstm_my_sigmoid]          # must draw identically
LSTM_ALL = LSTM_SAME + [lstm_stacked, lstm_stacked_preact, lstm_peephole, lstm_coupled]


# ---------------------------------------------------------------- GRU (eqs. 10.45-10.47)

def gru_book():
    """Book's GRU: reset applied to h(t-1) before W (r * h)."""
    rec = uf.Recurrence("gru")
    x = rec.sequence("x", (NI,))
    y = rec.target("y", ())
    h = rec.state("h", (NH,))
    Uu, Wu, bu = _gate_params(rec, "u")
    Ur, Wr, br = _gate_params(rec, "r")
    U, W, b = _gate_params(rec, "")
    V = _p(rec, "V", NO, NH)
    u = uf.sigmoid(bu + Uu @ x + Wu @ h)
    r = uf.sigmoid(br + Ur @ x + Wr @ h)
    h_t = rec.update(h, u * h + (1 - u) * uf.tanh(b + U @ x + W @ (r * h)))
    o = rec.output("o", V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def gru_reset_after():
    """Reset applied after W (r * (W h)), as cuDNN/PyTorch; user sigmoid; names in words."""
    rec = uf.Recurrence("gru")
    x = rec.sequence("x", (NI,))
    y = rec.sequence("y", (), dtype="int64")
    h = rec.state("h", (NH,))
    Uu, Wu, bu = _gate_params(rec, "u")
    Ur, Wr, br = _gate_params(rec, "r")
    U, W, b = _gate_params(rec, "")
    V = _p(rec, "V", NO, NH)
    u = my_sigmoid(bu + Uu @ x + Wu @ h)
    r = my_sigmoid(br + Ur @ x + Wr @ h)
    cand = np.tanh(b + U @ x + r * (W @ h))
    new = (1 - u) * cand + u * h
    rec.update(h, new)
    rec.output("o", V @ new)
    rec.loss("L", uf.cross_entropy(V @ new, y))
    return rec


GRU_ALL = [gru_book, gru_reset_after]


# ---------------------------------------------------------------- other recurrences

def deep_transition():
    """h(t) = tanh(W2 tanh(W1 h(t-1) + U x)) (Fig. 10.13b's deep hidden-to-hidden map)."""
    rec = uf.Recurrence("deep")
    x = rec.sequence("x", (NI,))
    y = rec.target("y", ())
    h = rec.state("h", (NH,))
    W1, W2, U = _p(rec, "W1", NH, NH), _p(rec, "W2", NH, NH), _p(rec, "U", NH, NI)
    V = _p(rec, "V", NO, NH)
    h_t = rec.update(h, uf.tanh(W2 @ uf.tanh(W1 @ h + U @ x)))
    o = rec.output("o", V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def deep_transition_3():
    """Three layers in the transition, the middle one named z by the user."""
    rec = uf.Recurrence("deep3")
    x = rec.sequence("x", (NI,))
    y = rec.target("y", ())
    h = rec.state("h", (NH,))
    W1, W2, W3 = (_p(rec, n, NH, NH) for n in ("W1", "W2", "W3"))
    U = _p(rec, "U", NH, NI)
    V = _p(rec, "V", NO, NH)
    z1 = uf.relu(W1 @ h + U @ x)
    z2 = rec.name_node("z", uf.tanh(W2 @ z1))
    h_t = rec.update(h, uf.tanh(W3 @ z2))
    o = rec.output("o", V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def stacked_two_layer():
    """Two stacked states h1 (bottom) and h2 (top)."""
    rec = uf.Recurrence("stacked")
    x = rec.sequence("x", (NI,))
    y = rec.target("y", ())
    h1 = rec.state("h1", (NH,))
    h2 = rec.state("h2", (NH,))
    W1, U1 = _p(rec, "W1", NH, NH), _p(rec, "U1", NH, NI)
    W2, U2 = _p(rec, "W2", NH, NH), _p(rec, "U2", NH, NH)
    V = _p(rec, "V", NO, NH)
    a1 = rec.update(h1, uf.tanh(W1 @ h1 + U1 @ x))
    a2 = rec.update(h2, uf.tanh(W2 @ h2 + U2 @ a1))
    o = rec.output("o", V @ a2)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def skip_rnn():
    """h(t) = tanh(W h(t-1) + Wd h(t-2) + U x(t)) via rec.past(h, 2)."""
    rec = uf.Recurrence("skip")
    x = rec.sequence("x", (NI,))
    y = rec.target("y", ())
    h = rec.state("h", (NH,))
    W, Wd, U = _p(rec, "W", NH, NH), _p(rec, "Wd", NH, NH), _p(rec, "U", NH, NI)
    V = _p(rec, "V", NO, NH)
    h_t = rec.update(h, uf.tanh(W @ h + Wd @ rec.past(h, 2) + U @ x))
    o = rec.output("o", V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def leaky():
    """Leaky units h(t) = a h(t-1) + (1-a) tanh(W h + U x), a a learnt per-unit rate."""
    rec = uf.Recurrence("leaky")
    x = rec.sequence("x", (NI,))
    y = rec.target("y", ())
    h = rec.state("h", (NH,))
    W, U = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI)
    alpha = _p(rec, "alpha", NH)
    V = _p(rec, "V", NO, NH)
    a = uf.sigmoid(alpha)
    h_t = rec.update(h, a * h + (1 - a) * uf.tanh(W @ h + U @ x))
    o = rec.output("o", V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def teacher_forcing():
    """Fig. 10.6 train time: y(t-1) feeds h(t) through W (a state holding the previous target)."""
    rec = uf.Recurrence("teacher")
    x = rec.sequence("x", (NI,))
    y = rec.sequence("y", (NO,))                # real-valued targets (mse), read by loss + state
    yp = rec.state("y_prev", (NO,))
    h = rec.state("h", (NH,))
    W, U, V = _p(rec, "W", NH, NO), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    h_new = uf.tanh(W @ yp + U @ x)
    rec.update(h, h_new)
    o = rec.output("o", V @ h_new)
    rec.loss("L", uf.mse(o, y))
    rec.update(yp, y)
    return rec


def output_feedback():
    """Fig. 10.4 / 10.6 test time: o(t-1) feeds h(t) through W."""
    rec = uf.Recurrence("outfeed")
    x = rec.sequence("x", (NI,))
    y = rec.target("y", ())
    op = rec.state("o_prev", (NO,))
    W, U, V = _p(rec, "W", NH, NO), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    h = rec.name_node("h", uf.tanh(W @ op + U @ x))
    o = rec.output("o", V @ h)
    rec.update(op, o)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def context_rnn():
    """Fig. 10.9: a fixed context vector x feeds every h(t) through R; y(t-1) is input."""
    rec = uf.Recurrence("ctx")
    xc = rec.context("x", (NI,))
    y = rec.sequence("y", (), dtype="int64")
    yp = rec.state("y_prev", (NO,))
    h = rec.state("h", (NH,))
    W, R, U, V = _p(rec, "W", NH, NH), _p(rec, "R", NH, NI), _p(rec, "U", NH, NO), \
        _p(rec, "V", NO, NH)
    h_t = rec.update(h, uf.tanh(W @ h + R @ xc + U @ yp))
    o = rec.output("o", V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    rec.update(yp, uf.one_hot(y, NO))
    return rec


def conditional_rnn():
    """Fig. 10.10: a sequence x(t) and the previous target y(t-1) through R."""
    rec = uf.Recurrence("cond")
    x = rec.sequence("x", (NI,))
    y = rec.sequence("y", (NO,))
    yp = rec.state("y_prev", (NO,))
    h = rec.state("h", (NH,))
    W, R, U, V = _p(rec, "W", NH, NH), _p(rec, "R", NH, NO), _p(rec, "U", NH, NI), \
        _p(rec, "V", NO, NH)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x + R @ yp))
    o = rec.output("o", V @ h_t)
    rec.loss("L", uf.mse(o, y))
    rec.update(yp, y)
    return rec


def bidirectional():
    """Fig. 10.11: h forward, g backward in time, both into o."""
    rec = uf.Recurrence("birnn")
    x = rec.sequence("x", (NI,))
    y = rec.target("y", ())
    h = rec.state("h", (NH,))
    g = rec.state("g", (NH,), backward=True)
    W, U = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI)
    Wg, Ug = _p(rec, "Wg", NH, NH), _p(rec, "Ug", NH, NI)
    V, Vg = _p(rec, "V", NO, NH), _p(rec, "Vg", NO, NH)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    g_t = rec.update(g, uf.tanh(Wg @ g + Ug @ x))
    o = rec.output("o", V @ h_t + Vg @ g_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def single_output():
    """Fig. 10.5: a loss at the last step only."""
    rec = uf.Recurrence("single")
    x = rec.sequence("x", (NI,))
    y = rec.target("y", ())
    h = rec.state("h", (NH,))
    W, U, V = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    o = rec.output("o", V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y), steps="last")
    return rec


def encoder_decoder_pair():
    """Fig. 10.12 written by hand: an encoder RNN and a decoder with a context C."""
    enc = uf.Recurrence("encoder")
    x = enc.sequence("x", (NI,))
    h = enc.state("h", (NH,))
    W, U = _p(enc, "W", NH, NH), _p(enc, "U", NH, NI)
    enc.update(h, uf.tanh(W @ h + U @ x))
    dec = uf.Recurrence("decoder")
    C = dec.context("C", (NH,))
    y = dec.target("y", ())
    yp = dec.sequence("y_prev", (NO,))
    s = dec.state("s", (NH,))
    W2, U2, R, V = _p(dec, "W", NH, NH), _p(dec, "U", NH, NO), _p(dec, "R", NH, NH), \
        _p(dec, "V", NO, NH)
    s_t = dec.update(s, uf.tanh(W2 @ s + U2 @ yp + R @ C))
    o = dec.output("o", V @ s_t)
    dec.loss("L", uf.cross_entropy(o, y))
    return enc, dec


GATED = [*LSTM_ALL, *GRU_ALL, deep_transition, deep_transition_3]
OTHERS = [stacked_two_layer, skip_rnn, leaky, teacher_forcing, output_feedback, context_rnn,
          conditional_rnn, bidirectional, single_output, rnn_two_param_path, rnn_parallel_params,
          rnn_unused_sequence, rnn_output_unused]
ALL = [*RNN_STYLES, *GATED, *OTHERS]


def _lstm_layer(rec, x, tag, n_in):
    s, h = rec.state("s" + tag, (NH,)), rec.state("h" + tag, (NH,))
    W, U = rec.param("W" + tag, (4 * NH, NH)), rec.param("U" + tag, (4 * NH, n_in))
    a = W @ h + U @ x
    f, g, q = (uf.sigmoid(a[i * NH:(i + 1) * NH]) for i in range(3))
    s_t = rec.update(s, f * s + g * uf.tanh(a[3 * NH:]))
    return rec.update(h, uf.tanh(s_t) * q)


def stacked_lstm():
    """Two LSTM layers, each from one stacked matrix sliced after the GEMM (four states)."""
    rec = uf.Recurrence("lstm2")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())
    top = _lstm_layer(rec, _lstm_layer(rec, x, "1", NI), "2", NH)
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (NO, NH)) @ top), y))
    return rec


# ---------------------------------------------------------------- round 2: more outsider styles

def rnn_concat():
    """h(t) = tanh(Wc [h(t-1); x(t)] + b): one matrix over the concatenated state and input."""
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    Wc, b = _p(rec, "Wc", NH, NH + NI), _p(rec, "b", NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    h_t = rec.update(h, uf.tanh(Wc @ uf.concat([h, x]) + b))
    rec.loss("L", uf.cross_entropy(rec.output("o", c + V @ h_t), y))
    return rec


def rnn_concat_rows():
    """Row vectors: h(t) = tanh([h(t-1), x(t)] Wc + b), Wc (n_h + n_in) × n_h."""
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    Wc, b = _p(rec, "Wc", NH + NI, NH), _p(rec, "b", NH)
    V, c = _p(rec, "V", NH, NO), _p(rec, "c", NO)
    h_t = rec.update(h, uf.tanh(uf.concat([h, x]) @ Wc + b))
    rec.loss("L", uf.cross_entropy(rec.output("o", h_t @ V + c), y))
    return rec


def rnn_sliced_matrix():
    """One parameter matrix [W U] sliced by columns: W = P[:, :n_h], U = P[:, n_h:]."""
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    P, b = _p(rec, "P", NH, NH + NI), _p(rec, "b", NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    h_t = rec.update(h, uf.tanh(P[:, :NH] @ h + P[:, NH:] @ x + b))
    rec.loss("L", uf.cross_entropy(rec.output("o", c + V @ h_t), y))
    return rec


def rnn_row_vectors():
    """Row-vector convention h W + x U + b (matrices on the right), as in many numpy codes."""
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    W, U, b = _p(rec, "W", NH, NH), _p(rec, "U", NI, NH), _p(rec, "b", NH)
    V, c = _p(rec, "V", NH, NO), _p(rec, "c", NO)
    h_t = rec.update(h, uf.tanh(h @ W + x @ U + b))
    rec.loss("L", uf.cross_entropy(rec.output("o", h_t @ V + c), y))
    return rec


def rnn_two_inputs():
    """Two input sequences x and z, each with its own matrix."""
    rec = uf.Recurrence("rnn2in")
    x, z = rec.sequence("x", (NI,)), rec.sequence("z", (NH,))
    y, h = rec.target("y", ()), rec.state("h", (NH,))
    W, U, Uz = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "Uz", NH, NH)
    V = _p(rec, "V", NO, NH)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x + Uz @ z))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def rnn_delay_two():
    """h(t) = tanh(W h(t-2) + U x(t)): the state read two steps back only (rec.past(h, 2))."""
    rec = uf.Recurrence("delay2")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    W, U, V = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    h_t = rec.update(h, uf.tanh(W @ rec.past(h, 2) + U @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def output_is_the_state():
    """Fig. 10.4 written as an outsider would: the output o itself is the state fed back."""
    rec = uf.Recurrence("outrec")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())
    o = rec.state("o", (NO,))
    W, U, V = _p(rec, "W", NH, NO), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    h = rec.name_node("h", uf.tanh(W @ o + U @ x))
    o_t = rec.update(o, V @ h)
    rec.loss("L", uf.cross_entropy(o_t, y))
    return rec


def single_output_expression():
    """Fig. 10.5 with the expressions used downstream and no rec.output: loss at the last step."""
    rec = uf.Recurrence("single")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    W, U, V = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    new = uf.tanh(W @ h + U @ x)
    rec.update(h, new)
    rec.loss("L", uf.cross_entropy(V @ new, y), steps="last")
    return rec


def gru_named():
    """The book's GRU with u and r given to rec.name_node."""
    rec = uf.Recurrence("gru")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    Uu, Wu, bu = _gate_params(rec, "u")
    Ur, Wr, br = _gate_params(rec, "r")
    U, W, b = _gate_params(rec, "")
    V = _p(rec, "V", NO, NH)
    u = rec.name_node("u", uf.sigmoid(bu + Uu @ x + Wu @ h))
    r = rec.name_node("r", uf.sigmoid(br + Ur @ x + Wr @ h))
    h_t = rec.update(h, u * h + (1 - u) * uf.tanh(b + U @ x + W @ (r * h)))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def _dense(rec, tag, **inputs):
    """b_tag + Σ W_tag_k @ v over the named inputs, parameters made on the way (a helper)."""
    out = rec.param("b" + tag, (NH,))
    for k, v in inputs.items():
        out = out + rec.param(f"{'U' if k == 'x' else 'W'}{tag}", (NH, v.shape[0])) @ v
    return out


def gru_loop():
    """The book's GRU built by a helper called in a loop (parameters made inside the helper)."""
    rec = uf.Recurrence("gru")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    gates = {k: uf.sigmoid(_dense(rec, k, x=x, h=h)) for k in ("u", "r")}
    cand = uf.tanh(_dense(rec, "", x=x, h=gates["r"] * h))
    h_t = rec.update(h, gates["u"] * h + (1 - gates["u"]) * cand)
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (NO, NH)) @ h_t), y))
    return rec


def gru_one_minus_z():
    """Cho et al.'s writing: h(t) = (1 - z) h(t-1) + z h~ (the update gate's sense reversed)."""
    rec = uf.Recurrence("gru")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    Uz, Wz, bz = _gate_params(rec, "z")
    Ur, Wr, br = _gate_params(rec, "r")
    U, W, b = _gate_params(rec, "")
    V = _p(rec, "V", NO, NH)
    z = uf.sigmoid(bz + Uz @ x + Wz @ h)
    r = uf.sigmoid(br + Ur @ x + Wr @ h)
    cand = uf.tanh(b + U @ x + W @ (r * h))
    h_t = rec.update(h, (1 - z) * h + z * cand)
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def mgu():
    """Minimal gated unit (Zhou et al. 2016): one forget gate f, h = (1 - f) h + f tanh(W (f h) + U x)."""
    rec = uf.Recurrence("gru")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    Uf, Wf, bf = _gate_params(rec, "f")
    U, W, b = _gate_params(rec, "")
    V = _p(rec, "V", NO, NH)
    f = uf.sigmoid(bf + Uf @ x + Wf @ h)
    h_t = rec.update(h, (1 - f) * h + f * uf.tanh(b + U @ x + W @ (f * h)))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def lstm_stacked_ofig():
    """One GEMM [Wx Wh] @ [x; h], sliced in the order o, f, i, g (PyTorch's is i, f, g, o),
    the input unit tanh (g), the output gate named o_gate by nobody: all inline."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    Wx, Wh, bb = _p(rec, "Wx", 4 * NH, NI), _p(rec, "Wh", 4 * NH, NH), _p(rec, "bb", 4 * NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    a = Wx @ x + Wh @ h + bb
    q = uf.sigmoid(a[0:NH])                  # output gate
    f = uf.sigmoid(a[NH:2 * NH])             # forget gate
    g = uf.sigmoid(a[2 * NH:3 * NH])         # input gate
    cand = uf.sigmoid(a[3 * NH:])            # input unit (σ as in eq. 10.41)
    s_t = rec.update(s, f * s + g * cand)
    h_t = rec.update(h, uf.tanh(s_t) * q)
    rec.loss("L", uf.cross_entropy(rec.output("o", c + V @ h_t), y))
    return rec


def lstm_loop_named():
    """The LSTM with its gates made by a helper in a loop and named with rec.name_node."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    G = {k: uf.sigmoid(_dense(rec, k, x=x, h=h)) for k in ("f", "g", "q", "")}
    G = {k: rec.name_node(k, v) if k else v for k, v in G.items()}
    s_t = rec.update(s, G["f"] * s + G["g"] * G[""])
    h_t = rec.update(h, uf.tanh(s_t) * G["q"])
    o = rec.output("o", rec.param("c", (NO,)) + rec.param("V", (NO, NH)) @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def gru_two_layers():
    """Two GRU layers stacked, built by one helper called twice (h1 feeds h2 at each step)."""
    rec = uf.Recurrence("gru2")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())

    def layer(tag, inp):
        h = rec.state("h" + tag, (NH,))
        u = uf.sigmoid(_dense(rec, "u" + tag, x=inp, h=h))
        r = uf.sigmoid(_dense(rec, "r" + tag, x=inp, h=h))
        cand = uf.tanh(_dense(rec, tag, x=inp, h=r * h))
        return rec.update(h, u * h + (1 - u) * cand)
    top = layer("2", layer("1", x))
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (NO, NH)) @ top), y))
    return rec


ROUND2_RNN = [rnn_concat, rnn_concat_rows, rnn_sliced_matrix, rnn_row_vectors]      # named structure of rnn_readme
ROUND2 = [*ROUND2_RNN, rnn_two_inputs, rnn_delay_two, output_is_the_state, single_output_expression,
          gru_named, gru_loop, gru_one_minus_z, mgu, lstm_stacked_ofig, lstm_loop_named,
          gru_two_layers]
ROUND2_GATED = [gru_named, gru_loop, gru_one_minus_z, mgu, lstm_stacked_ofig, lstm_loop_named,
                gru_two_layers]
GRU_SAME = [gru_book, gru_named, gru_loop]                      # must draw identically


def _rnn_with(step):
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    W, U, b = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "b", NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    h_t = rec.update(h, uf.tanh(step(x, h, W, U, b)))
    rec.loss("L", uf.cross_entropy(rec.output("o", c + V @ h_t), y))
    return rec


def rnn_einsum():
    """W h and U x written with uf.einsum("ij,j->i", …)."""
    return _rnn_with(lambda x, h, W, U, b: uf.einsum("ij,j->i", W, h)
                     + uf.einsum("ij,j->i", U, x) + b)


def rnn_functional():
    """Function calls instead of operators: uf.add(uf.add(uf.matmul(W, h), …), b)."""
    return _rnn_with(lambda x, h, W, U, b: uf.add(uf.add(uf.matmul(W, h), uf.matmul(U, x)), b))


def rnn_add_n():
    """The three terms summed with uf.add_n."""
    return _rnn_with(lambda x, h, W, U, b: uf.add_n([W @ h, U @ x, b]))


def rnn_transposed():
    """Row vectors times transposed matrices: h Wᵀ + x Uᵀ + b."""
    return _rnn_with(lambda x, h, W, U, b: h @ uf.transpose(W) + x @ uf.transpose(U) + b)


RNN_SPELLINGS = [rnn_einsum, rnn_functional, rnn_add_n, rnn_transposed]


def deep_rnn_loop(layers=3):
    """A stack of tanh layers h1 … hN built in a loop (Fig. 10.13a with N layers)."""
    rec = uf.Recurrence("deep_loop")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())
    below = x
    for i in range(1, layers + 1):
        h = rec.state(f"h{i}", (NH,))
        below = rec.update(h, uf.tanh(_p(rec, f"W{i}", NH, NH) @ h
                                      + _p(rec, f"U{i}", NH, below.shape[0]) @ below))
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ below), y))
    return rec


def bidirectional_helper():
    """Fig. 10.11 with both directions made by one helper (backward= its only difference)."""
    rec = uf.Recurrence("birnn")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())

    def direction(name, backward):
        s = rec.state(name, (NH,), backward=backward)
        return rec.update(s, uf.tanh(_p(rec, "W" + name, NH, NH) @ s
                                     + _p(rec, "U" + name, NH, NI) @ x))
    g, h = direction("g", True), direction("h", False)       # the backward one written first
    o = rec.output("o", _p(rec, "Vh", NO, NH) @ h + _p(rec, "Vg", NO, NH) @ g)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec

def lstm_written(sigma=uf.sigmoid, order="fgq"):
    """The per-gate LSTM with the gates' σ spelt ``sigma`` and written in ``order`` (the input
    unit last), the gates' values kept in a dict."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    P = {k: _gate_params(rec, k) for k in ("f", "g", "q", "")}
    V = _p(rec, "V", NO, NH)
    G = {k: sigma(P[k][2] + P[k][0] @ x + P[k][1] @ h) for k in (*order, "")}
    s_t = rec.update(s, G["f"] * s + G["g"] * G[""])
    h_t = rec.update(h, uf.tanh(s_t) * G["q"])
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


# ---------------------------------------------------------------- round 3: more outsider styles

def lstm_concat_preact():
    """One matrix over the concatenation [x; h], the four pre-activations sliced from it, then
    σ for the three gates and the input unit (eq. 10.41's σ): a GEMM per step, as most code."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    M, bm = _p(rec, "M", 4 * NH, NI + NH), _p(rec, "bm", 4 * NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    a = M @ uf.concat([x, h]) + bm
    f, g, q, cand = (uf.sigmoid(a[k * NH:(k + 1) * NH]) for k in range(4))
    s_t = rec.update(s, f * s + g * cand)
    h_t = rec.update(h, uf.tanh(s_t) * q)
    rec.loss("L", uf.cross_entropy(rec.output("o", c + V @ h_t), y))
    return rec


def lstm_gate_function():
    """Each gate made by a Python helper called once per gate (parameters made outside and
    passed in, nothing named): the same LSTM as lstm_inline."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    P = {k: _gate_params(rec, k) for k in ("f", "g", "q", "")}
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)

    def unit(U, W, b):
        return uf.sigmoid(b + U @ x + W @ h)
    f, g, q, cand = (unit(*P[k]) for k in ("f", "g", "q", ""))
    s_t = rec.update(s, f * s + g * cand)
    h_t = rec.update(h, uf.tanh(s_t) * q)
    rec.loss("L", uf.cross_entropy(rec.output("o", c + V @ h_t), y))
    return rec


def gru_book_sigma():
    """The book's eqs. 10.45-10.46 to the letter: the candidate squashed by σ (not tanh), so the
    step holds three σ's of which only two are gates."""
    rec = uf.Recurrence("gru")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    Uu, Wu, bu = _gate_params(rec, "u")
    Ur, Wr, br = _gate_params(rec, "r")
    U, W, b = _gate_params(rec, "")
    V = _p(rec, "V", NO, NH)
    u = uf.sigmoid(bu + Uu @ x + Wu @ h)
    r = uf.sigmoid(br + Ur @ x + Wr @ h)
    h_t = rec.update(h, u * h + (1 - u) * uf.sigmoid(b + U @ x + W @ (r * h)))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def gru_cho():
    """Cho et al. 2014 (eqs. 5-8) in their notation: W for the input, U for the recurrent
    matrix, no biases; h = z h(t-1) + (1 - z) h~, h~ = tanh(W x + U (r ⊙ h(t-1)))."""
    rec = uf.Recurrence("gru")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    Wz, Uz = _p(rec, "Wz", NH, NI), _p(rec, "Uz", NH, NH)
    Wr, Ur = _p(rec, "Wr", NH, NI), _p(rec, "Ur", NH, NH)
    W, U = _p(rec, "W", NH, NI), _p(rec, "U", NH, NH)
    V = _p(rec, "V", NO, NH)
    z = uf.sigmoid(Wz @ x + Uz @ h)
    r = uf.sigmoid(Wr @ x + Ur @ h)
    cand = uf.tanh(W @ x + U @ (r * h))
    h_t = rec.update(h, z * h + (1 - z) * cand)
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def lstm_layers_loop(layers=2):
    """A two-layer LSTM built in a for loop, a matrix per gate, gates inline (tanh input unit),
    each layer's h feeding the next layer's gates."""
    rec = uf.Recurrence("lstm_deep")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())
    below = x
    for i in range(1, layers + 1):
        s, h = rec.state(f"s{i}", (NH,)), rec.state(f"h{i}", (NH,))
        pre = {k: _p(rec, f"b{k}{i}", NH) + _p(rec, f"U{k}{i}", NH, below.shape[0]) @ below
               + _p(rec, f"W{k}{i}", NH, NH) @ h for k in ("f", "g", "q", "")}
        s_t = rec.update(s, uf.sigmoid(pre["f"]) * s + uf.sigmoid(pre["g"]) * uf.tanh(pre[""]))
        below = rec.update(h, uf.tanh(s_t) * uf.sigmoid(pre["q"]))
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ below), y))
    return rec


def deep_all_maps():
    """Fig. 10.13b by hand: an MLP (one tanh layer) in each of the three maps — input to
    hidden, hidden to hidden, hidden to output."""
    rec = uf.Recurrence("deep_b")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    U1, U2 = _p(rec, "U1", NH, NI), _p(rec, "U2", NH, NH)
    W1, W2 = _p(rec, "W1", NH, NH), _p(rec, "W2", NH, NH)
    V1, V2 = _p(rec, "V1", NH, NH), _p(rec, "V2", NO, NH)
    h_t = rec.update(h, uf.tanh(W2 @ uf.tanh(W1 @ h) + U2 @ uf.tanh(U1 @ x)))
    rec.loss("L", uf.cross_entropy(rec.output("o", V2 @ uf.tanh(V1 @ h_t)), y))
    return rec


def deep_skip():
    """Fig. 10.13c by hand: 10.13b's deep transition plus a shortcut S h(t-1) straight into
    h(t) beside the MLP."""
    rec = uf.Recurrence("deep_c")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    U, W1, W2, S = (_p(rec, "U", NH, NI), _p(rec, "W1", NH, NH), _p(rec, "W2", NH, NH),
                    _p(rec, "S", NH, NH))
    V = _p(rec, "V", NO, NH)
    h_t = rec.update(h, uf.tanh(W2 @ uf.tanh(W1 @ h) + S @ h + U @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def skip_only_long():
    """Skip connections through time without the unit delay: h(t) = tanh(W h(t-1) + Wd h(t-3)
    + U x) read as rec.past(h, 3)."""
    rec = uf.Recurrence("skip3")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    W, Wd, U, V = (_p(rec, "W", NH, NH), _p(rec, "Wd", NH, NH), _p(rec, "U", NH, NI),
                   _p(rec, "V", NO, NH))
    h_t = rec.update(h, uf.tanh(W @ h + Wd @ rec.past(h, 3) + U @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def bigru():
    """A bidirectional GRU by hand: h forward, g backward (both the book's GRU), o = V h + Vg g."""
    rec = uf.Recurrence("bigru")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())

    def gru(state):
        P = {k: _gate_params(rec, k + state.name) for k in ("u", "r", "")}
        u = uf.sigmoid(P["u"][2] + P["u"][0] @ x + P["u"][1] @ state)
        r = uf.sigmoid(P["r"][2] + P["r"][0] @ x + P["r"][1] @ state)
        cand = uf.tanh(P[""][2] + P[""][0] @ x + P[""][1] @ (r * state))
        return rec.update(state, u * state + (1 - u) * cand)
    h_t = gru(rec.state("h", (NH,)))
    g_t = gru(rec.state("g", (NH,), backward=True))
    o = rec.output("o", _p(rec, "V", NO, NH) @ h_t + _p(rec, "Vg", NO, NH) @ g_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def leaky_fixed():
    """Leaky units with fixed time constants (section 10.9.2): h = α ⊙ h(t-1) + (1 - α) ⊙
    tanh(W h + U x), α a numpy constant (one slow unit, one fast)."""
    rec = uf.Recurrence("leaky")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    W, U, V = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    alpha = np.array([0.9, 0.1])
    h_t = rec.update(h, alpha * h + (1 - alpha) * uf.tanh(W @ h + U @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def echo_state_by_hand():
    """An echo state network by hand (section 10.8): W, U fixed numpy reservoir matrices (ρ(W)
    = 0.9), only the readout V, c learned; squared error on a real target."""
    rng = np.random.default_rng(3)
    Wr = rng.standard_normal((NH, NH))
    Wr *= 0.9 / np.max(np.abs(np.linalg.eigvals(Wr)))
    Ur = rng.uniform(-1, 1, (NH, NI))
    rec = uf.Recurrence("esn")
    x, y, h = rec.sequence("x", (NI,)), rec.sequence("y", (NO,)), rec.state("h", (NH,))
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    h_t = rec.update(h, uf.tanh(Wr @ h + Ur @ x))
    rec.loss("L", uf.mse(rec.output("o", c + V @ h_t), y))
    return rec


def encoder_decoder_gru():
    """Fig. 10.12 by hand with a GRU encoder (gates inline) and an RNN decoder reading C."""
    enc = uf.Recurrence("encoder")
    x, h = enc.sequence("x", (NI,)), enc.state("h", (NH,))
    Uu, Wu, bu = _gate_params(enc, "u")
    Ur, Wr, br = _gate_params(enc, "r")
    U, W, b = _gate_params(enc, "")
    u = uf.sigmoid(bu + Uu @ x + Wu @ h)
    r = uf.sigmoid(br + Ur @ x + Wr @ h)
    enc.update(h, u * h + (1 - u) * uf.tanh(b + U @ x + W @ (r * h)))
    _, dec = encoder_decoder_pair()
    return enc, dec


def rnn_book_equations():
    """Eqs. 10.8-10.11 to the letter: a(t) and ŷ(t) named as the book names them, the loss
    written out as −log ŷ_y (one_hot · log softmax), the target a plain integer sequence."""
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.sequence("y", (), dtype="int64"), rec.state("h", (NH,))
    W, U, b = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "b", NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    a = rec.name_node("a", b + W @ h + U @ x)
    h_t = rec.update(h, uf.tanh(a))
    o = rec.output("o", c + V @ h_t)
    yhat = rec.name_node("yhat", uf.softmax(o))
    rec.loss("L", -uf.sum(uf.one_hot(y, NO) * uf.log(yhat)))
    return rec


def rnn_mse_by_hand():
    """A regression RNN whose squared error is written out, Σ (o − y)², y a real sequence."""
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.sequence("y", (NO,)), rec.state("h", (NH,))
    W, U, V = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    o = rec.output("o", V @ h_t)
    rec.loss("L", uf.sum((o - y) * (o - y)))
    return rec

def highway_rnn():
    """A highway / gated-leak RNN (one transform gate, no reset): h = g ⊙ tanh(W h + U x) +
    (1 − g) ⊙ h(t-1), g = σ(Wg h + Ug x + bg)."""
    rec = uf.Recurrence("highway")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    Ug, Wg, bg = _gate_params(rec, "g")
    W, U, V = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    g = uf.sigmoid(bg + Ug @ x + Wg @ h)
    h_t = rec.update(h, g * uf.tanh(W @ h + U @ x) + (1 - g) * h)
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


ROUND3_SAME_AS_INLINE = [lstm_gate_function]                # must draw as lstm_inline
ROUND3_GATED = [lstm_concat_preact, gru_book_sigma, gru_cho, lstm_layers_loop, bigru, highway_rnn]
ROUND3_PLAIN = [deep_all_maps, deep_skip, skip_only_long, leaky_fixed, echo_state_by_hand,
                rnn_book_equations, rnn_mse_by_hand]
ROUND3 = [*ROUND3_SAME_AS_INLINE, *ROUND3_GATED, *ROUND3_PLAIN]


# Builders whose drawings the style tests prove identical to a reference's (rnn_readme,
# lstm_named, gru_book) in every view: the per-model geometry checks run on the reference only.
DRAWN_AS_A_REFERENCE = {*RNN_STYLES[1:], rnn_row_vectors, *LSTM_SAME[1:], *GRU_SAME[1:],
                        *RNN_SPELLINGS, lstm_gate_function}
DISTINCT = [b for b in [*ALL, *ROUND2, deep_rnn_loop, bidirectional_helper, *ROUND3]
            if b not in DRAWN_AS_A_REFERENCE]
DISTINCT_GATED = [b for b in [*GATED, *ROUND2_GATED, *ROUND3_GATED] if b not in DRAWN_AS_A_REFERENCE]


def rnn_state_is_the_output(returned=False):
    """The output is the new state itself (no readout), as a regression RNN whose state is its
    prediction: rec.output("o", h(t)) and the loss on the expression given to both (or, with
    ``returned``, each call on the node the previous one returned)."""
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.sequence("y", (NH,)), rec.state("h", (NH,))
    W, U = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI)
    new = uf.tanh(W @ h + U @ x)
    h_t = rec.update(h, new)
    o = rec.output("o", h_t if returned else new)
    rec.loss("L", uf.mse(o if returned else new, y))
    return rec


# ---------------------------------------------------------------- round 4 (session 7)

def rnn_scalar_state():
    """A state of shape (): h(t) = tanh(w h(t-1) + u·x(t) + b), o = c + v h(t) (w, b scalars,
    u, v vectors; products written with * and a dot product with @)."""
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", ())
    W, U, b = _p(rec, "W"), _p(rec, "U", NI), _p(rec, "b")
    V, c = _p(rec, "V", NO), _p(rec, "c", NO)
    h_t = rec.update(h, uf.tanh(W * h + U @ x + b))
    rec.loss("L", uf.cross_entropy(rec.output("o", c + V * h_t), y))
    return rec


def rnn_state_one():
    """The README's RNN with a state of shape (1,) (W 1 × 1, U 1 × n_in, V n_out × 1)."""
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (1,))
    W, U, b = _p(rec, "W", 1, 1), _p(rec, "U", 1, NI), _p(rec, "b", 1)
    V, c = _p(rec, "V", NO, 1), _p(rec, "c", NO)
    h_t = rec.update(h, uf.tanh(b + W @ h + U @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", c + V @ h_t), y))
    return rec


def rnn_concat_transposed():
    """[h; x] @ Wcᵀ with the bias added last, the output read out with einsum("j,ij->i", h, V)
    (operands in the other order), the target a sequence read only by the loss."""
    rec = uf.Recurrence("rnn")
    x, y = rec.sequence("x", (NI,)), rec.sequence("y", (), dtype="int64")
    h = rec.state("h", (NH,))
    Wc, b = _p(rec, "Wc", NH, NH + NI), _p(rec, "b", NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    new = uf.tanh(uf.concat([h, x]) @ Wc.T + b)
    rec.update(h, new)
    o = uf.einsum("j,ij->i", new, V) + c
    rec.output("o", o)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def rnn_mul_sum():
    """Matrix-vector products written as a broadcast product summed over its last axis:
    Σ_j W_ij h_j = sum(W * h, axis=1) (as people write them before they know @)."""
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    W, U, b = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "b", NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    h_t = rec.update(h, uf.tanh(uf.sum(W * h, axis=1) + uf.sum(U * x, axis=1) + b))
    rec.loss("L", uf.cross_entropy(rec.output("o", c + uf.sum(V * h_t, axis=1)), y))
    return rec


def rnn_two_outputs():
    """Two outputs of one state, each with its own target and loss: o = V h → L ← y (classes)
    and p = P h → M ← z (a regression, squared error)."""
    rec = uf.Recurrence("rnn")
    x, y, z = rec.sequence("x", (NI,)), rec.target("y", ()), rec.sequence("z", (NH,))
    h = rec.state("h", (NH,))
    W, U = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI)
    V, P = _p(rec, "V", NO, NH), _p(rec, "P", NH, NH)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    rec.loss("M", uf.mse(rec.output("p", P @ h_t), z))
    return rec


def rnn_output_of_output():
    """An output read by another output: o = c + V h, p = P o, the loss on p."""
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    W, U = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI)
    V, c, P = _p(rec, "V", NO, NH), _p(rec, "c", NO), _p(rec, "P", NO, NO)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    o = rec.output("o", c + V @ h_t)
    rec.loss("L", uf.cross_entropy(rec.output("p", P @ o), y))
    return rec


def rnn_last_loss_sequence():
    """Fig. 10.5 with the target declared as a sequence read only by the loss at the last step."""
    rec = uf.Recurrence("single")
    x, y = rec.sequence("x", (NI,)), rec.sequence("y", (), dtype="int64")
    h = rec.state("h", (NH,))
    W, U, V = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    new = uf.tanh(W @ h + U @ x)
    rec.update(h, new)
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ new), y), steps="last")
    return rec


def rnn_subscripts():
    """The README's RNN with names people write in code: W_hh, U_xh, b_h, V_hy, c_y, a state
    h1, an input x1, a target y1, an output o1 and a loss L1."""
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x1", (NI,)), rec.target("y1", ()), rec.state("h1", (NH,))
    W, U, b = _p(rec, "W_hh", NH, NH), _p(rec, "U_xh", NH, NI), _p(rec, "b_h", NH)
    V, c = _p(rec, "V_hy", NO, NH), _p(rec, "c_y", NO)
    h_t = rec.update(h, uf.tanh(b + W @ h + U @ x))
    rec.loss("L1", uf.cross_entropy(rec.output("o1", c + V @ h_t), y))
    return rec


def lstm_pytorch():
    """PyTorch's notation: states h and c (declared in that order), gates i, f, o and the
    candidate g made in a Python loop over a list by a helper, named with rec.name_node; the
    output called "logits" (the gate has the letter o)."""
    rec = uf.Recurrence("lstm")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())
    h, c = rec.state("h", (NH,)), rec.state("c", (NH,))

    def gate(k, squash):
        W_i, W_h = _p(rec, f"W_i{k}", NH, NI), _p(rec, f"W_h{k}", NH, NH)
        return rec.name_node(k, squash(W_i @ x + W_h @ h + _p(rec, f"b_{k}", NH)))
    G = {}
    for k, squash in [("i", uf.sigmoid), ("f", uf.sigmoid), ("g", uf.tanh), ("o", uf.sigmoid)]:
        G[k] = gate(k, squash)
    c_t = rec.update(c, G["f"] * c + G["i"] * G["g"])
    h_t = rec.update(h, G["o"] * uf.tanh(c_t))
    rec.loss("L", uf.cross_entropy(rec.output("logits", _p(rec, "W_hy", NO, NH) @ h_t), y))
    return rec


def lstm_cifg():
    """CIFG (Greff et al. 2017): the forget gate written as 1 − i from the input gate."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    Ug, Wg, bg = _gate_params(rec, "g")
    Uq, Wq, bq = _gate_params(rec, "q")
    U, W, b = _gate_params(rec, "")
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    g = uf.sigmoid(bg + Ug @ x + Wg @ h)
    s_t = rec.update(s, (1 - g) * s + g * uf.tanh(b + U @ x + W @ h))
    h_t = rec.update(h, uf.tanh(s_t) * uf.sigmoid(bq + Uq @ x + Wq @ h))
    rec.loss("L", uf.cross_entropy(rec.output("o", c + V @ h_t), y))
    return rec


def lstm_odd_declarations():
    """lstm_named with everything declared in an odd order: the parameters first (output layer
    first), then the target, the states h before s, the input last."""
    rec = uf.Recurrence("lstm")
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    U, W, b = _gate_params(rec, "")
    Uq, Wq, bq = _gate_params(rec, "q")
    Ug, Wg, bg = _gate_params(rec, "g")
    Uf, Wf, bf = _gate_params(rec, "f")
    y = rec.target("y", ())
    h, s = rec.state("h", (NH,)), rec.state("s", (NH,))
    x = rec.sequence("x", (NI,))
    q = rec.name_node("q", uf.sigmoid(bq + Uq @ x + Wq @ h))
    g = rec.name_node("g", uf.sigmoid(bg + Ug @ x + Wg @ h))
    f = rec.name_node("f", uf.sigmoid(bf + Uf @ x + Wf @ h))
    s_t = rec.update(s, f * s + g * uf.sigmoid(b + U @ x + W @ h))
    h_t = rec.update(h, uf.tanh(s_t) * q)
    o = rec.output("o", c + V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def gru_pytorch():
    """PyTorch's GRU: r, z and n with the reset gate after the recurrent matmul
    (n = tanh(W_in x + b_in + r ∗ (W_hn h + b_hn))), h = (1 − z) n + z h; names with
    underscores, the target a sequence read only by the loss."""
    rec = uf.Recurrence("gru")
    x, y = rec.sequence("x", (NI,)), rec.sequence("y", (), dtype="int64")
    h = rec.state("h", (NH,))
    P = {f"{m}_{a}{k}": _p(rec, f"{m}_{a}{k}", *((NH, NI) if a == "i" else (NH, NH))
                           if m == "W" else (NH,))
         for k in "rzn" for m in "Wb" for a in "ih"}
    lin = lambda a, k, v: P[f"W_{a}{k}"] @ v + P[f"b_{a}{k}"]
    r = uf.sigmoid(lin("i", "r", x) + lin("h", "r", h))
    z = uf.sigmoid(lin("i", "z", x) + lin("h", "z", h))
    n = uf.tanh(lin("i", "n", x) + r * lin("h", "n", h))
    h_t = rec.update(h, (1 - z) * n + z * h)
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "W_hy", NO, NH) @ h_t), y))
    return rec


ROUND4_SAME_AS_README = [rnn_state_one]                # must draw exactly as rnn_readme
ROUND4_NAMED_AS_README = [rnn_concat_transposed, rnn_mul_sum]   # named structure of rnn_readme
ROUND4_SAME_AS_NAMED = [lstm_odd_declarations]         # must draw exactly as lstm_named
ROUND4_GATED = [lstm_pytorch, lstm_cifg, gru_pytorch]
ROUND4_PLAIN = [rnn_scalar_state, rnn_two_outputs, rnn_output_of_output, rnn_last_loss_sequence,
                rnn_subscripts]
ROUND4 = [*ROUND4_GATED, *ROUND4_PLAIN]
DRAWN_AS_A_REFERENCE |= {*ROUND4_SAME_AS_README, *ROUND4_NAMED_AS_README, *ROUND4_SAME_AS_NAMED}
DISTINCT = [*DISTINCT, *ROUND4]                    # every geometry check runs on them too
DISTINCT_GATED = [*DISTINCT_GATED, *ROUND4_GATED]


def rnn_nll_by_hand():
    """The loss written by hand, −Σ one_hot(y) ⊙ log_softmax(o), the target a sequence read
    only by it; losses at steps 2 and 3 only."""
    rec = uf.Recurrence("rnn")
    x, y = rec.sequence("x", (NI,)), rec.sequence("y", (), dtype="int64")
    h = rec.state("h", (NH,))
    W, U, V = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    o = rec.output("o", V @ h_t)
    rec.loss("L", -uf.sum(uf.one_hot(y, NO) * uf.log_softmax(o)), steps=[2, 3])
    return rec


def lstm_pytorch_candidate_unnamed():
    """lstm_pytorch with its candidate g left unnamed (i, f, o named): the control of finding 49."""
    rec = uf.Recurrence("lstm")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())
    h, c = rec.state("h", (NH,)), rec.state("c", (NH,))
    G = {}
    for k, squash in [("i", uf.sigmoid), ("f", uf.sigmoid), ("g", uf.tanh), ("o", uf.sigmoid)]:
        v = squash(_p(rec, f"W_i{k}", NH, NI) @ x + _p(rec, f"W_h{k}", NH, NH) @ h
                   + _p(rec, f"b_{k}", NH))
        G[k] = v if k == "g" else rec.name_node(k, v)
    c_t = rec.update(c, G["f"] * c + G["i"] * G["g"])
    h_t = rec.update(h, G["o"] * uf.tanh(c_t))
    rec.loss("L", uf.cross_entropy(rec.output("logits", _p(rec, "W_hy", NO, NH) @ h_t), y))
    return rec


ROUND4_PLAIN.append(rnn_nll_by_hand)
ROUND4.append(rnn_nll_by_hand)
DISTINCT.append(rnn_nll_by_hand)


def gru_tilde():
    """Cho et al.'s GRU with every value named as in the paper: z, r and the candidate h_tilde,
    h = (1 − z) h + z h_tilde; W_· on x, U_· on h."""
    rec = uf.Recurrence("gru")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    gate = lambda k, v: uf.sigmoid(_p(rec, f"W_{k}", NH, NI) @ x + _p(rec, f"U_{k}", NH, NH) @ v)
    z, r = rec.name_node("z", gate("z", h)), rec.name_node("r", gate("r", h))
    cand = rec.name_node("h_tilde", uf.tanh(_p(rec, "W_h", NH, NI) @ x
                                            + _p(rec, "U_h", NH, NH) @ (r * h)))
    h_t = rec.update(h, (1 - z) * h + z * cand)
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ h_t), y))
    return rec


def lstm_state_named_cell():
    """PyTorch's words for the states: "hidden" and "cell" (the word viz gives compact cells)."""
    rec = uf.Recurrence("lstm")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())
    h, c = rec.state("hidden", (NH,)), rec.state("cell", (NH,))
    G = {k: sq(_p(rec, f"W_{k}", NH, NI) @ x + _p(rec, f"U_{k}", NH, NH) @ h) for k, sq in
         [("i", uf.sigmoid), ("f", uf.sigmoid), ("g", uf.tanh), ("o", uf.sigmoid)]}
    c_t = rec.update(c, G["f"] * c + G["i"] * G["g"])
    h_t = rec.update(h, G["o"] * uf.tanh(c_t))
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ h_t), y))
    return rec


def rnn_joint_loss():
    """rnn_two_outputs with one loss over both outputs: L = CE(o, y) + MSE(p, z)."""
    rec = uf.Recurrence("rnn")
    x, y, z = rec.sequence("x", (NI,)), rec.target("y", ()), rec.sequence("z", (NH,))
    h = rec.state("h", (NH,))
    W, U = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI)
    V, P = _p(rec, "V", NO, NH), _p(rec, "P", NH, NH)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    o, p = rec.output("o", V @ h_t), rec.output("p", P @ h_t)
    rec.loss("L", uf.cross_entropy(o, y) + uf.mse(p, z))
    return rec


for _b in (gru_tilde, lstm_state_named_cell, rnn_joint_loss):
    ROUND4.append(_b)
    DISTINCT.append(_b)
ROUND4_GATED += [gru_tilde, lstm_state_named_cell]
DISTINCT_GATED += [gru_tilde, lstm_state_named_cell]
ROUND4_PLAIN.append(rnn_joint_loss)


def rnn_linear_paths():
    """Parameters in sequence with no squashing between: the input through U2 (U1 x) and the
    output through V3 relu(V2 (V1 h)) — three matrices on one path, in order."""
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    W, U1, U2 = _p(rec, "W", NH, NH), _p(rec, "U1", NH, NI), _p(rec, "U2", NH, NH)
    V1, V2, V3 = _p(rec, "V1", NH, NH), _p(rec, "V2", NH, NH), _p(rec, "V3", NO, NH)
    h_t = rec.update(h, uf.tanh(W @ h + U2 @ (U1 @ x)))
    o = rec.output("o", V3 @ uf.relu(V2 @ (V1 @ h_t)))
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def lstm_reshaped():
    """One GEMM over [x; h], the pre-activation reshaped to 4 × n_h and its rows taken as the
    gates (pre[0] … pre[3]) — indexing, not slicing."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    Mx, b = _p(rec, "M", 4 * NH, NI + NH), _p(rec, "b", 4 * NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    pre = uf.reshape(Mx @ uf.concat([x, h]) + b, (4, NH))
    f, g, q = uf.sigmoid(pre[0]), uf.sigmoid(pre[1]), uf.sigmoid(pre[2])
    s_t = rec.update(s, f * s + g * uf.sigmoid(pre[3]))
    h_t = rec.update(h, uf.tanh(s_t) * q)
    rec.loss("L", uf.cross_entropy(rec.output("o", c + V @ h_t), y))
    return rec


for _b in (rnn_linear_paths, lstm_reshaped):
    ROUND4.append(_b)
    DISTINCT.append(_b)
DISTINCT_GATED.append(lstm_reshaped)


# ---------------------------------------------------------------- round 5 (session 8)

def lstm_row_vectors():
    """lstm_inline in the row-vector convention: x @ U_k + h @ W_k + b_k (matrices on the
    right, shaped n_in × n_h and n_h × n_h), the read-out h @ V + c."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    P = {k: (_p(rec, "U" + k, NI, NH), _p(rec, "W" + k, NH, NH), _p(rec, "b" + k, NH))
         for k in ("f", "g", "q", "")}
    V, c = _p(rec, "V", NH, NO), _p(rec, "c", NO)
    pre = {k: x @ U + h @ W + b for k, (U, W, b) in P.items()}
    s_t = rec.update(s, uf.sigmoid(pre["f"]) * s + uf.sigmoid(pre["g"]) * uf.sigmoid(pre[""]))
    h_t = rec.update(h, uf.tanh(s_t) * uf.sigmoid(pre["q"]))
    rec.loss("L", uf.cross_entropy(rec.output("o", h_t @ V + c), y))
    return rec


def gru_interpolated():
    """The GRU written as an interpolation, h = h(t-1) + u ⊙ (h~ − h(t-1)) (= (1 − u) h(t-1) +
    u h~: Cho et al.'s sense of the gate), one matrix per gate over [h(t-1); x(t)], the target
    an int64 sequence read only by the loss."""
    rec = uf.Recurrence("gru")
    x, y = rec.sequence("x", (NI,)), rec.sequence("y", (), dtype="int64")
    h = rec.state("h", (NH,))
    Wu, Wr, W = (_p(rec, k, NH, NH + NI) for k in ("Wu", "Wr", "W"))
    bu, br, b = (_p(rec, k, NH) for k in ("bu", "br", "b"))
    V = _p(rec, "V", NO, NH)
    u = uf.sigmoid(Wu @ uf.concat([h, x]) + bu)
    r = uf.sigmoid(Wr @ uf.concat([h, x]) + br)
    cand = uf.tanh(W @ uf.concat([r * h, x]) + b)
    h_t = rec.update(h, h + u * (cand - h))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def lstm_fused_row_major():
    """One fused GEMM in the row-vector convention, [x, h] @ W (n_in + n_h × 4 n_h), no bias,
    sliced by index ranges in PyTorch's order i, f, g, o; the states called "memory" and
    "state" (state = o ⊙ tanh(memory)); the target an int64 sequence."""
    rec = uf.Recurrence("lstm")
    x, y = rec.sequence("x", (NI,)), rec.sequence("y", (), dtype="int64")
    mem, st = rec.state("memory", (NH,)), rec.state("state", (NH,))
    W, V = _p(rec, "W", NI + NH, 4 * NH), _p(rec, "V", NH, NO)
    z = uf.concat([x, st]) @ W
    i, f, o = (uf.sigmoid(z[k * NH:(k + 1) * NH]) for k in (0, 1, 3))
    g = uf.tanh(z[2 * NH:3 * NH])
    m_t = rec.update(mem, f * mem + i * g)
    s_t = rec.update(st, o * uf.tanh(m_t))
    rec.loss("L", uf.cross_entropy(rec.output("o", s_t @ V), y))
    return rec


def lstm_coupled_no_bias():
    """An LSTM with coupled gates written 1 − f, no biases anywhere, gates in a dict built by a
    helper, the input unit tanh."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    V = _p(rec, "V", NO, NH)

    def unit(k, squash=uf.sigmoid):
        return squash(_p(rec, "U" + k, NH, NI) @ x + _p(rec, "W" + k, NH, NH) @ h)
    G = {"f": unit("f"), "q": unit("q"), "": unit("", uf.tanh)}
    s_t = rec.update(s, G["f"] * s + (1 - G["f"]) * G[""])
    h_t = rec.update(h, uf.tanh(s_t) * G["q"])
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def lstm_word_names():
    """The per-gate LSTM with its gates named in words ("forget", "input", "output") and the
    candidate named "candidate", made in a dict comprehension."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    P = {k: _gate_params(rec, t) for k, t in
         (("forget", "f"), ("input", "g"), ("output", "q"), ("candidate", ""))}
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    G = {k: rec.name_node(k, (uf.tanh if k == "candidate" else uf.sigmoid)(b + U @ x + W @ h))
         for k, (U, W, b) in P.items()}
    s_t = rec.update(s, G["forget"] * s + G["input"] * G["candidate"])
    h_t = rec.update(h, uf.tanh(s_t) * G["output"])
    rec.loss("L", uf.cross_entropy(rec.output("o", c + V @ h_t), y))
    return rec


def rnn_softmax_nll():
    """An explicit softmax output p = softmax(V h + c) given to rec.output, the loss its
    negative log-likelihood −log Σ p ⊙ one_hot(y) written by hand; the state called "state",
    the target an int64 sequence."""
    rec = uf.Recurrence("rnn")
    x, y = rec.sequence("x", (NI,)), rec.sequence("y", (), dtype="int64")
    h = rec.state("state", (NH,))
    W, U, b = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "b", NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x + b))
    p = rec.output("p", uf.softmax(V @ h_t + c))
    rec.loss("L", -uf.log(uf.sum(p * uf.one_hot(y, NO))))
    return rec


def indrnn():
    """An IndRNN (Li et al. 2018): a diagonal recurrent weight, h = relu(w ⊙ h(t-1) + U x + b),
    w a vector — each unit its own recurrence."""
    rec = uf.Recurrence("indrnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    w, U, b, V = _p(rec, "w", NH), _p(rec, "U", NH, NI), _p(rec, "b", NH), _p(rec, "V", NO, NH)
    h_t = rec.update(h, uf.relu(w * h + U @ x + b))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def sru():
    """A simple recurrent unit (Lei et al. 2018), user-defined: gates with diagonal recurrent
    weights, f = σ(Wf x + vf ⊙ c(t-1) + bf), r = σ(Wr x + vr ⊙ c(t-1) + br), c = f ⊙ c(t-1) +
    (1 − f) ⊙ (W x), the output h = r ⊙ tanh(c) + (1 − r) ⊙ (P x) (a highway to the input; h
    is not a state)."""
    rec = uf.Recurrence("sru")
    x, y, c = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("c", (NH,))
    Wf, Wr, W, P = (_p(rec, k, NH, NI) for k in ("Wf", "Wr", "W", "P"))
    vf, vr, bf, br = (_p(rec, k, NH) for k in ("vf", "vr", "bf", "br"))
    V = _p(rec, "V", NO, NH)
    f = uf.sigmoid(Wf @ x + vf * c + bf)
    r = uf.sigmoid(Wr @ x + vr * c + br)
    c_t = rec.update(c, f * c + (1 - f) * (W @ x))
    h_t = rec.name_node("h", r * uf.tanh(c_t) + (1 - r) * (P @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def gru_stack_loop(layers=2):
    """A two-layer GRU built in a for loop over a list of states, each layer's update and reset
    gates one σ over a stacked matrix on [h; input] split in two, h = h + u ⊙ (h~ − h)."""
    rec = uf.Recurrence("gru_deep")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())
    states = [rec.state(f"h{i}", (NH,)) for i in range(1, layers + 1)]
    below = x
    for i, h in enumerate(states, 1):
        n = below.shape[0]
        G = _p(rec, f"G{i}", 2 * NH, NH + n)
        W = _p(rec, f"W{i}", NH, NH + n)
        ur = uf.sigmoid(G @ uf.concat([h, below]))
        u, r = ur[:NH], ur[NH:]
        cand = uf.tanh(W @ uf.concat([r * h, below]))
        below = rec.update(h, h + u * (cand - h))
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ below), y))
    return rec


def lstm_two_heads():
    """An LSTM (gates inline, a matrix per gate) with two outputs of its h: classes o → L ← y
    and a regression p → M ← z."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    z = rec.sequence("z", (NH,))
    P = {k: _gate_params(rec, k) for k in ("f", "g", "q", "")}
    V, Q = _p(rec, "V", NO, NH), _p(rec, "Q", NH, NH)
    G = {k: uf.sigmoid(b + U @ x + W @ h) for k, (U, W, b) in P.items()}
    s_t = rec.update(s, G["f"] * s + G["g"] * G[""])
    h_t = rec.update(h, uf.tanh(s_t) * G["q"])
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    rec.loss("M", uf.mse(rec.output("p", Q @ h_t), z))
    return rec


def birnn_concat_out():
    """Fig. 10.11 with the read-out one matrix over the concatenated directions, o = V [h; g]
    (V n_out × 2 n_h), the backward state declared first."""
    rec = uf.Recurrence("birnn")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())
    g = rec.state("g", (NH,), backward=True)
    h = rec.state("h", (NH,))
    W, U = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI)
    Wg, Ug = _p(rec, "Wg", NH, NH), _p(rec, "Ug", NH, NI)
    V = _p(rec, "V", NO, 2 * NH)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    g_t = rec.update(g, uf.tanh(Wg @ g + Ug @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ uf.concat([h_t, g_t])), y))
    return rec


def lstm_last_step():
    """A sequence classifier: an LSTM whose gates come from one fused matmul unpacked by a
    helper returning a tuple (i, f, o, g), the loss at the last step only, the target an int64
    sequence."""
    rec = uf.Recurrence("lstm")
    x, y = rec.sequence("x", (NI,)), rec.sequence("y", (), dtype="int64")
    s, h = rec.state("s", (NH,)), rec.state("h", (NH,))
    Wx, Wh, b = _p(rec, "Wx", 4 * NH, NI), _p(rec, "Wh", 4 * NH, NH), _p(rec, "b", 4 * NH)
    V = _p(rec, "V", NO, NH)

    def gates(a):
        return tuple(uf.sigmoid(a[k * NH:(k + 1) * NH]) for k in range(3)) + \
            (uf.tanh(a[3 * NH:]),)
    i, f, o, g = gates(Wx @ x + Wh @ h + b)
    s_t = rec.update(s, f * s + i * g)
    h_t = rec.update(h, o * uf.tanh(s_t))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y), steps="last")
    return rec


ROUND5_GATED = [lstm_row_vectors, gru_interpolated, lstm_fused_row_major, lstm_coupled_no_bias,
                lstm_word_names, sru, gru_stack_loop, lstm_two_heads, lstm_last_step]
ROUND5_PLAIN = [rnn_softmax_nll, indrnn, birnn_concat_out]
ROUND5 = [*ROUND5_GATED, *ROUND5_PLAIN]
ROUND5_SAME_AS_INLINE = [lstm_row_vectors]          # must draw exactly as lstm_inline
# (and, in the book views, coupled_no_bias exactly as lstm_coupled, softmax_nll as rnn_readme)
DRAWN_AS_A_REFERENCE |= {*ROUND5_SAME_AS_INLINE, lstm_coupled_no_bias, rnn_softmax_nll}
_CHECKED_ELSEWHERE = {gru_stack_loop}      # gru_two_layers' named structure; its own tests (52, 53, 58)
DISTINCT += [b for b in ROUND5 if b not in DRAWN_AS_A_REFERENCE | _CHECKED_ELSEWHERE]
DISTINCT_GATED += [b for b in ROUND5_GATED if b not in DRAWN_AS_A_REFERENCE | _CHECKED_ELSEWHERE]


# ---------------------------------------------------------------- round 5, more (session 8)


def bilstm_loop():
    """A bidirectional LSTM by hand: one helper called per direction in a loop, gates inline,
    the read-out one matrix over [h_fwd; h_bwd]."""
    rec = uf.Recurrence("bilstm")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())
    outs = []
    for tag, back in (("f", False), ("b", True)):
        s, h = rec.state("s" + tag, (NH,), backward=back), rec.state("h" + tag, (NH,), backward=back)
        P = {k: _gate_params(rec, k + tag) for k in ("f", "g", "q", "")}
        G = {k: (uf.tanh if k == "" else uf.sigmoid)(b + U @ x + W @ h) for k, (U, W, b) in P.items()}
        s_t = rec.update(s, G["f"] * s + G["g"] * G[""])
        outs.append(rec.update(h, uf.tanh(s_t) * G["q"]))
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, 2 * NH) @ uf.concat(outs)), y))
    return rec


def residual_rnn():
    """h = h(t-1) + tanh(W h(t-1) + U x): a residual recurrence, no gate."""
    rec = uf.Recurrence("resrnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    W, U, V = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    h_t = rec.update(h, h + uf.tanh(W @ h + U @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def lstm_packed_state():
    """The LSTM with one packed state hc = [h; c] (as Keras' old state_is_tuple=False), sliced."""
    rec = uf.Recurrence("lstm")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())
    hc = rec.state("hc", (2 * NH,))
    h, c = hc[:NH], hc[NH:]
    P = {k: _gate_params(rec, k) for k in ("f", "g", "q", "")}
    G = {k: (uf.tanh if k == "" else uf.sigmoid)(b + U @ x + W @ h) for k, (U, W, b) in P.items()}
    c_t = G["f"] * c + G["g"] * G[""]
    h_t = uf.tanh(c_t) * G["q"]
    rec.update(hc, uf.concat([h_t, c_t]))
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ h_t), y))
    return rec


def gru_deep_candidate():
    """A GRU whose candidate goes through a two-layer MLP: h~ = tanh(W2 tanh(W1 (r h) + U x))."""
    rec = uf.Recurrence("gru")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    Uu, Wu, bu = _gate_params(rec, "u")
    Ur, Wr, br = _gate_params(rec, "r")
    W1, W2, U = _p(rec, "W1", NH, NH), _p(rec, "W2", NH, NH), _p(rec, "U", NH, NI)
    V = _p(rec, "V", NO, NH)
    u = uf.sigmoid(bu + Uu @ x + Wu @ h)
    r = uf.sigmoid(br + Ur @ x + Wr @ h)
    cand = uf.tanh(W2 @ uf.tanh(W1 @ (r * h) + U @ x))
    h_t = rec.update(h, u * h + (1 - u) * cand)
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def lstm_output_from_cell():
    """An LSTM whose read-out takes the cell s as well as h: o = V h + Vs s."""
    rec = uf.Recurrence("lstm")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())
    s, h = rec.state("s", (NH,)), rec.state("h", (NH,))
    P = {k: _gate_params(rec, k) for k in ("f", "g", "q", "")}
    G = {k: (uf.tanh if k == "" else uf.sigmoid)(b + U @ x + W @ h) for k, (U, W, b) in P.items()}
    s_t = rec.update(s, G["f"] * s + G["g"] * G[""])
    h_t = rec.update(h, uf.tanh(s_t) * G["q"])
    o = rec.output("o", _p(rec, "V", NO, NH) @ h_t + _p(rec, "Vs", NO, NH) @ s_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def gru_skip_gate():
    """A GRU whose update gate also reads h(t-2) (rec.past(h, 2)) through Wd."""
    rec = uf.Recurrence("gru")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    Uu, Wu, bu = _gate_params(rec, "u")
    Ur, Wr, br = _gate_params(rec, "r")
    U, W, b = _gate_params(rec, "")
    Wd, V = _p(rec, "Wd", NH, NH), _p(rec, "V", NO, NH)
    u = uf.sigmoid(bu + Uu @ x + Wu @ h + Wd @ rec.past(h, 2))
    r = uf.sigmoid(br + Ur @ x + Wr @ h)
    h_t = rec.update(h, u * h + (1 - u) * uf.tanh(b + U @ x + W @ (r * h)))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


ROUND5_MORE = [bilstm_loop, residual_rnn, lstm_packed_state, gru_deep_candidate, lstm_output_from_cell,
               gru_skip_gate]


def gru_context(fed_back: bool = True):
    """Fig. 10.9 with a GRU: a context vector c (rec.context) read by both gates and the
    candidate through R_u, R_r, R; the previous target y(t-1) fed back as one_hot — or, with
    ``fed_back=False``, an ordinary input sequence x in its place (the cell a fed-back target
    must draw as: finding 65)."""
    rec = uf.Recurrence("ctxgru")
    c = rec.context("c", (NI,))
    y = rec.sequence("y", (), dtype="int64")
    yp = rec.state("y_prev", (NO,)) if fed_back else rec.sequence("x", (NO,))
    h = rec.state("h", (NH,))
    P = {k: (_p(rec, "R" + k, NH, NI), _p(rec, "W" + k, NH, NH), _p(rec, "U" + k, NH, NO))
         for k in ("u", "r", "")}
    V = _p(rec, "V", NO, NH)
    u = uf.sigmoid(P["u"][0] @ c + P["u"][1] @ h + P["u"][2] @ yp)
    r = uf.sigmoid(P["r"][0] @ c + P["r"][1] @ h + P["r"][2] @ yp)
    cand = uf.tanh(P[""][0] @ c + P[""][1] @ (r * h) + P[""][2] @ yp)
    h_t = rec.update(h, u * h + (1 - u) * cand)
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    if fed_back:
        rec.update(yp, uf.one_hot(y, NO))
    return rec


def gru_context_input():
    """gru_context with an input sequence x in y(t-1)'s place."""
    return gru_context(fed_back=False)


def lstm_teacher_forcing(fed_back=True):
    """Fig. 10.6 train time with an LSTM: y(t-1) (real-valued) into every gate through R_k
    (``fed_back=False``: an input sequence z in its place)."""
    rec = uf.Recurrence("lstm_tf")
    x, y = rec.sequence("x", (NI,)), rec.sequence("y", (NO,))
    yp = rec.state("y_prev", (NO,)) if fed_back else rec.sequence("z", (NO,))
    s, h = rec.state("s", (NH,)), rec.state("h", (NH,))
    G = {}
    for k in ("f", "g", "q", ""):
        pre = _p(rec, "U" + k, NH, NI) @ x + _p(rec, "W" + k, NH, NH) @ h + _p(rec, "R" + k, NH, NO) @ yp
        G[k] = (uf.tanh if k == "" else uf.sigmoid)(pre)
    s_t = rec.update(s, G["f"] * s + G["g"] * G[""])
    h_t = rec.update(h, uf.tanh(s_t) * G["q"])
    rec.loss("L", uf.mse(rec.output("o", _p(rec, "V", NO, NH) @ h_t), y))
    if fed_back:
        rec.update(yp, y)
    return rec


def lstm_teacher_forcing_input():
    """lstm_teacher_forcing with an input sequence z in y(t-1)'s place."""
    return lstm_teacher_forcing(fed_back=False)


def mgu_named():
    """The minimal gated unit (mgu) with its one gate given to rec.name_node("f", …)."""
    rec = uf.Recurrence("gru")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    Uf, Wf, bf = _gate_params(rec, "f")
    U, W, b = _gate_params(rec, "")
    V = _p(rec, "V", NO, NH)
    f = rec.name_node("f", uf.sigmoid(bf + Uf @ x + Wf @ h))
    h_t = rec.update(h, (1 - f) * h + f * uf.tanh(b + U @ x + W @ (f * h)))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


ROUND5_MORE += [gru_context, lstm_teacher_forcing, mgu_named]


def lstm_einsum_gates():
    """The four gates as one 3-d weight (4, n_h, n_in) applied with einsum("gij,j->gi"), then
    rows indexed; h and s named "hidden" and "cell_state"."""
    rec = uf.Recurrence("lstm")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())
    s, h = rec.state("cell_state", (NH,)), rec.state("hidden", (NH,))
    Wx, Wh, b = _p(rec, "Wx", 4, NH, NI), _p(rec, "Wh", 4, NH, NH), _p(rec, "b", 4, NH)
    z = uf.einsum("gij,j->gi", Wx, x) + uf.einsum("gij,j->gi", Wh, h) + b
    f, i, o = uf.sigmoid(z[0]), uf.sigmoid(z[1]), uf.sigmoid(z[2])
    s_t = rec.update(s, f * s + i * uf.tanh(z[3]))
    h_t = rec.update(h, o * uf.tanh(s_t))
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ h_t), y))
    return rec


ROUND5_MORE.append(lstm_einsum_gates)


# ---------------------------------------------------------------- round 6 (session 10)
# Styles rounds 1-5 did not try: states of different sizes (one reading the other's past, an
# LSTM with a projection), gates that read only the input or only the state, a product of two
# parameter paths, a parameter expression (W − Wᵀ) on the recurrent path, a hand-written layer
# norm, an output through two named values, a learned initial state, a mask sequence on h(t−1),
# targets declared as a context / a float rec.target / a one-hot sequence, a GRU with the reset
# after the matmul and its values named.

NC = 5          # a second, larger state size


def lstm_projection():
    """An LSTM with a recurrent projection (LSTMP, Sak et al. 2014): the cell c has NC = 5
    units, the state the gates read is r = P (q ⊙ tanh(c)) with 2 — two states of different
    sizes; the gates named i, f, o in PyTorch's letters."""
    rec = uf.Recurrence("lstmp")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())
    c, r = rec.state("c", (NC,)), rec.state("r", (NH,))
    G = {k: rec.name_node(k, uf.sigmoid(_p(rec, "W" + k, NC, NI) @ x + _p(rec, "R" + k, NC, NH) @ r
                                        + _p(rec, "b" + k, NC))) for k in "ifo"}
    cand = uf.tanh(_p(rec, "Wg", NC, NI) @ x + _p(rec, "Rg", NC, NH) @ r)
    c_t = rec.update(c, G["f"] * c + G["i"] * cand)
    r_t = rec.update(r, _p(rec, "P", NH, NC) @ (G["o"] * uf.tanh(c_t)))
    rec.loss("L", uf.cross_entropy(rec.output("logits", _p(rec, "V", NO, NH) @ r_t), y))
    return rec


def rnn_coupled_sizes():
    """Two coupled states of different sizes, neither stacked on the other: a fast h (2 units)
    reading x and the slow m(t−1) (5 units), and m reading h(t−1) (each the other's past)."""
    rec = uf.Recurrence("coupled")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())
    h, m = rec.state("h", (NH,)), rec.state("m", (NC,))
    W, U, C = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "C", NH, NC)
    A, B = _p(rec, "A", NC, NC), _p(rec, "B", NC, NH)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x + C @ m))
    rec.update(m, uf.tanh(A @ m + B @ h))
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ h_t), y))
    return rec


def qrnn(named: bool = True):
    """A QRNN's f-o-pooling (Bradbury et al. 2017) with window 1: the gates and the candidate
    read only x(t), never the state; c = f ⊙ c(t−1) + (1 − f) ⊙ z, h = o ⊙ c (h named, not a
    state; with ``named=False`` the product read out unnamed)."""
    rec = uf.Recurrence("qrnn")
    x, y, c = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("c", (NH,))
    Wz, Wf, Wo = (_p(rec, k, NH, NI) for k in ("Wz", "Wf", "Wo"))
    z, f, o = uf.tanh(Wz @ x), uf.sigmoid(Wf @ x), uf.sigmoid(Wo @ x)
    c_t = rec.update(c, f * c + (1 - f) * z)
    h = rec.name_node("h", o * c_t) if named else o * c_t
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ h), y))
    return rec


def mgu2():
    """MGU2 (Heck & Salem 2017): the one forget gate reads only the state, f = σ(Wf h(t−1)),
    no bias; h = (1 − f) ⊙ h(t−1) + f ⊙ tanh(W (f ⊙ h(t−1)) + U x)."""
    rec = uf.Recurrence("mgu2")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    Wf, W, U = _p(rec, "Wf", NH, NH), _p(rec, "W", NH, NH), _p(rec, "U", NH, NI)
    f = uf.sigmoid(Wf @ h)
    h_t = rec.update(h, (1 - f) * h + f * uf.tanh(W @ (f * h) + U @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ h_t), y))
    return rec


def mrnn():
    """A multiplicative RNN (Sutskever et al. 2011): m = (Wmx x) ⊙ (Wmh h(t−1)), h = tanh(Whm m
    + Whx x) — the recurrent path through a product of two parameter paths, no gate."""
    rec = uf.Recurrence("mrnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    Wmx, Wmh = _p(rec, "Wmx", NC, NI), _p(rec, "Wmh", NC, NH)
    Whm, Whx = _p(rec, "Whm", NH, NC), _p(rec, "Whx", NH, NI)
    m = (Wmx @ x) * (Wmh @ h)
    h_t = rec.update(h, uf.tanh(Whm @ m + Whx @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ h_t), y))
    return rec


def antisymmetric_rnn():
    """An AntisymmetricRNN (Chang et al. 2019): h = h(t−1) + ε tanh((W − Wᵀ − γ I) h(t−1) + U x
    + b) — the recurrent matrix an expression of the parameter W, ε and γ numbers."""
    rec = uf.Recurrence("asym")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    W, U, b = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "b", NH)
    A = W - uf.transpose(W) - 0.1 * np.eye(NH)
    h_t = rec.update(h, h + 0.5 * uf.tanh(A @ h + U @ x + b))
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ h_t), y))
    return rec


def rnn_layer_norm():
    """A layer-normalised RNN by hand: a = W h + U x, h = tanh(γ ⊙ (a − mean a) / √(var a + ε)
    + β) — uf.mean, uf.var, uf.sqrt and a division on the path into h."""
    rec = uf.Recurrence("lnrnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    W, U = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI)
    gamma, beta = _p(rec, "gamma", NH), _p(rec, "beta", NH)
    a = W @ h + U @ x
    normed = (a - uf.mean(a)) / uf.sqrt(uf.var(a) + 1e-5)
    h_t = rec.update(h, uf.tanh(gamma * normed + beta))
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ h_t), y))
    return rec


def rnn_named_readout():
    """The output through two named values: a = V1 h + c1, z = relu(a), o = V2 z."""
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    W, U = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI)
    V1, c1, V2 = _p(rec, "V1", NC, NH), _p(rec, "c1", NC), _p(rec, "V2", NO, NC)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    a = rec.name_node("a", V1 @ h_t + c1)
    z = rec.name_node("z", uf.relu(a))
    rec.loss("L", uf.cross_entropy(rec.output("o", V2 @ z), y))
    return rec


def rnn_learned_init():
    """The README's RNN with a learned initial state: rec.state("h", init=h0), h0 a param."""
    rec = uf.Recurrence("rnn")
    h0 = _p(rec, "h0", NH)
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,), init=h0)
    W, U, b = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "b", NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    h_t = rec.update(h, uf.tanh(b + W @ h + U @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", c + V @ h_t), y))
    return rec


def rnn_masked_state():
    """A mask sequence m on the recurrent path (a fixed dropout mask, or zoneout's keep mask
    as data): h = tanh(W (m ⊙ h(t−1)) + U x)."""
    rec = uf.Recurrence("rnn")
    x, m = rec.sequence("x", (NI,)), rec.sequence("m", (NH,))
    y, h = rec.target("y", ()), rec.state("h", (NH,))
    W, U, V = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    h_t = rec.update(h, uf.tanh(W @ (m * h) + U @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


def rnn_target_context():
    """A sequence classifier whose one label is a context (rec.context("y", (), int64)), read
    by a loss at the last step only (Fig. 10.5 with the target given once)."""
    rec = uf.Recurrence("single")
    x, h = rec.sequence("x", (NI,)), rec.state("h", (NH,))
    y = rec.context("y", (), dtype=np.int64)
    W, U, V = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y), steps="last")
    return rec


def rnn_target_float():
    """A regression target declared with rec.target and a float dtype (rec.target's default is
    int64), the squared error uf.mse."""
    rec = uf.Recurrence("rnn")
    x, h = rec.sequence("x", (NI,)), rec.state("h", (NH,))
    y = rec.target("y", (NO,), dtype=np.float64)
    W, U, V = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    rec.loss("L", uf.mse(rec.output("o", V @ h_t), y))
    return rec


def rnn_target_one_hot():
    """Targets given as one-hot rows (a float sequence (NO,)), the cross-entropy by hand,
    −Σ y ⊙ log_softmax(o)."""
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.sequence("y", (NO,)), rec.state("h", (NH,))
    W, U, V = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    rec.loss("L", -uf.sum(y * uf.log_softmax(rec.output("o", V @ h_t))))
    return rec


def gru_reset_after_named():
    """PyTorch's GRU (reset after the recurrent matmul, (W h) ⊙ r operands reversed) with its
    values named as the paper's: z, r and the candidate n; h = z ⊙ h(t−1) + (1 − z) ⊙ n."""
    rec = uf.Recurrence("gru")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    P = {k: (_p(rec, "W" + k, NH, NI), _p(rec, "U" + k, NH, NH), _p(rec, "b" + k, NH)) for k in "zrn"}
    z = rec.name_node("z", uf.sigmoid(P["z"][0] @ x + P["z"][1] @ h + P["z"][2]))
    r = rec.name_node("r", uf.sigmoid(P["r"][0] @ x + P["r"][1] @ h + P["r"][2]))
    n = rec.name_node("n", uf.tanh(P["n"][0] @ x + (P["n"][1] @ h) * r + P["n"][2]))
    h_t = rec.update(h, z * h + (1 - z) * n)
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ h_t), y))
    return rec


def janet():
    """JANET (van der Westhuizen & Lasenby 2018), the forget-gate-only LSTM: one pre-activation
    s_f, c = σ(s_f) ⊙ c(t−1) + (1 − σ(s_f − β)) ⊙ tanh(W c(t−1) + U x), h = c (β = 1): the
    "1 −" of a *shifted* copy of the gate."""
    rec = uf.Recurrence("janet")
    x, y, c = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("c", (NH,))
    Uf, Wf, bf = _gate_params(rec, "f")
    U, W, b = _gate_params(rec, "")
    sf = Uf @ x + Wf @ c + bf
    c_t = rec.update(c, uf.sigmoid(sf) * c + (1 - uf.sigmoid(sf - 1.0)) * uf.tanh(U @ x + W @ c + b))
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ c_t), y))
    return rec


def lstm_peephole_named():
    """Peepholes written s ⊙ p (operands reversed), every gate reading s(t−1) (the output gate
    too, as some codes do), the gates named in words, the input unit tanh."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    G = {}
    for k, word in (("f", "forget"), ("g", "input"), ("q", "output")):
        U, W, b = _gate_params(rec, k)
        G[k] = rec.name_node(word, uf.sigmoid(U @ x + W @ h + s * _p(rec, "P" + k, NH) + b))
    U, W, b = _gate_params(rec, "")
    s_t = rec.update(s, G["f"] * s + G["g"] * uf.tanh(U @ x + W @ h + b))
    h_t = rec.update(h, G["q"] * uf.tanh(s_t))
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ h_t), y))
    return rec


def rnn_update_by_name():
    """The README's RNN with the state given to rec.update by its name and read as
    rec.past("h", 1) (the same node rec.state returned)."""
    rec = uf.Recurrence("rnn")
    x, y = rec.sequence("x", (NI,)), rec.target("y", ())
    rec.state("h", (NH,))
    h = rec.past("h", 1)
    W, U, b = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "b", NH)
    V, c = _p(rec, "V", NO, NH), _p(rec, "c", NO)
    h_t = rec.update("h", uf.tanh(b + W @ h + U @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", c + V @ h_t), y))
    return rec


ROUND6_GATED = [lstm_projection, qrnn, mgu2, gru_reset_after_named, janet, lstm_peephole_named]
ROUND6_PLAIN = [rnn_coupled_sizes, mrnn, antisymmetric_rnn, rnn_layer_norm, rnn_named_readout,
                rnn_learned_init, rnn_masked_state, rnn_target_context, rnn_target_float,
                rnn_target_one_hot]
ROUND6 = [*ROUND6_GATED, *ROUND6_PLAIN, rnn_update_by_name]


def lstm_coupled_named():
    """Coupled gates both named: the input gate i = σ(…) and the forget gate f = 1 − i given
    to rec.name_node as a value of its own (a named value that is no σ)."""
    rec = uf.Recurrence("lstm")
    x, y, s, h = _lstm_decl(rec)
    Ui, Wi, bi = _gate_params(rec, "i")
    Uq, Wq, bq = _gate_params(rec, "q")
    U, W, b = _gate_params(rec, "")
    i = rec.name_node("i", uf.sigmoid(Ui @ x + Wi @ h + bi))
    f = rec.name_node("f", 1 - i)
    s_t = rec.update(s, f * s + i * uf.tanh(U @ x + W @ h + b))
    h_t = rec.update(h, uf.tanh(s_t) * uf.sigmoid(Uq @ x + Wq @ h + bq))
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ h_t), y))
    return rec


ROUND6_GATED.append(lstm_coupled_named)
ROUND6.append(lstm_coupled_named)


def qrnn_h_unnamed():
    """qrnn with its output gate's product o ⊙ c read out unnamed (the control of finding 70)."""
    return qrnn(named=False)


def sru_input_gate():
    """The SRU (round 5's sru) with its highway gate from x alone, r = σ(Wr x) (no vr ⊙ c):
    h = r ⊙ tanh(c) + (1 − r) ⊙ P x named, h no state (finding 70's class)."""
    rec = uf.Recurrence("sru")
    x, y, c = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("c", (NH,))
    Wf, Wr, W, P = (_p(rec, k, NH, NI) for k in ("Wf", "Wr", "W", "P"))
    f = uf.sigmoid(Wf @ x + _p(rec, "vf", NH) * c)
    r = uf.sigmoid(Wr @ x)
    c_t = rec.update(c, f * c + (1 - f) * (W @ x))
    h_t = rec.name_node("h", r * uf.tanh(c_t) + (1 - r) * (P @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", _p(rec, "V", NO, NH) @ h_t), y))
    return rec

def elman_context_units():
    """Elman's (1990) own formulation: context units c that copy the hidden layer, c(t) = h(t),
    and h(t) = tanh(U x(t) + W c(t−1)) — the recurrence through a state that is a copy (h is
    a named value, not a state)."""
    rec = uf.Recurrence("elman")
    x, y, c = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("c", (NH,))
    W, U, V = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI), _p(rec, "V", NO, NH)
    h = rec.name_node("h", uf.tanh(U @ x + W @ c))
    rec.update(c, h)
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h), y))
    return rec


def rnn_output_from_past():
    """The output read from the state *before* the update, o(t) = V h(t−1) + Q x(t) (predict,
    then update), h(t) = tanh(W h(t−1) + U x(t))."""
    rec = uf.Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    W, U = _p(rec, "W", NH, NH), _p(rec, "U", NH, NI)
    V, Q = _p(rec, "V", NO, NH), _p(rec, "Q", NO, NI)
    rec.update(h, uf.tanh(W @ h + U @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h + Q @ x), y))
    return rec

# the round's bookkeeping (tests/test_viz_judge.py, round 6)
ROUND6_PLAIN += [elman_context_units, rnn_output_from_past]
ROUND6 += [elman_context_units, rnn_output_from_past]
ROUND6_SAME_AS_README = [rnn_update_by_name, rnn_learned_init, rnn_target_float,
                         rnn_target_one_hot]                 # draw exactly as rnn_readme
DRAWN_AS_A_REFERENCE |= {*ROUND6_SAME_AS_README, antisymmetric_rnn}   # (antisymmetric: book views)
_CRASHING = {qrnn, sru_input_gate}      # finding 70: viz.unfolded raises; its own test
DISTINCT += [b for b in ROUND6 if b not in DRAWN_AS_A_REFERENCE | _CRASHING | {lstm_coupled_named}]
# (lstm_coupled_named passes every check — round 6 log — and stays out for the file's time)
DISTINCT_GATED += [b for b in ROUND6_GATED if b not in _CRASHING | {lstm_coupled_named}]
