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

import bisect

import numpy as np

from .distribute import Unit, fold_flags
from .group import Grouping
from ..ops.elementwise import ADD, SUB
from ..ops.nn import CROSS_ENTROPY, LOG_SOFTMAX, ONE_HOT
from . import fuse
from .kernels import (VIEW_OPS, compute, kernel, minus_one_hot, nll, softmax_cross_entropy,
                      sum_kernel, view_op)


class Storage:
    """Where each value lives, for a batch of ``batch`` (None: no batch axis)."""

    def __init__(self, g: Grouping, batch: int | None, units: list[Unit] = ()) -> None:
        self.g, self.batch = g, batch
        self.ring: dict[int, int] = {}
        flat = g.flat
        self.slabs: dict[int, np.ndarray] = {}
        self.single: dict[int, np.ndarray] = {}
        self.nbytes = 0
        self.pinned: set[int] = set()      # buffers filled when planning (never shared)
        self.viewed: set[int] = set()      # single values that are views of another value
        self.view_classes: set[int] = set()
        #: positions nothing computes: their value is assembled where its parts are written
        self.skip: set[int] = set()
        placed = self._place()
        #: classes kept in a ring of a few rows: class id → rows (read only by their own
        #: recurrent loop, a few steps later at most)
        self.ring = _rings(g, units, exclude=set(placed) | {r for r, _ in placed.values()})
        for c in sorted(g.classes, key=lambda c: min(c.members)):
            if c.dissolved or c.invariant or c.absorbed or c.id in self.slabs:
                continue
            node = flat.order[c.rep]
            slab = None
            if c.id in placed:
                root, key = placed[c.id]
                slab = self.slabs[root][(slice(None),) * (1 + flat.batched[c.rep]) + key]
                self.view_classes.add(c.id)           # its members still compute, into the view
                self.written_views.add(c.id)
            elif all(c.regular) and len(c.desc) == 1 and c.desc[0][0] == "c" and \
                    flat.computed[c.rep] and c.desc[0][1] in self.slabs:
                d = g.classes[c.desc[0][1]]
                delta = c.desc[0][2]
                rows = self.slabs[d.id][c.lo + delta - d.lo:c.hi + delta - d.lo + 1]
                slab = view_op(node, rows, 1 + flat.batched[c.rep])
            if slab is not None:
                if c.id not in placed:
                    self.view_classes.add(c.id)
            else:
                shape = (self.ring.get(c.id, c.rows),) + self._lead(c.rep) + node.shape
                slab = self._alloc(shape, node.dtype)
            self.slabs[c.id] = slab
        self._rows: dict[int, list] = {}
        self.pre: list = []            # copies the unit being lowered needs first
        self.views: dict = {}          # derived views (a transpose, an aligned operand), made once

    def _place(self) -> dict[int, tuple[int, tuple]]:
        """Gradients assembled from disjoint slices — ``∇z = Σ_k scatter(∇z[key_k])``, built by
        the VJP of ``z[key_k]`` (the LSTM's four gates cut from one ``z``) — get their parts
        written in place: each part's class writes into its slice of the sum's slab (zero
        elsewhere), and the scatters and the additions are never run. Part class id →
        (sum class id, key)."""
        g, flat = self.g, self.g.flat
        self.written_views: set[int] = set()
        order, inputs = flat.order, flat.inputs
        out: dict[int, tuple[int, tuple]] = {}
        # outermost sums first (a sum is built after its terms)
        for c in sorted(g.classes, key=lambda c: -c.rep):
            if c.dissolved or c.invariant or c.absorbed or flat.order[c.rep].op is not ADD or \
                    not all(c.regular) or c.rep in self.skip:
                continue
            found = [_scatter_tree(flat, m) for m in c.members]
            if any(f is None for f in found):
                continue
            parts = [[(g.cls[gk], g.index[gk] - g.index[m], key) for gk, key, _ in f]
                     for m, f in zip(c.members, found)]
            first = parts[0]
            if any(p != first for p in parts) or any(k < 0 or d != 0 for k, d, _ in first):
                continue
            ks = [k for k, _, _ in first]
            if len(set(ks)) != len(ks) or any(
                    g.classes[k].index != c.index or g.classes[k].invariant or
                    g.classes[k].absorbed or g.classes[k].dissolved or
                    flat.batched[g.classes[k].rep] != flat.batched[c.rep] or
                    not flat.computed[g.classes[k].rep] or k in out for k in ks):
                continue
            node = order[c.rep]
            covered = np.zeros(node.shape, bool)
            for _, _, key in first:
                covered[key] = True
            # zeros where no part writes (none when the parts tile it: the LSTM's four gates)
            self.slabs[c.id] = self._alloc((c.rows,) + self._lead(c.rep) + node.shape,
                                           node.dtype, zero=not covered.all())
            for k, _, key in first:
                out[k] = (c.id, key)
            for f, m in zip(found, c.members):
                self.skip.add(m)
                for _, _, inner in f:
                    self.skip.update(inner)
        return out

    def _lead(self, r: int) -> tuple[int, ...]:
        return (self.batch,) if self.g.flat.batched[r] else ()

    def _alloc(self, shape, dtype, zero: bool = False) -> np.ndarray:
        a = np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
        if zero:
            self.pinned.add(id(a))          # its zeros are part of its value: never shared
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
        if k >= 0 and not g.classes[k].invariant and not g.classes[k].absorbed:
            row = g.index[r] - g.classes[k].lo
            ring = self.ring.get(k)
            return (k, row if ring is None else row % ring)
        return None

    def loc(self, r: int) -> np.ndarray:
        g = self.g
        r = g.value_of(r)
        w = self.where(r)
        if w is not None:
            return self.rows(w[0])[w[1]]
        a = self.single.get(r)
        if a is None:
            flat = g.flat
            node = flat.order[r]
            if flat.computed[r] and len(node.inputs) == 1:
                a = view_op(node, self.loc(flat.inputs[r][0]), int(flat.batched[r]))
                if a is not None:
                    self.viewed.add(r)
            if a is None:
                a = self._alloc(self._lead(r) + node.shape, node.dtype)
                if r in flat.value:
                    a[...] = flat.value[r]
                    self.pinned.add(id(a))
            self.single[r] = a
        return a

    def is_view(self, r: int) -> bool:
        """Whether ``r`` is a view of another value (nothing to compute)."""
        if r in self.skip:
            return True
        k = self.g.cls[r]
        if k >= 0 and k in self.view_classes and k not in self.written_views:
            return True
        self.loc(r)
        return r in self.viewed

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
    """``fn(*args)``; for a node computed alone also its index, its *template* (the class it is
    a regular member of: regular members of one class make the same call on other rows), the
    positions it reads and the one it writes."""

    __slots__ = ("fn", "args", "index", "template", "reads", "write")

    def __init__(self, fn, args, index=None, template=None, reads=(), write=None) -> None:
        self.fn, self.args, self.index, self.template = fn, args, index, template
        self.reads, self.write = reads, write


def _shared_log_softmax(g: Grouping, units: list[Unit]) -> dict[int, int]:
    """Cross-entropy classes whose logits' log-softmax is also a class (the VJP of
    cross-entropy builds ``softmax(o) = exp(log_softmax(o))``): the loss is then read off the
    log-probabilities, computed once. Cross-entropy class id → log-softmax class id."""
    flat = g.flat
    ls = {}
    for u in units:
        if u.kind == "vector" and not u.members and all(u.cls.regular) and \
                u.cls.rows == len(u.cls.members):           # (rows lo…hi, no gaps)
            c = u.cls
            node = flat.order[c.rep]
            if node.op is LOG_SOFTMAX:
                ls[(c.desc, c.lo, c.hi, node.attrs["axis"])] = c.id
    pairs = {}
    for u in units:
        if u.kind == "vector" and not u.members and all(u.cls.regular) and \
                u.cls.rows == len(u.cls.members):           # (rows lo…hi, no gaps)
            c = u.cls
            node = flat.order[c.rep]
            if node.op is CROSS_ENTROPY and c.desc[0][0] == "c":
                k = ls.get(((c.desc[0],), c.lo, c.hi, node.attrs["axis"]))
                if k is not None:
                    pairs[c.id] = k
    return pairs


def _minus_one_hot(g: Grouping, units: list[Unit]) -> dict[int, tuple]:
    """``p − one_hot(y)`` classes (cross-entropy's VJP, ``softmax(o) − 1_y``) whose one-hot is
    read by nothing else: ``p`` is copied and 1 taken off at each target, the one-hot never
    built. Subtraction class id → (p's class id, one-hot class id, its targets' description)."""
    flat = g.flat
    vector = {u.cls.id for u in units if u.kind == "vector"}
    out = {}
    for k in vector:
        c = g.classes[k]
        node = flat.order[c.rep]
        if node.op is not SUB or not all(c.regular) or c.rows != len(c.members) or \
                c.desc[0][0] != "c" or \
                c.desc[1][0] != "c":
            continue
        hot = g.classes[c.desc[1][1]]
        hnode = flat.order[hot.rep]
        if hnode.op is not ONE_HOT or hot.id not in vector or not all(hot.regular) or \
                hnode.shape != node.shape or flat.order[g.classes[c.desc[0][1]].rep].shape != \
                node.shape or hot.desc[0][0] != "c" or c.desc[1][2] != 0 or \
                hot.index != c.index or flat.batched[hot.rep] != flat.batched[c.rep] or \
                any(flat.readers[m] != 1 or m in flat.kept for m in hot.members):
            continue
        out[k] = (c.desc[0][1], hot.id, hot.desc[0])
    return out


def lower(g: Grouping, units: list[Unit], batch: int | None) -> tuple[Storage, list[list[Instr]]]:
    st = Storage(g, batch, units)
    flat = g.flat
    out: list[list[Instr]] = []
    st.pairs = _shared_log_softmax(g, units)
    st.minus_hot = _minus_one_hot(g, units)
    for _, hot, _ in st.minus_hot.values():
        st.skip.update(g.classes[hot].members)
    vector = {u.cls.id for u in units if u.kind == "vector" and not u.members}
    st.fused = {k: f for f in fuse.softmax_cross_entropy(g, vector, st.pairs, st.minus_hot)
                for k in f.classes}
    st.done: set[int] = set()
    for u in units:
        st.pre = []
        fused = st.fused.get(u.cls.id) if u.kind == "vector" else None
        if fused is not None and (fused.loss in st.done or _fused(st, fused)):
            out.append(st.pre)
            continue
        if u.kind == "members":
            code = [_member(st, m) for m in u.members]
        elif u.kind == "vector":
            c = u.cls
            code = [] if c.id in st.view_classes and c.id not in st.written_views or \
                c.rep in st.skip else [_member(st, m) for m in u.members] + _vector(st, c)
        else:
            code = _reduction(st, u)
        code = [i for i in code if i is not None]
        out.append(([Instr(f, a) for f, a in st.pre]) + code)
    for m in flat.outputs:
        st.loc(m)
    return st, out


def _fused(st: Storage, f) -> bool:
    """Lower a softmax cross-entropy fusion (``fuse``) at the first of its units, into
    ``st.pre``: whether it was (else its classes are lowered one by one, as without it)."""
    g = st.g
    c = g.classes[f.loss]
    values, _, _ = _fold_inputs(st, c, c.lo, c.hi)
    k = g.flat.order[c.rep].inputs[0].shape[-1]
    x, targets = _as_shape(values[0], (-1, k)), _as_shape(values[1], (-1,))
    p = _as_shape(st.slabs[f.grad], (-1, k))
    loss = _as_shape(st.slabs[c.id], (-1,))
    flat = _as_shape(p, (-1,)) if p is not None else None
    if any(a is None for a in (x, targets, p, loss, flat)) or \
            not x.shape == p.shape or x.shape[:1] != targets.shape or targets.shape != loss.shape:
        for k in f.classes:
            del st.fused[k]
        st.pre = []
        return False
    n = x.shape[0]
    scratch, row, at = st._alloc(x.shape, x.dtype), st._alloc((n, 1), x.dtype), \
        st._alloc((n,), np.intp)
    offsets = st._alloc((n,), np.intp)
    offsets[...] = np.arange(n) * k
    st.pinned.add(id(offsets))
    st.done.add(f.loss)
    st.pre = [Instr(fn, args) for fn, args in st.pre] + [Instr(softmax_cross_entropy, (
        x, targets, loss, p, flat, scratch, row, row.reshape(n), offsets, at))]
    return True


def _as_shape(a: np.ndarray, shape: tuple) -> np.ndarray | None:
    """A view of ``a`` with this shape, or None when that would need a copy."""
    v = a.view()
    try:
        v.shape = shape
    except AttributeError:
        return None
    return v


def _rings(g: Grouping, units: list[Unit], exclude: set[int], reach: int = 3) -> dict[int, int]:
    """Classes of a recurrent unit read only inside it, at most ``reach`` steps after they are
    written (``W h(t−1)``, the sum it enters): they need only that many rows plus one, reused
    step after step — the unit runs its steps in time order (its members' indices are monotone
    in the order they run). Members computed before the unit (the first backward step, which
    reads no recurrence) may belong to such a class when they come just before its first step
    inside, at most as many steps before as the ring has rows (so they fill distinct rows), and
    be read by members computed one by one before the unit: all read them before the unit
    writes over their rows."""
    flat = g.flat
    out: dict[int, int] = {}
    early = {m: k for k, v in enumerate(units) if v.kind == "members" for m in v.members}
    for at, u in enumerate(units):
        if not u.cyclic:
            continue
        members = set(u.members)
        steps = [g.index[m] for m in u.members]
        if None in steps or not (all(a <= b for a, b in zip(steps, steps[1:])) or
                                 all(a >= b for a, b in zip(steps, steps[1:]))):
            continue
        direction = (steps[-1] > steps[0]) - (steps[-1] < steps[0])
        candidates = {g.cls[m] for m in u.members if g.cls[m] >= 0}
        far: dict[int, int] = {k: 0 for k in candidates}
        before: dict[int, list[int]] = {}      # class → how far before its first step inside
        for k in list(candidates):
            c = g.classes[k]
            inside = [g.index[m] for m in c.members if m in members]
            first = min(inside) if direction > 0 else max(inside)
            ahead = [(first - g.index[m]) * direction for m in c.members if m not in members]
            if c.invariant or c.dissolved or c.absorbed or (ahead and (
                    direction == 0 or min(ahead) <= 0)) or \
                    any(m in flat.kept for m in c.members) or k in exclude or \
                    flat.order[c.rep].op in VIEW_OPS:
                far.pop(k)
            elif ahead:
                before[k] = ahead
        readers_outside: set[int] = set()
        for i in range(len(flat.order)):
            if not flat.computed[i]:
                continue
            meta = flat.order[i].op.meta_inputs
            for j, r in enumerate(flat.inputs[i]):
                k = g.cls[r]
                if k in far and j not in meta:
                    if i not in members or flat.order[i].op in VIEW_OPS:
                        # a member computed before the unit may be read, one by one, before
                        # the unit runs
                        if r in members or flat.order[i].op in VIEW_OPS or \
                                early.get(i, at) >= at:
                            readers_outside.add(k)
                    else:
                        far[k] = max(far[k], abs(g.index[i] - g.index[r]))
        for k, d in far.items():
            if k not in readers_outside and d < reach and d + 1 < g.classes[k].rows and \
                    max(before.get(k, (0,))) <= d + 1:
                out[k] = d + 1
    return out


def _scatter_tree(flat, r: int):
    """The parts of ``r`` when it is a sum (additions read only by it) of scatters of disjoint
    basic slices, each scattering a whole value: [(part, key, [scatter and additions])], or
    None."""
    from ..ops.shape import SCATTER
    order, inputs = flat.order, flat.inputs
    shape = order[r].shape
    stack, parts, inner = [r], [], []
    while stack:
        i = stack.pop()
        node = order[i]
        if node.op is ADD and flat.computed[i] and node.shape == shape:
            if i != r:
                if flat.readers[i] != 1 or i in flat.kept:
                    return None
                inner.append(i)
            stack.extend(inputs[i])
        elif node.op is SCATTER and flat.computed[i] and flat.readers[i] == 1 and \
                i not in flat.kept and node.shape == shape:
            key = node.attrs["key"]
            gk = inputs[i][0]
            if any(isinstance(k, np.ndarray) for k in key) or not flat.computed[gk] or \
                    flat.readers[gk] != 1 or gk in flat.kept or \
                    flat.batched[gk] != flat.batched[r] or \
                    order[gk].shape != np.empty(shape, np.int8)[key].shape:
                return None
            parts.append((gk, key, [i]))
        else:
            return None
    if len(parts) < 2:
        return None
    seen = np.zeros(shape, np.int8)
    for _, key, _ in parts:
        seen[key] += 1
    if seen.max() > 1:
        return None
    parts[0][2].extend(inner)
    return sorted(parts, key=lambda p: p[0])


def _member(st: Storage, m: int) -> Instr | None:
    if st.is_view(m):
        return None
    g = st.g
    flat = g.flat
    node = flat.order[m]
    meta = node.op.meta_inputs
    ins = flat.inputs[m]
    values = tuple(None if j in meta else st.loc(r) for j, r in enumerate(ins))
    out = st.loc(m)
    fn, args = kernel(node, flat.flags(m), values, out, st.batch, st.views)
    k = g.cls[m]
    c = g.classes[k] if k >= 0 else None
    regular = c is not None and not c.invariant and \
        c.regular[bisect.bisect_left(c.index, g.index[m])]
    reads = tuple(g.value_of(r) for j, r in enumerate(ins) if j not in meta)
    return Instr(fn, args, g.index[m], ("c", k) if regular else ("p", m), reads, m)



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
    if c.id in st.minus_hot:
        p_id, _, (_, y_id, dy) = st.minus_hot[c.id]
        size = c.rows * (st.batch if flat.batched[c.rep] and st.batch is not None else 1)
        fold = size if flat.batched[c.rep] and st.batch is not None else None
        dp = c.desc[0][2]
        p = st.stacked(p_id, c.lo + dp, c.hi + dp, fold).reshape((size,) + node.shape)
        y = st.stacked(y_id, c.lo + dy, c.hi + dy, fold).reshape(-1)
        out = st.slabs[c.id].reshape((size,) + node.shape)
        code.append(Instr(minus_one_hot, (p, y.reshape((size,) + node.shape[:-1]), out)))
        return code
    pair = st.pairs.get(c.id)
    if pair is not None or c.id in st.pairs.values():
        # cross-entropy and the log-softmax of its logits: whichever runs first computes the
        # log-softmax; cross-entropy reads it
        ls = pair if pair is not None else c.id
        if ls not in st.done:
            code += _vector_plain(st, st.g.classes[ls])
            st.done.add(ls)
        if pair is not None:
            size = c.rows * (st.batch if flat.batched[c.rep] and st.batch is not None else 1)
            values, _, _ = _fold_inputs(st, c, c.lo, c.hi)
            logp = st.slabs[ls].reshape((size,) + st.slabs[ls].shape[1 + flat.batched[c.rep]:])
            out = st.slabs[c.id].reshape((size,) + node.shape)
            code.append(Instr(nll, (logp, values[1], out, node.attrs["axis"] + 1)))
        return code
    return _vector_plain(st, c)


def _vector_plain(st: Storage, c) -> list[Instr]:
    flat = st.g.flat
    node = flat.order[c.rep]
    code = []
    for a, b in c.runs():
        values, flags, size = _fold_inputs(st, c, a, b)
        rows = st.slabs[c.id][a - c.lo:b - c.lo + 1]
        out = rows.reshape((size,) + node.shape)
        fn, args = kernel(node, flags, tuple(values), out, size, st.views)
        code.append(Instr(fn, args))
    return code


def _reduction(st: Storage, u: Unit) -> list[Instr]:
    g, flat = st.g, st.g.flat
    red = u.reduction
    absorbed = {c.id for c in u.absorbed}
    parts = []                  # functions of no argument, each returning a partial sum
    by_class: dict[int, list[int]] = {}
    singles = []
    code = []                   # the absorbed classes' members that are computed alone
    for r in red.leaves:
        k = g.cls[r]
        c = g.classes[k] if k >= 0 else None
        if c is not None and c.absorbed and not c.regular[bisect.bisect_left(c.index,
                                                                              g.index[r])]:
            code.append(_member(st, r))
            singles.append(st.loc(r))
        elif c is not None and not c.invariant:
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
    end = st.loc(red.end)
    for j, (_, into) in enumerate(parts):
        direct = into(end)
        if direct is not None:               # one part written straight into the sum
            rest = tuple(p for i, (p, _) in enumerate(parts) if i != j)
            code.append(Instr(*direct))
            if rest or singles:
                code.append(Instr(add_into, (end, rest, tuple(singles))))
            return code
    return code + [Instr(sum_into, (end, tuple(p for p, _ in parts), tuple(singles)))]


def add_into(out, parts, singles) -> None:
    """``out += Σ parts + Σ singles`` (parts as in ``sum_into``)."""
    for fn, args in parts:
        np.add(out, fn(*args), out=out)
    for v in singles:
        np.add(out, v, out=out)


def sum_into(out, parts, singles) -> None:
    """``out = Σ parts + Σ singles``, each part a call ``(function, arguments)`` returning a
    partial sum (one op over stacked steps)."""
    acc = None
    for fn, args in parts:
        v = fn(*args)
        acc = v if acc is None else acc + v
    for v in singles:
        acc = v if acc is None else acc + v
    np.copyto(out, acc)


def _batched(op, node, flags, size, *values):
    return op.batched(node, list(values), flags, size)


def _partial(node, flags, values, size):
    """A partial sum: the call returning it, and the call writing it into an ``out`` (or
    None)."""
    return ((_batched, (node.op, node, flags, size, *values)),
            lambda out: sum_kernel(node, flags, values, out))


def _rowsum(rows):
    return ((np.add.reduce, (rows, 0)),
            lambda out: (np.add.reduce, (rows, 0, None, out))
            if out.shape == rows.shape[1:] and out.dtype == rows.dtype else None)
