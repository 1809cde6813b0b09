"""The models behind chapter 10's figures, as live ``unfold.Recurrence`` objects.

Where ``unfold.models`` has the network (Figs. 10.3–10.6, 10.9, 10.10, the LSTM cell of 10.16)
the figure is drawn from it; the others are built here. Sizes are small and arbitrary: a drawing
depends only on the structure. ``FIGURES`` maps a figure id to how it is drawn; nothing is drawn
by hand, every picture is a view of a model that can be unfolded, evaluated and differentiated,
and the two plots (10.15, 10.17) are computed by unfold and drawn with matplotlib. ``ABSENT``
lists the figures that cannot be drawn yet, and why; each ``Figure`` says how it differs from
the book's (``differs``), and a few drawings the book does not have stand beside them
(``in_book=False``: the LSTM unfolded, compact and open; the GRU cell; the op view with
back-propagation through time; gradient overlays, alone and compared on one scale).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import graphviz
import numpy as np

import unfold as uf
import unfold.models as models
from unfold.errors import UnfoldKeyError
from unfold.recurrence import Recurrence

from . import views
from .cell_view import cell
from .graphical import graphical_model
from .joined import encoder_decoder
from .memory import memory
from .ops_view import graph
from .tree import tree
from .overlay import gradient_norms

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


def fig_10_13a() -> Recurrence:
    """Fig. 10.13 (a): ``unfold.models.deep_rnn`` stacked, the hidden state a hierarchy of two
    recurrent layers h_1, h_2."""
    return models.deep_rnn(M, [N, N], K)


def fig_10_13b(skip: bool = False) -> Recurrence:
    """Fig. 10.13 (b): an MLP of one hidden layer in each of the three maps — input to hidden
    (``U_1``, then ``U_2``), hidden to hidden (``W_1``, ``W_2``) and hidden to output (``V_1``,
    ``V_2``); the layers unnamed, as the book draws them (each a small point between its two
    matrices). ``skip``: (c)'s skip connection ``S h(t−1)`` around the deep transition."""
    rec = Recurrence("10.13 deep RNN")
    x, h = rec.sequence("x", (M,)), rec.state("h", (N,))
    P = lambda name, rows, cols: rec.param(name, (rows, cols))       # noqa: E731
    into = P("U_2", N, N) @ uf.tanh(P("U_1", N, M) @ x)
    across = P("W_2", N, N) @ uf.tanh(P("W_1", N, N) @ h)
    h_t = rec.update(h, uf.tanh(into + across + (P("S", N, N) @ h if skip else 0.0)))
    o = rec.output("o", P("V_2", K, N) @ uf.tanh(P("V_1", N, N) @ h_t))
    rec.loss("L", uf.cross_entropy(o, rec.target("y", (), dtype="int64")))
    return rec


def fig_10_13c() -> Recurrence:
    """Fig. 10.13 (c): (b) with the skip connection S h(t−1) around the deep transition."""
    return fig_10_13b(skip=True)


def fig_10_7() -> Recurrence:
    """Figs. 10.7, 10.8: an RNN over a sequence y alone, each y(t) fed back into the next step,
    trained by the log-likelihood of its targets: a model P(y(1), …, y(τ)) (section 10.2.3)."""
    rec = Recurrence("10.7 RNN over y")
    y = rec.target("y", ())
    fed = rec.state("y_prev", (K + 1,))
    rec.update(fed, uf.one_hot(y, K + 1))
    h = rec.state("h", (N,))
    h_t = rec.update(h, uf.tanh(rec.param("W", (N, N)) @ h + rec.param("U", (N, K + 1)) @ fed +
                                rec.param("b", (N,))))
    o = rec.output("o", rec.param("V", (K + 1, N)) @ h_t + rec.param("c", (K + 1,)))
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def fig_10_12(n_x: int = 5, n_y: int = 3):
    """Fig. 10.12: ``unfold.models.encoder_decoder`` with plain RNN cells — an encoder reading x,
    whose final state is the context C of a decoder that reads C at every step (and starts from
    it) while emitting y — and its live joined graph, the decoder unfolded over n_y steps with C
    bound to the encoder's h(n_x)."""
    model = models.encoder_decoder(M, N, K, encoder_cell="rnn", decoder_cell="rnn")
    return model, model.unfold(n_x, n_y)


def fig_10_14():
    """Fig. 10.14: ``unfold.models.recursive_net`` with the inputs as the leaves' representations
    (``embed=False``, as the figure draws it), over the balanced tree of four leaves."""
    return models.recursive_net(N, N, K, embed=False)


def fig_10_18() -> Recurrence:
    """Fig. 10.18: ``unfold.models.memory_network``, an RNN task network with six memory cells of
    four numbers, read and written by content-based attention."""
    return models.memory_network(M, N, K, cells=6, width=4)


def fig_10_16() -> Recurrence:
    """Fig. 10.16: the LSTM cell of ``unfold.models`` (eqs. 10.40–10.44), alone: forget gate f,
    external input gate g, output gate q, the state s with its self-loop, the output h."""
    rec = Recurrence("10.16 LSTM cell")
    models.lstm_cell(rec, rec.sequence("x", (M,)), N)
    return rec


def gru_cell() -> Recurrence:
    """The GRU cell of ``unfold.models`` (eqs. 10.45–10.47), alone, as Fig. 10.16 draws the
    LSTM's: update gate u, reset gate r, the candidate, the state h."""
    rec = Recurrence("GRU cell")
    models.gru_cell(rec, rec.sequence("x", (M,)), N)
    return rec


def vanishing_gradients(steps: int = 10, scale: float = 0.5, seed: int = 0) -> graphviz.Digraph:
    """Not a figure of the book: section 10.7 made visible. ``unfold.models.rnn_single_output``
    with random weights (``W`` scaled down by ``scale``), unfolded over ``steps``; each h(t)
    coloured by ‖∂L(τ)/∂h(t)‖, computed by back-propagation through time."""
    rec = models.rnn_single_output(M, N, K)
    rng = np.random.default_rng(seed)
    feed = {"x": rng.standard_normal((steps, M)), "y": rng.integers(0, K, steps)}
    for name, p in rec.params.items():
        feed[name] = rng.standard_normal(p.shape) * (scale if name == "W" else 1.0)
    norms = gradient_norms(rec.unfold(steps), feed)
    return views.unfolded(rec, steps=steps, hide=_NO_A, gradients=norms)


def compared_gradients(steps: int = 50, seed: int = 0) -> graphviz.Digraph:
    """Not a figure of the book: a plain RNN (``rnn_single_output``) and a GRU (``outputs=
    "last"``) over the same ``steps`` inputs, from ``train.init_params``, side by side on one
    colour scale of ``log10 ‖∂L(τ)/∂h(t)‖`` (``views.side_by_side``), the middle steps elided."""
    from unfold.train import init_params
    rng = np.random.default_rng(seed)
    feed = {"x": rng.standard_normal((steps, M)), "y": rng.integers(0, K, steps)}
    panels = []
    for title, rec, hide in (("RNN", models.rnn_single_output(M, N, K), _NO_A),
                             ("GRU", models.gru(M, N, K, outputs="last"), ())):
        norms = gradient_norms(rec.unfold(steps), {**init_params(rec, seed=seed), **feed})
        panels.append((title, rec, {"steps": steps, "max_steps": 6, "gradients": norms,
                                    "hide": hide}))
    with warnings.catch_warnings():          # (each panel says which steps it shows)
        warnings.simplefilter("ignore", views.ElidedStepsWarning)
        return views.side_by_side("vanishing gradients, RNN and GRU", panels)


def bptt(steps: int = 3) -> graphviz.Digraph:
    """Not a figure of the book: section 10.2.2's computational graph, every op of
    ``unfold.models.rnn`` unfolded over ``steps`` with its dummy copies ``W(t)``, and beside it
    the gradient graph of every parameter (``viz.graph(..., backward=...)``)."""
    rec = models.rnn(M, N, K)
    net = rec.unfold(steps)
    params = list(rec.params.values())
    return graph(net.loss, backward=dict(zip(params, uf.grad(net.loss, params))))


@dataclass(frozen=True)
class Figure:
    """A gallery entry: the book's figure id, its caption, how it is drawn (``kind``:
    ``"drawing"``, a graphviz Digraph, or ``"plot"``, a matplotlib figure), and ``differs``:
    what a reader holding the book would find drawn otherwise, or not at all ("" if nothing);
    ``in_book=False``: a drawing the book does not have."""

    id: str
    caption: str
    draw: Callable[[], Any]
    kind: str = "drawing"
    differs: str = ""
    in_book: bool = True


def _fig_10_12() -> graphviz.Digraph:
    model, _ = fig_10_12()                           # (the joined graph builds as drawn)
    return encoder_decoder(model.encoder, model.decoder, hide=_NO_A)


def _plot(name: str) -> Callable[[], Any]:
    def draw():
        from . import plots
        return getattr(plots, name)()
    return draw


LSTM_WORDS = {"f": "forget gate", "g": "input gate", "q": "output gate",
              "s": "state", "h": "output"}
GRU_WORDS = {"u": "update gate", "r": "reset gate", "h": "state"}


_TRIPLET = ("...", "t-1", "t", "t+1", "...")
_PAIR = ("t-1", "t")
#: eq. 10.8's pre-activation a(t), which the models name and the figures do not draw
_NO_A = ("a",)

FIGURES: dict[str, Figure] = {f.id: f for f in [
    Figure("10.1", "A classical dynamical system s(t) = f(s(t−1)), unfolded",
           lambda: views.unfolded(fig_10_1())),
    Figure("10.2", "A recurrent network with no outputs, folded and unfolded",
           lambda: views.unfolding(fig_10_2())),
    Figure("10.3", "RNN with hidden-to-hidden recurrence, an output and a loss at each step "
           "(unfold.models.rnn)",
           lambda: views.unfolding(models.rnn(M, N, K), hide=_NO_A)),
    Figure("10.4", "RNN whose only recurrence is from the output to the hidden layer "
           "(unfold.models.output_to_hidden): o(t−1) enters h(t) through W",
           lambda: views.unfolding(models.output_to_hidden(M, N, K)),
           differs="the book ends the chain with h(…) ellipses; here the ellipses are o(…), the "
           "value carried from step to step (only what crosses a step is drawn as an ellipsis)"),
    Figure("10.5", "RNN with a single output at the end of the sequence "
           "(unfold.models.rnn_single_output)",
           lambda: views.unfolded(models.rnn_single_output(M, N, K), hide=_NO_A,
                                  window=("...", "t-1", "t", "...", "τ"))),
    Figure("10.6", "Teacher forcing: at train time the target y(t−1) feeds h(t), at test time "
           "the model's own output o(t−1) does (unfold.models.teacher_forcing, modes train and "
           "free; the loss is not drawn at test time)",
           lambda: views.side_by_side("10.6 teacher forcing", [
               ("Train time", models.teacher_forcing(M, N, K, mode="train"), {"window": _PAIR}),
               ("Test time", models.teacher_forcing(M, N, K, mode="free"),
                {"window": _PAIR, "hide": ("L",)})])),
    Figure("10.7", "A recurrent network over y seen as a directed graphical model: with the "
           "hidden states contracted, every past y(i) may influence y(t) — fully connected "
           "(derived from the unfolded graph of an RNN whose y(t−1) feeds h(t))",
           lambda: graphical_model(fig_10_7(), steps=4),
           differs="four steps and y(…) for the rest; the arcs that skip steps all run under the "
           "row, where some cross each other"),
    Figure("10.8", "The same model with its (deterministic) hidden states: each h(t) depends on "
           "h(t−1) and y(t−1), each y(t) on h(t) — the same few parents at every step",
           lambda: graphical_model(fig_10_7(), steps=4, states=True)),
    Figure("10.9", "A fixed-length vector x mapped to a distribution over sequences "
           "(unfold.models.context_rnn)",
           lambda: views.unfolded(models.context_rnn(M, N, K), hide=_NO_A, window=_TRIPLET)),
    Figure("10.10", "A conditional RNN from a sequence x to a sequence y of the same length "
           "(unfold.models.conditional_rnn)",
           lambda: views.unfolded(models.conditional_rnn(M, N, K), hide=_NO_A,
                                  window=_TRIPLET)),
    Figure("10.11", "A bidirectional RNN: h runs forward in time, g backward",
           lambda: views.unfolded(fig_10_11(), window=("t-1", "t", "t+1")),
           differs="the edges x(t) → g(t) and h(t) → o(t) bend round the states of the row "
           "they cross, their labels beside their tails"),
    Figure("10.12", "An encoder–decoder (unfold.models.encoder_decoder): the encoder reads "
           "x(1)…x(n_x), its final state is the context C, which the decoder reads at every step "
           "while emitting y(1)…y(n_y) from the previous symbols y_prev (two recurrences joined "
           "by Recurrence.unfold(bind=…))", _fig_10_12,
           differs="the decoder's previous outputs are drawn, as its input row y_prev; both "
           "y_prev and C enter h(t) through the decoder's one stacked matrix U (hence U on the "
           "edges from C); the middle steps of both halves are the ellipsis column (…)"),
    Figure("10.13a", "A deep RNN (unfold.models.deep_rnn): the hidden state as a hierarchy of "
           "recurrent layers h_1, h_2",
           lambda: views.folded(fig_10_13a(), hide=("a_1", "a_2"))),
    Figure("10.13b", "A deep RNN with an MLP in the input-to-hidden (U_1, U_2), "
           "hidden-to-hidden (W_1, W_2) and hidden-to-output (V_1, V_2) maps, its hidden "
           "layers the small points between the two matrices of each",
           lambda: views.folded(fig_10_13b())),
    Figure("10.13c", "The deep RNN of (b) with a skip connection S around its deep transition",
           lambda: views.folded(fig_10_13c())),
    Figure("10.14", "A recursive network (unfold.models.recursive_net) unfolded over a balanced "
           "tree of four leaves: the same U (left child) and W (right child) at every inner "
           "node, V to the output o, the loss L against y",
           lambda: tree(fig_10_14(), 4),
           differs="the inner nodes are named by their tree position, h(5), h(6), h(7) (the "
           "leaves are 1–4); the leaves are the inputs themselves (recursive_net(embed=False))"),
    Figure("10.15", "Repeated composition of a tanh layer h(t) = tanh(W h(t−1)) (100 units): "
           "a linear projection of h(t) against the initial state's coordinate along a random "
           "direction, after 0…5 compositions (computed by unfold, drawn with matplotlib)",
           _plot("composition"), kind="plot",
           differs="the curves are unfold's for one random W (seed 0): their kind, not their "
           "exact values, is the book's"),
    Figure("10.16", "The LSTM cell (unfold.models.lstm_cell): input, input gate, forget gate and "
           "output gate as sigmoid units, the state with its self-loop through the delay square "
           "and the forget gate's ×, the gating × nodes, the output; h(t−1) enters as an input",
           lambda: cell(fig_10_16(), names=LSTM_WORDS),
           differs="h(t−1) is drawn as an input node beside x"),
    Figure("10.16u", "Not in the book: the LSTM network (unfold.models.lstm) unfolded over "
           "three steps: one cell per step, only the states s and h crossing from step to step. "
           "Each rounded box is one step's cell, the values inside it named under its name: g "
           "the input gate, f the forget gate, q the output gate (the book's letters; "
           "viz.unfolded(…, cells=\"open\") draws them); the gates' matrices are not written on "
           "the edges into a cell",
           lambda: views.unfolded(models.lstm(M, N, K), steps=3), in_book=False),
    Figure("10.16o", "Not in the book: the LSTM network of 10.16u with its cells open "
           "(viz.unfolded(…, cells=\"open\")): in each step's dashed box the input gate g, the "
           "forget gate f, the output gate q, the state s and the output h; x(t) and h(t−1) "
           "meet at a small point, the book's concatenation [x(t); h(t−1)], whose edges to "
           "the gates and the state carry both of their matrices (U_f, W_f); the states s and "
           "h cross from step to step",
           lambda: views.unfolded(models.lstm(M, N, K), steps=3, cells="open"), in_book=False),
    Figure("10.16g", "Not in the book: the GRU cell of section 10.10.2 (unfold.models.gru_cell, "
           "eqs. 10.45–10.47) drawn as Fig. 10.16 draws the LSTM's: update gate u and reset "
           "gate r as sigmoid units, the input (the candidate state, read through r × h(t−1)), "
           "the state h = u h(t−1) + (1 − u) × input, its 1 − u marked on the product it "
           "belongs to",
           lambda: cell(gru_cell(), names=GRU_WORDS), in_book=False),
    Figure("10.17", "The gradient cliff of a recurrent network with two parameters: gradient "
           "descent thrown far by the cliff without clipping, moderate with the gradient's norm "
           "clipped (computed by unfold, drawn with matplotlib)", _plot("cliff"), kind="plot",
           differs="the book draws the loss as a 3-D surface over (w, b); here it is a 2-D map of "
           "log10 of the loss with the two descents on it"),
    Figure("10.18", "A memory network (unfold.models.memory_network): the recurrent task network "
           "at the bottom, a row of memory cells on top; writing (where: key k, sharpness β, "
           "weights w; what: erase e, add a) and reading (k, β, w and the vector read r) drawn "
           "as thick arrows, r entering the next step through the delay square beside h (x(t) and "
           "r(t−1) are read through one stacked matrix U, hence U on both edges into h)",
           lambda: memory(fig_10_18(), hide=_NO_A),
           differs="the task network, a box in the book, is drawn with its units (x, h, o, L, "
           "y) folded, its loops through delay squares; the reading and writing mechanisms are "
           "nodes naming what they compute; the dashed arrow is the write head reading M, to "
           "address it by content"),
    Figure("bptt", "Not in the book: the computational graph of section 10.2.2 — the RNN of "
           "Fig. 10.3 (unfold.models.rnn) unfolded over three steps, every op drawn "
           "(viz.graph), each step's dummy copies W(t), U(t), V(t), b(t), c(t) dashed in its "
           "column, the shared parameters once in a row; beside it, in red, back-propagation "
           "through time: from the seed ∇L = 1, ∇o(t), ∇h(t), ∇a(t), each step's ∇W(t) and the "
           "sums ∇W = Σ_t ∇W(t)", bptt, in_book=False),
    Figure("gradients", "Not in the book: vanishing gradients (section 10.7) seen along the time "
           "axis, each h(t) coloured by log10 ‖∂L(τ)/∂h(t)‖ as computed by back-propagation "
           "through time (random weights, W scaled by 0.5)",
           vanishing_gradients, in_book=False),
    Figure("gradients-compared", "Not in the book: the same vanishing in a plain RNN and in a "
           "GRU over τ = 50 steps of the same inputs, on one colour scale (viz.side_by_side): "
           "the RNN's h(1) gets a gradient about 10⁸ times smaller than its h(50), the GRU's "
           "about 4 × 10⁴ times; each panel shows steps 1–3 and 48–50, the middle elided (…) "
           "(weights from unfold.train.init_params, seed 0)",
           compared_gradients, in_book=False),
]}

#: figures that cannot be drawn yet, and why
ABSENT: dict[str, str] = {}


def figure(id: str) -> Any:  # noqa: A002 - the book's word
    """The drawing of the book's figure ``id`` ("10.3", "10.6", "10.13a", …), from its live
    model: a graphviz Digraph, or for the plots (10.15, 10.17) a matplotlib figure."""
    entry = FIGURES.get(id) if isinstance(id, str) else None
    if entry is None:
        why = f"; {id} is not drawn yet: {ABSENT[id]}" if id in ABSENT else ""
        raise UnfoldKeyError(f"no figure {id!r} in the gallery{why}; available: "
                             f"{sorted(FIGURES)}")
    return entry.draw()
