"""Lower: storage for every value, and the calls that compute them.

Each live class owns a slab ``(rows, [batch,] …)``: member ``t`` is row ``t − lo``; a fed
sequence is copied into its slab once per call. Other values (parameters, constants, single
nodes, the end of each reduction) own a buffer of their own. Buffers are allocated once per
plan and reused by every call, so a step loop only makes calls on fixed views.

A unit becomes a list of instructions ``(function, arguments, index, rows)``: ``rows`` tells, for
each argument that is one row of a slab, which slab and which row (``codegen`` rolls the
repeated steps back into loops with it).
"""
from __future__ import annotations

import numpy as np

from .distribute import Unit, fold_flags
from .group import Grouping
from .kernels import compute, kernel


class Storage:
    """Where each value lives, for a batch of ``batch`` (None: no batch axis)."""

    def __init__(self, g: Grouping, batch: int | None) -> None:
        self.g, self.batch = g, batch
        flat = g.flat
        self.slabs: dict[int, np.ndarray] = {}
        self.single: dict[int, np.ndarray] = {}
        self.nbytes = 0
        for c in g.classes:
            if c.dissolved or c.invariant:
                continue
            node = flat.order[c.rep]
            shape = (c.rows,) + self._lead(c.rep) + node.shape
            self.slabs[c.id] = self._alloc(shape, node.dtype)
        self._rows: dict[int, list] = {}
        self.pre: list = []            # copies the unit being lowered needs first

    def _lead(self, r: int) -> tuple[int, ...]:
        return (self.batch,) if self.g.flat.batched[r] else ()

    def _alloc(self, shape, dtype) -> np.ndarray:
        a = np.empty(shape, dtype)
        self.nbytes += a.nbytes
        return a

    def rows(self, cid: int) -> list:
        views = self._rows.get(cid)
        if views is None:
            slab = self.slabs[cid]
            views = self._rows[cid] = [slab[i, ...] for i in range(slab.shape[0])]
        return views

    def where(self, r: int):
        """(slab id, row) of a value stored in a slab, else None."""
        g = self.g
        k = g.cls[r]
        if k >= 0 and not g.classes[k].invariant:
            return (k, g.index[r] - g.classes[k].lo)
        return None

    def loc(self, r: int) -> np.ndarray:
        g = self.g
        r = g.value_of(r)
        w = self.where(r)
        if w is not None:
            return self.rows(w[0])[w[1]]
        a = self.single.get(r)
        if a is None:
            node = g.flat.order[r]
            a = self.single[r] = self._alloc(self._lead(r) + node.shape, node.dtype)
            if g.flat.constant[r]:
                a[...] = node.attrs["value"]
        return a

    def stacked(self, cid: int, a: int, b: int, fold: int | None) -> np.ndarray:
        """Rows for indices a…b of a class, folded (steps × batch) into one leading axis of
        ``fold`` rows when given."""
        c = self.g.classes[cid]
        rows = self.slabs[cid][a - c.lo:b - c.lo + 1]
        if fold is None:
            return rows
        if self.g.flat.batched[c.rep]:
            return rows.reshape((fold,) + rows.shape[2:])
        # a class without the batch read beside batched ones: repeat it for each example
        tiled = self._alloc((rows.shape[0], self.batch) + rows.shape[1:], rows.dtype)
        self.pre.append((np.copyto, (tiled, rows[:, None])))
        return tiled.reshape((fold,) + rows.shape[1:])


class Instr:
    __slots__ = ("fn", "args", "index", "rows")

    def __init__(self, fn, args, index=None, rows=None) -> None:
        self.fn, self.args, self.index, self.rows = fn, args, index, rows


def lower(g: Grouping, units: list[Unit], batch: int | None) -> tuple[Storage, list[list[Instr]]]:
    st = Storage(g, batch)
    flat = g.flat
    out: list[list[Instr]] = []
    for u in units:
        st.pre = []
        if u.kind == "members":
            code = [_member(st, m) for m in u.members]
        elif u.kind == "vector":
            code = [_member(st, m) for m in u.members] + _vector(st, u.cls)
        else:
            code = _reduction(st, u)
        out.append(([Instr(f, a) for f, a in st.pre]) + code)
    for m in flat.outputs:
        st.loc(m)
    return st, out


def _member(st: Storage, m: int) -> Instr:
    flat = st.g.flat
    node = flat.order[m]
    meta = node.op.meta_inputs
    values = tuple(None if j in meta else st.loc(r) for j, r in enumerate(flat.inputs[m]))
    out = st.loc(m)
    fn, args = kernel(node, flat.flags(m), values, out, st.batch)
    # which arguments are rows of slabs (for rolling steps into loops)
    where = {}
    for j, r in enumerate(flat.inputs[m]):
        if j not in meta:
            w = st.where(st.g.value_of(r))
            if w is not None:
                where[id(values[j])] = w
    w = st.where(m)
    if w is not None:
        where[id(out)] = w
    rows = tuple(where.get(id(a)) for a in args) if where else None
    return Instr(fn, args, st.g.index[m], rows)


def _fold_inputs(st: Storage, c, a: int, b: int):
    """The inputs of class ``c``'s regular members a…b stacked, their flags, and the batch."""
    g, flat = st.g, st.g.flat
    L = b - a + 1
    batched_member = flat.batched[c.rep] or any(
        (e[0] == "c" and flat.batched[g.classes[e[1]].rep]) for e in c.desc)
    fold = L * st.batch if batched_member and st.batch is not None else None
    size = fold if fold is not None else L
    values = []
    for e in c.desc:
        if e[0] == "c":
            values.append(st.stacked(e[1], a + e[2], b + e[2], fold))
        elif e[0] == "m":
            values.append(None)
        else:
            v = st.loc(e[1])
            if flat.batched[e[1]]:                       # the same batch at every step
                tiled = st._alloc((L,) + v.shape, v.dtype)
                st.pre.append((np.copyto, (tiled, v[None])))
                v = tiled.reshape((size,) + v.shape[1:])
            values.append(v)
    return values, fold_flags(g, c), size


def _vector(st: Storage, c) -> list[Instr]:
    flat = st.g.flat
    node = flat.order[c.rep]
    code = []
    for a, b in c.runs():
        values, flags, size = _fold_inputs(st, c, a, b)
        rows = st.slabs[c.id][a - c.lo:b - c.lo + 1]
        out = rows.reshape((size,) + node.shape)
        fn, args = kernel(node, flags, tuple(values), out, size)
        code.append(Instr(fn, args))
    return code


def _reduction(st: Storage, u: Unit) -> list[Instr]:
    g, flat = st.g, st.g.flat
    red = u.reduction
    absorbed = {c.id for c in u.absorbed}
    parts = []                  # functions of no argument, each returning a partial sum
    by_class: dict[int, list[int]] = {}
    singles = []
    for r in red.leaves:
        k = g.cls[r]
        if k >= 0 and not g.classes[k].invariant:
            by_class.setdefault(k, []).append(g.index[r])
        else:
            singles.append(st.loc(r))
    for k, idx in by_class.items():
        c = g.classes[k]
        idx.sort()
        runs, dup = [], len(set(idx)) != len(idx)
        if dup:
            for t in idx:
                singles.append(st.rows(k)[t - c.lo])
            continue
        for t in idx:
            if runs and runs[-1][1] == t - 1:
                runs[-1][1] = t
            else:
                runs.append([t, t])
        for a, b in runs:
            if k in absorbed:
                values, flags, size = _fold_inputs(st, c, a, b)
                node = flat.order[c.rep]
                parts.append(_partial(node, flags, values, size))
            else:
                parts.append(_rowsum(st.slabs[k][a - c.lo:b - c.lo + 1]))
    out = st.loc(red.end)

    def run():
        acc = None
        for p in parts:
            v = p()
            acc = v if acc is None else acc + v
        for v in singles:
            acc = v if acc is None else acc + v
        np.copyto(out, acc)
    return [Instr(run, ())]


def _partial(node, flags, values, size):
    op = node.op
    return lambda: op.batched(node, values, flags, size)


def _rowsum(rows):
    return lambda: np.add.reduce(rows, axis=0)


def feeds(st: Storage) -> tuple[dict, dict]:
    """Where fed values go: placeholder position → its buffer, and class id → its slab (for a
    sequence fed as one array)."""
    g, flat = st.g, st.g.flat
    single, slabs = {}, {}
    for i in flat.fed:
        k = g.cls[i]
        if k >= 0 and not g.classes[k].invariant:
            slabs.setdefault(k, []).append(i)
        else:
            single[i] = st.loc(i)
    return single, slabs
