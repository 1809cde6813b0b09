"""Gated cells unfolded (issue 9, item 2) and folded loops (item 3), on ``dot -Tjson`` layouts:
LSTMs and GRUs written several ways (here, and by ``unfold.models``) unfold one cell per step —
every edge between steps leaves a state, only states end in ellipses, step columns never
interleave — and a folded loop leaves and re-enters its state clear of the other edges."""
from __future__ import annotations

import re
import shutil

import pytest

import unfold as uf
import unfold.models as models
import viz
from unfold import Recurrence
from viz.cells import internals
from viz.book import contract
from viz_json import Laid, distance, step_key

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")
N, M = 3, 2


def lstm_named() -> Recurrence:
    """Gates named with rec.name_node, one matmul per gate, output and loss by expression."""
    rec = Recurrence("lstm named")
    x, y = rec.sequence("x", (M,)), rec.sequence("y", (), dtype="int64")
    h, c = rec.state("h", (N,)), rec.state("c", (N,))

    def gate(k, act=uf.sigmoid):
        return act(rec.param(f"W{k}", (N, N)) @ h + rec.param(f"U{k}", (N, M)) @ x +
                   rec.param(f"b{k}", (N,)))
    i, f, o = (rec.name_node(k, gate(k)) for k in ("i", "f", "og"))
    c_t = rec.update(c, f * c + i * gate("g", uf.tanh))
    h_t = uf.tanh(c_t) * o
    rec.update(h, h_t)
    out = rec.param("V", (4, N)) @ h_t
    rec.output("out", out)
    rec.loss("L", uf.cross_entropy(out, y))
    return rec


def lstm_stacked() -> Recurrence:
    """The four gates from one stacked matmul, sliced, written inline with uf.sigmoid."""
    rec = Recurrence("lstm stacked")
    x, y = rec.sequence("x", (M,)), rec.target("y", ())
    h, c = rec.state("h", (N,)), rec.state("c", (N,))
    z = rec.param("W", (4 * N, N)) @ h + rec.param("U", (4 * N, M)) @ x + rec.param("b", (4 * N,))
    i, f, o = uf.sigmoid(z[:N]), uf.sigmoid(z[N:2 * N]), uf.sigmoid(z[2 * N:3 * N])
    c_t = rec.update(c, f * c + i * uf.tanh(z[3 * N:]))
    h_t = rec.update(h, o * uf.tanh(c_t))
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (4, N)) @ h_t), y))
    return rec


def gru_named() -> Recurrence:
    rec = Recurrence("gru named")
    x, h = rec.sequence("x", (M,)), rec.state("h", (N,))
    z = rec.name_node("z", uf.sigmoid(rec.param("Wz", (N, N)) @ h + rec.param("Uz", (N, M)) @ x))
    r = rec.name_node("r", uf.sigmoid(rec.param("Wr", (N, N)) @ h + rec.param("Ur", (N, M)) @ x))
    cand = uf.tanh(rec.param("W", (N, N)) @ (r * h) + rec.param("U", (N, M)) @ x)
    h_t = rec.update(h, (1.0 - z) * h + z * cand)
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (4, N)) @ h_t),
                                   rec.target("y")))
    return rec


def gru_inline() -> Recurrence:
    rec = Recurrence("gru inline")
    x, h = rec.sequence("x", (M,)), rec.state("h", (N,))
    z = uf.sigmoid(rec.param("Wz", (N, N)) @ h + rec.param("Uz", (N, M)) @ x)
    r = uf.sigmoid(rec.param("Wr", (N, N)) @ h + rec.param("Ur", (N, M)) @ x)
    h_new = (1.0 - z) * h + z * uf.tanh(rec.param("W", (N, N)) @ (r * h) +
                                        rec.param("U", (N, M)) @ x)
    rec.update(h, h_new)
    expr = rec.param("V", (4, N)) @ h_new
    rec.output("o", expr)
    rec.loss("L", uf.cross_entropy(expr, rec.sequence("y", (), dtype="int64")))
    return rec


CELLS = {"lstm named": lstm_named, "lstm stacked": lstm_stacked, "gru named": gru_named,
         "gru inline": gru_inline, "models.lstm": lambda: models.lstm(M, N, 4),
         "models.gru": lambda: models.gru(M, N, 4),
         "models.deep_rnn deep": lambda: models.deep_rnn(M, [N, N, N], 4, transition="deep")}


def states_of(rec: Recurrence) -> set[str]:
    return set(rec.states)


def check_cells(rec: Recurrence, g) -> None:
    laid = Laid(g)
    states = states_of(rec)
    step_of = {}
    for node in laid.nodes:
        m = re.fullmatch(r"([^(\[]+)\(([^()]*)\)", node)
        if m:
            step_of[node] = (m.group(1), m.group(2))
    # every edge between steps leaves a state
    for e in laid.edges:
        if e.tail in step_of and e.head in step_of and step_of[e.tail][1] != step_of[e.head][1]:
            assert step_of[e.tail][0] in states, f"{e.tail} → {e.head} leaves no state"
    # ellipses only for states
    for node, (var, step) in step_of.items():
        if step.startswith("..."):
            assert var in states, f"non-state ellipsis {node}"
    # step columns ordered left to right, never interleaving
    columns: dict[str, list[float]] = {}
    for node, (_, step) in step_of.items():
        columns.setdefault(step, []).append(laid.xy(node)[0])
    order = sorted(columns, key=step_key)
    for a, b in zip(order, order[1:]):
        assert max(columns[a]) < min(columns[b]), f"columns {a} and {b} interleave"
    # no node from a view of the past: nothing but the variables of the drawing
    assert not any("(…)" in laid.nodes[n].get("label", "") and step_of[n][0] not in states
                   for n in step_of)
    return laid


@pytest.mark.parametrize("name", sorted(CELLS))
@pytest.mark.parametrize("cells", ["auto", "open"])
def test_gated_cells_unfold_one_cell_per_step(name, cells):
    rec = CELLS[name]()
    three = check_cells(rec, viz.unfolded(rec, steps=3, cells=cells))
    check_cells(rec, viz.unfolded(rec, cells=cells))
    width = max(three.xy(n)[0] for n in three.nodes if "pos" in three.nodes[n])
    assert width < (1200 if cells == "auto" else 1600), f"3 steps are {width:.0f} pt wide"


@pytest.mark.parametrize("name", ["models.lstm", "gru named", "lstm stacked"])
def test_the_unfolding_keeps_columns_apart_and_cells_compact(name):
    rec = CELLS[name]()
    laid = check_cells(rec, viz.unfolding(rec, steps=3))
    arrow = [laid.xy(n)[0] for n in laid.nodes if n.startswith("[unfold")]
    folded = [n for n in laid.nodes if n.endswith("[folded]")]
    assert max(laid.xy(n)[0] for n in folded) < min(arrow)


def test_compact_cells_hold_the_internal_values_and_only_states_cross_steps():
    rec = models.lstm(M, N, 4)
    assert internals(contract(rec)) == ["g", "f", "q"]         # the book's order (Fig. 10.16)
    src = viz.unfolded(rec, steps=3).source
    assert "f(2)" not in src and "cell(2)" in src
    laid = Laid(viz.unfolded(rec, steps=3))
    into = {(e.tail, e.head) for e in laid.edges if e.head == "cell(2)"}
    assert into == {("x(2)", "cell(2)"), ("s(1)", "cell(2)"), ("h(1)", "cell(2)")}
    assert {(e.tail, e.head) for e in laid.edges if e.tail == "cell(2)"} == \
        {("cell(2)", "s(2)"), ("cell(2)", "h(2)")}
    flat = viz.unfolded(rec, steps=3, cells="flat").source
    assert "f(2)" in flat and "cell(2)" not in flat
    with pytest.raises(ValueError, match="cells must be one of"):
        viz.unfolded(rec, cells="closed")


def test_a_single_inner_value_keeps_its_row():
    rec = models.output_to_hidden(M, N, 4)        # Fig. 10.4: the hidden layer h is drawn
    assert "h(2)" in viz.unfolded(rec, steps=3).source


# --- folded loops (item 3) ----------------------------------------------------------------------

LOOPS = {"rnn": lambda: models.rnn(M, N, 4), "skip": lambda: models.skip_rnn(M, N, 4),
         "lstm": lambda: models.lstm(M, N, 4), "gru": gru_named,
         "bidirectional": lambda: models.teacher_forcing(M, N, 4) if False else _bidi(),
         "output_to_hidden": lambda: models.output_to_hidden(M, N, 4)}


def _bidi() -> Recurrence:
    rec = Recurrence("bidirectional")
    x = rec.sequence("x", (M,))
    h, g = rec.state("h", (N,)), rec.state("g", (N,), backward=True)
    h_t = rec.update(h, uf.tanh(rec.param("W", (N, N)) @ h + rec.param("U", (N, M)) @ x))
    g_t = rec.update(g, uf.tanh(rec.param("R", (N, N)) @ g + rec.param("Q", (N, M)) @ x))
    rec.output("o", rec.param("V", (2, N)) @ h_t + rec.param("S", (2, N)) @ g_t)
    return rec


def loop_ends(laid: Laid, suffix: str = "") -> list[tuple]:
    """(state, end point at the state, edge) for every end of a delay edge at a state, and the
    ends of all other edges at that state."""
    out = []
    for e in laid.edges:
        for node, end in ((e.tail, e.tail_end), (e.head, e.head_end)):
            out.append((node, end, e))
    return out


@pytest.mark.parametrize("name", sorted(LOOPS))
@pytest.mark.parametrize("view", ["folded", "unfolding"])
def test_folded_loops_leave_and_reenter_clear_of_other_edges(name, view):
    rec = LOOPS[name]()
    g = viz.folded(rec) if view == "folded" else viz.unfolding(rec, steps=2)
    laid = Laid(g)
    squares = [n for n in laid.nodes if "[delay" in n]
    assert squares
    ends = loop_ends(laid)
    for sq in squares:
        state = sq.split("[delay")[0]
        loop = [e for e in laid.edges if sq in (e.tail, e.head)]
        at_state = [end for node, end, e in ends if node == state and e in loop]
        others = [(end, e) for node, end, e in ends if node == state and e not in loop and
                  not any(n.startswith(state + "[delay") for n in (e.tail, e.head))]
        for mine in at_state:
            for end, e in others:
                assert distance(mine, end) > 3, f"{sq}: meets {e.tail} → {e.head} at {end}"
            for e in laid.edges:                   # no label at the loop's ends
                if e in loop or "lp" not in e.attrs and "xlp" not in e.attrs:
                    continue
                x, y = map(float, (e.attrs.get("lp") or e.attrs["xlp"]).split(","))
                assert distance(mine, (x, y)) > 8, f"{sq}: label of {e.tail} → {e.head}"
        # a loop's square is on the loop: near its state, not across the figure
        if " out]" not in sq:
            assert distance(laid.xy(sq), laid.xy(state)) < 150
    if view == "unfolding":                        # the folded panel keeps its loops
        wall = min(laid.xy(n)[0] for n in laid.nodes if n.startswith("[unfold"))
        for e in laid.edges:
            if e.tail.endswith("]") and "[folded]" in e.tail and "[folded]" in e.head:
                xs = [p[0] for p in _spline(e)]
                assert max(xs) < wall, f"{e.tail} → {e.head} leaves the folded panel"


def _spline(e) -> list[tuple[float, float]]:
    pts = []
    for token in e.attrs["pos"].replace(";", " ").split():
        parts = token.split(",")
        pts.append((float(parts[-2]), float(parts[-1])))
    return pts


@pytest.mark.parametrize("name", ["lstm named", "models.lstm", "gru named", "models.gru",
                                  "lstm stacked", "gru inline"])
def test_folded_gated_cells_cross_little(name):
    """x(t) feeds the gates from below and h(t−1)'s square from above, the output gate (read
    higher up) stands left, away from the squares: at most 2 crossings (7 before)."""
    from viz_json import crossings
    rec = CELLS[name]()
    laid = Laid(viz.folded(rec))
    assert len(crossings(laid)) <= 2, crossings(laid)
    square = "h[delay 1 out]" if "h[delay 1 out]" in laid.nodes else "h[delay 1]"
    assert abs(laid.xy(square)[1] - laid.xy("h")[1]) < 1            # beside h, in its row


def test_a_single_gate_makes_a_gated_cell():
    """The minimal gated unit (Zhou et al. 2016): one σ doing a GRU's update and reset gates'
    work, h = (1 − f) h(t−1) + f tanh(U x + W (f ⊙ h(t−1))): its gate is named f in the book
    views and each step is one cell (it was an unnamed point, the flat drawing)."""
    rec = uf.Recurrence("mgu")
    x, h = rec.sequence("x", (2,)), rec.state("h", (3,))
    f = uf.sigmoid(rec.param("Wf", (3, 3)) @ h + rec.param("Uf", (3, 2)) @ x)
    h_t = rec.update(h, (1.0 - f) * h + f * uf.tanh(rec.param("U", (3, 2)) @ x +
                                                 rec.param("W", (3, 3)) @ (f * h)))
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (2, 3)) @ h_t),
                                   rec.target("y")))
    assert "f" in contract(rec).variables
    check_cells(rec, viz.unfolded(rec, steps=3))
    assert "cell(2)" in viz.unfolded(rec, steps=3).source


def _mgu(gate: str | None, candidate: str | None) -> Recurrence:
    """The minimal gated unit with its gate and its candidate named (or left inline)."""
    rec = uf.Recurrence("mgu")
    x, h = rec.sequence("x", (2,)), rec.state("h", (3,))
    f = uf.sigmoid(rec.param("Wf", (3, 3)) @ h + rec.param("Uf", (3, 2)) @ x)
    f = rec.name_node(gate, f) if gate else f
    c = uf.tanh(rec.param("U", (3, 2)) @ x + rec.param("W", (3, 3)) @ (f * h))
    c = rec.name_node(candidate, c) if candidate else c
    h_t = rec.update(h, (1.0 - f) * h + f * c)
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (2, 3)) @ h_t),
                                   rec.target("y")))
    return rec


@pytest.mark.parametrize("candidate", [None, "c"])
def test_naming_the_gate_or_the_candidate_changes_no_drawing(candidate):
    """Finding 63's class: one model, one drawing. The minimal gated unit's one gate inline
    or given to rec.name_node("f", …) unfolds alike (one cell per step: a named σ that gates
    is a gate); with the candidate named too, the σ that both the candidate and h read is one
    unit of the cell view (it was one for each reader, and the gate lost its reset role)."""
    untooled = lambda g: re.sub(r'tooltip=("[^"]*"|\S+)', "", g.source)
    inline, named = _mgu(None, candidate), _mgu("f", candidate)
    assert untooled(viz.unfolded(inline, steps=3)) == untooled(viz.unfolded(named, steps=3))
    assert "cell(2)" in viz.unfolded(named, steps=3).source
    sigmoids = [v for v in contract(inline, detail=True).variables.values() if v.op == "σ"]
    assert len(sigmoids) == 1 and contract(inline).roles == contract(named).roles


@pytest.mark.parametrize("make", [lambda: models.lstm(M, N, 4), lambda: models.gru(M, N, 4),
                                  lambda: models.deep_rnn(M, [N, N], 4, cell="lstm")],
                         ids=["lstm", "gru", "deep lstm"])
def test_unfolded_cells_stand_evenly_spaced(make):
    """Each cell's edge up past a state into another (cell(t) → h(t) past s(t)) goes round one
    side at every step (that by which the states of the step before enter; unported, dot took
    the left of every column but the last, whose gap was then 156 pt against the others' 230)."""
    from viz_json import Laid
    xs = sorted(p[0] for p in Laid(viz.unfolded(make(), steps=3)).cells()["x"].values())
    gaps = [b - a for a, b in zip(xs, xs[1:])]
    assert max(gaps) - min(gaps) < 2, gaps


@pytest.mark.parametrize("make, layers", [
    (lambda: models.deep_rnn(3, [2, 2], 4, cell="lstm"), [("s_1", "h_1"), ("s_2", "h_2")]),
    (lambda: models.bidirectional(3, 2, 4, cell="gru"), [("h",), ("g.h",)]),
    (lambda: models.lstm(3, 2, 4), [("s", "h")])], ids=["deep lstm", "bidirectional gru", "lstm"])
def test_a_cell_per_layer_and_per_direction(make, layers):
    """Findings 14b, 31, 34: a stack of LSTM layers has a cell per layer (the next layer reads
    h_1(t) through its parameters: an input of its cell, as in Fig. 10.13a), a bidirectional
    GRU a cell per direction; each cell writes its own states and reads the states of its own
    layer from the step before, and only states cross between steps."""
    rec = make()
    laid = Laid(viz.unfolded(rec, steps=3))
    names = ["cell"] if len(layers) == 1 else [f"cell_{k}" for k in range(1, len(layers) + 1)]
    for name, states in zip(names, layers):
        for t in (1, 2, 3):
            out = {e.head for e in laid.edges if e.tail == f"{name}({t})"}
            assert {f"{s}({t})" for s in states} <= out, (name, t, out)
            into = {e.tail for e in laid.edges if e.head == f"{name}({t})"}
            earlier = {n for n in into if re.search(r"\((\d)\)$", n).group(1) != str(t)}
            assert {n.rsplit("(", 1)[0] for n in earlier} <= set(states), (name, t, into)
    if len(layers) == 2 and layers[0][0] == "s_1":
        assert "h_1(2)" in {e.tail for e in laid.edges if e.head == "cell_2(2)"}
        assert laid.xy("cell_1(2)")[1] < laid.xy("cell_2(2)")[1]          # layer 1 below


@pytest.mark.parametrize("make, forward, backward", [
    (lambda: models.lstm(M, N, 4), ("s", "h"), ()),
    (lambda: models.bidirectional(M, N, 4, cell="lstm"), ("s", "h"), ("g.s", "g.h")),
    (lambda: models.bidirectional(M, N, 4, cell="gru"), ("h",), ("g.h",))],
    ids=["lstm", "bidirectional lstm", "bidirectional gru"])
def test_each_direction_keeps_its_band_and_its_states_clear_of_its_cells(make, forward, backward):
    """Finding 59: the backward cell stands above every forward state (each direction its band
    of rows, as folded), and no edge from a cell up to its states crosses a state's edge to
    the cell of the next (or, backward, the previous) step: the edge up past s(t) into h(t)
    goes round the side the states of the step before come in by."""
    from viz_json import crossings
    laid = Laid(viz.unfolded(make(), steps=3))
    cells = ["cell"] if not backward else ["cell_1", "cell_2"]
    for t in (1, 2, 3):
        if backward:
            assert laid.xy(f"cell_2({t})")[1] > max(laid.xy(f"{v}({t})")[1] for v in forward)
    ups = {f"{c}({t})" for c in cells for t in (1, 2, 3)}
    states = {f"{v}({t})" for v in forward + backward for t in (1, 2, 3)}
    def up(edge: str) -> bool:                      # cell(t) → one of its states
        tail, head = edge.split("→")
        return tail in ups and head in states

    def across(edge: str) -> bool:                  # a state into a cell of another step
        tail, head = edge.split("→")
        return tail in states and head in ups and tail[-3:] != head[-3:]
    clash = [(p, q) for p, q in crossings(laid) if up(p) and across(q) or up(q) and across(p)]
    assert clash == [], clash


@pytest.mark.parametrize("states, word", [(("h", "s"), "cell"), (("hidden", "cell"), "block"),
                                          (("cell_h", "cell_s"), "cell")])
def test_a_compact_cell_is_never_named_like_a_state(states, word):
    """PyTorch's states "hidden" and "cell": the compact cells are "block(t)" (Greff et al.'s
    word), not "cell′(t)" beside the state cell(t); "cell" otherwise (cell_h is drawn cell with
    subscript h: no clash)."""
    rec = Recurrence("lstm")
    x = rec.sequence("x", (M,))
    h, s = rec.state(states[0], (N,)), rec.state(states[1], (N,))
    gate = lambda k, act=uf.sigmoid: act(rec.param(f"W{k}", (N, N)) @ h +
                                         rec.param(f"U{k}", (N, M)) @ x)
    s_t = rec.update(s, gate("f") * s + gate("g") * gate("z", uf.tanh))
    rec.update(h, gate("q") * uf.tanh(s_t))
    src = viz.unfolded(rec, steps=2).source
    assert f'"{word}(1)" [' in src and f'"{word}(2)" [' in src
    assert not re.search(r'"(cell|block)(\'|%27|′)', src)


def _open_inputs(rec: Recurrence) -> list[tuple[str, ...]]:
    """What each point of ``rec``'s open cells reads (variable and delay, sorted): a join point's
    inputs, or a stacked pre-activation's."""
    from viz.layout import axis
    from viz.views import prepare
    book = prepare(rec, axis(3), cells="open")[0]
    points = [v.name for v in book.variables.values() if v.kind == "point"]
    return sorted(tuple(sorted(f"{e.src}({e.delay})" for e in book.inputs_of(p))) for p in points)


@pytest.mark.parametrize("make", [lstm_named, models.lstm], ids=["lstm named", "models.lstm"])
def test_an_lstm_written_gate_by_gate_opens_as_the_stacked_one(make):
    """Open, an LSTM with a matrix per gate has x(t) and h(t−1) meet at one join point, the
    book's [x(t); h(t−1)], from which one edge goes to each gate and to the state, labelled
    with the matrices joined (U_f, W_f): it draws as the net written with one stacked matrix,
    sliced (one GEMM, whose x(t) and h(t−1) enter the stacked pre-activation) — the same
    inputs joined, the same crossings (17 before: an edge per (input, gate))."""
    from viz_json import crossings
    rec = make() if make is lstm_named else make(M, N, 4)
    assert _open_inputs(rec) == _open_inputs(lstm_stacked()) == [("h(1)", "x(0)")]
    laid = Laid(viz.unfolded(rec, steps=3, cells="open"))
    fused = Laid(viz.unfolded(lstm_stacked(), steps=3, cells="open"))
    assert len(crossings(laid)) == len(crossings(fused)), (crossings(laid), crossings(fused))
    joined = [e.label.split(", ") for e in laid.edges if e.tail.startswith("join")]
    assert len(joined) == 3 * 4 and all(len(names) == 2 for names in joined), joined
    if make is lstm_named:        # (x's matrix first, as in [x(t); h(t−1)])
        assert {e.label for e in laid.edges if e.tail == "join%C2%B71(2)"} == \
            {"Ui, Wi", "Uf, Wf", "Uog, Wog", "Ug, Wg"}
