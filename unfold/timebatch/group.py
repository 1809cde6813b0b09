"""Group: the τ copies of one computation, found in a compiled graph, as *classes*.

A forward node of an unfolded graph records its folded ``source`` and its ``step``; a gradient
node records the forward node it differentiates (``adjoint``). The copies of one computation are
the computed nodes with the same *key*:

* forward: ``("F", source)``;
* gradient: ``("G", key of the adjoint)`` — the nodes built while differentiating the copies of
  one forward node;
* other nodes (built by ``unfold`` for masks and the loss sum ``L = Σ_t L(t)``, or outside any
  recurrence): ``("D",)``;

refined by the op, and by the rank of the node among those of the same key, op and *index* —
the index is the node's step, or, for an untagged node, the largest index among its inputs. A
class stores its members in one array, a *slab* ``(rows, [batch,] …)`` with row ``t − lo`` for
index ``t``, so its members must also agree on shape, dtype, batchedness and attributes.

Grouping never decides what is computed: each member is described by where its inputs are
(``("c", class, distance)``: the member of a class that many steps away; ``("n", position)``: one
fixed value; ``("m", batched)``: an input whose value is never read). Members with the class's
most common description are *regular* — they can run as one op over stacked rows; the others
(boundary steps, truncation cuts) are *peeled* and computed one by one into their rows.

Two shapes of class are recognised here. An *invariant* class reads the same values at every
member (``Wᵀ`` of every ``W(t)``): it is computed once. A *reduction* is an accumulation chain
``c₁ = a + b, c₂ = c₁ + d, …`` whose partial sums nobody else reads (``∇W = Σ_t ∇W(t)``, built by
``grad``; ``L = Σ_t L(t)``): its end is the sum of its leaves, in any order.
"""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ..ops.elementwise import ADD


class Class:
    """The copies of one computation: members (positions in the program order), sorted by
    index, stored in one slab."""

    __slots__ = ("id", "members", "index", "lo", "hi", "rep", "desc", "regular", "invariant",
                 "dissolved", "absorbed")

    def __init__(self, cid: int, members: list[int], index: list[int]) -> None:
        pairs = sorted(zip(index, members))
        self.id = cid
        self.index = [t for t, _ in pairs]
        self.members = [m for _, m in pairs]
        self.lo, self.hi = self.index[0], self.index[-1]
        self.rep = self.members[0]          # a regular member, once descriptions are known
        self.desc: tuple | None = None      # the regular members' description
        self.regular: list[bool] = []
        self.invariant = False
        self.dissolved = False
        self.absorbed = False               # computed inside a reduction, never stored

    @property
    def rows(self) -> int:
        return self.hi - self.lo + 1

    def runs(self) -> list[tuple[int, int]]:
        """Maximal runs of regular members at consecutive indices: (first, last) index."""
        out: list[list[int]] = []
        for t, r in zip(self.index, self.regular):
            if not r:
                continue
            if out and out[-1][1] == t - 1:
                out[-1][1] = t
            else:
                out.append([t, t])
        return [(a, b) for a, b in out]

    def __repr__(self) -> str:
        return f"<Class {self.id}: {len(self.members)} members, {self.lo}…{self.hi}>"


class Reduction:
    """``end = Σ leaves``: an accumulation chain whose partial sums only the chain reads."""

    __slots__ = ("end", "chain", "leaves")

    def __init__(self, end: int, chain: list[int], leaves: list[int]) -> None:
        self.end, self.chain, self.leaves = end, chain, leaves


def _freeze(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return ("array", value.shape, value.dtype.str, value.tobytes())
    if isinstance(value, slice):
        return ("slice", value.start, value.stop, value.step)
    if isinstance(value, (tuple, list)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, np.dtype):
        return value.str
    try:
        hash(value)
        return value
    except TypeError:
        return ("id", id(value))


def attrs_signature(node) -> tuple:
    attrs = node.attrs
    if not attrs:
        return ()
    return tuple((k, _freeze(v)) for k, v in sorted(attrs.items()))


class Grouping:
    """The classes of a flattened graph (see ``flat.Flat``)."""

    def __init__(self, flat) -> None:
        self.flat = flat
        order, n = flat.order, len(flat.order)
        self.cls: list[int] = [-1] * n          # class id of each computed root, -1: singleton
        keys: list[int] = [0] * n               # each node's key, as a small integer
        interned: dict[tuple, int] = {}
        position = flat.position
        rank: dict[tuple, int] = {}
        groups: dict[tuple, list[int]] = {}
        index, stored, batched = flat.index, flat.stored, flat.batched
        self.index = index
        for i, node in enumerate(order):
            # every node gets a key (aliases too: they may be adjoints)
            t = index[i]
            a = node.adjoint
            if a is not None:
                j = position.get(a)
                base = ("G", keys[j]) if j is not None else \
                    ("F", id(a.source)) if a.source is not None else ("X", id(a))
            elif node.source is not None and node.step is not None:
                base = ("F", id(node.source))
            else:
                base = ("D",)
            at = (base, id(node.op), t)
            r = rank.get(at, 0)
            rank[at] = r + 1
            key = (base, id(node.op), r)
            k = interned.get(key)
            if k is None:
                k = interned[key] = len(interned)
            keys[i] = k
            if t is None or not stored[i]:
                continue
            skey = (k, node.shape, node.dtype, batched[i],
                    attrs_signature(node) if node.attrs else ())
            groups.setdefault(skey, []).append(i)
        del rank, interned
        self.classes: list[Class] = []
        for members in groups.values():
            if len(members) < 2:
                continue
            c = Class(len(self.classes), members, [self.index[m] for m in members])
            if len(set(c.index)) != len(c.index):      # never expected: ranks are unique
                continue
            self.classes.append(c)
            for m in c.members:
                self.cls[m] = c.id
        self.reductions: list[Reduction] = []
        self.eliminated: set[int] = set()
        self._find_reductions()
        self._find_invariants()
        self._describe()

    # --- reductions ------------------------------------------------------------------------------

    def _find_reductions(self) -> None:
        flat = self.flat
        for c in self.classes:
            if flat.order[c.rep].op is not ADD:
                continue
            member = set(c.members)
            nxt: dict[int, int] = {}
            ok = True
            for m in c.members:
                own = [r for r in flat.inputs[m] if r in member]
                if len(own) > 1 or (own and own[0] in nxt):
                    ok = False
                    break
                if own:
                    nxt[own[0]] = m
            if not ok or not nxt:
                continue
            starts = [m for m in c.members if not any(r in member for r in flat.inputs[m])]
            chains, covered = [], 0
            for s in starts:
                chain = [s]
                while chain[-1] in nxt:
                    chain.append(nxt[chain[-1]])
                chains.append(chain)
                covered += len(chain)
            if covered != len(c.members):
                continue
            shape = flat.order[c.rep].shape
            good = []
            for chain in chains:
                if any(flat.readers[m] != 1 or m in flat.kept for m in chain[:-1]):
                    good = None
                    break
                links = set(chain)
                leaves = [r for m in chain for r in flat.inputs[m] if r not in links]
                if any(flat.order[r].shape != shape for r in leaves):
                    good = None
                    break
                good.append(Reduction(chain[-1], chain, leaves))
            if not good or all(len(red.chain) < 2 for red in good):
                continue
            c.dissolved = True
            for red in good:
                if len(red.chain) > 1:          # a single add is just an add
                    self.reductions.append(red)
                    self.eliminated.update(red.chain[:-1])
            for m in c.members:
                self.cls[m] = -1

    # --- invariant classes and descriptions ------------------------------------------------------

    def _live(self):
        return [c for c in self.classes if not c.dissolved]

    def _find_invariants(self) -> None:
        flat = self.flat
        for c in sorted(self._live(), key=lambda c: min(c.members)):
            if not flat.computed[c.rep]:
                continue                       # fed: every member has a value of its own
            meta = flat.order[c.rep].op.meta_inputs
            first = None
            same = True
            for m in c.members:
                sig = tuple(("m", flat.batched[r]) if j in meta else ("n", self.value_of(r))
                            for j, r in enumerate(flat.inputs[m]))
                if first is None:
                    first = sig
                elif sig != first:
                    same = False
                    break
            c.invariant = same

    def value_of(self, r: int) -> int:
        """The position standing for the value at ``r``: an invariant class's representative."""
        k = self.cls[r]
        if k >= 0 and self.classes[k].invariant:
            return self.classes[k].rep
        return r

    def entry(self, member: int, j: int, r: int, meta) -> tuple:
        """Where input ``j`` (root ``r``) of ``member`` is, relative to it."""
        k = self.cls[r]
        if j in meta:
            return ("m", k >= 0 and not self.classes[k].invariant, self.flat.batched[r])
        if k >= 0 and not self.classes[k].invariant:
            return ("c", k, self.index[r] - self.index[member])
        return ("n", self.value_of(r))

    def _describe(self) -> None:
        flat = self.flat
        for c in self._live():
            meta = flat.order[c.rep].op.meta_inputs
            descs = []
            for m in c.members:
                descs.append(tuple(self.entry(m, j, r, meta)
                                   for j, r in enumerate(flat.inputs[m])))
            # an input read at one fixed value by every member is that value, not a row
            width = len(descs[0])
            if all(len(d) == width for d in descs):
                for j in range(width):
                    roots = {flat.inputs[m][j] for m in c.members}
                    if len(roots) == 1 and descs[0][j][0] == "c":
                        r = next(iter(roots))
                        descs = [d[:j] + (("n", self.value_of(r)),) + d[j + 1:] for d in descs]
            common = Counter(descs).most_common(1)[0][0]
            c.desc = common
            c.regular = [d == common for d in descs]
            c.rep = next(m for m, r in zip(c.members, c.regular) if r)
