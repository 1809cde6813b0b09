"""One model, one drawing, whatever the style it is written in (issue 9, item 1): checked on
``dot -Tjson`` layouts — the same rows, columns and labelled edges — for models written here, not
taken from ``unfold.models``."""
from __future__ import annotations

import re
import shutil

import pytest

import unfold as uf
import viz
from unfold import Recurrence
from viz.book import contract
from viz_json import Laid

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")


def _rnn_parts(rec: Recurrence):
    x = rec.sequence("x", (4,))
    h = rec.state("h", (3,))
    W, U, b = rec.param("W", (3, 3)), rec.param("U", (3, 4)), rec.param("b", (3,))
    V, c = rec.param("V", (5, 3)), rec.param("c", (5,))
    return x, h, W, U, b, V, c


def readme_style() -> Recurrence:
    """The README's: a declared target, the returned nodes used downstream."""
    rec = Recurrence("rnn")
    y = rec.target("y", ())
    x, h, W, U, b, V, c = _rnn_parts(rec)
    h_t = rec.update(h, uf.tanh(b + W @ h + U @ x))
    o = rec.output("o", c + V @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def expression_style() -> Recurrence:
    """The expressions passed on, not the returned nodes; the target an ordinary sequence."""
    rec = Recurrence("rnn")
    x, h, W, U, b, V, c = _rnn_parts(rec)
    y = rec.sequence("y", (), dtype="int64")
    h_t = uf.tanh(b + W @ h + U @ x)
    rec.update(h, h_t)
    expr = c + V @ h_t
    rec.output("o", expr)
    rec.loss("L", uf.cross_entropy(expr, y))
    return rec


def mixed_style() -> Recurrence:
    """The returned state, the output's expression for the loss, declared in another order."""
    rec = Recurrence("rnn")
    x, h, W, U, b, V, c = _rnn_parts(rec)
    h_t = rec.update(h, uf.tanh(U @ x + W @ h + b))
    expr = V @ h_t + c
    rec.output("o", expr)
    rec.loss("L", uf.cross_entropy(expr, rec.sequence("y", (), dtype="int64")))
    return rec


STYLES = [readme_style, expression_style, mixed_style]
VIEWS = {"folded": viz.folded, "unfolded": lambda r: viz.unfolded(r, steps=3),
         "window": viz.unfolded, "unfolding": lambda r: viz.unfolding(r, steps=2)}


def geometry(g) -> tuple[list[str], dict, set]:
    """Rows (variables bottom to top), columns (steps left to right, per row) and labelled
    edges of a layout."""
    laid = Laid(g)
    at = {n: laid.xy(n) for n in laid.nodes if "pos" in laid.nodes[n] and "[" not in n}
    rows = sorted({round(y) for _, y in at.values()})
    by_row = {r: sorted((x, n) for n, (x, y) in at.items() if round(y) == r) for r in rows}
    return [" ".join(n for _, n in by_row[r]) for r in rows], by_row, laid.labelled()


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("style", STYLES[1:], ids=lambda f: f.__name__)
def test_every_style_draws_the_same_rows_columns_and_labelled_edges(style, view):
    ref_rows, ref_pos, ref_edges = geometry(VIEWS[view](readme_style()))
    rows, pos, got_edges = geometry(VIEWS[view](style()))
    assert rows == ref_rows
    assert got_edges == ref_edges
    assert pos == ref_pos


def test_the_expression_passed_to_output_is_the_output():
    book = contract(expression_style())
    got = {(e.src, e.dst, e.delay, e.labels) for e in book.edges}
    assert got == {("x", "h", 0, ("U",)), ("h", "h", 1, ("W",)), ("h", "o", 0, ("V",)),
                   ("o", "L", 0, ()), ("y", "L", 0, ())}
    assert book.variables["y"].kind == "target"           # read only by the loss


def test_a_sequence_read_only_by_the_loss_is_drawn_above_it():
    laid = Laid(viz.unfolded(expression_style(), steps=2))
    for t in ("1", "2"):
        assert laid.xy(f"y({t})")[1] > laid.xy(f"L({t})")[1] > laid.xy(f"h({t})")[1]
        assert laid.xy(f"y({t})")[1] > laid.xy(f"x({t})")[1]
    folded = Laid(viz.folded(expression_style()))
    assert folded.xy("y")[1] > folded.xy("L")[1]


def test_parameters_in_sequence_keep_their_order_through_a_point():
    rec = Recurrence("two layers out")
    x, h = rec.sequence("x", (4,)), rec.state("h", (3,))
    h_t = rec.update(h, uf.tanh(rec.param("W", (3, 3)) @ h + rec.param("U", (3, 4)) @ x))
    o = rec.output("o", rec.param("V", (5, 6)) @ uf.tanh(rec.param("V2", (6, 3)) @ h_t))
    rec.loss("L", uf.cross_entropy(o, rec.sequence("y", (), dtype="int64")))
    for g in (viz.folded(rec), viz.unfolded(rec, steps=2)):
        laid = Laid(g)
        into_o = [e for e in laid.edges if re.fullmatch(r"o(\(\d\))?", e.head)]
        assert {e.label for e in into_o} == {"V"}
        point = into_o[0].tail
        into_point = [e for e in laid.edges if e.head == point]
        assert [(e.tail[0], e.label) for e in into_point] == [("h", "V2")]
        h_node = into_point[0].tail
        assert laid.xy(h_node)[1] < laid.xy(point)[1] < laid.xy(into_o[0].head)[1]
        assert not any("V2" in e.label and "V," in e.label for e in laid.edges)


def test_parameters_on_parallel_paths_share_one_edge():
    rec = Recurrence("parallel")
    x, h = rec.sequence("x", (4,)), rec.state("h", (3,))
    h_t = rec.update(h, uf.tanh(rec.param("W", (3, 3)) @ h + rec.param("U", (3, 4)) @ x))
    rec.output("o", rec.param("V", (5, 3)) @ h_t + rec.param("S", (5, 3)) @ h_t)
    book = contract(rec)
    assert [(e.src, e.labels) for e in book.inputs_of("o")] == [("h", ("V", "S"))]
    assert not any(v.kind == "point" for v in book.variables.values())


def test_a_name_given_twice_to_one_expression_draws_the_first_feeding_the_second():
    rec = Recurrence("twice")
    x, h = rec.sequence("x", (2,)), rec.state("h", (2,))
    e = uf.tanh(rec.param("W", (2, 2)) @ h + x)
    rec.update(h, e)
    rec.output("o", e)
    book = contract(rec)
    assert ("h", "o", 0) in {(f.src, f.dst, f.delay) for f in book.edges}
