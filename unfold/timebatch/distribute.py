"""Distribute the time loop over the classes (Allen & Kennedy's loop distribution).

The dependence graph has a vertex per class, per reduction and per remaining single node. Its
strongly connected components with a carried cycle — a class whose member reads another member of
the same class, or classes reading each other — are the recurrent core: their members run one by
one, step after step. Every other class runs as one op over all its steps (time is one more batch
axis), every reduction as one sum, in a topological order of the components.
"""
from __future__ import annotations

import heapq

from ..graph import Op
from ..ops.base import SUM_LIKE
from ..ops.linalg import BATCH_OUTER
from ..ops.reduce import BATCH_SUM
from .group import Grouping

#: ops whose result, on a batch, is the sum over the batch: folded over steps and batch, one call
#: of theirs is the sum over both (Σ_t batch_outer(g(t), h(t)) = Gᵀ H over the stacked rows)
SUMMING = (BATCH_OUTER, BATCH_SUM, SUM_LIKE)


class Unit:
    """What runs as one piece: ``vector`` (a class as one op per run of regular members, its
    peeled members one by one), ``members`` (positions computed one by one, in this order) or
    ``reduction`` (a reduction, with the summing classes it absorbs)."""

    __slots__ = ("kind", "cls", "members", "reduction", "absorbed", "first", "cyclic")

    def __init__(self, kind, first, cls=None, members=(), reduction=None, absorbed=()):
        self.kind, self.first, self.cls = kind, first, cls
        self.cyclic = False
        self.members, self.reduction, self.absorbed = list(members), reduction, list(absorbed)

    def __repr__(self) -> str:
        return f"<Unit {self.kind} at {self.first}: {len(self.members)} members>"


def fold_flags(g: Grouping, c) -> tuple[bool, ...]:
    """The batch flags of a class's op run on its stacked members (time folded into the batch):
    every input read from a class is stacked; a fixed value keeps its own batch flag."""
    flat = g.flat
    return tuple(True if e[0] == "c" or (e[0] == "m" and e[1]) else
                 e[2] if e[0] == "m" else flat.batched[e[1]] for e in c.desc)


def vectorizable(g: Grouping, c) -> bool:
    """Whether running the class's op once on its stacked regular members computes each of
    them: the op has a batching rule, and no member sums a batched input over the batch."""
    node = g.flat.order[c.rep]
    op = node.op
    if c.invariant or type(op).batched is Op.batched or op in SUMMING:
        return False
    batched = g.flat.batched[c.rep]
    for e in c.desc:
        if (e[0] == "c" and g.flat.batched[g.classes[e[1]].rep] and not batched) or \
                (e[0] == "m" and e[2] and not batched):
            return False
    flags = fold_flags(g, c)
    return True in flags and op.out_batched(node, flags)


def distribute(g: Grouping) -> list[Unit] | None:
    """The units in an order to run them, or None when the graph defeats the analysis."""
    flat = g.flat
    n = len(flat.order)
    # absorbed classes: summing classes all of whose members feed one reduction only
    absorbed: dict[int, int] = {}
    chain_of: dict[int, int] = {}
    for k, red in enumerate(g.reductions):
        for m in red.chain:
            chain_of[m] = k
    for k, red in enumerate(g.reductions):
        leaves = {}
        for r in red.leaves:
            c = g.cls[r]
            if c >= 0:
                leaves.setdefault(c, []).append(r)
        for cid, rs in leaves.items():
            c = g.classes[cid]
            if c.invariant or flat.order[c.rep].op not in SUMMING or len(set(rs)) != len(rs) \
                    or len(rs) != len(c.members):
                continue
            if any(flat.readers[m] != 1 or m in flat.kept for m in c.members):
                continue
            flags = fold_flags(g, c)
            if True not in flags or flat.order[c.rep].op.out_batched(flat.order[c.rep], flags):
                continue
            absorbed[cid] = k
            c.absorbed = True
    # vertices: 0…R-1 reductions, then classes, then single nodes
    vertex_of = [-1] * n
    vertices: list[tuple] = []
    for k, red in enumerate(g.reductions):
        vertices.append(("reduction", k))
        for m in red.chain:
            vertex_of[m] = k
    for cid, k in absorbed.items():
        for m in g.classes[cid].members:
            vertex_of[m] = k
    for c in g.classes:
        if c.dissolved or c.id in absorbed:
            continue
        if all(not flat.computed[m] for m in c.members):
            continue                                   # a fed sequence: no work
        # the class's regular members; a peeled member (a boundary step) is a vertex of its own,
        # writing its row of the slab: it is not tied to the other steps' dependences
        v = len(vertices)
        vertices.append(("class", c.id))
        for m, r in zip(c.members, c.regular):
            if r:
                vertex_of[m] = v
    for i in range(n):
        if flat.computed[i] and vertex_of[i] < 0 and i not in g.eliminated:
            vertex_of[i] = len(vertices)
            vertices.append(("single", i))

    def computed_by(v: int) -> list[int]:
        kind, x = vertices[v]
        if kind == "single":
            return [x]
        if kind == "class":
            c = g.classes[x]
            return [m for m, r in zip(c.members, c.regular) if r]
        red = g.reductions[x]
        out = list(red.chain)
        for cid, k in absorbed.items():
            if k == x:
                out += g.classes[cid].members
        return out

    succ: list[set[int]] = [set() for _ in vertices]
    self_loop = [False] * len(vertices)
    first = [float(n)] * len(vertices)
    rank = flat.rank
    for v in range(len(vertices)):
        for m in computed_by(v):
            first[v] = min(first[v], rank[m])
            meta = flat.order[m].op.meta_inputs
            for j, r in enumerate(flat.inputs[m]):
                if j in meta:
                    continue
                u = vertex_of[r]
                if u < 0:
                    continue
                if u == v:
                    if vertices[v][0] == "class":
                        self_loop[v] = True
                else:
                    succ[u].add(v)
    comp = _scc(succ)
    ncomp = max(comp) + 1 if comp else 0
    size = [0] * ncomp
    for v in range(len(vertices)):
        size[comp[v]] += 1
    cyclic = [False] * ncomp
    for v in range(len(vertices)):
        if size[comp[v]] > 1 or self_loop[v]:
            cyclic[comp[v]] = True
    # one unit per component
    units: list[Unit] = []
    unit_of_comp: dict[int, Unit] = {}
    for v, (kind, x) in enumerate(vertices):
        k = comp[v]
        if cyclic[k]:
            if kind == "reduction":
                g.failure = ("a reduction on a recurrent cycle",
                             [vertices[w] for w in range(len(vertices)) if comp[w] == k])
                return None
            u = unit_of_comp.get(k)
            if u is None:
                u = unit_of_comp[k] = Unit("members", first[v])
                u.cyclic = True
                units.append(u)
            u.members += computed_by(v)
            u.first = min(u.first, first[v])
            continue
        if kind == "reduction":
            u = Unit("reduction", first[v], reduction=g.reductions[x],
                     absorbed=[g.classes[c] for c, r in absorbed.items() if r == x])
        elif kind == "single":
            u = Unit("members", first[v], members=[x])
        else:
            c = g.classes[x]
            if c.invariant:
                u = Unit("members", first[v], members=[c.rep])
            elif vectorizable(g, c):
                u = Unit("vector", first[v], cls=c)
            else:
                u = Unit("members", first[v], members=computed_by(v))
        unit_of_comp[k] = u
        units.append(u)
    for u in units:
        u.members.sort(key=rank.__getitem__)
    # topological order of the components, earliest first
    comp_succ: dict[int, set[int]] = {}
    indeg = [0] * ncomp
    for v in range(len(vertices)):
        for w in succ[v]:
            a, b = comp[v], comp[w]
            if a != b and b not in comp_succ.setdefault(a, set()):
                comp_succ[a].add(b)
                indeg[b] += 1
    heap = [(unit_of_comp[k].first, k) for k in range(ncomp) if indeg[k] == 0]
    heapq.heapify(heap)
    ordered = []
    while heap:
        _, k = heapq.heappop(heap)
        ordered.append(unit_of_comp[k])
        for b in comp_succ.get(k, ()):
            indeg[b] -= 1
            if indeg[b] == 0:
                heapq.heappush(heap, (unit_of_comp[b].first, b))
    if len(ordered) != ncomp:
        return None
    return ordered


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
