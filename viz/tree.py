"""Recursive networks drawn as the book draws them (section 10.6, Fig. 10.14).

``viz.tree(rn, tree)`` unfolds a ``unfold.models.Recursive`` over a tree and draws the unfolded
graph the way Fig. 10.14 does: the inputs ``x(1) … x(n)`` in a row at the bottom, every inner
node ``h(p)`` above its two children — edges labelled with the parameters that multiply the left
and the right child on the way (``U``, ``W``, read off the node body) — and what is read out of
the root (``o`` through ``V``, the loss ``L``, the target ``y``) on top. A leaf whose
representation is its input (``embed=False``) is drawn as that input.
"""
from __future__ import annotations

from typing import Any

from unfold import arguments
from unfold.errors import UnfoldTypeError
from unfold.graph import Node, topological
from unfold.ops.base import ALIAS, PARAM

from . import labels as L
from .book import ADDITIVE
from .layout import check_columns
from .output import Drawing
from .views import new_graph, width


def params_between(top: Node, source: Node) -> tuple[list[str], list[str]]:
    """The parameters met on the ways from ``source`` up to ``top``: those that multiply it
    (labels) and those added (biases), in the order they were made."""
    order = topological([top])
    reach = {source}
    for n in order:
        if any(i in reach for i in n.inputs):
            reach.add(n)
    labels: list[str] = []
    biases: list[str] = []
    for n in order:
        if n not in reach or n is source:
            continue
        for i in n.inputs:
            if i in reach:
                continue
            found = [p.name for p in topological([i]) if p.op is PARAM]
            table = biases if n.op.name in ADDITIVE else labels
            table += [p for p in found if p not in table]
    return labels, biases


def _centre_over_leaves(dot: Drawing, net: Any, p: int, ids: dict[int, str]) -> None:
    """``h(p)`` midway over its two children when both are leaves (Fig. 10.14 draws each parent
    centred): an invisible point between them in their row pulls it there. (Two equal edges into
    ``h(p)`` leave dot free to set it anywhere between its children, and its own edge up to its
    parent drew it straight over the inner one. Over inner children the same point is no help:
    dot sets it beside one of them.)"""
    a, b = net.children(p)
    if max(a, b) > net.n_leaves:
        return
    mid = f"[between {a} {b}]"
    dot.node(mid, shape="point", width="0.01", style="invis", label="")
    with dot.subgraph() as row:
        row.attr(rank="same")
        row.node(ids[a])
        row.node(mid)
    dot.edge(ids[a], mid, style="invis")
    dot.edge(mid, ids[b], style="invis")
    dot.edge(mid, ids[p], style="invis", weight="3")

def tree(rn: Any, structure: Any = 4, *, params: bool = True) -> Drawing:
    """Fig. 10.14: ``rn`` (an ``unfold.models.Recursive``) unfolded over ``structure`` (a
    ``Tree``, or a number of leaves for the balanced tree), drawn from the unfolded graph."""
    params = arguments.flag("tree: params", params)
    from unfold.models.recursive import Recursive, as_trees
    if not isinstance(rn, Recursive):
        raise UnfoldTypeError(f"viz.tree draws an unfold.models.Recursive, got "
                              f"{type(rn).__name__}; for a recurrence use viz.unfolded")
    forest = as_trees(structure)
    check_columns("viz.tree", sum(t.n_leaves for t in forest), "draw a tree of fewer leaves")
    net = rn.unfold(forest)
    if len(net.trees) != 1:
        raise UnfoldTypeError("viz.tree draws one tree; give a Tree or a number of leaves")
    (x_name, _), = list(rn.inputs.items())[:1] or [("x", None)]
    left, _ = params_between(rn.node_value, rn.left)
    right, _ = params_between(rn.node_value, rn.right)
    into_leaf, _ = params_between(rn.leaf_value, rn.inputs[x_name])
    dot = new_graph(f"{rn.name} (tree)", nodesep="0.35")
    size = str(width("h", str(net.n_positions)))
    ids: dict[int, str] = {}
    leaves = []
    embedded = not (rn.leaf_value.op is ALIAS and rn.leaf_value.inputs[0] is rn.inputs[x_name])

    def node(name: str, step: int | str | None, key: str, tip: str) -> str:
        dot.node(key, L.variable(name, step), width=size, tooltip=L.tooltip(tip))
        return key

    def edge(a: str, b: str, names: list[str], tip: str) -> None:
        label = {"label": L.params(names)} if params and names else {}
        dot.edge(a, b, **label, tooltip=L.tooltip(tip))

    def title(p: int) -> str:        # a leaf drawn as its input is named so
        return f"{x_name}({p})" if p <= net.n_leaves and not embedded else f"h({p})"

    for i in range(1, net.n_leaves + 1):
        x = node(x_name, i, L.node_id(x_name, i), f"{x_name}({i})")
        leaves.append(x)
        if embedded:
            ids[i] = node("h", i, L.node_id("h", i), f"h({i})")
            edge(x, ids[i], into_leaf, f"{x_name}({i}) → h({i})")
        else:
            ids[i] = x
    for p in range(net.n_leaves + 1, net.n_positions + 1):
        a, b = net.children(p)
        ids[p] = node("h", p, L.node_id("h", p), f"h({p})")
        edge(ids[a], ids[p], left, f"{title(a)} → h({p}), the left child")
        edge(ids[b], ids[p], right, f"{title(b)} → h({p}), the right child")
    for row_nodes in (leaves, [ids[i] for i in range(1, net.n_leaves + 1)] if embedded else []):
        with dot.subgraph() as row:                # the inputs (and leaves) in a row, in order
            row.attr(rank="same")
            for x in row_nodes:
                row.node(x)
    for a, b in zip(leaves, leaves[1:]):
        dot.edge(a, b, style="invis")
    for p in range(net.n_leaves + 1, net.n_positions + 1):
        _centre_over_leaves(dot, net, p, ids)
    root = ids[net.n_positions]
    for name, value in rn.outputs.items():
        o = node(name, None, L.node_id(name), name)
        edge(root, o, params_between(value, rn.root)[0], f"h(root) → {name}")
        for loss, lvalue in rn.losses.items():
            if value in set(topological([lvalue])):
                lid = node(loss, None, L.node_id(loss), loss)
                edge(o, lid, [], f"{name} → {loss}")
                for y in rn.targets:
                    yid = node(y, None, L.node_id(y), y)
                    # the target above its loss, its edge down into it (as in viz.views)
                    dot.edge(yid, lid, constraint="false", tooltip=L.tooltip(f"{y} → {loss}"))
                    dot.edge(f"{lid}:c", f"{yid}:c", style="invis")
    return dot
