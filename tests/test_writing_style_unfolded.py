"""A variable declared with ``rec.update``/``output``/``loss``/``name_node`` is that variable in the
unfolded graph whether the user goes on with the returned node or with the expression they
passed: both styles unfold to the same graph (same named nodes on the loss's path, same values,
same op-view drawing)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import unfold as uf
import viz
from unfold.graph import topological


def _rnn(style: str, gate: bool) -> uf.Recurrence:
    rec = uf.Recurrence("rnn")
    x, h = rec.sequence("x", (3,)), rec.state("h", (4,))
    y = rec.sequence("y", (), dtype="int64")
    W, U, V, c = (rec.param("W", (4, 4)), rec.param("U", (4, 3)), rec.param("V", (2, 4)),
                  rec.param("c", (2,)))
    a = W @ h + U @ x
    if gate:
        f = uf.sigmoid(rec.param("W_f", (4, 4)) @ h)
        named = rec.name_node("f", f)
        a = a * (named if style == "node" else f)
    new = uf.tanh(a)
    h_t = rec.update(h, new)
    expr = c + V @ (h_t if style == "node" else new)
    o = rec.output("o", expr)
    rec.loss("L", uf.cross_entropy(o if style == "node" else expr, y))
    return rec


def _names(u) -> list[str]:
    return sorted(f"{n.name}({n.step})" for n in topological([u.loss]) if n.name)


@pytest.mark.parametrize("gate", [False, True])
def test_both_styles_unfold_to_the_same_graph(gate):
    recs = [_rnn(s, gate) for s in ("node", "expr")]
    node, expr = (r.unfold(3) for r in recs)
    assert _names(node) == _names(expr)
    assert "o(2)" in _names(expr) and "h(2)" in _names(expr) and (not gate or "f(2)" in _names(expr))
    rng = np.random.default_rng(0)
    feed = {name: rng.standard_normal(p.shape) for name, p in recs[0].params.items()}
    feed.update(x=rng.standard_normal((3, 3)), y=np.array([0, 1, 1]))
    want = uf.evaluate([node.loss] + uf.grad(node.loss, node.params), feed)
    got = uf.evaluate([expr.loss] + uf.grad(expr.loss, expr.params), feed)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_both_styles_draw_the_same_op_view():
    labels = [sorted(re.findall(r'label=(<[^\n]*>|"[^"]*")', viz.graph([u.loss]).source))
              for u in (_rnn(s, True).unfold(3) for s in ("node", "expr"))]
    assert labels[0] == labels[1]


def test_both_styles_draw_the_same_backward_panel():
    """∇h(t) is drawn whether the output reads ``rec.update``'s returned node or its expression
    (vizjudge finding 7: the expression style lost ∇h(t) and merged parameter gradients)."""
    views = []
    for style in ("node", "expr"):
        u = _rnn(style, True).unfold(3)
        params = list(u.params)
        views.append(viz.graph([u.loss], backward=dict(zip(params, uf.grad(u.loss, params)))))
    labels = [sorted(re.findall(r'label=(<[^\n]*>|"[^"]*")', v.source)) for v in views]
    assert labels[0] == labels[1]
    assert all(f"h({t})" in views[1].source for t in (1, 2, 3))
