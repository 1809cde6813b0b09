"""The op view: every node of a graph (folded, unfolded or a gradient graph), as graphviz.

``viz.graph(nodes)`` draws the ancestors of ``nodes``: op nodes as small boxes named by their op,
named values as ellipses (``h(3)``), parameters as bold boxes, the per-step dummy copies ``W(t)``
tied to their parameter by a dashed edge, each time step in a cluster. Gradient nodes (built by
``unfold.grad``, which records the forward node each belongs to) go to a "backward" panel beside
the forward one. Large graphs stay readable: ``collapse=k`` keeps the first and last ``k`` steps
and stands one box "× N" for the steps in between, and ``depth=d`` draws only what lies within
``d`` edges of ``nodes`` (cut inputs end in a "…" stub).
"""
from __future__ import annotations

from collections import deque
from typing import Mapping, Sequence

import graphviz
import numpy as np

from unfold.graph import Node, topological
from unfold.ops.base import CONSTANT, INPUT, PARAM
from unfold.recurrence import ALIAS, STATE

from . import labels as L

GRAPH = {"rankdir": "BT", "newrank": "true", "nodesep": "0.25", "ranksep": "0.35",
         "fontname": "Helvetica", "fontsize": "11", "compound": "true"}
NODE = {"fontname": "Helvetica", "fontsize": "10", "shape": "box", "style": "rounded",
        "height": "0.3", "margin": "0.06,0.03"}
EDGE = {"arrowsize": "0.5", "color": "#555555"}
BACKWARD = "#b03a2e"           # the colour of gradient nodes


def _is_copy(node: Node) -> bool:
    """A parameter's per-step dummy copy ``W(t)``."""
    return node.op is ALIAS and node.step is not None and node.inputs[0].op is PARAM


def _title(node: Node) -> str:
    return node.name if node.step is None else f"{node.name}({node.step})"


def _label(node: Node) -> tuple[str, dict[str, str]]:
    """The HTML label and the shape attributes of one node."""
    if node.op is PARAM or _is_copy(node):
        return f"<<B>{L.esc(_title(node))}</B>>", {"shape": "box", "style": "bold" if
                                                    node.op is PARAM else "dashed"}
    if node.op is CONSTANT:
        value = node.attrs["value"]
        text = np.array2string(value, precision=3) if value.size <= 3 else \
            f"const {tuple(value.shape)}"
        return f"<{L.esc(text)}>", {"shape": "plaintext", "style": ""}
    if node.op is STATE:                         # a state read d steps back, h(t−1)
        return (f"<<B>{L.esc(node.name)}</B>(<I>t</I>−{node.attrs['delay']})>",
                {"shape": "ellipse", "style": "dashed"})
    if node.name is not None:
        extra = "" if node.op in (ALIAS, INPUT) else \
            f'<BR/><FONT POINT-SIZE="8">{L.esc(node.op.name)}</FONT>'
        return f"<<B>{L.esc(_title(node))}</B>{extra}>", {"shape": "ellipse", "style": ""}
    return f"<{L.esc(node.op.name)}>", {}


class _OpGraph:
    """The selection of nodes to draw, and their ids."""

    def __init__(self, roots: list[Node], collapse: int | None, depth: int | None) -> None:
        self.order = topological(roots)
        self.roots = roots
        steps = sorted({n.step for n in self.order if n.step is not None})
        self.hidden_steps: list[int] = []
        if collapse is not None and len(steps) > 2 * collapse + 1:
            self.hidden_steps = steps[collapse:len(steps) - collapse]
        self.shown = self.within(depth)
        self.ids = self.name_nodes()

    def within(self, depth: int | None) -> set[Node]:
        if depth is None:
            return set(self.order)
        dist = {r: 0 for r in self.roots}
        queue = deque(self.roots)
        while queue:
            node = queue.popleft()
            if dist[node] < depth:
                for i in node.inputs:
                    if i not in dist:
                        dist[i] = dist[node] + 1
                        queue.append(i)
        return set(dist)

    def name_nodes(self) -> dict[Node, str]:
        """Ids from names and steps (``h(3)``), else the op and the topological position."""
        ids, taken = {}, set()
        for k, node in enumerate(self.order):
            base = L.node_id(node.name, node.step) if node.name is not None else \
                f"{node.op.name}#{k}"
            if node.adjoint is not None:
                base = "grad " + base
            ident, n = base, 1
            while ident in taken:
                n += 1
                ident = f"{base}#{n}"
            taken.add(ident)
            ids[node] = ident
        return ids

    def backward(self, results: Sequence[Node]) -> set[Node]:
        """Gradient nodes: those ``unfold.grad`` tagged, the ``results`` asked for, and the
        leaves only they use (the seed ``1``)."""
        users: dict[Node, list[Node]] = {}
        for node in self.order:
            for i in node.inputs:
                users.setdefault(i, []).append(node)
        grads = {n for n in self.order if n.adjoint is not None} | set(results)
        return grads | {n for n in self.order if not n.inputs and users.get(n) and
                        all(u in grads for u in users[n])}


def graph(nodes: Node | Sequence[Node], *, backward: Sequence[Node] | Mapping[Node, Node] = (),
          clusters: bool = True, collapse: int | None = None,
          depth: int | None = None) -> graphviz.Digraph:
    """Every op node behind ``nodes`` (and behind ``backward``: gradients from ``unfold.grad``,
    as a list, or as a mapping ``{W: ∇W}`` to have them labelled ``∇W``), as a Digraph.

    ``clusters`` groups each time step; ``collapse=k`` keeps only the first and last ``k`` steps
    (one box "× N" stands for the others); ``depth`` limits the drawing to that many edges below
    ``nodes``. Gradient nodes are drawn in red in a "backward" panel beside the forward graph.
    """
    if isinstance(backward, Mapping):
        results = {g: f"∇{_title(x) if x.name else x.op.name}" for x, g in backward.items()}
        backward = list(backward.values())
    else:
        backward = list(backward)
        results = {g: "∇" for g in backward}
    roots = [nodes] if isinstance(nodes, Node) else list(nodes)
    roots += [n for n in backward if not any(n is r for r in roots)]
    for n in roots:
        if not isinstance(n, Node):
            raise TypeError(f"viz.graph draws unfold nodes, got {type(n).__name__}")
    g = _OpGraph(roots, collapse, depth)
    dot = graphviz.Digraph("ops", graph_attr=GRAPH, node_attr=NODE, edge_attr=EDGE)
    grads = g.backward(backward)
    hidden = set(g.hidden_steps)
    panels: dict[tuple[bool, int | None], list[str]] = {}
    box = {}
    for part in (False, True):                   # the forward panel, then the backward one
        members = [n for n in g.order if n in g.shown and (n in grads) == part]
        if not members:
            continue
        if hidden:
            box[part] = f"[{'backward' if part else 'forward'} steps {g.hidden_steps[0]}-" \
                        f"{g.hidden_steps[-1]}]"
        for n in members:
            if n.step in hidden:
                continue
            key = (part, n.step if clusters else None)
            panels.setdefault(key, []).append(n)
    # nodes, by panel and step; panels only when there is a backward part
    two = any(k[0] for k in panels) or True in box
    for part in (False, True):
        keys = sorted((k for k in panels if k[0] == part), key=lambda k: (k[1] is not None,
                                                                          k[1] or 0))
        if not keys and part not in box:
            continue
        with dot.subgraph(name=f"cluster_{'backward' if part else 'forward'}" if two else None
                          ) as panel:
            if two:
                panel.attr(label=L.plain("backward (gradients)" if part else "forward"),
                           style="dashed", color="#999999", fontcolor="#666666")
            for key in keys:
                if key[1] is None:
                    _nodes(panel, panels[key], g, part, results)
                    continue
                with panel.subgraph(name=f"cluster_{'b' if part else 'f'}{key[1]}") as step:
                    step.attr(label=L.plain(f"step {key[1]}"), style="rounded",
                              color="#cccccc", fontcolor="#888888")
                    _nodes(step, panels[key], g, part, results)
            if part in box:
                count = len(g.hidden_steps)
                panel.node(box[part], f"<steps {g.hidden_steps[0]}…{g.hidden_steps[-1]}"
                                      f"<BR/>× {count}>",
                           shape="box3d", style="", color="#888888")
    # edges (to and from a collapsed step: to its box, once)
    done: set[tuple[str, str]] = set()
    for n in g.order:
        if n not in g.shown:
            continue
        head = box[n in grads] if n.step in hidden else g.ids[n]
        cut = False
        for i in n.inputs:
            if i not in g.shown:
                cut = True
                continue
            tail = box[i in grads] if i.step in hidden else g.ids[i]
            if tail == head or (tail, head) in done:
                continue
            done.add((tail, head))
            attrs = {}
            if _is_copy(n):
                attrs = {"style": "dashed", "arrowhead": "none", "tooltip":
                         L.plain(f"{_title(n)} is the step-{n.step} copy of {i.name}")}
            elif (i in grads) != (n in grads):
                attrs = {"color": "#bbbbbb", "constraint": "false"}
            elif n in grads:
                attrs = {"color": BACKWARD}
            dot.edge(tail, head, **attrs)
        if cut and n.step not in hidden:
            stub = g.ids[n] + "[cut]"
            dot.node(stub, "…", shape="plaintext", tooltip=L.plain("inputs beyond depth"))
            dot.edge(stub, g.ids[n], style="dotted")
    return dot


def _nodes(dot: graphviz.Digraph, members: list[Node], g: _OpGraph, backward: bool,
           results: dict[Node, str]) -> None:
    for n in members:
        label, attrs = _label(n)
        if n in results:                         # a gradient asked for: ∇W
            label, attrs = f"<<B>{L.esc(results[n])}</B>>", {"shape": "ellipse", "style": ""}
        if backward:
            attrs = {**attrs, "color": BACKWARD, "fontcolor": BACKWARD}
        tip = f"{g.ids[n]}: {n.op.name}, shape {n.shape}, {n.dtype}"
        if n.adjoint is not None:             # (ids, not labels: those carry serial numbers)
            tip += f"; part of the backward step of {g.ids.get(n.adjoint, n.adjoint.op.name)}"
        dot.node(g.ids[n], label, tooltip=L.plain(tip), **attrs)
