"""Recurrences written the way an outsider writes them from the README — declarations in any
order, gates inline with ``uf.sigmoid`` or named, one stacked matrix or one per gate, the book's
σ cell input — drawn the same as the named forms (issue 9, items 1 and 2), checked on ``dot
-Tjson`` layouts; and the op view's leftovers (item 4): with ``backward_ops`` the backward panel
stands right of the forward one, and no view hangs on a long sequence."""
from __future__ import annotations

import re
import shutil
import warnings

import pytest

import unfold as uf
import viz
from unfold import Recurrence
from viz.book import contract
from viz_json import Laid, distance, label_collisions, text

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")
NI, NH, NO = 3, 2, 4


def geometry(g) -> tuple[list[tuple[str, ...]], set]:
    """Rows bottom to top (each a tuple of node ids, left to right) and labelled edges."""
    laid = Laid(g)
    at = {n: laid.xy(n) for n, a in laid.nodes.items() if "pos" in a and a.get("style") != "invis"}
    ys = sorted({round(y) for _, y in at.values()})
    rows = [tuple(n for _, n in sorted((x, n) for n, (x, y) in at.items() if round(y) == r))
            for r in ys]
    return rows, laid.labelled()


def rnn_in_the_readme_order() -> Recurrence:
    rec = Recurrence("rnn")
    x, y, h = rec.sequence("x", (NI,)), rec.target("y", ()), rec.state("h", (NH,))
    W, U, b = rec.param("W", (NH, NH)), rec.param("U", (NH, NI)), rec.param("b", (NH,))
    V, c = rec.param("V", (NO, NH)), rec.param("c", (NO,))
    h_t = rec.update(h, uf.tanh(b + W @ h + U @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", c + V @ h_t), y))
    return rec


def rnn_declared_backwards() -> Recurrence:
    """Parameters first, the target before the input, the loss before the output, the state
    updated last, the bias in the middle, x @ U.T."""
    rec = Recurrence("rnn")
    V, c = rec.param("V", (NO, NH)), rec.param("c", (NO,))
    W, U, b = rec.param("W", (NH, NH)), rec.param("U", (NH, NI)), rec.param("b", (NH,))
    y = rec.sequence("y", (), dtype="int64")
    x, h = rec.sequence("x", (NI,)), rec.state("h", (NH,))
    h_new = uf.tanh(W @ h + b + x @ U.T)
    logits = c + V @ h_new
    rec.loss("L", uf.cross_entropy(logits, y))
    rec.output("o", logits)
    rec.update(h, h_new)
    return rec


@pytest.mark.parametrize("view", ["folded", "unfolded"])
def test_the_order_of_the_declarations_changes_nothing(view):
    draw = viz.folded if view == "folded" else lambda r: viz.unfolded(r, steps=2)
    assert geometry(draw(rnn_declared_backwards())) == geometry(draw(rnn_in_the_readme_order()))


def lstm(stacked: bool, named: bool, squash=uf.tanh) -> Recurrence:
    """An LSTM, its gates from one stacked matrix or one matrix each, named or inline."""
    rec = Recurrence("lstm")
    x, h, s = rec.sequence("x", (NI,)), rec.state("h", (NH,)), rec.state("s", (NH,))
    if stacked:
        z = rec.param("W", (4 * NH, NH)) @ h + rec.param("U", (4 * NH, NI)) @ x + \
            rec.param("b", (4 * NH,))
        pre = {k: z[i * NH:(i + 1) * NH] for i, k in enumerate("fgqs")}
    else:
        pre = {k: rec.param(f"W_{k}", (NH, NH)) @ h + rec.param(f"U_{k}", (NH, NI)) @ x +
               rec.param(f"b_{k}", (NH,)) for k in "fgqs"}
    gate = {k: uf.sigmoid(pre[k]) for k in "fgq"}
    if named:
        gate = {k: rec.name_node(k, v) for k, v in gate.items()}
    s_t = rec.update(s, gate["f"] * s + gate["g"] * squash(pre["s"]))
    h_t = rec.update(h, uf.tanh(s_t) * gate["q"])
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (NO, NH)) @ h_t),
                                   rec.target("y")))
    return rec


def gru(named: bool) -> Recurrence:
    rec = Recurrence("gru")
    x, h = rec.sequence("x", (NI,)), rec.state("h", (NH,))
    u, r = (uf.sigmoid(rec.param(f"W_{k}", (NH, NH)) @ h + rec.param(f"U_{k}", (NH, NI)) @ x)
            for k in "ur")
    if named:
        u, r = rec.name_node("u", u), rec.name_node("r", r)
    cand = uf.tanh(rec.param("W", (NH, NH)) @ (r * h) + rec.param("U", (NH, NI)) @ x)
    h_t = rec.update(h, u * h + (1 - u) * cand)
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (NO, NH)) @ h_t),
                                   rec.sequence("y", (), dtype="int64")))
    return rec


PAIRS = {"lstm, a matrix per gate": lambda named: lstm(False, named),
         "lstm, one stacked matrix": lambda named: lstm(True, named),
         "lstm, the book's σ cell input": lambda named: lstm(False, named, uf.sigmoid),
         "gru": gru}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_gates_written_inline_draw_as_named_gates(name):
    inline, named = PAIRS[name](False), PAIRS[name](True)
    for draw in (viz.folded, lambda r: viz.unfolded(r, steps=3)):
        assert geometry(draw(inline)) == geometry(draw(named))
    if "σ cell" not in name:
        book = contract(inline)
        gates = {v.name: v.role for v in book.variables.values() if v.role}
        assert gates == ({"u": "update gate", "r": "reset gate"} if name == "gru" else
                         {"f": "forget gate", "g": "input gate", "q": "output gate"})
        assert "an unnamed σ named by what it gates" in viz.folded(inline).source


def lstm_sigmoid_then_sliced() -> Recurrence:
    """σ over the three stacked gates at once, then sliced (as many libraries write it)."""
    rec = Recurrence("lstm")
    x, h, s = rec.sequence("x", (NI,)), rec.state("h", (NH,)), rec.state("s", (NH,))
    z = rec.param("W", (4 * NH, NH)) @ h + rec.param("U", (4 * NH, NI)) @ x + \
        rec.param("b", (4 * NH,))
    fgq = uf.sigmoid(z[:3 * NH])
    s_t = rec.update(s, fgq[:NH] * s + fgq[NH:2 * NH] * uf.tanh(z[3 * NH:]))
    h_t = rec.update(h, uf.tanh(s_t) * fgq[2 * NH:])
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (NO, NH)) @ h_t),
                                   rec.target("y")))
    return rec


def gru_gates_from_one_sliced_sigmoid() -> Recurrence:
    rec = Recurrence("gru")
    x, h = rec.sequence("x", (NI,)), rec.state("h", (NH,))
    ur = uf.sigmoid(rec.param("W_ur", (2 * NH, NH)) @ h + rec.param("U_ur", (2 * NH, NI)) @ x)
    u, r = ur[:NH], ur[NH:]
    cand = uf.tanh(rec.param("W", (NH, NH)) @ (r * h) + rec.param("U", (NH, NI)) @ x)
    h_t = rec.update(h, u * h + (1 - u) * cand)
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (NO, NH)) @ h_t),
                                   rec.sequence("y", (), dtype="int64")))
    return rec


def test_gates_sliced_from_one_sigmoid_are_gates_each():
    for draw in (viz.folded, lambda r: viz.unfolded(r, steps=3)):
        assert geometry(draw(lstm_sigmoid_then_sliced())) == geometry(draw(lstm(True, True)))
        rows, edges = geometry(draw(gru_gates_from_one_sliced_sigmoid()))
        named_rows, named_edges = geometry(draw(gru(True)))
        assert rows == named_rows                     # the same drawing, W_ur for W_u, W_r
        assert {(a, b) for a, b, _ in edges} == {(a, b) for a, b, _ in named_edges}


def test_the_cell_view_of_the_books_lstm_written_inline_has_one_input_gate_and_one_input():
    laid = Laid(viz.cell(lstm(False, False, uf.sigmoid)))
    words = sorted(text(a.get("label", "")) for a in laid.nodes.values() if "σ" in
                   text(a.get("label", "")))
    assert words == ["forget gate σ", "input gate σ", "input σ", "output gate σ"]


def test_a_hidden_gate_stays_hidden_and_a_taken_letter_is_primed():
    assert not {"f", "f'"} & set(contract(lstm(False, True), hide=["f"]).variables)
    rec = Recurrence("taken")
    x, h = rec.sequence("x", (NI,)), rec.state("h", (NH,))
    f = rec.name_node("f", uf.tanh(rec.param("A", (NH, NI)) @ x))      # "f" is not a gate
    gate = uf.sigmoid(rec.param("B", (NH, NH)) @ h)
    rec.update(h, gate * h + (1 - gate) * f)
    assert {v.name: v.role for v in contract(rec).variables.values() if v.role} == \
        {"u": "update gate"}


def test_no_product_node_inside_a_squared_error():
    rec = Recurrence("mse")
    x, h = rec.sequence("x", (NI,)), rec.state("h", (NH,))
    h_t = rec.update(h, uf.tanh(rec.param("W", (NH, NH)) @ h + rec.param("U", (NH, NI)) @ x))
    o = rec.output("o", rec.param("V", (NO, NH)) @ h_t)
    rec.loss("L", uf.mse(o, rec.sequence("y", (NO,))))
    book = contract(rec, detail=True)
    assert not [v for v in book.variables.values() if v.kind == "product"]


def _panels(g) -> tuple[set[str], Laid]:
    laid = Laid(g)
    gv = {o["_gvid"]: o["name"] for o in laid.raw["objects"] if "nodes" not in o}
    back = next({gv[i] for i in o.get("nodes", []) if i in gv}
                for o in laid.raw["objects"] if o.get("name") == "cluster_backward")
    return back, laid


@pytest.mark.parametrize("make", [rnn_in_the_readme_order, lambda: lstm(True, False)])
def test_every_op_of_the_backward_pass_stands_right_of_the_forward_panel(make):
    u = make().unfold(2)
    grads = dict(zip(u.params, uf.grad(u.loss, u.params)))
    back, laid = _panels(viz.graph([u.loss], backward=grads, backward_ops=True))
    placed = {n for n in laid.nodes if "pos" in laid.nodes[n]}
    assert max(laid.xy(n)[0] for n in placed - back) < min(laid.xy(n)[0] for n in placed & back)
    refs = [n for n in back if n.endswith("[ref]")]
    assert refs                               # the forward values the backward ops read
    for e in laid.edges:                      # ... read inside the backward panel
        assert (e.tail in back) == (e.head in back), f"{e.tail} → {e.head} crosses the panels"


def test_ops_are_drawn_as_symbols_and_named_in_their_tooltips():
    u = rnn_in_the_readme_order().unfold(2)
    src = viz.graph([u.loss]).source
    assert re.search(r'label=<@> tooltip="matmul#\d+: matmul', src)
    assert "label=<matmul>" not in src


def test_a_million_steps_with_max_steps_none_draw_a_thousand_and_say_so(monkeypatch):
    rec = rnn_in_the_readme_order()
    with pytest.warns(viz.ElidedStepsWarning, match="max_steps=None draws at most 1000"):
        src = viz.unfolded(rec, steps=10 ** 6, max_steps=None).source
    assert "h(500)" in src and "h(999501)" in src and "h(501)" not in src
    monkeypatch.setattr("viz.views.DRAWABLE", 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # up to the limit: every step
        assert "h(20)" in viz.unfolding(rec, steps=20, max_steps=None).source
    with pytest.warns(viz.ElidedStepsWarning, match="steps 1–10 and 9991–10000"):
        viz.unfolding(rec, steps=10 ** 4, max_steps=None)


def test_graphical_models_too_big_for_dot_are_refused():
    from viz.figures import fig_10_7
    with pytest.raises(ValueError, match="too many to draw"):
        viz.graphical_model(fig_10_7(), 10 ** 6)
    with pytest.raises(uf.UnfoldError, match="edges"):
        viz.graphical_model(fig_10_7(), 40)


def test_open_cells_keep_one_order_of_their_values_in_every_step():
    laid = Laid(viz.unfolded(lstm(False, True), steps=3, cells="open"))
    by_step: dict[str, list[tuple[float, str]]] = {}
    for n in laid.nodes:
        m = re.fullmatch(r"([fgq])\((\d)\)", n)
        if m:
            by_step.setdefault(m.group(2), []).append((laid.xy(n)[0], m.group(1)))
    orders = {tuple(name for _, name in sorted(v)) for v in by_step.values()}
    assert len(by_step) == 3 and orders == {("g", "f", "q")}


@pytest.mark.parametrize("delay", [2, 3])
@pytest.mark.parametrize("view", ["folded", "unfolding"])
def test_two_loops_of_one_state_share_no_end_and_no_label_collides(delay, view):
    """h's own loop holds the right of its row with both arcs; the skip's loop h(t−d) stands
    in the row above, left (it entered h where the first loop left it, its label W_d beside
    W)."""
    rec = Recurrence("skip")
    x, h = rec.sequence("x", (NI,)), rec.state("h", (NH,))
    h_t = rec.update(h, uf.tanh(rec.param("W", (NH, NH)) @ h + rec.param("U", (NH, NI)) @ x +
                                rec.param("W_d", (NH, NH)) @ rec.past(h, delay)))
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (NO, NH)) @ h_t),
                                   rec.target("y")))
    laid = Laid(viz.folded(rec) if view == "folded" else viz.unfolding(rec, steps=3))
    state = "h" if view == "folded" else "h[folded]"
    ends = [end for e in laid.edges for node, end in ((e.tail, e.tail_end), (e.head, e.head_end))
            if node == state]
    assert all(distance(p, q) > 3 for i, p in enumerate(ends) for q in ends[i + 1:]), ends
    assert label_collisions(laid) == []
    skip, own = f"{state}[delay {delay}]", f"{state}[delay 1]"
    assert laid.xy(skip)[0] < laid.xy(state)[0] < laid.xy(own)[0]


@pytest.mark.parametrize("view", ["folded", "unfolded"])
def test_no_two_arrowheads_meet_at_one_point(view):
    """The LSTM's f and g entered s at one port (folded), its s(t−1) and h(t−1) the cell of
    step t at one port (unfolded): their arrowheads met."""
    rec = lstm(False, True)
    laid = Laid(viz.folded(rec) if view == "folded" else viz.unfolded(rec, steps=3))
    heads: dict[str, list[tuple[float, float]]] = {}
    for e in laid.edges:
        if "[delay" not in e.head:
            heads.setdefault(e.head, []).append(e.head_end)
    for node, ends in heads.items():
        assert all(distance(p, q) > 3 for i, p in enumerate(ends) for q in ends[i + 1:]), node
