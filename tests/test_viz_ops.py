"""viz.graph, the op view: every op node, the dummy copies W(t) tied to W, step clusters,
collapsing repeated steps, depth limits, and the backward graph beside the forward one."""
from __future__ import annotations

import re

import unfold as uf
import viz
from test_viz_book import edges, nodes, rnn


def test_every_op_node_and_the_dummy_copies_tied_to_their_parameter():
    u = rnn().unfold(3)
    src = viz.graph(u.loss).source
    ids = nodes(src)
    assert len(ids) == len(uf.graph.topological([u.loss]))
    for t in (1, 2, 3):
        assert f"W({t})" in ids
        tie = [attrs for a, b, attrs in edges(src) if (a, b) == ("W", f"W({t})")]
        assert tie and "dashed" in tie[0]
    assert all(f"cluster_f{t}" in src for t in (1, 2, 3))


def test_collapse_keeps_the_ends_and_one_box_for_the_middle():
    u = rnn().unfold(9)
    src = viz.graph(u.loss, collapse=2).source
    ids = nodes(src)
    assert {"h(1)", "h(2)", "h(8)", "h(9)"} <= set(ids)
    assert not any(re.fullmatch(r"\w+\([3-7]\)", n) for n in ids)
    assert "× 5" in src
    assert ("h(2)", "[forward steps 3-7]") in {(a, b) for a, b, _ in edges(src)}


def test_depth_limits_what_is_drawn():
    u = rnn().unfold(4)
    shallow = nodes(viz.graph(u.loss, depth=3).source)
    assert len(shallow) < 20 and "L" in shallow
    assert any(n.endswith("[cut]") for n in shallow)


def test_backward_graph_beside_the_forward_one():
    rec = rnn()
    u = rec.unfold(2)
    W = rec.params["W"]
    src = viz.graph(u.loss, backward={W: uf.grad(u.loss, W)}).source
    assert "cluster_forward" in src and "cluster_backward" in src
    assert "∇W" in src
    grads = [n for n in nodes(src) if n.startswith("grad ")]
    assert grads


def test_folded_graph_shows_state_reads_with_their_delay():
    src = viz.graph(rnn().roots()).source
    assert "(<I>t</I>−1)" in src


def test_op_view_is_deterministic():
    a = viz.graph(rnn().unfold(3).loss, collapse=1).source
    b = viz.graph(rnn().unfold(3).loss, collapse=1).source
    assert a == b
