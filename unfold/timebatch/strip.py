"""Strip: the passes cut into chunks of steps, so that only a chunk of each is alive.

Time-batched, a backward pass computes each off-path factor, each derivative and each ``∇z(t)``
for all τ steps before the one GEMM ``∇W = Σ_t ∇z(t) h(t−1)ᵀ`` reads them, and the forward pass
computes ``U x(t)`` for all steps before its loop: τ rows of each are alive at once, where a
per-step BPTT holds one. Strip-mining (loop sectioning) cuts the steps into chunks of ``K`` —
``[lo, lo + K)``, ``[lo + K, lo + 2K)``, … — and runs each pass chunk after chunk: the forward
pass's ``U x`` of a chunk, then its steps; the backward pass's factors of a chunk, its steps
of the backward loop, and its share of each ``∇W`` (one GEMM over ``K·B`` rows, added to the
sum of the chunks before). A chunk's values die when the next chunk has read what it needs of
them (the state across the boundary): about two chunks of each such value are alive, not τ
steps; the forward values the backward pass reads stay, as in any BPTT.

The cut is made on the grouping, before the dependence analysis: each class is split into one
class per chunk (its members at those steps), and each description entry reading a split
class names the chunk's class it reads — so a member reading across a boundary (``h(t) ←
h(t − 1)``, ``∇h(t) ← ∇z(t + 1)`` at a chunk's edge) becomes a peeled member of its chunk's
class, and an accumulation chain ``∇W(t) = ∇W(t + 1) + ∇W(t)'s term`` becomes one reduction per
chunk whose leaves include the previous chunk's sum. Nothing is computed differently — every
value is the same node's, read from the same inputs, in an order the dependences allow — so
the rest of the compiler (distribution, lowering, memory) is unchanged, and so is every number.

Every class is cut but the fed ones (read in place from the caller's arrays). The chunks run
in the order of their pass (``Grouping.chunk``, read by ``memory.schedule``): the forward
core's first, from the first step (or the last, for a backward state); then the backward pass
— the gradient graph's classes, what reads them, and the forward classes read by them only
(the output layer and the loss, computed chunk by chunk as the backward pass reads them) — in
the order its classes were built, from the last step for a forward state's gradient.
"""
from __future__ import annotations

import numpy as np

from .flat import Class
from .group import Grouping, Part

#: cut the passes into chunks of steps (False: each class over all its steps at once)
STRIP = True
#: a chunk spans at least this many rows (steps × batch): its GEMMs stay large, and the calls
#: each chunk adds (~20: its share of every GEMM and sum) stay a few per cent of its work
CHUNK_ROWS = 400
#: at most this many chunks (two chunks of each backward value are alive: 2 / CHUNKS of it)
CHUNKS = 8
#: backward passes whose values take fewer bytes (all steps) are not cut
MIN_BYTES = 256 * 1024
#: nor passes over more steps: there the graph's nodes outweigh the plan's buffers many times
#: (τ = 10⁵, a 4-unit RNN: 530 MB, the plan 19 MB), and chunks whose loops are short enough to
#: be looked into step by step (memory.LOOK_INTO), where the uncut loop is not, cost planning
#: time (τ = 2·10⁴, 4 units: first run 0.76 → 2.4 s)
MAX_STEPS = 10_000


def chunk_steps(span: int, batch: int | None, rows: int | None = None,
                most: int | None = None) -> int | None:
    """The steps of a chunk for a pass over ``span`` steps, or None (not cut): at least ``rows``
    (default CHUNK_ROWS) rows a chunk, at most ``most`` (CHUNKS) chunks, all of one size but
    the last, which is no larger."""
    rows = CHUNK_ROWS if rows is None else rows
    most = CHUNKS if most is None else most
    count = span // max(-(-span // most), -(-rows // (batch if batch else 1)))
    return -(-span // count) if count > 1 else None


def _backward(g: Grouping) -> set[int]:
    """The ids of the backward pass's classes: the gradient graph's (their nodes have an
    adjoint), whatever reads them, and the forward classes read by these only."""
    readers: dict[int, set[int]] = {}                 # class id → the classes reading it
    for c in g.classes:
        for part in c.parts:
            for e in part.desc:
                if e[0] in "cr" and isinstance(g.values[e[1]], Class):
                    readers.setdefault(e[1], set()).add(c.id)
    split = {c.id for c in g.classes if not c.fed and c.rep.adjoint is not None}
    if not split:
        return split
    stack = list(split)
    while stack:                                      # … and whatever reads them
        for r in readers.get(stack.pop(), ()):
            if r not in split:
                if g.values[r].fed:
                    return set()
                split.add(r)
                stack.append(r)
    for c in sorted(g.classes, key=lambda c: -c.first):      # the forward tail they read
        if c.id not in split and not c.fed and \
                all(r in split or r == c.id for r in readers.get(c.id, ())):
            split.add(c.id)
    return split


def strip_mine(g: Grouping, batch: int | None) -> int:
    """Split the classes of ``g`` into chunks of steps (regrouping ``g``): the number of
    chunks, 0 when it is not cut."""
    if not STRIP:
        return 0
    values = g.values
    backward = _backward(g)
    if not backward:
        return 0
    ids = {c.id for c in g.classes if not c.fed}
    chosen = [values[k] for k in ids]
    grads = [c for c in chosen if c.rep.adjoint is not None]
    lo = min(c.lo for c in grads)
    hi = max(c.hi for c in grads)
    size = sum(c.rows * c.rep.dtype.itemsize * int(np.prod(c.rep.shape)) *
               (batch if c.batched and batch else 1) for c in grads)
    k = chunk_steps(hi - lo + 1, batch if any(c.batched for c in grads) else None)
    if k is None or size < MIN_BYTES or hi - lo + 1 > MAX_STEPS:
        return 0

    def chunk(t):
        return (t - lo) // k

    count = int(chunk(max(c.hi for c in chosen))) + 1
    first = int(chunk(min(c.lo for c in chosen)))
    stride = 1 + max(p.first for p in g.parts)           # chunk ranks before serial numbers
    subs: dict[tuple[int, int], Class] = {}

    def sub(cid: int, j: int) -> Class:
        s = subs.get((cid, j))
        if s is None:
            c = values[cid]
            s = subs[cid, j] = Class(len(values), None, c.rank, c.batched, c.rep, False)
            s.variants = []
            values.append(s)
            g.flat.batched.append(c.batched)
        return s

    # the chunks in the order each pass runs them (the order most of its classes were built
    # in: a forward state's from the first step, its gradient's from the last): the forward
    # pass's chunks before the backward pass's
    ahead = [c for c in chosen if c.id not in backward]

    def down(cs) -> bool:
        return 2 * sum(1 for c in cs if c.id in g.made_down) > len(cs)

    order = {True: down([values[j] for j in backward]), False: down(ahead)}

    def rank(cid: int, j: int) -> int:
        late = cid in backward
        r = count - 1 - j if order[late] else j - first
        return r if late else r - (count - first)

    for c in chosen:
        for part in c.parts:
            index = part.index
            keys = [chunk(index)]
            moved = []                    # (position, class id, distance) of entries into splits
            for p, e in enumerate(part.desc):
                if e[0] == "c" and e[1] in ids:
                    keys.append(chunk(index + e[2]))
                    moved.append((p, e[1], e[2]))
            rows, which = np.unique(np.stack(keys, axis=1), axis=0, return_inverse=True)
            which = which.reshape(-1)
            for r, key in enumerate(rows.tolist()):
                members = index[which == r]
                desc = list(part.desc)
                for (p, cid, d), j in zip(moved, key[1:]):
                    desc[p] = ("c", sub(cid, j).id, d)
                for p, e in enumerate(desc):
                    if e[0] == "r" and e[1] in ids:
                        desc[p] = ("r", sub(e[1], int(chunk(e[2]))).id, e[2])
                j = key[0]
                sub(c.id, j).variants.append((tuple(desc), members,
                                              part.first + rank(c.id, j) * stride, part.node))
    for s in subs.values():
        s.variants.sort(key=lambda v: -len(v[1]))
    g.flat.outputs[:] = [o if o[0] == "n" or o[1] not in ids else
                         (o[0], sub(o[1], int(chunk(o[2]))).id, o[2]) for o in g.flat.outputs]
    classes = []
    for c in g.classes:
        if c.id in ids:
            classes += [subs[c.id, j] for j in range(first, count) if (c.id, j) in subs]
        else:
            classes.append(c)
    g.regroup(classes, [s for s in subs.values()])
    g.chunk = {s.id: rank(cid, j) for (cid, j), s in subs.items()}
    return count - first


__all__ = ["STRIP", "chunk_steps", "strip_mine"]
