"""The op view: every node of a graph (folded, unfolded or a gradient graph), as graphviz.

``viz.graph(nodes)`` draws the ancestors of ``nodes``: op nodes as small boxes named by their op,
named values as ellipses (``h(3)``), parameters as bold boxes, the per-step dummy copies ``W(t)``
tied to their parameter by a dashed edge, each time step in a cluster.

``backward=`` adds a gradient graph from ``unfold.grad`` in a red panel beside the forward one,
its nodes named by what they mean (``∇h(3)``, ``∇W(2)``, ``∇W = Σ_t ∇W(t)``, see
``viz.gradients``). By default that panel shows only those meaningful gradients, joined where one
is computed from another (``∇h(2)`` from ``∇h(3)``); ``backward_ops=True`` draws every op of it.
Its edges run from the loss's gradient down, mirroring the forward panel: ``∇h(t)`` stands
level with ``h(t)``. Every edge is written the way its data flows (tail: the value, head: its
reader).

Large graphs stay drawable: above ``budget`` nodes the middle steps collapse into one box
"steps a…b × N" (said in the drawing and in a ``CollapsedStepsWarning``), ``collapse=k`` keeps
the first and last ``k`` steps explicitly, and ``depth=d`` draws only what lies within ``d``
edges of ``nodes`` (cut inputs end in a "…" stub).
"""
from __future__ import annotations

import warnings
from collections import deque
from typing import Mapping, Sequence

import graphviz
import numpy as np

from unfold.errors import UnfoldTypeError, UnfoldValueError
from unfold.graph import Node, topological
from unfold.ops.base import ALIAS, CONSTANT, INPUT, PARAM
from unfold.recurrence import STATE

from . import labels as L
from .gradients import Meaning, _is_copy, meanings
from .output import Drawing

GRAPH = {"rankdir": "BT", "newrank": "true", "nodesep": "0.25", "ranksep": "0.35",
         "fontname": "Helvetica", "fontsize": "11", "compound": "true"}
NODE = {"fontname": "Helvetica", "fontsize": "10", "shape": "box", "style": "rounded",
        "height": "0.3", "margin": "0.06,0.03"}
EDGE = {"arrowsize": "0.5", "color": "#555555"}
BACKWARD = "#b03a2e"           # the colour of gradient nodes

#: nodes drawn at most before the middle steps collapse (``budget=``)
BUDGET = 400


class CollapsedStepsWarning(UserWarning):
    """An op view draws the middle steps of a long graph as one box."""


def _title(node: Node) -> str:
    return node.name if node.step is None else f"{node.name}({node.step})"


def _label(node: Node) -> tuple[str, dict[str, str]]:
    """The HTML label and the shape attributes of one forward node."""
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
    """What to draw: forward and gradient nodes, their steps, ids and meanings."""

    def __init__(self, roots: list[Node], backward: list[Node], depth: int | None) -> None:
        self.forward = topological(roots)
        fset = set(self.forward)
        self.grads = [n for n in topological(backward) if n not in fset] if backward else []
        self.gset = set(self.grads)
        self.order = sorted(self.forward + self.grads, key=lambda n: n.serial)
        self.meaning: dict[Node, Meaning] = meanings(self.forward, self.grads)
        self.step = self.steps()
        self.shown = self.within(roots + backward, depth)
        self.ids: dict[Node, str] = {}

    def steps(self) -> dict[Node, int | None]:
        """Each node's time step: its own, or for unstepped computed nodes (the running sum
        L = Σ_t L(t), the backward steps of those) the latest step they read; the sums over
        all steps of a parameter's gradient stand outside the steps."""
        step: dict[Node, int | None] = {}
        for n in self.order:
            if n in self.meaning and self.meaning[n].kind == "total":
                step[n] = None
            elif n.step is not None:
                step[n] = n.step
            elif not n.inputs:
                step[n] = None
            elif n.adjoint is not None and step.get(n.adjoint) is not None:
                step[n] = step[n.adjoint]
            else:
                found = [step[i] for i in n.inputs if step.get(i) is not None]
                step[n] = max(found) if found else None
        return step

    def within(self, roots: list[Node], depth: int | None) -> set[Node]:
        if depth is None:
            return set(self.order)
        dist = {r: 0 for r in roots}
        queue = deque(roots)
        while queue:
            node = queue.popleft()
            if dist[node] < depth:
                for i in node.inputs:
                    if i not in dist:
                        dist[i] = dist[node] + 1
                        queue.append(i)
        return set(dist)

    def name_nodes(self, drawn: list[Node]) -> dict[Node, str]:
        """Ids of the ``drawn`` nodes, from names and steps (``h(3)``), meanings (``grad h(3)``),
        else the op and the position in creation order."""
        ids, taken = {}, set()
        position = {n: k for k, n in enumerate(self.order)}
        for node in drawn:
            k = position[node]
            m = self.meaning.get(node)
            if m is not None:
                base = "grad " + (L.node_id(m.of.name or m.of.op.name, m.of.step)
                                  if m.kind == "grad" else f"{m.of.name} {m.kind}")
            elif node.name is not None:
                base = L.node_id(node.name, node.step)
            else:
                base = f"{node.op.name}#{k}"
            if node in self.gset and m is None:
                base = "grad " + base
            ident, n = base, 1
            while ident in taken:
                n += 1
                ident = f"{base}#{n}"
            taken.add(ident)
            ids[node] = ident
        return ids

    def drawn(self, backward_ops: bool) -> list[Node]:
        """The nodes drawn: every shown forward node; of the gradient graph, every op, or the
        meaningful gradients (and the results asked for) only."""
        return [n for n in self.order if n in self.shown and
                (n not in self.gset or backward_ops or self.key_gradient(n))]

    def key_gradient(self, n: Node) -> bool:
        m = self.meaning.get(n)
        if n in self.results:
            return True
        if m is None or m.kind == "partial":
            return False
        return m.of.name is not None or m.kind == "seed"


def _collapse(g: _OpGraph, nodes: list[Node], collapse: int | None, budget: int | None
              ) -> list[int]:
    """The steps to hide in one box: the middle ones when ``collapse=k`` is given, or when the
    drawing would exceed ``budget`` nodes (with a warning)."""
    steps = sorted({g.step[n] for n in nodes if g.step[n] is not None})
    if collapse is None and budget is not None and len(nodes) > budget and len(steps) > 3:
        per_step: dict[int, int] = {}
        for n in nodes:
            if g.step[n] is not None:
                per_step[g.step[n]] = per_step.get(g.step[n], 0) + 1
        fixed = len(nodes) - sum(per_step.values())
        k = 1
        while 2 * (k + 1) + 1 < len(steps) and fixed + sum(
                per_step[s] for s in steps[:k + 1] + steps[-k - 1:]) <= budget:
            k += 1
        hidden = steps[k:len(steps) - k]
        warnings.warn(
            f"viz.graph: {len(nodes)} nodes exceed budget={budget}; steps {hidden[0]}–"
            f"{hidden[-1]} ({len(hidden)} steps) are drawn as one box (pass collapse=k to keep k "
            f"steps at each end, or budget=None to draw every node)", CollapsedStepsWarning,
            stacklevel=3)
        return hidden
    if collapse is not None and len(steps) > 2 * collapse + 1:
        return steps[collapse:len(steps) - collapse]
    return []


def graph(nodes: Node | Sequence[Node], *, backward: Sequence[Node] | Mapping[Node, Node] = (),
          backward_ops: bool = False, clusters: bool = True, collapse: int | None = None,
          budget: int | None = BUDGET, depth: int | None = None) -> Drawing:
    """Every op node behind ``nodes`` (and behind ``backward``: gradients from ``unfold.grad``,
    as a list, or as a mapping ``{W: ∇W}`` to have them labelled ``∇W``), as a Digraph.

    ``clusters`` groups each time step; ``collapse=k`` keeps only the first and last ``k`` steps
    (one box "× N" stands for the others), which happens by itself above ``budget`` nodes
    (``budget=None``: never); ``depth`` limits the drawing to that many edges below ``nodes``.
    Gradient nodes are drawn in red in a "backward" panel beside the forward graph: the
    meaningful ones only (``∇h(t)``, ``∇W(t)``, ``∇W``), or every op with
    ``backward_ops=True``.
    """
    roots = [nodes] if isinstance(nodes, Node) else list(nodes) if isinstance(
        nodes, (list, tuple)) else None
    if not roots or not all(isinstance(n, Node) for n in roots):
        raise UnfoldTypeError(f"viz.graph draws unfold nodes: give a node or a non-empty list "
                              f"of nodes, got {nodes!r}"[:300])
    if isinstance(backward, Mapping):
        results = dict(backward.items())
        given = {g: x for x, g in results.items()}
        backward = list(results.values())
    elif isinstance(backward, (list, tuple)):
        given, backward = {}, list(backward)
    else:
        raise UnfoldTypeError(f"backward must be a list of gradient nodes or a mapping "
                              f"{{node: gradient}}, got {type(backward).__name__}")
    for n in list(given) + backward + list(given.values()):
        if not isinstance(n, Node):
            raise UnfoldTypeError(f"backward must hold unfold nodes, got {type(n).__name__}")
    for name, value in (("collapse", collapse), ("budget", budget), ("depth", depth)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or
                                  value < (1 if name != "depth" else 0)):
            raise UnfoldValueError(f"{name} must be a positive integer or None, got {value!r}")
    g = _OpGraph(roots, backward, depth)
    g.results, g.every_op = set(backward), backward_ops
    copies: dict[Node, int] = {}
    for c in g.forward:
        if _is_copy(c):
            copies[c.inputs[0]] = copies.get(c.inputs[0], 0) + 1
    for r, x in given.items():                   # what the caller says a result is
        if r in g.gset:
            g.meaning[r] = Meaning(x, "total" if copies.get(x, 0) > 1 else "grad")
    draw = g.drawn(backward_ops)
    hidden = set(_collapse(g, draw, collapse, budget))
    visible = [n for n in draw if g.step[n] not in hidden]       # (the others: in the box)
    g.rep = {} if backward_ops else _grouped(g, visible)
    g.ids = g.name_nodes(visible)
    dot = Drawing("ops", graph_attr=GRAPH, node_attr=NODE, edge_attr=EDGE)
    if hidden:
        lo, hi = min(hidden), max(hidden)
        dot.attr(label=L.plain(f"steps {lo}–{hi} ({len(hidden)} steps) collapsed into one box "
                               f"(collapse=k / budget= to change)"), labelloc="t")
    drawn = set(draw)
    panels: dict[tuple[bool, int | None], list[Node]] = {}
    for n in draw:
        if g.step[n] in hidden:
            continue
        panels.setdefault((n in g.gset, g.step[n] if clusters else None), []).append(n)
    parts = [False] + ([True] if g.grads else [])
    box = {part: f"[{'backward' if part else 'forward'} steps {min(hidden)}-{max(hidden)}]"
           for part in parts} if hidden else {}
    for part in parts:
        keys = sorted((k for k in panels if k[0] == part),
                      key=lambda k: (k[1] is not None, k[1] or 0))
        with dot.subgraph(name=f"cluster_{'backward' if part else 'forward'}"
                          if len(parts) > 1 else None) as panel:
            if len(parts) > 1:
                panel.attr(label=L.plain("backward (gradients)" if part else "forward"),
                           style="dashed", color="#999999", fontcolor="#666666")
            for key in keys:
                if key[1] is None:
                    _nodes(panel, panels[key], g, part)
                    continue
                with panel.subgraph(name=f"cluster_{'b' if part else 'f'}{key[1]}") as step:
                    step.attr(label=L.plain(f"step {key[1]}"), style="rounded",
                              color="#cccccc", fontcolor="#888888")
                    _nodes(step, panels[key], g, part)
            if part in box:
                panel.node(box[part], f"<steps {min(hidden)}…{max(hidden)}<BR/>× {len(hidden)}>",
                           shape="box3d", style="", color="#888888",
                           tooltip=L.tooltip(f"{len(hidden)} steps not drawn"))
    _edges(dot, g, draw, drawn, hidden, box)
    return dot


def _below(g: _OpGraph, n: Node, drawn: set[Node]) -> list[Node]:
    """The drawn gradient nodes that gradient node ``n`` reads, directly or through undrawn
    ones (and, when every op is drawn, the forward values it reads)."""
    found, seen, stack = [], set(), list(n.inputs)
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        if i in drawn and (i in g.gset or g.every_op):
            found.append(i)
        elif i in g.gset:
            stack.extend(i.inputs)
    return sorted(found, key=lambda x: x.serial)


def _grouped(g: _OpGraph, draw: list[Node]) -> dict[Node, Node]:
    """In the meaningful-gradients panel, the gradients of parameters computed from the same
    gradients (∇W_f(t), ∇U_f(t), ∇b_f(t), all from ∇f(t)) share one node, and so do their sums
    over the steps: node → the node that stands for it (only for those that share)."""
    drawn = set(draw)
    groups: dict[tuple, list[Node]] = {}
    for n in draw:
        m = g.meaning.get(n)
        if n in g.gset and m is not None and m.kind == "grad" and _is_copy(m.of) and \
                n not in g.results:
            key = (g.step[n], tuple(sorted(x.serial for x in _below(g, n, drawn))))
            groups.setdefault(key, []).append(n)
    rep: dict[Node, Node] = {n: members[0] for members in groups.values() for n in members}
    # the sums: together when their parameters' copies are together at every step drawn
    of_param: dict[Node, set[int]] = {}
    for n, r in rep.items():
        of_param.setdefault(g.meaning[n].of.inputs[0], set()).add(r.serial)
    totals: dict[tuple, list[Node]] = {}
    for n in draw:
        m = g.meaning.get(n)
        if n in g.gset and m is not None and m.kind == "total" and m.of in of_param:
            totals.setdefault(tuple(sorted(of_param[m.of])), []).append(n)
    rep.update({n: members[0] for members in totals.values() for n in members})
    sizes: dict[Node, int] = {}
    for r in rep.values():
        sizes[r] = sizes.get(r, 0) + 1
    return {n: r for n, r in rep.items() if sizes[r] > 1}


def _edges(dot: graphviz.Digraph, g: _OpGraph, draw: list[Node], drawn: set[Node],
           hidden: set, box: dict) -> None:
    """Edges (to and from a collapsed step: to its box, once), each from the node whose value
    it carries to the node that reads it. A gradient edge runs down the backward panel, from
    the loss's gradient on top: it does not rank its ends, an invisible edge up beside it
    does."""
    done: set[tuple[str, str]] = set()
    for n in draw:
        into_grad = n in g.gset
        head = box[into_grad] if g.step[n] in hidden else g.ids[g.rep.get(n, n)]
        inputs = _below(g, n, drawn) if into_grad else [i for i in n.inputs if i in drawn]
        cut = any(i not in g.shown for i in n.inputs)
        for i in inputs:
            tail = box[i in g.gset] if g.step[i] in hidden else g.ids[g.rep.get(i, i)]
            if tail == head or (tail, head) in done:
                continue
            done.add((tail, head))
            if _is_copy(n):
                dot.edge(tail, head, style="dashed", arrowhead="none",
                         tooltip=L.tooltip(f"{_title(n)} is the step-{n.step} copy of {i.name}"))
            elif (i in g.gset) != into_grad:     # a forward value the gradient reads
                if into_grad:
                    dot.edge(tail, head, color="#bbbbbb", constraint="false")
            elif into_grad:
                dot.edge(tail, head, color=BACKWARD)
            else:
                dot.edge(tail, head)
        if cut and g.step[n] not in hidden:
            stub = g.ids[n] + "[cut]"
            dot.node(stub, "…", shape="plaintext", tooltip=L.tooltip("inputs beyond depth"))
            dot.edge(stub, g.ids[n], style="dotted")


def _nodes(dot: graphviz.Digraph, members: list[Node], g: _OpGraph, backward: bool) -> None:
    shared: dict[Node, list[Node]] = {}
    for n, r in g.rep.items():
        shared.setdefault(r, []).append(n)
    for n in members:
        if g.rep.get(n, n) is not n:
            continue
        m = g.meaning.get(n)
        if n in shared:                          # several parameters' gradients, one node
            lines = "<BR/>".join(f"<B>{L.esc(g.meaning[k].label.partition(' = ')[0])}</B>"
                                 + (f" = {L.esc(g.meaning[k].label.partition(' = ')[2])}"
                                    if g.meaning[k].kind == "total" else "")
                                 for k in shared[n])
            tip = "; ".join(g.meaning[k].label for k in shared[n])
            dot.node(g.ids[n], f"<{lines}>", shape="box", style="rounded", color=BACKWARD,
                     fontcolor=BACKWARD, fontsize="9" if g.step[n] is not None else "10",
                     tooltip=L.tooltip(tip))
            continue
        if backward and m is not None and m.kind != "partial":
            head, _, tail = m.label.partition(" = ")
            label = f"<<B>{L.esc(head)}</B>" + (f"<BR/>= {L.esc(tail)}" if tail else "") + ">"
            attrs = {"shape": "ellipse", "style": "", "margin": "0.02,0.01"}
            if m.kind == "grad" and _is_copy(m.of):        # ∇W(t): many of them, small
                attrs["fontsize"] = "9"
        elif backward and m is not None:
            label, attrs = "<+>", {}
        else:
            label, attrs = _label(n)
        if backward:
            attrs = {**attrs, "color": BACKWARD, "fontcolor": BACKWARD}
        tip = f"{g.ids[n]}: {n.op.name}, shape {n.shape}, {n.dtype}"
        if m is not None:
            tip += f"; {m.label}" + (" so far" if m.kind == "partial" else "")
        elif n.adjoint is not None:        # (ids, not labels: those carry serial numbers)
            tip += f"; part of the backward step of {g.ids.get(n.adjoint, n.adjoint.op.name)}"
        dot.node(g.ids[n], label, tooltip=L.tooltip(tip), **attrs)
