"""Group: each class's regular members, its peeled ones, who reads what, and the reductions.

A class (flat.py) holds the copies of one computation, one per index, each described by where its
inputs are relative to it: ``("c", class, d)`` the member of a class ``d`` steps away, ``("r",
class, t)`` that class's member at the fixed index ``t`` (a decoder reading the encoder's final
state at every step), ``("n", single)`` one value, ``("m", from a class, batched)`` an input
whose value is never read. The members with the most common description are *regular*: they can
run as one op over stacked rows, or as one loop body over the steps. The others (boundary steps,
truncation cuts) are *peeled*: computed one by one into their rows.

A *reduction* is a class of additions forming one accumulation chain ``c₁ = a + b, c₂ = c₁ + d,
…`` whose partial sums nobody else reads (``∇W = Σ_t ∇W(t)`` and ``L = Σ_t L(t)``, built by
``grad`` and ``unfold``): its end is the sum of its leaves, in any order. A summing class
(``batch_outer``, ``batch_sum``, ``sum_like``) read by a reduction only is *absorbed*: one call
on its stacked members gives their sum over the steps (``Σ_t g(t) h(t−1)ᵀ = Gᵀ H``).

Everything here is per class and per description, never per node: members are numpy arrays of
indices.
"""
from __future__ import annotations

import numpy as np

from ..graph import Op
from ..ops.base import SUM_LIKE
from ..ops.elementwise import ADD
from ..ops.linalg import BATCH_OUTER
from ..ops.reduce import BATCH_SUM
from .flat import Class, Flat, Single

#: ops whose result, on a batch, is the sum over the batch: folded over steps and batch, one call
#: of theirs is the sum over both (Σ_t batch_outer(g(t), h(t)) = Gᵀ H over the stacked rows)
SUMMING = (BATCH_OUTER, BATCH_SUM, SUM_LIKE)


class Part:
    """The members of a class that share one description: their indices (sorted), the serial
    number of the first one built, and a node standing for them."""

    __slots__ = ("cls", "desc", "index", "first", "regular", "node")

    def __init__(self, cls: Class, desc: tuple, index: np.ndarray, first: int, regular: bool,
                 node) -> None:
        self.cls, self.desc, self.index, self.first = cls, desc, index, first
        self.regular, self.node = regular, node

    def __repr__(self) -> str:
        return f"<Part of {self.cls.id}: {len(self.index)} members, {self.desc}>"


class Reduction:
    """``end = Σ leaves`` for a chain class: ``leaves`` as (entry, part) — each non-chain input
    entry of each part of the chain, read once per member of the part."""

    __slots__ = ("cls", "end", "leaves", "absorbed")

    def __init__(self, cls: Class, end: int, leaves: list) -> None:
        self.cls, self.end, self.leaves = cls, end, leaves
        self.absorbed: list[Class] = []


def runs(index: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of consecutive indices in a sorted array: [(first, last), …]."""
    if not len(index):
        return []
    cut = np.flatnonzero(np.diff(index) != 1)
    starts = np.concatenate(([0], cut + 1))
    ends = np.concatenate((cut, [len(index) - 1]))
    return [(int(index[a]), int(index[b])) for a, b in zip(starts, ends)]


def contains(rs: list[tuple[int, int]], t: int) -> bool:
    """Whether index ``t`` lies in one of the runs ``rs``."""
    for a, b in rs:
        if a <= t <= b:
            return True
    return False


class Grouping:
    """The classes of a Flat, with regular members, peeled members and readers."""

    def __init__(self, flat: Flat) -> None:
        self.flat = flat
        self.values = flat.values
        self.parts: list[Part] = []
        self.made_down: set[int] = set()     # classes whose members were built last step first
        #: class id → the rank of its chunk in the order the chunks run (strip.py; none: -1)
        self.chunk: dict[int, int] = {}
        for c in flat.classes:
            self._settle(c)
        self._analyse(list(flat.classes))

    def _analyse(self, classes: list[Class]) -> None:
        self.classes = classes
        self.parts = [p for c in classes for p in c.parts]
        flat = self.flat
        self.kept: set[int] = {o[1] for o in flat.outputs}
        self.kept_rows: dict[int, set[int]] = {}
        for o in flat.outputs:
            if o[0] == "r":
                self.kept_rows.setdefault(o[1], set()).add(o[2])
        self.find_readers()
        self.reductions: list[Reduction] = []
        self._find_reductions()

    def regroup(self, classes: list[Class], new: list[Class]) -> None:
        """The grouping of these classes instead (``new`` among them, with their variants as
        the pass leaves them): regular members, readers and reductions found again."""
        for c in new:
            self._settle(c)
        for c in classes:
            c.reduction, c.absorbed = None, False
        self._analyse(classes)

    # --- regular and peeled members --------------------------------------------------------------

    def _settle(self, c: Class) -> None:
        variants = _fixed_rows(c.variants)
        best = max(range(len(variants)), key=lambda k: (len(variants[k][1]), -k))
        index = np.concatenate([v[1] for v in variants])
        c.lo, c.hi = int(index.min()), int(index.max())
        c.count = len(index)
        if len(variants[best][1]) > 1 and variants[best][1][0] > variants[best][1][-1]:
            self.made_down.add(c.id)
        c.parts = []
        c.peeled = []
        for k, (desc, idx, first, node) in enumerate(variants):
            part = Part(c, desc, _sorted(idx), first, k == best, node)
            c.parts.append(part)
            self.parts.append(part)
            if k == best:
                c.desc = desc
                c.runs = runs(part.index)
                c.first = first
                c.rep = node
                c.part = part
            else:
                c.peeled += [(int(t), node, desc) for t in part.index]
        c.peeled.sort(key=lambda p: p[0])
        c.variants = None

    # --- who reads what --------------------------------------------------------------------------

    def find_readers(self) -> None:
        """``self.readers[v]``: (reader, entry) for each reference to value ``v`` — a part of a
        class, or a single."""
        self.readers: dict[int, list] = {}
        for part in self.parts:
            for e in part.desc:
                if e[0] != "m":
                    self.readers.setdefault(e[1], []).append((part, e))
        for v in self.flat.singles:
            meta = v.node.op.meta_inputs
            for j, x in enumerate(v.desc):
                if j not in meta:
                    self.readers.setdefault(x, []).append((v, ("n", x)))

    def peel(self, c: Class, index: np.ndarray) -> None:
        """Make the regular members of ``c`` at ``index`` peeled ones (with the description they
        have now)."""
        part = c.part
        take = np.isin(part.index, index)
        if not take.any():
            return
        gone = Part(c, part.desc, part.index[take], part.first, False, part.node)
        part.index = part.index[~take]
        c.parts.append(gone)
        self.parts.append(gone)
        c.runs = runs(part.index)
        c.peeled = sorted(c.peeled + [(int(t), gone.node, gone.desc) for t in gone.index],
                          key=lambda p: p[0])

    def sole_reader(self, x: Class):
        """The part that alone reads class ``x`` (one entry, at distance 0), if ``x`` is no
        output; else None."""
        found = self.readers.get(x.id, ())
        if len(found) != 1 or x.id in self.kept:
            return None
        reader, e = found[0]
        if not isinstance(reader, Part) or e[0] != "c" or e[2] != 0 or \
                sum(1 for f in reader.desc if f[0] == "c" and f[1] == x.id) != 1:
            return None
        return reader

    def rows_read(self, reader, e) -> np.ndarray | None:
        """The indices of the class that entry ``e`` of ``reader`` reads (None for a single)."""
        if e[0] == "c":
            return reader.index + e[2]
        if e[0] == "r":
            n = len(reader.index) if isinstance(reader, Part) else 1
            return np.full(n, e[2])
        return None

    # --- reductions ------------------------------------------------------------------------------

    def _find_reductions(self) -> None:
        for c in self.classes:
            if c.fed or c.rep.op is not ADD or c.count < 2:
                continue
            red = self._chain(c)
            if red is not None:
                c.reduction = red
                self.reductions.append(red)
        for red in self.reductions:
            self._absorb(red)

    def _chain(self, c: Class) -> Reduction | None:
        preds, leaves = [], []
        for part in c.parts:
            own = [e for e in part.desc if e[0] in "cr" and e[1] == c.id]
            if len(own) > 1:
                return None
            if own:
                preds.append(self.rows_read(part, own[0]))
            leaves += [(e, part) for e in part.desc if e not in own]
        if not preds:
            return None
        preds = np.sort(np.concatenate(preds))
        members = np.sort(np.concatenate([p.index for p in c.parts]))
        if len(preds) != len(members) - 1 or np.any(preds[1:] == preds[:-1]) or \
                not np.all(np.isin(preds, members)):
            return None
        end = int(np.setdiff1d(members, preds, assume_unique=True)[0])   # (both unique)
        # the partial sums: read by the chain only, never an output
        rows = self.kept_rows.get(c.id, set())
        if c.id in self.kept and rows - {end}:
            return None
        for reader, e in self.readers.get(c.id, ()):
            if isinstance(reader, Part) and reader.cls is c:
                continue
            read = self.rows_read(reader, e)
            if read is None or np.any(read != end):
                return None
        if any(e[0] == "m" for e, _ in leaves):
            return None
        return Reduction(c, end, leaves)

    def _absorb(self, red: Reduction) -> None:
        """The summing classes read by this reduction only, each member once: computed inside
        it, as one op over stacked members."""
        by_class: dict[int, list[np.ndarray]] = {}
        for e, part in red.leaves:
            if e[0] == "c":
                by_class.setdefault(e[1], []).append(self.rows_read(part, e))
        for k, rows in by_class.items():
            x = self.values[k]
            if not isinstance(x, Class) or x.fed or x.rep.op not in SUMMING or x.reduction or \
                    k in self.kept or x.absorbed or x.ring:
                continue
            if any(not (isinstance(r, Part) and r.cls is red.cls)
                   for r, _ in self.readers.get(k, ())):
                continue
            read = np.sort(np.concatenate(rows))
            members = np.sort(np.concatenate([p.index for p in x.parts]))
            if not np.array_equal(read, members):
                continue
            flags = fold_flags(self, x.desc)
            if True not in flags or x.rep.op.out_batched(x.rep, flags):
                continue
            x.absorbed = True
            red.absorbed.append(x)

    def dismantle(self) -> None:
        """Break the references between classes, parts and reductions (planning is done): the
        analysis is then freed at once, not at the collector's next full pass."""
        for c in self.classes:
            c.parts = c.part = c.reduction = None
        for red in self.reductions:
            red.cls = None
            red.absorbed = red.leaves = None
        self.readers = self.parts = self.reductions = None

    def undo(self, red: Reduction) -> None:
        """Run a reduction's chain as the additions it is (it lies on a recurrent cycle)."""
        red.cls.reduction = None
        for x in red.absorbed:
            x.absorbed = False
        self.reductions.remove(red)


def fold_flags(g: Grouping, desc: tuple) -> tuple[bool, ...]:
    """The batch flags of a class's op run on its stacked members (time folded into the batch):
    every input read from a class row by row is stacked; a fixed value keeps its own flag."""
    return tuple(True if e[0] == "c" or (e[0] == "m" and e[1]) else
                 e[2] if e[0] == "m" else g.flat.batched[e[1]] for e in desc)


def vectorizable(g: Grouping, c: Class) -> bool:
    """Whether running the class's op once on its stacked regular members computes each of
    them: the op has a batching rule, and no member sums a batched input over the batch."""
    node = c.rep
    op = node.op
    if type(op).batched is Op.batched or op in SUMMING:
        return False
    for e in c.desc:
        if (e[0] in "cr" and g.flat.batched[e[1]] and not c.batched) or \
                (e[0] == "m" and e[2] and not c.batched):
            return False
    flags = fold_flags(g, c.desc)
    return True in flags and op.out_batched(node, flags)


def _fixed_rows(variants: list) -> list:
    """Variants whose entry j reads one class at the same index for every member (``("c", k,
    d)`` with index + d constant) read it as the fixed row ``("r", k, t)``; variants that then
    agree are merged."""
    if len(variants) < 2:
        return variants
    width = len(variants[0][0])
    if any(len(v[0]) != width for v in variants):
        return variants
    descs = [list(v[0]) for v in variants]
    for j in range(width):
        found = [(k, descs[k][j]) for k in range(len(variants)) if descs[k][j][0] == "c"]
        if len(found) < 2 or len({e[1] for _, e in found}) != 1:
            continue
        rows = set()                    # the rows read (two are enough to give up)
        for k, e in found:
            index = variants[k][1]
            if len(index):
                rows.update((int(index.min()) + e[2], int(index.max()) + e[2]))
                if len(rows) > 1:
                    break
        if len(rows) != 1:
            continue
        t = rows.pop()
        for k, e in found:
            descs[k][j] = ("r", e[1], t)
    merged: dict[tuple, list] = {}
    for d, (_, idx, first, node) in zip(descs, variants):
        merged.setdefault(tuple(d), []).append((idx, first, node))
    return [(d, np.concatenate([i for i, _, _ in v]), min(f for _, f, _ in v), v[0][2])
            for d, v in merged.items()]


def _sorted(index: np.ndarray) -> np.ndarray:
    """Indices in increasing order (members come in creation order: forward copies in time
    order, gradient copies against it)."""
    if len(index) < 2 or np.all(index[1:] > index[:-1]):
        return index
    if np.all(index[1:] < index[:-1]):
        return index[::-1].copy()
    return np.sort(index)


__all__ = ["Grouping", "Part", "Reduction", "SUMMING", "Single", "fold_flags", "runs",
           "vectorizable", "contains"]
