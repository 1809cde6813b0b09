"""viz.loops: edge ends moved off the folded loops (issue 9 item 3), on hand-made layouts (dot's
JSON written here, so every case is exact) and on the drawings themselves."""
from __future__ import annotations

import shutil
from unittest import mock

import graphviz
import pytest

import unfold.models as models
import viz
from viz import loops, output


def _layout(ends: dict[tuple[str, str], tuple[tuple[float, float], tuple[float, float]]],
            at: dict[str, tuple[float, float]]) -> dict:
    """dot's JSON for nodes ``at`` (circles, squares where the name says so) and straight edges
    between the ``ends`` given."""
    names = list(at)
    objects = [{"_gvid": k, "name": n, "pos": f"{x},{y}",
                "width": "0.11" if loops.is_square(n) else "0.55"} for k, (n, (x, y)) in
               enumerate(at.items())]
    edges = []
    for (tail, head), (p, q) in ends.items():
        mid = ((p[0] + q[0]) / 2, (p[1] + q[1]) / 2)
        edges.append({"tail": names.index(tail), "head": names.index(head),
                      "pos": f"e,{q[0]},{q[1]} {p[0]},{p[1]} {mid[0]},{mid[1]} "
                             f"{mid[0]},{mid[1]} {q[0]},{q[1]}"})
    return {"objects": objects, "edges": edges}


AT = {"z": (0.0, -100.0), "s": (0.0, 0.0), "s[delay 1]": (60.0, 0.0)}
LOOP = {("s", "s[delay 1]"): ((20.0, 5.0), (60.0, 0.0)),
        ("s[delay 1]", "s"): ((60.0, 0.0), (19.0, -6.0))}


def test_an_end_beside_a_loop_s_end_is_a_clash_and_a_far_one_is_not():
    near = _layout({**LOOP, ("z", "s"): ((0.0, -80.0), (17.0, -10.0))}, AT)
    far = _layout({**LOOP, ("z", "s"): ((0.0, -80.0), (0.0, -20.0))}, AT)
    (clashes, meets), = [loops._clashes(near)]
    assert [(a[:3], b[:3]) for a, b in clashes] == [(("z", "s", "head"),
                                                     ("s[delay 1]", "s", "head"))]
    assert meets == []
    assert loops._clashes(far) == ([], [])


def test_the_ports_tried_face_the_edge_s_other_end_and_keep_clear_of_the_loop():
    near = _layout({**LOOP, ("z", "s"): ((0.0, -80.0), (17.0, -10.0))}, AT)
    clashes, _ = loops._clashes(near)
    # z stands below s: s, sw and se face it; se is within 40° of the loop's end (−18°)
    assert loops._candidates(clashes[0][0], clashes) == ["s", "sw"]


def _untangled(fixed: dict, at: dict = AT) -> loops.Ports:
    """``untangle`` of a drawing whose layout is the clash above (nodes ``at``), or ``fixed``
    once z → s enters at s's south point."""
    clash = _layout({**LOOP, ("z", "s"): ((0.0, -80.0), (17.0, -10.0))}, at)

    def draw(ports):
        g = graphviz.Digraph()
        g.edge("z", "s" + (":" + ports[("z", "s")][1] if ("z", "s") in ports else ""))
        return g
    with mock.patch.object(loops, "_FOUND", {}), \
            mock.patch.object(output, "have_dot", lambda: True), \
            mock.patch.object(output, "layout",
                              lambda g, quiet=False: fixed if "s:s" in g.source else clash):
        return loops.untangle(draw)


def test_an_end_moves_to_a_port_that_clears_the_loop():
    fixed = _layout({**LOOP, ("z", "s"): ((0.0, -80.0), (0.0, -20.0))}, AT)
    assert _untangled(fixed) == {("z", "s"): ("", "s")}


def test_a_move_that_would_reorder_a_row_is_not_taken():
    before = {**AT, "q": (40.0, -100.0)}
    moved = _layout({**LOOP, ("z", "s"): ((60.0, -80.0), (0.0, -20.0))},
                    {**before, "z": (60.0, -100.0)})             # z now right of q
    assert _untangled(moved, before) == {}


def _rule_s(rec) -> str:
    """The DOT text of ``rec``'s folded view as the placing rules draw it (no end moved)."""
    from viz.views import _draw_folded, _name, contract
    return _draw_folded(contract(rec, ()), _name(rec, "folded"), True, False, {}).source


@pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")
def test_a_drawing_without_clashes_is_the_rule_s():
    assert viz.folded(models.rnn(3, 4, 2)).source == _rule_s(models.rnn(3, 4, 2))


def test_without_dot_the_folded_view_is_the_rule_s():
    with mock.patch.object(output, "have_dot", lambda: False):
        assert viz.folded(models.lstm(3, 2, 4)).source == _rule_s(models.lstm(3, 2, 4))
