"""Distribute the time loop over the classes (Allen & Kennedy's loop distribution).

The dependence graph has a vertex per class (its regular members), per peeled member, per
computed single and per reduction; an edge for each entry of a description that reads another
vertex's rows. Its strongly connected components with a carried cycle — a class reading its own
earlier (or later) rows, or classes reading each other — are the recurrent core: they run as a
loop over the steps. Every other class runs as one op over all its steps (time is one more batch
axis), every reduction as one sum, in a topological order of the components.
"""
from __future__ import annotations

import heapq

import numpy as np

from ..ops.elementwise import ADD, MUL
from .flat import Class, Single
from .group import Grouping, Part, contains, vectorizable


class Vertex:
    __slots__ = ("kind", "cls", "t", "node", "desc", "single", "reduction", "first")

    def __init__(self, kind, first, cls=None, t=None, node=None, desc=(), single=None,
                 reduction=None):
        self.kind, self.first, self.cls, self.t, self.node = kind, first, cls, t, node
        self.desc, self.single, self.reduction = desc, single, reduction

    def __repr__(self) -> str:
        return f"<Vertex {self.kind} {self.cls.id if self.cls is not None else ''} {self.t}>"


class Unit:
    """What runs as one piece: ``loop`` (classes and peeled members step by step), ``vector``
    (a class as one op per run of regular members), ``member`` (one peeled member or single) or
    ``reduction``."""

    __slots__ = ("kind", "classes", "peeled", "single", "reduction", "first", "cyclic")

    def __init__(self, kind, first, classes=(), peeled=(), single=None, reduction=None,
                 cyclic=False):
        self.kind, self.first = kind, first
        self.classes, self.peeled = list(classes), list(peeled)
        self.single, self.reduction, self.cyclic = single, reduction, cyclic

    def __repr__(self) -> str:
        return (f"<Unit {self.kind}: {[c.id for c in self.classes]} "
                f"+{len(self.peeled)} peeled>")


def _shift_hits(reader: list[tuple[int, int]], d: int, target: list[tuple[int, int]]) -> bool:
    """Whether some index of the runs ``reader``, moved by ``d``, lies in the runs ``target``."""
    for a, b in reader:
        for x, y in target:
            if a + d <= y and x <= b + d:
                return True
    return False


class _Graph:
    def __init__(self, g: Grouping) -> None:
        self.g = g
        self.vertices: list[Vertex] = []
        self.of_class: dict[int, int] = {}
        self.of_peeled: dict[int, dict[int, int]] = {}
        self.of_single: dict[int, int] = {}
        self.of_reduction: dict[int, int] = {}
        for red in g.reductions:
            c = red.cls
            first = min([c.first] + [x.first for x in red.absorbed])
            self.of_reduction[c.id] = self._add(Vertex("reduction", first, cls=c,
                                                       reduction=red))
        for c in g.classes:
            if c.fed or c.reduction is not None or c.absorbed:
                continue
            self.of_class[c.id] = self._add(Vertex("class", c.first, cls=c, desc=c.desc))
            for t, node, desc in c.peeled:
                self.of_peeled.setdefault(c.id, {})[t] = self._add(
                    Vertex("peeled", node.serial, cls=c, t=t, node=node, desc=desc))
        for v in g.flat.singles:
            if v.computed:
                self.of_single[v.id] = self._add(Vertex("single", v.first, single=v))
        n = len(self.vertices)
        self.succ: list[set[int]] = [set() for _ in range(n)]
        self.self_loop = [False] * n
        for k, vx in enumerate(self.vertices):
            for e, reader in self._reads(vx):
                for u in self._sources(e, reader):
                    if u == k:
                        self.self_loop[k] = vx.kind == "class"
                    else:
                        self.succ[u].add(k)

    def _add(self, v: Vertex) -> int:
        self.vertices.append(v)
        return len(self.vertices) - 1

    def _reads(self, vx: Vertex):
        """(entry, reader) for each value the vertex reads: the reader is a list of runs, an
        index array, an index or None (a single)."""
        if vx.kind == "class":
            for e in vx.desc:
                yield e, vx.cls.runs
        elif vx.kind == "peeled":
            for e in vx.desc:
                yield e, vx.t
        elif vx.kind == "single":
            v = vx.single
            meta = v.node.op.meta_inputs
            for j, x in enumerate(v.desc):
                if j not in meta:
                    yield ("n", x), None
        else:
            red = vx.reduction
            for e, part in red.leaves:
                yield e, part.index
            for x in red.absorbed:
                for part in x.parts:
                    for e in part.desc:
                        yield e, part.index

    def _sources(self, e, reader):
        g = self.g
        if e[0] == "m":
            return
        if e[0] == "n":
            k = self.of_single.get(e[1])
            if k is not None:
                yield k
            return
        x = g.values[e[1]]
        if x.reduction is not None:
            yield self.of_reduction[x.id]
            return
        if x.fed or x.absorbed:
            return
        if e[0] == "r":
            rows, d = [(e[2], e[2])], 0
            reader = None
        else:
            d = e[2]
        peeled = self.of_peeled.get(x.id, {})
        if reader is None:                       # a fixed row
            t = rows[0][0]
            if contains(x.runs, t):
                yield self.of_class[x.id]
            if t in peeled:
                yield peeled[t]
        elif isinstance(reader, list):           # runs
            if _shift_hits(reader, d, x.runs):
                yield self.of_class[x.id]
            for t, k in peeled.items():
                if contains(reader, t - d):
                    yield k
        else:
            index = np.atleast_1d(reader) + d
            if len(x.runs) and any(np.any((index >= a) & (index <= b)) for a, b in x.runs):
                yield self.of_class[x.id]
            if peeled:
                hit = set(index.tolist()) & set(peeled)
                for t in hit:
                    yield peeled[t]


def distribute(g: Grouping) -> list[Unit] | None:
    """The units in an order to run them, or None when the graph defeats the analysis."""
    while True:
        graph = _Graph(g)
        comp = _scc(graph.succ)
        ncomp = max(comp) + 1 if comp else 0
        size = [0] * ncomp
        for k in comp:
            size[k] += 1
        cyclic = [False] * ncomp
        for v in range(len(comp)):
            if size[comp[v]] > 1 or graph.self_loop[v]:
                cyclic[comp[v]] = True
        on_cycle = [graph.vertices[v].reduction for v in range(len(comp))
                    if cyclic[comp[v]] and graph.vertices[v].kind == "reduction"]
        if not on_cycle:
            break
        for red in on_cycle:                      # its partial sums are needed on the way
            g.undo(red)
    units: list[Unit | None] = [None] * ncomp
    for v, vx in enumerate(graph.vertices):
        k = comp[v]
        if cyclic[k]:
            u = units[k]
            if u is None:
                u = units[k] = Unit("loop", vx.first, cyclic=True)
            u.first = min(u.first, vx.first)
            if vx.kind == "class":
                u.classes.append(vx.cls)
            elif vx.kind == "peeled":
                u.peeled.append((vx.cls, vx.t, vx.node, vx.desc))
            else:
                raise AssertionError(f"a {vx.kind} on a recurrent cycle")
            continue
        if vx.kind == "reduction":
            units[k] = Unit("reduction", vx.first, reduction=vx.reduction)
        elif vx.kind == "single":
            units[k] = Unit("member", vx.first, single=vx.single)
        elif vx.kind == "peeled":
            units[k] = Unit("member", vx.first, peeled=[(vx.cls, vx.t, vx.node, vx.desc)])
        elif vectorizable(g, vx.cls):
            units[k] = Unit("vector", vx.first, classes=[vx.cls])
        else:
            units[k] = Unit("loop", vx.first, classes=[vx.cls])
    # topological order of the components, earliest first
    comp_succ: list[set[int]] = [set() for _ in range(ncomp)]
    indeg = [0] * ncomp
    for v in range(len(comp)):
        for w in graph.succ[v]:
            a, b = comp[v], comp[w]
            if a != b and b not in comp_succ[a]:
                comp_succ[a].add(b)
                indeg[b] += 1
    heap = [(units[k].first, k) for k in range(ncomp) if indeg[k] == 0]
    heapq.heapify(heap)
    ordered = []
    while heap:
        _, k = heapq.heappop(heap)
        ordered.append(units[k])
        for b in comp_succ[k]:
            indeg[b] -= 1
            if indeg[b] == 0:
                heapq.heappush(heap, (units[b].first, b))
    if len(ordered) != ncomp:
        return None
    for u in ordered:
        u.classes.sort(key=lambda c: c.first)
        u.peeled.sort(key=lambda p: p[2].serial)
    return ordered


def reassociate(g: Grouping, units: list[Unit]) -> bool:
    """Move work off the recurrent path: ``(p ∘ q) ∘ x`` becomes ``q ∘ (p ∘ x)`` for ``∘`` an
    addition or a multiplication when only ``q`` is on the loop, so that ``p ∘ x`` runs for all
    steps at once. ``b + W h(t−1) + U x(t)`` becomes ``W h(t−1) + (b + U x(t))``; the LSTM's
    ``(∂h · tanh s) · σ'(o)`` becomes ``∂h · (tanh s · σ'(o))``. Rewrites the regular
    descriptions of the two classes (exact up to rounding, ≈1e-16); True if it changed any."""
    values = g.values
    changed = False
    for u in units:
        if u.kind != "loop" or not u.cyclic:
            continue
        inside = {c.id for c in u.classes} | {p[0].id for p in u.peeled}
        for c in u.classes:
            op = c.rep.op
            if (op is not ADD and op is not MUL) or len(c.desc) != 2:
                continue
            for side in (0, 1):
                e, x = c.desc[side], c.desc[1 - side]
                if e[0] != "c" or e[2] != 0 or _on(x, inside):
                    continue
                a = values[e[1]]
                if not isinstance(a, Class) or a.id not in inside or a.rep.op is not op or \
                        not a.runs or g.sole_reader(a) is not c.part or len(a.desc) != 2:
                    continue
                p, q = a.desc
                if _on(p, inside) == _on(q, inside):
                    continue
                if _on(p, inside):
                    p, q = q, p
                shape = c.rep.shape
                if not all(_shape(g, y) == shape for y in (p, q, x)) or a.rep.shape != shape:
                    continue
                # the steps where both are regular are rewritten; the others keep what they read
                # (a part's indices are unique: numpy's unique passes are not needed)
                both = np.intersect1d(a.part.index, c.part.index, assume_unique=True)
                if not len(both):
                    continue
                # (the members left as they are keep ``a``'s batch axis: the class's slab has
                # one layout, so the rewrite must not change it while any member is kept)
                batched = _batched(g, p) or _batched(g, x)
                if batched != a.batched and (a.peeled or len(both) < len(a.part.index)):
                    continue
                g.peel(a, np.setdiff1d(a.part.index, both, assume_unique=True))
                g.peel(c, np.setdiff1d(c.part.index, both, assume_unique=True))
                a.desc = a.part.desc = (p, x)
                c.desc = c.part.desc = (q, ("c", a.id, 0))
                a.batched = g.flat.batched[a.id] = batched
                changed = True
                break
    if changed:
        g.find_readers()
    return changed


def _on(e: tuple, inside: set[int]) -> bool:
    return e[0] in ("c", "r") and e[1] in inside


def _shape(g: Grouping, e: tuple):
    if e[0] == "m":
        return None
    v = g.values[e[1]]
    return v.rep.shape if isinstance(v, Class) else v.node.shape


def _batched(g: Grouping, e: tuple) -> bool:
    return e[2] if e[0] == "m" else g.flat.batched[e[1]]


def _scc(succ: list[set[int]]) -> list[int]:
    """Tarjan's strongly connected components, iteratively: the component of each vertex."""
    n = len(succ)
    index = [-1] * n
    low = [0] * n
    on = [False] * n
    comp = [-1] * n
    stack: list[int] = []
    counter = 0
    ncomp = 0
    for root in range(n):
        if index[root] >= 0:
            continue
        work = [(root, iter(succ[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on[root] = True
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if index[w] < 0:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on[w] = True
                    work.append((w, iter(succ[w])))
                    advanced = True
                    break
                if on[w]:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                while True:
                    w = stack.pop()
                    on[w] = False
                    comp[w] = ncomp
                    if w == v:
                        break
                ncomp += 1
    return comp


__all__ = ["Unit", "distribute", "Part", "Class", "Single"]
