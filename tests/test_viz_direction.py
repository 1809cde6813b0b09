"""Every visible edge of every drawing is written the way its data flows: its tail is the value,
its head what reads it, and no edge is turned round with ``dir`` (a judge reading ``dot -Tjson``
sees tail → head). Checked for the gallery and for an RNN, an LSTM and a GRU written here in
several styles (not with unfold.models), in every view: folded, unfolded (3 steps and the book's
window), unfolding, the cell, the op view with its backward panel, overlays, and the figures of
the structured models."""
from __future__ import annotations

import re
import shutil
import warnings
from urllib.parse import unquote

import numpy as np
import pytest

import unfold as uf
import unfold.models as models
import viz
from unfold import Recurrence
from viz.book import Book, contract, is_unnamed
from viz.cell_view import _states_read_as_inputs
from viz.figures import FIGURES
from viz.layout import axis, rows
from viz.ops_view import _OpGraph
from viz.views import prepare
from test_viz_cells import _bidi, gru_inline, gru_named, lstm_named, lstm_stacked
from test_viz_styles import expression_style, readme_style
from viz_json import Laid, step_key

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")
N, M, K = 3, 2, 4


# --- recurrences written by hand, several ways ----------------------------------------------------
# (the RNN as the README writes it and by expressions, an LSTM with named gates and one with
# four gates sliced from one matmul, a GRU named and inline, a bidirectional RNN: those of
# test_viz_styles and test_viz_cells; and here a GRU whose two gates are one sliced sigmoid,
# and an RNN fed its previous target)

def gru_stacked() -> Recurrence:
    """Update and reset gates sliced from one matmul; the candidate reads r ⊙ h(t−1)."""
    rec = Recurrence("gru stacked")
    x, h = rec.sequence("x", (M,)), rec.state("h", (N,))
    zr = uf.sigmoid(rec.param("W_zr", (2 * N, N)) @ h + rec.param("U_zr", (2 * N, M)) @ x)
    z, r = zr[:N], zr[N:]
    h_t = (1.0 - z) * h + z * uf.tanh(rec.param("W", (N, N)) @ (r * h) +
                                      rec.param("U", (N, M)) @ x)
    rec.update(h, h_t)
    expr = rec.param("V", (K, N)) @ h_t
    rec.output("o", expr)
    rec.loss("L", uf.cross_entropy(expr, rec.sequence("y", (), dtype="int64")))
    return rec


def teacher_forced() -> Recurrence:
    """y(t−1) → h(t): the target of the step before, fed back (Figs. 10.6, 10.10)."""
    rec = Recurrence("teacher forced")
    x, y = rec.sequence("x", (M,)), rec.target("y", ())
    fed = rec.state("y_prev", (K,))
    rec.update(fed, uf.one_hot(y, K))
    h = rec.state("h", (N,))
    h_t = rec.update(h, uf.tanh(rec.param("W", (N, N)) @ h + rec.param("U", (N, M)) @ x +
                                rec.param("R", (N, K)) @ fed))
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (K, N)) @ h_t), y))
    return rec


RECURRENCES = {f.__name__: f for f in (readme_style, expression_style, lstm_named, lstm_stacked,
                                       gru_named, gru_inline, gru_stacked, _bidi,
                                       teacher_forced)}


def turned(source: str) -> bool:
    """Whether a DOT text turns an edge round (``dir=back``, ``dir=both``, an arrow at the
    tail)."""
    return re.search(r"(?<![a-z])dir=|arrowtail", source) is not None


# --- what the data flow is --------------------------------------------------------------------------

def _variable(node: str) -> tuple[str, str | None, bool]:
    """(variable, step, is a delay square) of a node id: ``h(t-1)``, ``h[folded]``,
    ``h[delay 1 out]``, ``o%C2%B71(2)[0]``."""
    square = "[delay" in node
    base = re.sub(r"\[[^\]]*\]", "", node)
    m = re.fullmatch(r"(.+?)(?:\(([^()]*)\))?", base)
    return unquote(m.group(1)), m.group(2), square


def _flows(book: Book) -> tuple[set[tuple[str, str]], set[str]]:
    """The (source, reader) pairs of ``book`` and its backward states."""
    pairs = {(e.src, e.dst) for e in book.edges}
    pairs |= {(v.name, v.name) for v in book.variables.values() if v.kind == "state"}
    return pairs, {v.name for v in book.variables.values() if v.backward}


def check_book_view(g, books: list[Book], cell: bool = False) -> int:
    """Every visible edge between variables runs from a source to its reader in one of
    ``books``, forward in time (backward in time for a backward state); a delay square takes
    the line from its own state and gives to that state's readers. Returns the edges checked."""
    pairs, backward = set(), set()
    for book in books:
        p, b = _flows(book)
        pairs |= p
        backward |= b
    laid = Laid(g)
    assert not turned(g.source)
    checked = 0
    for e in laid.edges:
        if e.tail.startswith("[unfold") or e.head.startswith("[unfold"):
            continue                                  # the "Unfold" arrow
        (a, sa, qa), (b, sb, qb) = _variable(e.tail), _variable(e.head)
        if cell and sa is not None and f"{a}({sa})" in {n for bk in books
                                                        for n in bk.variables}:
            a, sa = f"{a}({sa})", None                # the cell view's input h(t−1)
        if qb:                                        # into a square: from its state
            assert not qa and a == b, f"{e.tail} → {e.head}: a square takes its own state"
        elif qa:                                      # out of a square: to a reader
            assert (a, b) in pairs, f"{e.tail} → {e.head}: {b} does not read {a}"
        else:
            assert (a, b) in pairs, f"{e.tail} → {e.head} runs against the data ({b} → {a}?)"
            if sa is not None and sb is not None and sa != sb:
                later = step_key(sb) > step_key(sa)
                assert later != (a in backward), f"{e.tail} → {e.head} runs against time"
        checked += 1
    return checked


VIEWS = ["folded", "unfolded3", "window", "unfolding", "open", "cell"]


def draw(rec: Recurrence, view: str):
    """The drawing of ``view`` and the books whose data flow it shows."""
    if view == "folded":
        return viz.folded(rec), [contract(rec)], False
    if view == "cell":
        return viz.cell(rec), [_states_read_as_inputs(contract(rec, detail=True))], True
    if view == "unfolding":
        return viz.unfolding(rec, steps=2), [contract(rec), prepare(rec, axis(2))[0]], False
    cells = "open" if view == "open" else "auto"
    columns = axis(3) if view in ("unfolded3", "open") else axis()
    g = viz.unfolded(rec, steps=3, cells=cells) if view in ("unfolded3", "open") else \
        viz.unfolded(rec, cells=cells)
    return g, [prepare(rec, columns, cells=cells)[0]], False


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("name", sorted(RECURRENCES))
def test_every_edge_runs_the_way_its_data_flows(name, view):
    g, books, cell = draw(RECURRENCES[name](), view)
    assert check_book_view(g, books, cell) >= 4
    if view in ("unfolded3", "window"):      # and dot kept the rows in the book's order
        laid, row = Laid(g), rows(books[0], shared=False)
        height: dict[str, set[float]] = {}
        for node in laid.nodes:
            var, step, square = _variable(node)
            if step is not None and not square:
                height.setdefault(var, set()).add(round(laid.xy(node)[1], 1))
        assert all(len(ys) == 1 for ys in height.values()), height
        by_row = sorted(height, key=row.__getitem__)
        assert [min(height[v]) for v in by_row] == sorted(min(height[v]) for v in by_row)


def test_targets_are_written_into_their_losses_and_stay_above_them():
    for g in (viz.folded(expression_style()), viz.unfolded(expression_style(), steps=3),
              viz.unfolded(teacher_forced())):
        laid = Laid(g)
        into_loss = [e for e in laid.edges if e.head.startswith("L")]
        targets = [e for e in into_loss if e.tail.startswith("y")]
        assert targets and all(e.tail.replace("y", "L", 1) == e.head for e in targets)
        for e in targets:                                  # y above L, as the book draws it
            assert laid.xy(e.tail)[1] > laid.xy(e.head)[1]


def test_states_of_the_step_before_enter_the_next_cell_as_tails():
    laid = Laid(viz.unfolded(lstm_named(), steps=3))
    into = {e.tail for e in laid.edges if e.head == "cell(2)"}
    assert into == {"x(2)", "c(1)", "h(1)"}
    fed = Laid(viz.unfolded(teacher_forced()))
    assert ("y(t-1)", "h(t)") in {(e.tail, e.head) for e in fed.edges}


# --- the gallery --------------------------------------------------------------------------------------

BOOK_FIGURES = {"10.1", "10.2", "10.3", "10.4", "10.5", "10.6", "10.9", "10.10", "10.11",
                "10.13a", "10.13b", "10.13c", "10.16u", "gradients"}


@pytest.mark.parametrize("fid", sorted(k for k, f in FIGURES.items() if f.kind == "drawing"))
def test_no_gallery_drawing_turns_an_edge_round(fid):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = viz.figure(fid)
    assert not turned(g.source)
    laid = Laid(g)
    assert laid.edges
    tips = 0
    for e in laid.edges:       # where an edge says what it carries, it says tail → head
        tip = e.attrs.get("tooltip", "")
        m = re.match(r"(\S+) → (\S+?)(?:,|$| \()", tip)
        if m and not any(n.startswith("[") or "[delay" in n or "[memory]" in n
                         for n in (e.tail, e.head)):
            for node, said in ((e.tail, m.group(1)), (e.head, m.group(2))):
                name = _variable(node)[0]       # (a value the user did not name, s·2, is
                # said by what it is — "input" — never by its id)
                assert name not in tip if is_unnamed(name) else \
                    name == re.sub(r"\(.*", "", said), (node, tip)
            tips += 1
    assert tips or fid in ("10.7", "bptt")          # (bptt: an op view, edges between ops)


def test_structured_figures_run_with_their_data():
    laid = Laid(viz.figure("10.18"))
    pairs = {(e.tail, e.head) for e in laid.edges}
    assert {("h", "[writing]"), ("[writing]", "M[memory]"), ("M[memory]", "[reading]"),
            ("[reading]", "o"), ("M[memory]", "[writing]")} <= pairs
    square = [b for a, b in pairs if a == "[reading]" and "[delay" in b]
    assert square and (square[0], "h") in pairs          # r(t−1) → h through the square
    tree = Laid(viz.figure("10.14"))
    for e in tree.edges:
        (a, sa, _), (b, sb, _) = _variable(e.tail), _variable(e.head)
        assert (a, b) in {("x", "h"), ("h", "h"), ("h", "o"), ("o", "L"), ("y", "L")}
        if sa and sb:
            assert int(sa) < int(sb)                     # children before their parent
    chain = Laid(viz.figure("10.7"))
    assert all(step_key(_variable(e.tail)[1]) < step_key(_variable(e.head)[1])
               for e in chain.edges)


# --- the op view: inputs before their users ---------------------------------------------------------

def _op_ids(roots, backward):
    g = _OpGraph(roots, backward, None)
    g.results, g.every_op = set(backward), False
    return {ident: node for node, ident in g.name_nodes(g.drawn(False)).items()}


@pytest.mark.parametrize("make", [readme_style, lstm_stacked, gru_named])
def test_op_view_edges_run_from_inputs_to_their_users(make):
    rec = make()
    u = rec.unfold(3)
    params = list(rec.params.values())
    grads = uf.grad(u.loss, params)
    g = viz.graph(u.loss, backward=dict(zip(params, grads)))
    assert not turned(g.source)
    by_id = _op_ids([u.loss], grads)
    laid = Laid(g)
    red = 0
    for e in laid.edges:
        a, b = by_id.get(e.tail), by_id.get(e.head)
        if a is None or b is None:
            continue
        # every node is made after its inputs: a tail made later would run against the data
        assert a.serial < b.serial, f"{e.tail} → {e.head}"
        red += e.attrs.get("color") == "#b03a2e"
    assert red >= 6
    seed = next(n for n, node in by_id.items() if node.op.name != "param" and
                n.startswith("grad ") and "seed" in n)
    assert any(e.tail == seed for e in laid.edges)        # ∇L = 1 feeds the others


def test_overlay_and_side_by_side_edges_run_forward():
    rec = readme_style()
    u = rec.unfold(4)
    rng = np.random.default_rng(0)
    feed = {"x": rng.standard_normal((4,) + rec.sequences["x"].shape), "y": rng.integers(0, 2, 4)}
    feed.update({n: rng.standard_normal(p.shape) for n, p in rec.params.items()})
    norms = viz.gradient_norms(u, feed)
    g = viz.unfolded(rec, steps=4, gradients=norms)
    assert check_book_view(g, [prepare(rec, axis(4))[0]]) >= 10
    both = viz.side_by_side("two", [("a", rec, {"steps": 2}), ("b", lstm_named(), {"steps": 2})])
    laid = Laid(both)
    assert laid.edges and not turned(both.source)
    assert all(_variable(e.tail)[1] is None or _variable(e.head)[1] is None or
               step_key(_variable(e.tail)[1]) <= step_key(_variable(e.head)[1])
               for e in laid.edges)


def test_nothing_in_viz_turns_edges_round():
    import pathlib
    for path in pathlib.Path(viz.__file__).parent.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert 'dir="back"' not in text and "dir='back'" not in text, path.name
