"""The models behind chapter 10's figures, built as live ``unfold.Recurrence`` objects.

Each ``fig_*`` function builds the recurrence a figure shows (sizes are small and arbitrary: the
drawings depend only on the structure); ``FIGURES`` maps a figure id to how it is drawn. Nothing
here is drawn by hand: every picture is the book view of a model that can be unfolded, evaluated
and differentiated.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import graphviz

import unfold as uf
from unfold.recurrence import Recurrence

from . import views

N, M, K = 4, 3, 2          # hidden, input and output sizes


def fig_10_1() -> Recurrence:
    """s(t) = f(s(t−1); θ): a classical dynamical system, no input; the edges are labelled f."""
    rec = Recurrence("10.1 classical dynamical system")
    s = rec.state("s", (N,), init=rec.param("s0", (N,)))
    f = rec.param("f", (N, N))
    rec.update(s, uf.tanh(f @ s))
    return rec


def fig_10_2() -> Recurrence:
    """h(t) = f(h(t−1), x(t)): a state and its input, no output; the loop is labelled f."""
    rec = Recurrence("10.2 dynamical system driven by x")
    x = rec.sequence("x", (N,))
    h = rec.state("h", (N,))
    f = rec.param("f", (N, N))
    rec.update(h, uf.tanh(f @ h + x))
    return rec


def _rnn(rec: Recurrence, x: uf.Node, h: uf.Node, extra: uf.Node | None = None) -> uf.Node:
    """h(t) = tanh(b + W h(t−1) + U x(t) [+ extra]): the hidden unit of Figs. 10.3, 10.5."""
    W, U, b = rec.param("W", (N, N)), rec.param("U", (N, M)), rec.param("b", (N,))
    a = b + W @ h + U @ x
    return rec.update(h, uf.tanh(a if extra is None else a + extra))


def _output_and_loss(rec: Recurrence, h: uf.Node, steps=None) -> None:
    """o(t) = c + V h(t), and L(t) comparing o(t) with the target y(t)."""
    V, c = rec.param("V", (K, N)), rec.param("c", (K,))
    y = rec.target("y", (), dtype="int64")
    o = rec.output("o", c + V @ h)
    rec.loss("L", uf.cross_entropy(o, y), steps=steps)


def fig_10_3() -> Recurrence:
    """The RNN of Fig. 10.3: hidden-to-hidden recurrence W, an output o and a loss at every step."""
    rec = Recurrence("10.3 RNN with hidden-to-hidden recurrence")
    x = rec.sequence("x", (M,))
    h = _rnn(rec, x, rec.state("h", (N,)))
    _output_and_loss(rec, h)
    return rec


def fig_10_4() -> Recurrence:
    """Fig. 10.4: the recurrence goes from the output o(t−1) to the hidden unit h(t)."""
    rec = Recurrence("10.4 RNN with output-to-hidden recurrence")
    x = rec.sequence("x", (M,))
    o_prev = rec.state("o", (K,))
    W, U, b = rec.param("W", (N, K)), rec.param("U", (N, M)), rec.param("b", (N,))
    h = rec.name_node("h", uf.tanh(b + W @ o_prev + U @ x))
    V, c = rec.param("V", (K, N)), rec.param("c", (K,))
    o = rec.update(o_prev, c + V @ h)
    y = rec.target("y", (), dtype="int64")
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def fig_10_5() -> Recurrence:
    """Fig. 10.5: one output, at the end of the sequence."""
    rec = Recurrence("10.5 RNN with a single output at the end")
    x = rec.sequence("x", (M,))
    h = _rnn(rec, x, rec.state("h", (N,)))
    _output_and_loss(rec, h, steps="last")
    return rec


def fig_10_6_train() -> Recurrence:
    """Fig. 10.6, train time (teacher forcing): the target y(t−1) feeds h(t) through W."""
    rec = Recurrence("10.6 teacher forcing, train time")
    x = rec.sequence("x", (M,))
    y = rec.target("y", (K,), dtype="float64")
    y_prev = rec.state("y_prev", (K,))
    rec.update(y_prev, y)                      # drawn as y, one step back
    W, U, b = rec.param("W", (N, K)), rec.param("U", (N, M)), rec.param("b", (N,))
    h = rec.name_node("h", uf.tanh(b + W @ y_prev + U @ x))
    V, c = rec.param("V", (K, N)), rec.param("c", (K,))
    o = rec.output("o", c + V @ h)
    rec.loss("L", uf.mse(o, y))
    return rec


def fig_10_6_test() -> Recurrence:
    """Fig. 10.6, test time: the model's own output o(t−1) feeds h(t) through W."""
    rec = Recurrence("10.6 teacher forcing, test time")
    x = rec.sequence("x", (M,))
    o_prev = rec.state("o", (K,))
    W, U, b = rec.param("W", (N, K)), rec.param("U", (N, M)), rec.param("b", (N,))
    h = rec.name_node("h", uf.tanh(b + W @ o_prev + U @ x))
    V, c = rec.param("V", (K, N)), rec.param("c", (K,))
    rec.update(o_prev, c + V @ h)
    return rec


def fig_10_9() -> Recurrence:
    """Fig. 10.9: a fixed vector x feeds every h(t) through R; y(t) is the target at step t and,
    one step later, an input through U."""
    rec = Recurrence("10.9 fixed-length vector to sequence")
    x = rec.context("x", (M,))
    y = rec.target("y", (K,), dtype="float64")
    y_prev = rec.state("y_prev", (K,))
    rec.update(y_prev, y)
    R, U = rec.param("R", (N, M)), rec.param("U", (N, K))
    h = _rnn_state(rec, R @ x + U @ y_prev)
    V, c = rec.param("V", (K, N)), rec.param("c", (K,))
    o = rec.output("o", c + V @ h)
    rec.loss("L", uf.mse(o, y))
    return rec


def _rnn_state(rec: Recurrence, drive: uf.Node) -> uf.Node:
    """h(t) = tanh(b + W h(t−1) + drive): a hidden state whose input is ``drive``."""
    h = rec.state("h", (N,))
    W, b = rec.param("W", (N, N)), rec.param("b", (N,))
    return rec.update(h, uf.tanh(b + W @ h + drive))


def fig_10_10() -> Recurrence:
    """Fig. 10.10: Fig. 10.3 plus the previous target y(t−1) feeding h(t) through R."""
    rec = Recurrence("10.10 conditional sequence to sequence of the same length")
    x = rec.sequence("x", (M,))
    y = rec.target("y", (K,), dtype="float64")
    y_prev = rec.state("y_prev", (K,))
    rec.update(y_prev, y)
    U, R = rec.param("U", (N, M)), rec.param("R", (N, K))
    h = _rnn_state(rec, U @ x + R @ y_prev)
    V, c = rec.param("V", (K, N)), rec.param("c", (K,))
    o = rec.output("o", c + V @ h)
    rec.loss("L", uf.mse(o, y))
    return rec


def fig_10_11() -> Recurrence:
    """Fig. 10.11: a bidirectional RNN, h running forward in time and g backward."""
    rec = Recurrence("10.11 bidirectional RNN")
    x = rec.sequence("x", (M,))
    h = rec.state("h", (N,))
    g = rec.state("g", (N,), backward=True)
    W, U = rec.param("W", (N, N)), rec.param("U", (N, M))
    Wg, Ug = rec.param("W_g", (N, N)), rec.param("U_g", (N, M))
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    g_t = rec.update(g, uf.tanh(Wg @ g + Ug @ x))
    V, Vg = rec.param("V", (K, N)), rec.param("V_g", (K, N))
    o = rec.output("o", V @ h_t + Vg @ g_t)
    y = rec.target("y", (), dtype="int64")
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def fig_10_16() -> Recurrence:
    """Fig. 10.16: the LSTM cell (eqs. 10.40–10.44) with its gates named: forget gate f, input
    gate g, output gate q, the input unit i, the state s with its self-loop, the output h."""
    rec = Recurrence("10.16 LSTM cell")
    x = rec.sequence("x", (M,))
    h = rec.state("h", (N,))
    s = rec.state("s", (N,))

    def unit(name: str, squash: Callable = uf.sigmoid) -> uf.Node:
        U, W, b = (rec.param(f"{p}_{name}", shape) for p, shape in
                   (("U", (N, M)), ("W", (N, N)), ("b", (N,))))
        return rec.name_node(name, squash(b + U @ x + W @ h))

    i, g, f, q = unit("i"), unit("g"), unit("f"), unit("q")
    s_t = rec.update(s, f * s + g * i)
    rec.update(h, uf.tanh(s_t) * q)
    return rec


def fig_10_13a() -> Recurrence:
    """Fig. 10.13 (a): a deep RNN whose hidden state is a hierarchy of two recurrent layers."""
    rec = Recurrence("10.13a hierarchical hidden state")
    x = rec.sequence("x", (M,))
    h, z = rec.state("h", (N,)), rec.state("z", (N,))
    W, U = rec.param("W", (N, N)), rec.param("U", (N, M))
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    Wz, R = rec.param("W_z", (N, N)), rec.param("R", (N, N))
    z_t = rec.update(z, uf.tanh(Wz @ z + R @ h_t))
    rec.output("y", rec.param("V", (K, N)) @ z_t)
    return rec


def _deep_transition(name: str, skip: bool) -> Recurrence:
    """Figs. 10.13 (b), (c): a layer z inside the hidden-to-hidden transition, and (c) a skip
    connection h(t−1) → h(t) around it."""
    rec = Recurrence(name)
    x = rec.sequence("x", (M,))
    h = rec.state("h", (N,))
    W, U, R = rec.param("W", (N, N)), rec.param("U", (N, M)), rec.param("R", (N, N))
    z = rec.name_node("z", uf.tanh(W @ h + U @ x))
    a = R @ z
    h_t = rec.update(h, uf.tanh(a + rec.param("S", (N, N)) @ h if skip else a))
    rec.output("y", rec.param("V", (K, N)) @ h_t)
    return rec


def fig_10_13b() -> Recurrence:
    return _deep_transition("10.13b deep transition", skip=False)


def fig_10_13c() -> Recurrence:
    return _deep_transition("10.13c deep transition with a skip connection", skip=True)


@dataclass(frozen=True)
class Figure:
    """A gallery entry: the book's figure id, its caption, and how it is drawn."""

    id: str
    caption: str
    draw: Callable[[], graphviz.Digraph]


_TRIPLET = ("...", "t-1", "t", "t+1", "...")

FIGURES: dict[str, Figure] = {f.id: f for f in [
    Figure("10.1", "A classical dynamical system s(t) = f(s(t−1)), unfolded",
           lambda: views.unfolded(fig_10_1())),
    Figure("10.2", "A recurrent network with no outputs, folded and unfolded",
           lambda: views.unfolding(fig_10_2())),
    Figure("10.3", "RNN with hidden-to-hidden recurrence, an output and a loss at each step",
           lambda: views.unfolding(fig_10_3())),
    Figure("10.4", "RNN whose only recurrence is from the output to the hidden layer",
           lambda: views.unfolding(fig_10_4())),
    Figure("10.5", "RNN with a single output at the end of the sequence",
           lambda: views.unfolded(fig_10_5(), window=("...", "t-1", "t", "...", "τ"))),
    Figure("10.6", "Teacher forcing: at train time the target y(t−1) feeds h(t), at test time "
           "the model's own output o(t−1) does",
           lambda: views.side_by_side("10.6 teacher forcing", [
               ("Train time", fig_10_6_train(), {"window": ("t-1", "t")}),
               ("Test time", fig_10_6_test(), {"window": ("t-1", "t")})])),
    Figure("10.6-train", "Teacher forcing, train time",
           lambda: views.unfolded(fig_10_6_train(), window=("t-1", "t"))),
    Figure("10.6-test", "Teacher forcing, test time",
           lambda: views.unfolded(fig_10_6_test(), window=("t-1", "t"))),
    Figure("10.9", "A fixed-length vector x mapped to a distribution over sequences",
           lambda: views.unfolded(fig_10_9(), window=_TRIPLET)),
    Figure("10.10", "A conditional RNN from a sequence x to a sequence y of the same length",
           lambda: views.unfolded(fig_10_10(), window=_TRIPLET)),
    Figure("10.11", "A bidirectional RNN",
           lambda: views.unfolded(fig_10_11(), window=("t-1", "t", "t+1"))),
    Figure("10.13a", "A deep RNN: the hidden state as a hierarchy of recurrent layers h, z",
           lambda: views.folded(fig_10_13a())),
    Figure("10.13b", "A deep RNN: a layer z inside the hidden-to-hidden transition",
           lambda: views.folded(fig_10_13b())),
    Figure("10.13c", "A deep transition with a skip connection (S) around it",
           lambda: views.folded(fig_10_13c())),
    Figure("10.16", "The LSTM cell, with its gates named",
           lambda: views.folded(fig_10_16(), params=False)),
]}


#: figures whose model cannot be built yet, and why
ABSENT = {
    "10.12": "the encoder-decoder chains two recurrences of different lengths through a "
             "context C; a Recurrence is one step function, and drawing two at once waits for "
             "a model that composes them",
    "10.14": "a recursive network is a tree, not a sequence: unfold.Recurrence has no tree "
             "structure to unfold",
}


def figure(id: str) -> graphviz.Digraph:
    """The drawing of the book's figure ``id`` ("10.3", "10.6-train", …), from its live model."""
    try:
        return FIGURES[id].draw()
    except KeyError:
        raise KeyError(f"no figure {id!r} in the gallery; available: {sorted(FIGURES)}") from None
