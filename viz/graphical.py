"""Recurrent networks as directed graphical models (section 10.2.3, Figs. 10.7 and 10.8).

A recurrence trained by the log-likelihood of its targets is a model ``P(y(1), …, y(τ))``: the
loss ``L(t) = −log P(y(t) | …)`` says what each ``y(t)`` is conditioned on. ``graphical_model``
reads that off the unfolded graph itself:

* ``states=False`` (Fig. 10.7): the parents of ``y(t)`` are the earlier targets its loss depends
  on — through the hidden states every past ``y(i)`` may influence ``y(t)``, so a network that
  feeds its targets back gives the fully connected graph;
* ``states=True`` (Fig. 10.8): the hidden states are put back, deterministic as they are, and
  each variable's parents are the nearest variables it is computed from: ``h(t−1)`` and
  ``y(t−1)`` for ``h(t)``, ``h(t)`` for ``y(t)`` — the same few parents at every step, which is
  the efficient parametrisation of the chain.
"""
from __future__ import annotations

from unfold import arguments
from unfold.errors import UnfoldValueError
from unfold.graph import Node
from unfold.ops.base import ALIAS, INPUT
from unfold.recurrence import Recurrence

from . import labels as L
from .book import Book, Edge, Variable, check_recurrence, contract
from .layout import axis, place
from .output import Drawing
from .views import DRAWABLE, _Drawer, new_graph

#: the most edges a graphical model is drawn with (Fig. 10.7 over 32 steps, 528 edges, takes
#: dot 5 s; over 64 steps, minutes)
MAX_EDGES = 600


def _nearest(top: Node, stop: dict[Node, tuple[str, int]]) -> set[tuple[str, int]]:
    """The variables of ``stop`` that ``top`` is computed from, not passing through another."""
    found, seen, stack = set(), set(), list(top.inputs)
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        if n in stop:
            found.add(stop[n])
        else:
            stack.extend(n.inputs)
    return found


def dependencies(rec: Recurrence, steps: int, states: bool) -> tuple[Book, list[str]]:
    """The graphical model of ``rec`` over ``steps`` steps, as a Book whose edges carry the
    delay between a parent and its child: the targets (and with ``states`` the hidden states)
    and, for each, the variables it is conditioned on."""
    check_recurrence(rec)
    book = contract(rec)
    targets = [v.name for v in book.variables.values() if v.kind == "target" and
               any(book.variables[e.dst].kind == "loss" for e in book.users_of(v.name))]
    # the hidden units: the states; a network whose recurrence runs only through what it fed
    # back (teacher forcing's y(t−1), drawn as the target) has none left: its named values
    hidden = ([v.name for v in book.variables.values() if v.kind == "state"] or
              [v.name for v in book.variables.values() if v.kind == "named"]) if states else []
    if not targets:
        raise UnfoldValueError(f"recurrence {rec.name!r} has no target scored by a loss: it "
                               f"defines no distribution over a sequence to draw")
    u = rec.unfold(steps)
    var_at: dict[Node, tuple[str, int]] = {}
    for t in range(1, steps + 1):
        for name in targets + hidden:
            node = u.at(name, t)
            var_at.setdefault(node, (name, t))
            # (and the expression a state's value names: a step may read the expression given
            # to rec.update rather than the node it returned — teacher forcing's o = V h_new)
            while node.op is ALIAS and node.inputs:
                node = node.inputs[0]
                var_at.setdefault(node, (name, t))
    parents: dict[tuple[str, int], set[tuple[str, int]]] = {}
    for name, (value, _) in rec.losses.items():
        scored = [y for y in targets if any(e.src == y for e in book.inputs_of(name))]
        for t in range(1, steps + 1):
            node = u.at(name, t)
            for y in scored:
                if states:
                    found = _nearest(node, var_at)
                else:
                    found = {var_at[n] for n in _ancestors(node) if n in var_at and
                             n.op is INPUT}
                parents.setdefault((y, t), set()).update(p for p in found if p != (y, t))
    for name in hidden:
        for t in range(1, steps + 1):
            node = u.at(name, t)
            while node.op is ALIAS and node.inputs:      # (from below the names of itself)
                node = node.inputs[0]
            parents[(name, t)] = _nearest(node, var_at) - {(name, t)}
    edges = {Edge(p, child, t - pt) for (child, t), ps in parents.items() for p, pt in ps}
    out = Book(rec.name)
    for name in hidden + targets:
        out.variables[name] = Variable(name, "state" if name in hidden else "output")
    out.edges = sorted(edges, key=lambda e: (e.dst, e.src, e.delay))
    return out, targets


def _ancestors(node: Node) -> set[Node]:
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(n.inputs)
    return seen


def graphical_model(rec: Recurrence, steps: int = 4, *, states: bool = False) -> Drawing:
    """``rec`` as a directed graphical model over its targets (Fig. 10.7), or with its hidden
    states (``states=True``, Fig. 10.8): steps ``1 … steps`` and an ellipsis for the rest of the
    sequence, derived from the graph unfolded over one step more."""
    steps = arguments.positive_int("graphical_model: steps", steps)
    states = arguments.flag("graphical_model: states", states)
    if steps > DRAWABLE:
        raise UnfoldValueError(f"graphical_model: {steps} steps are too many to draw (at most "
                               f"{DRAWABLE}; the figure reads well with about 4)")
    book, _ = dependencies(rec, steps + 1, states)
    columns = axis(window=[str(t) for t in range(1, steps + 1)] + ["..."])
    placement = place(book, columns)
    if len(placement.edges) > MAX_EDGES:
        raise UnfoldValueError(f"graphical_model: {steps} steps of {rec.name!r} give "
                               f"{len(placement.edges)} edges (each target depends on all those "
                               f"before it): dot would take minutes; draw at most {MAX_EDGES} "
                               f"edges (fewer steps; about 4 read well)")
    if states:
        dot = new_graph(f"{rec.name} (graphical model)")
        d = _Drawer(dot, book, columns, params=False, biases=False)
        d.unfolded(placement)
        d.close()
        return dot
    # the targets alone (Fig. 10.7): one straight row, time left to right (each step a rank of
    # its own, all in one group and the edges between neighbours heavy, so that dot keeps them
    # on a line); the edges that skip steps are arcs under the row, nested in the order they
    # leave each y(i) (ordering=out: without it dot weaves some of them through the row)
    dot = new_graph(f"{rec.name} (graphical model)", rankdir="LR", nodesep="0.45",
                    ranksep="0.7", ordering="out")
    d = _Drawer(dot, book, columns, params=False, biases=False)
    ids = {}
    for name, c in placement.cells:
        col = columns[c]
        ids[(name, c)] = d.variable(name, col.step, col.key, group="row")
    joined = set()
    # the arcs into one target end at points of their own along its lower side, the longest
    # lowest (at one point their arrowheads met): the neighbour's edge at the left, then
    # further round the bottom
    spans: dict[int, list[int]] = {}
    for (src, s), (dst, c), e in placement.edges:
        spans.setdefault(c, []).append(c - s)
    corner = ("w", "sw", "s", "se")
    for (src, s), (dst, c), e in sorted(placement.edges, key=lambda x: (x[0][1], x[1][1])):
        order = sorted(spans[c])
        port = corner[order.index(c - s)] if len(order) > 1 and len(order) <= len(corner) \
            else ""
        dot.edge(ids[(src, s)], ids[(dst, c)], **({"weight": "20"} if c == s + 1 else {}),
                 **({"headport": port} if port else {}),
                 tooltip=L.tooltip(f"{src}({L.step_text(columns[s].step)}) → "
                                   f"{dst}({L.step_text(columns[c].step)})"))
        joined.add((s, c))
    # neighbours no edge joins (targets independent given the inputs: an RNN without
    # feedback) still stand in the order of time, not stacked in one rank
    by_column = sorted((c, ident) for (name, c), ident in ids.items())
    for (a, x), (b, y) in zip(by_column, by_column[1:]):
        if b == a + 1 and (a, b) not in joined:
            dot.edge(x, y, style="invis", weight="20")
    return dot
