"""Lower: storage for every value, and the calls that compute them.

Each class owns a slab ``(rows, [batch,] …)``: its member at index ``t`` is row ``t − lo`` (a
ring of a few rows, reused step after step, for a class its recurrent loop alone reads a few
steps later); a fed sequence is copied into its slab once per call. Singles, the end of each
reduction and the peeled members of absorbed classes own a buffer of their own. Buffers are
allocated once per plan and reused by every call, so a step loop only makes calls on fixed views.

A unit becomes instructions: ``Instr(fn, args)`` (one call), or ``Loop`` — the steps of a loop
unit whose members are all regular, lowered once as a template: each class's call is made for
a few sample steps, and each argument found to be the same at every step (a constant), a view
moving by a fixed stride per step (iterated as the rows of one strided array), or a ring row
(cycled). Peeled members and the steps around them are single calls.
"""
from __future__ import annotations

import heapq

import numpy as np

from ..graph import Node
from ..ops.elementwise import ADD, SUB
from ..ops.nn import CROSS_ENTROPY, LOG_SOFTMAX, ONE_HOT
from ..ops.shape import SCATTER
from .distribute import Unit
from .flat import Class, Single
from .group import Grouping, Part, Reduction, contains, fold_flags
from . import fuse
from ..ops.base import Elementwise
from .kernels import EFFECTS, JOINABLE, VIEW_OPS, add_n, kernel, softmax_cross_entropy, \
    sum_kernel, minus_one_hot, nll, transposed_copy, ufunc, view_op

#: the fewest consecutive steps written as a loop (shorter runs are written call by call)
LOOP_STEPS = 8
#: classes read at most this many steps after they are written, inside their loop, keep a ring
REACH = 3
#: loops over at most this many views (steps × arguments moving with the step) keep their views
#: in lists, walked faster than the rows of a strided array (which makes each view as it goes,
#: but holds none): ~150 bytes a view
LIST_VIEWS = 50_000


class Instr:
    """``fn(*args)``."""

    __slots__ = ("fn", "args")

    def __init__(self, fn, args) -> None:
        self.fn, self.args = fn, args

    def __repr__(self) -> str:
        return f"<Instr {getattr(self.fn, '__name__', self.fn)}>"


class It:
    """In a loop body, the argument taken from the loop's k-th iterator."""

    __slots__ = ("k",)

    def __init__(self, k: int) -> None:
        self.k = k


def _loop(*_):                           # the function of a Loop (codegen writes the loop)
    raise AssertionError("a loop is written out by codegen")


class Loop(Instr):
    """``for rows in zip(*iterators): body``: ``args = (steps, iterators, body)`` — each
    iterator ``("rows", views)``, one argument's views step after step (the rows of a strided
    array, or a list), or ``("ring", views)``, cycled; the body ``((fn, args), …)`` with
    ``It(k)`` for the k-th iterator's view."""

    __slots__ = ()

    def __init__(self, steps: int, iterators: tuple, body: tuple) -> None:
        super().__init__(_loop, (steps, iterators, body))


class Storage:
    """Where each value lives, for a batch of ``batch`` (None: no batch axis)."""

    def __init__(self, g: Grouping, batch: int | None) -> None:
        self.g, self.batch = g, batch
        self.values = g.values
        self.slabs: dict[int, np.ndarray] = {}
        self.single: dict[int, np.ndarray] = {}
        self.ends: dict[int, np.ndarray] = {}
        self.alone: dict[tuple[int, int], np.ndarray] = {}
        self.nbytes = 0
        self.pinned: set[int] = set()      # buffers filled when planning (never shared)
        self.views: dict = {}              # derived views (a transpose, an aligned operand)
        #: C-contiguous copies of fed values' views read by step loops (``_contiguous_operands``)
        self.contiguous: dict = {}
        self.pre: list = []                # copies the unit being lowered needs first
        self.viewed: set[int] = set()      # singles that are views of another value
        #: classes whose slab is a view of another's: computed into it (``written``) or not at
        #: all (a reshape, transpose or basic index of another class's rows)
        self.view_slabs: dict[int, np.ndarray] = {}
        self.written: set[int] = set()
        #: classes nothing computes (their value is assembled where its parts are written, or
        #: never needed)
        self.skip: set[int] = set()
        #: assembled gradient class id → the classes written into its slices
        self.assembled: dict[int, list[int]] = {}
        self.pairs: dict[int, int] = {}
        self.minus_hot: dict[int, tuple] = {}
        self.done: set[int] = set()
        #: fused cross-entropy gradients whose slab holds softmax − 1_y until scaled by g
        self.scale: set[int] = set()
        #: sibling classes whose rows are each one block, side by side (``_siblings``): their
        #: steps × batch do not fold into one axis
        self.spread: set[int] = set()

    def fed_owners(self) -> set[int]:
        """The ids of the buffers of fed singles (never written by a run)."""
        values = self.values
        return {id(a) for k, a in self.single.items() if values[k].fed}

    def _lead(self, batched: bool) -> tuple[int, ...]:
        return (self.batch,) if batched and self.batch is not None else ()

    def _alloc(self, shape, dtype, zero: bool = False) -> np.ndarray:
        a = np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
        if zero:
            self.pinned.add(id(a))
        self.nbytes += a.nbytes
        return a

    def slab(self, c: Class) -> np.ndarray:
        s = self.slabs.get(c.id)
        if s is None:
            view = self.view_slabs.get(c.id)
            if view is not None:
                self.slabs[c.id] = view
                return view
            node = c.rep
            rows = c.ring if c.ring else c.rows
            s = self.slabs[c.id] = self._alloc((rows,) + self._lead(c.batched) + node.shape,
                                               node.dtype)
        return s

    def row(self, c: Class, t: int) -> np.ndarray:
        """The buffer of class ``c``'s member at index ``t``."""
        if c.reduction is not None:
            if t != c.reduction.end:
                raise AssertionError(f"a partial sum of class {c.id} is read")
            a = self.ends.get(c.id)
            if a is None:
                a = self.ends[c.id] = self._alloc(self._lead(c.batched) + c.rep.shape,
                                                  c.rep.dtype)
            return a
        if c.absorbed:
            a = self.alone.get((c.id, t))
            if a is None:
                a = self.alone[(c.id, t)] = self._alloc(self._lead(c.batched) + c.rep.shape,
                                                        c.rep.dtype)
            return a
        i = t - c.lo
        s = self.slab(c)
        if c.ring:
            if s.shape[0] != c.ring:
                raise AssertionError(f"class {c.id} is a ring of {c.ring} in a slab of "
                                     f"{s.shape[0]} rows")
            i %= c.ring
        return s[i, ...]

    def loc(self, v: Single) -> np.ndarray:
        a = self.single.get(v.id)
        if a is None:
            node = v.node
            meta = node.op.meta_inputs
            if v.computed and len(v.desc) == 1 and not meta:
                a = view_op(node, self.loc(self.values[v.desc[0]]), int(v.batched))
                if a is not None:
                    self.single[v.id] = a
                    self.viewed.add(v.id)
                    return a
            a = self._alloc(self._lead(v.batched) + node.shape, node.dtype)
            if v.value is not None:
                a[...] = v.value
                self.pinned.add(id(a))
            self.single[v.id] = a
        return a

    def at(self, e: tuple, t: int | None):
        """The value entry ``e`` of a member at index ``t`` reads (None for a meta input)."""
        kind = e[0]
        if kind == "c":
            return self.row(self.values[e[1]], t + e[2])
        if kind == "r":
            return self.row(self.values[e[1]], e[2])
        if kind == "n":
            return self.loc(self.values[e[1]])
        return None

    def flag(self, e: tuple) -> bool:
        """Whether entry ``e``'s value carries the batch axis."""
        return e[2] if e[0] == "m" else self.g.flat.batched[e[1]]

    def output(self, o: tuple) -> np.ndarray:
        if o[0] == "n":
            return self.loc(self.values[o[1]])
        return self.row(self.values[o[1]], o[2])

    def stacked(self, c: Class, a: int, b: int, fold: int | None) -> np.ndarray:
        """Rows for indices a…b of a class, folded (steps × batch) into one leading axis of
        ``fold`` rows when given."""
        if c.reduction is not None or c.absorbed:        # one buffer, not a slab
            if a != b:
                raise AssertionError(f"rows {a}…{b} of class {c.id}, which keeps one")
            rows = self.row(c, a)[None]
        else:
            if c.ring:
                raise AssertionError(f"rows {a}…{b} of class {c.id}, a ring of {c.ring}")
            rows = self.slab(c)[a - c.lo:b - c.lo + 1]
        if fold is None:
            return rows
        if c.id in self.spread:
            raise Unsupported(f"class {c.id}'s rows are blocks apart: they do not fold")
        if c.batched:
            return rows.reshape((fold,) + rows.shape[2:])
        # a class without the batch read beside batched ones: repeat it for each example
        tiled = self._alloc((rows.shape[0], self.batch) + rows.shape[1:], rows.dtype)
        self.pre.append(Instr(np.copyto, (tiled, rows[:, None])))
        return tiled.reshape((fold,) + rows.shape[1:])


def lower(g: Grouping, units: list[Unit], batch: int | None) -> tuple[Storage, list[list[Instr]]]:
    st = Storage(g, batch)
    _place(st)
    _factors_in_place(st)
    _view_classes(st)
    _siblings(st, units)
    # (a class whose slab is already laid out — assembled gradients, siblings, the classes
    # views look at — keeps all its rows: its writers and readers index them by step)
    _rings(g, units, exclude=_read_by_views(st) | set(st.slabs) | set(st.assembled))
    st.pairs = _shared_log_softmax(g, units)
    st.minus_hot = _minus_one_hot(g, units)
    for _, hot, _ in st.minus_hot.values():
        st.skip.add(hot)
    fused = {k: f for f in fuse.softmax_cross_entropy(g, units) for k in f.classes}
    done: set[int] = set()
    out: list[list[Instr]] = []
    for u in units:
        st.pre = []
        f = fused.get(u.classes[0].id) if u.kind == "vector" else None
        if f is not None:                    # a fusion: its kernel at the first unit that may
            code = []                        # run it, nothing at the others
            if u.classes[0].id in f.first and f.loss not in done:
                done.add(f.loss)
                code = _fused(st, f)
            if u.classes[0].id == f.grad and f.grad in st.scale:
                code = code + _scaled(st, st.values[f.grad])     # g ⊙ (softmax − 1_y)
            out.append(st.pre + code)
            continue
        if u.kind == "member":
            code = [_single(st, u.single)] if u.single is not None else \
                [_peeled(st, *p) for p in u.peeled if p[0].id not in st.skip]
        elif u.kind == "vector":
            c = u.classes[0]
            code = [] if c.id in st.skip else _vector(st, c)
        elif u.kind == "loop":
            code = _loop_unit(st, u)
        else:
            code = _reduction(st, u.reduction)
        out.append(st.pre + [i for i in code if i is not None])
    for o in g.flat.outputs:
        st.output(o)
    return st, out


# --- single calls ----------------------------------------------------------------------------

def _single(st: Storage, v: Single) -> Instr | None:
    out = st.loc(v)
    if v.id in st.viewed:
        return None
    node = v.node
    meta = node.op.meta_inputs
    values = tuple(None if j in meta else st.loc(st.values[x]) for j, x in enumerate(v.desc))
    flags = tuple(st.g.flat.batched[x] for x in v.desc)
    return Instr(*kernel(node, flags, values, out, st.batch, st.views))


def _call(st: Storage, node: Node, desc: tuple, t: int, out: np.ndarray) -> Instr:
    values = tuple(st.at(e, t) for e in desc)
    flags = tuple(st.flag(e) for e in desc)
    _, ((fn, args),) = _contiguous_operands(
        st, [kernel(node, flags, values, out, st.batch, st.views)], None, make=False)
    return Instr(fn, args)


def _peeled(st: Storage, c: Class, t: int, node: Node, desc: tuple) -> Instr:
    return _call(st, node, desc, t, st.row(c, t))


# --- vector units ----------------------------------------------------------------------------

def _fold_inputs(st: Storage, c: Class, a: int, b: int):
    """The inputs of class ``c``'s regular members a…b stacked, their flags, and the size."""
    g, values = st.g, st.values
    L = b - a + 1
    batched_member = c.batched or any(e[0] == "c" and values[e[1]].batched for e in c.desc)
    fold = L * st.batch if batched_member and st.batch is not None else None
    size = fold if fold is not None else L
    out = []
    for e in c.desc:
        if e[0] == "c":
            out.append(st.stacked(values[e[1]], a + e[2], b + e[2], fold))
        elif e[0] == "m":
            out.append(None)
        else:
            v = st.at(e, None)
            if st.flag(e):                               # the same batch at every step
                tiled = st._alloc((L,) + v.shape, v.dtype)
                st.pre.append(Instr(np.copyto, (tiled, v[None])))
                v = tiled.reshape((size,) + v.shape[1:])
            out.append(v)
    return out, fold_flags(g, c.desc), size


def _vector(st: Storage, c: Class) -> list[Instr]:
    values = st.values
    node = c.rep
    if c.id in st.minus_hot:
        p_id, _, (_, y_id, dy) = st.minus_hot[c.id]
        size = c.rows * (st.batch if c.batched and st.batch is not None else 1)
        fold = size if c.batched and st.batch is not None else None
        dp = c.desc[0][2]
        p = st.stacked(values[p_id], c.lo + dp, c.hi + dp, fold).reshape((size,) + node.shape)
        y = st.stacked(values[y_id], c.lo + dy, c.hi + dy, fold).reshape(-1)
        out = st.slab(c).reshape((size,) + node.shape)
        return [Instr(minus_one_hot, (p, y.reshape((size,) + node.shape[:-1]), out))]
    pair = st.pairs.get(c.id)
    if pair is not None or c.id in st.pairs.values():
        # cross-entropy and the log-softmax of its logits: whichever runs first computes the
        # log-softmax; cross-entropy reads it
        code = []
        ls = pair if pair is not None else c.id
        if ls not in st.done:
            code += _vector_plain(st, values[ls])
            st.done.add(ls)
        if pair is not None:
            size = c.rows * (st.batch if c.batched and st.batch is not None else 1)
            inputs, _, _ = _fold_inputs(st, c, c.lo, c.hi)
            slab = st.slab(values[ls])
            logp = slab.reshape((size,) + slab.shape[1 + c.batched:])
            out = st.slab(c).reshape((size,) + node.shape)
            code.append(Instr(nll, (logp, inputs[1], out, node.attrs["axis"] + 1)))
        return code
    return _vector_plain(st, c)


def _vector_plain(st: Storage, c: Class) -> list[Instr]:
    node = c.rep
    if c.id in st.spread or any(e[0] == "c" and e[1] in st.spread for e in c.desc):
        return [_vector_spread(st, c, a, b) for a, b in c.runs]
    code = []
    for a, b in c.runs:
        values, flags, size = _fold_inputs(st, c, a, b)
        rows = st.slab(c)[a - c.lo:b - c.lo + 1]
        out = rows.reshape((size,) + node.shape)
        code.append(Instr(*kernel(node, flags, tuple(values), out, size, st.views)))
    return code


def _spread_ok(st: Storage, c: Class) -> bool:
    """Whether an element-wise class runs over all its steps on unfolded rows
    ``(steps, batch, …)`` (``_vector_spread``): its inputs of its own rank, batched like it or
    shared by every step."""
    node = c.rep
    if not isinstance(node.op, Elementwise) or c.reduction is not None or c.absorbed or \
            c.fed or c.ring or c.id in st.minus_hot or c.id in st.pairs or \
            c.id in st.pairs.values():
        return False
    for e, x in zip(c.desc, node.inputs):
        if e[0] == "m":
            continue
        if e[0] == "c" and (st.values[e[1]].batched and not c.batched or x.ndim != node.ndim):
            return False
        if e[0] != "c" and st.flag(e) and x.ndim != node.ndim:
            return False
    return True


def _vector_spread(st: Storage, c: Class, a: int, b: int) -> Instr:
    """An element-wise class at steps a…b as one call on unfolded rows ``(steps, batch, …)``:
    a spread class's rows do not fold into ``(steps · batch, …)`` (``_siblings``). A class
    without the batch gets a batch axis of one; values of no step broadcast over the steps."""
    if not _spread_ok(st, c):
        raise Unsupported(f"class {c.id} reads rows that do not fold")
    values = []
    lead = 1 + (c.batched and st.batch is not None)
    for e in c.desc:
        if e[0] == "m":
            values.append(None)
        elif e[0] == "c":
            x = st.values[e[1]]
            rows = st.stacked(x, a + e[2], b + e[2], None)
            values.append(rows[:, None] if lead == 2 and not x.batched else rows)
        else:
            values.append(st.at(e, None))
    out = st.slab(c)[a - c.lo:b - c.lo + 1]
    fn, args = kernel(c.rep, (False,) * len(c.desc), tuple(values), out, None, st.views)
    if not (isinstance(fn, np.ufunc) or fn in JOINABLE or fn is add_n):
        raise Unsupported(f"class {c.id}: no kernel on unfolded rows")
    return Instr(fn, args)


def _fused(st: Storage, f) -> list[Instr]:
    """A softmax cross-entropy fusion (``fuse``) as one kernel writing the loss and
    ``softmax − 1_y`` (scaled by ``g`` later, ``_scaled``) — or, when a slab cannot be viewed as
    the kernel needs, its two classes one by one, here."""
    values = st.values
    c = values[f.loss]
    inputs, _, _ = _fold_inputs(st, c, c.lo, c.hi)
    k = c.rep.inputs[0].shape[-1]
    x, targets = _as_shape(inputs[0], (-1, k)), _as_shape(inputs[1], (-1,))
    p = _as_shape(st.slab(values[f.grad]), (-1, k))
    loss = _as_shape(st.slab(c), (-1,))
    flat = _as_shape(p, (-1,)) if p is not None else None
    if any(a is None for a in (x, targets, p, loss, flat)) or x.shape != p.shape or \
            x.shape[:1] != targets.shape or targets.shape != loss.shape:
        return [i for cid in (f.loss, f.grad) for i in _vector(st, values[cid])]
    n = x.shape[0]
    scratch, row = st._alloc(x.shape, x.dtype), st._alloc((n, 1), x.dtype)
    at, offsets = st._alloc((n,), np.intp), st._alloc((n,), np.intp)
    offsets[...] = np.arange(n) * k
    ones = st._alloc((k,), x.dtype)
    ones[...] = 1
    st.pinned.update((id(offsets), id(ones)))
    st.scale.add(f.grad)
    return [Instr(softmax_cross_entropy, (x, targets, loss, p, flat, scratch, row,
                                          row.reshape(n), offsets, at, ones))]


def _scaled(st: Storage, c: Class) -> list[Instr]:
    """``cross_entropy_grad``'s slab, holding ``softmax − 1_y``, multiplied by its ``g``."""
    e = c.desc[0]
    if e[0] == "n" and st.values[e[1]].known and np.all(st.values[e[1]].value == 1):
        return []                                    # (the seed ∂L/∂L = 1)
    inputs, flags, size = _fold_inputs(st, c, c.lo, c.hi)
    p = st.slab(c).reshape((size,) + c.rep.shape)
    return [Instr(np.multiply, (p, inputs[0][..., None], p))]


def _as_shape(a: np.ndarray, shape: tuple) -> np.ndarray | None:
    """A view of ``a`` with this shape, or None when that would need a copy."""
    v = a.view()
    try:
        v.shape = shape
    except AttributeError:
        return None
    return v


# --- loop units ------------------------------------------------------------------------------

def _intra(u: Unit):
    """The classes of a loop unit, and its peeled members by index."""
    classes = {c.id for c in u.classes}
    peeled: dict[int, list] = {}
    for p in u.peeled:
        peeled.setdefault(p[1], []).append(p)
    return classes, peeled


def _through(st: Storage | None, e: tuple) -> list[tuple]:
    """What entry ``e`` depends on, with classes nothing computes followed: a view class to the
    class whose rows it looks at, an assembled gradient to the parts written into it."""
    if st is None or e[0] != "c":
        return [e]
    if e[1] in st.view_slabs and e[1] not in st.written:
        f = st.values[e[1]].desc[0]
        return _through(st, ("c", f[1], e[2] + f[2]))
    parts = st.assembled.get(e[1])
    if parts is not None:
        return [f for k in parts for f in _through(st, ("c", k, e[2]))]
    return [e]


def _direction(u: Unit, st: Storage | None = None) -> int | None:
    """+1 when the unit's members read only the same or earlier steps of each other (its
    steps run forward), −1 when only later ones, 0 when none, None when both."""
    ids = {c.id for c in u.classes} | {p[0].id for p in u.peeled}
    up = down = False
    for desc in [c.desc for c in u.classes] + [p[3] for p in u.peeled]:
        for e in [f for e in desc for f in _through(st, e)]:
            if e[0] == "c" and e[1] in ids:
                up |= e[2] < 0
                down |= e[2] > 0
    if up and down:
        return None
    return -1 if down else 1 if up else 0


def _template_order(u: Unit, st: Storage) -> list[Class]:
    """The unit's classes in an order a step can run them: a class after those it reads at
    distance 0 (Kahn's algorithm, earliest built first)."""
    by_id = {c.id: c for c in u.classes}
    before: dict[int, set[int]] = {c.id: set() for c in u.classes}
    for c in u.classes:
        for e in [f for e in c.desc for f in _through(st, e)]:
            if e[0] == "c" and e[2] == 0 and e[1] in by_id and e[1] != c.id:
                before[c.id].add(e[1])
    return _kahn(before, {c.id: c.first for c in u.classes}, by_id)


def _kahn(before: dict, priority: dict, items: dict) -> list:
    users: dict = {k: [] for k in before}
    indeg = {k: len(v) for k, v in before.items()}
    for k, v in before.items():
        for j in v:
            users[j].append(k)
    heap = [(priority[k], i, k) for i, k in enumerate(before) if indeg[k] == 0]
    heapq.heapify(heap)
    out = []
    n = len(before)
    while heap:
        _, _, k = heapq.heappop(heap)
        out.append(items[k])
        for w in users[k]:
            indeg[w] -= 1
            if indeg[w] == 0:
                heapq.heappush(heap, (priority[w], n + len(out), w))
    if len(out) != len(before):
        raise AssertionError("a step's members depend on each other")
    return out


def _loop_unit(st: Storage, u: Unit) -> list[Instr]:
    computed = [c for c in u.classes if c.id not in st.skip]
    if len(computed) != len(u.classes) or any(p[0].id in st.skip for p in u.peeled):
        u = Unit(u.kind, u.first, classes=computed,
                 peeled=[p for p in u.peeled if p[0].id not in st.skip], cyclic=u.cyclic)
        if not u.classes and not u.peeled:
            return []
    direction = _direction(u, st)
    if direction is None:
        return _one_by_one(st, u)
    step = -1 if direction < 0 else 1
    _, peeled = _intra(u)
    lo = min([a for c in u.classes for a, _ in c.runs] + list(peeled))
    hi = max([b for c in u.classes for _, b in c.runs] + list(peeled))
    n = hi - lo + 1
    template = np.ones(n, bool) if u.classes else np.zeros(n, bool)
    present = np.zeros(n, bool)
    for c in u.classes:
        mask = np.zeros(n, bool)
        for a, b in c.runs:
            mask[a - lo:b - lo + 1] = True
        template &= mask
        present |= mask
    for t in peeled:
        template[t - lo] = False
        present[t - lo] = True
    order = _template_order(u, st)
    steps = range(lo, hi + 1) if step > 0 else range(hi, lo - 1, -1)
    code: list[Instr] = []
    k = 0
    steps = [t for t in steps if present[t - lo]]
    while k < len(steps):
        t = steps[k]
        if template[t - lo]:
            j = k
            while j + 1 < len(steps) and template[steps[j + 1] - lo] and \
                    steps[j + 1] == steps[j] + step:
                j += 1
            code += _segment(st, order, steps[k:j + 1] if j - k + 1 < LOOP_STEPS else
                             (steps[k], steps[j], step))
            k = j + 1
        else:
            code += _straight_step(st, u, order, t, peeled.get(t, ()))
            k += 1
    return code


def _straight_step(st: Storage, u: Unit, order: list[Class], t: int, peeled) -> list[Instr]:
    """The members at step ``t`` one by one, in an order they can run."""
    members = {}
    for c in order:
        if contains(c.runs, t):
            members[("c", c.id)] = (c, c.desc, c.rep)
    for c, _, node, desc in peeled:
        members[("p", c.id)] = (c, desc, node)
    position = {c.id: k for k, c in enumerate(order)}
    before = {key: set() for key in members}
    for key, (c, desc, _) in members.items():
        for e in [f for e in desc for f in _through(st, e)]:
            if e[0] == "c" and e[2] == 0:
                for other in (("c", e[1]), ("p", e[1])):
                    if other in members and other != key:
                        before[key].add(other)
    priority = {key: (position.get(c.id, len(order)), c.first) for key, (c, _, _) in
                members.items()}
    calls = [kernel(node, tuple(st.flag(e) for e in desc), tuple(st.at(e, t) for e in desc),
                    st.row(c, t), st.batch, st.views)
             for c, desc, node in _kahn(before, priority, members)]
    pre, calls = _contiguous_operands(st, merge_adjacent(calls), None)
    return pre + [Instr(fn, args) for fn, args in calls]


def _one_by_one(st: Storage, u: Unit) -> list[Instr]:
    """A loop whose steps read each other in both directions: not planned (the per-node
    schedule runs the graph). No unfolded graph has one: a state reads either its past or its
    future, and so does its gradient."""
    raise Unsupported("a recurrent loop reads both earlier and later steps")


class Unsupported(Exception):
    """What the time-batching compiler does not plan: the per-node schedule runs it."""


def _template(st: Storage, order: list[Class], t: int) -> list[tuple]:
    return merge_adjacent([kernel(c.rep, tuple(st.flag(e) for e in c.desc),
                                  tuple(st.at(e, t) for e in c.desc), st.row(c, t), st.batch,
                                  st.views) for c in order])


def _segment(st: Storage, order: list[Class], steps) -> list[Instr]:
    """Consecutive template steps: a Loop when every argument is a constant, a strided view or
    a ring row; else (or when short) one call per member and step."""
    if isinstance(steps, list):
        pre, calls = _contiguous_operands(
            st, [call for t in steps for call in _template(st, order, t)], None)
        return pre + [Instr(fn, args) for fn, args in calls]
    first, last, step = steps
    count = (last - first) * step + 1
    period = max([c.ring for c in order if c.ring] + [2])
    samples = [first + i * step for i in range(min(count, period + 1))]
    calls = [_template(st, order, t) for t in samples]
    tail = _template(st, order, last)
    iterators: list = []
    keys: dict = {}
    body = []
    for k, (fn, args) in enumerate(calls[0]):
        if any(c[k][0] is not fn for c in calls[1:]) or tail[k][0] is not fn or \
                any(len(c[k][1]) != len(args) for c in calls[1:]):
            return _unrolled(st, order, first, last, step)
        spec = []
        for j, a in enumerate(args):
            seen = [c[k][1][j] for c in calls] + [tail[k][1][j]]
            kind = _classify(seen, count)
            if kind is None:
                return _unrolled(st, order, first, last, step)
            if kind[0] == "const":
                spec.append(a)               # (the first step's view: the same memory)
                continue
            key = kind[1]
            z = keys.get(key)
            if z is None:
                z = keys[key] = len(iterators)
                it = kind[2]
                iterators.append((kind[0], it))
            spec.append(It(z))
        body.append((fn, tuple(spec)))
    rows = [j for j, (kind, it) in enumerate(iterators) if kind == "rows" and it.ndim > 1]
    if count * len(rows) <= LIST_VIEWS:                  # (0-d rows: see codegen)
        for j in rows:
            iterators[j] = ("rows", list(iterators[j][1]))
    pre, body = _contiguous_operands(st, body, iterators)
    return pre + [Loop(count, tuple(iterators), tuple(body))]


def _contiguous_operands(st: Storage, body: list, iterators: list | None,
                         make: bool = True) -> tuple[list, list]:
    """A matrix product in a step loop reading a constant operand that is not C-contiguous —
    ``h(t−1) Wᵀ``, ``Wᵀ`` a transposed view of the fed ``W`` — reads a C-contiguous copy of it
    made once before the loop instead: OpenBLAS's product with a transposed operand and few
    rows is 1.2–2.2× slower (a step's ``(B, n) · (n, 4n)``, B = 1…64). The copy of a fed
    value's view is made once per run and read by every loop and straight step after it (the
    chunks of a strip-mined loop, strip.py); any other operand's is made before its loop, when
    nothing in the loop writes the operand's memory (no other argument of the loop shares it).
    ``iterators`` None: straight steps (``body`` the calls), which only read fed values' copies
    (and with ``make`` False only those already made: a single call does not pay for one).
    """
    candidates: dict[int, np.ndarray] = {}
    for fn, args in body:
        if fn is np.dot or fn is np.matmul:
            for a in args[:2]:
                if isinstance(a, np.ndarray) and a.ndim == 2 and not a.flags.c_contiguous and \
                        a.size > 1:
                    candidates[id(a)] = a
    if not candidates:
        return [], body
    fed = st.fed_owners()
    others: list[np.ndarray] = []
    if iterators is not None and any(id(_owner(a)) not in fed for a in candidates.values()):
        for fn, args in body:
            dot = fn is np.dot or fn is np.matmul
            for j, a in enumerate(args):
                if isinstance(a, np.ndarray) and not (dot and j < 2 and id(a) in candidates):
                    others.append(a)
        for _, it in iterators:                      # (the whole of the memory they walk)
            others += [it] if isinstance(it, np.ndarray) else \
                list({id(o): o for o in map(_owner, it)}.values())
    pre, copies = [], {}
    for k, a in candidates.items():
        if id(_owner(a)) in fed:
            key = (id(_owner(a)), _address(a), a.shape, a.strides)
            copy = st.contiguous.get(key)
            if copy is None and not make:
                continue
            if copy is None:
                copy = st.contiguous[key] = st._alloc(a.shape, a.dtype)
                pre.append(Instr(transposed_copy if a.flags.f_contiguous else np.copyto,
                                 (copy, a)))
            copies[k] = copy
            continue
        if iterators is None or any(np.may_share_memory(a, b) for b in others):
            continue
        copy = st._alloc(a.shape, a.dtype)
        pre.append(Instr(transposed_copy if a.flags.f_contiguous else np.copyto, (copy, a)))
        copies[k] = copy
    body = [(fn, tuple(copies.get(id(a), a) if isinstance(a, np.ndarray) else a
                       for a in args)) for fn, args in body]
    return pre, body


def _unrolled(st, order, first, last, step) -> list[Instr]:
    return _segment(st, order, list(range(first, last + step, step)))


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _owner(a: np.ndarray) -> np.ndarray:
    return a if a.base is None else a.base


def _classify(seen: list, count: int):
    """How an argument, sampled at the first steps of a segment and its last (``seen``), moves
    over the ``count`` steps: ("const",), ("rows", key, strided array) or ("ring", key, views);
    None if neither."""
    a0 = seen[0]
    if all(a is a0 for a in seen):
        return ("const",)
    if not all(isinstance(a, np.ndarray) for a in seen):
        if all(type(a) is type(a0) and not isinstance(a, (np.ndarray, Node)) and a == a0
               for a in seen):
            return ("const",)
        return None
    owner = _owner(a0)
    if any(a.shape != a0.shape or a.strides != a0.strides or a.dtype != a0.dtype or
           _owner(a) is not owner for a in seen):
        return None
    head, last = seen[:-1], seen[-1]
    addr = [_address(a) for a in head]
    if all(x == addr[0] for x in addr) and _address(last) == addr[0]:
        return ("const",)                    # the same memory at every step (a ring of one)
    if len(head) >= 2:
        delta = addr[1] - addr[0]
        if delta and all(x == addr[0] + i * delta for i, x in enumerate(addr)) and \
                _address(last) == addr[0] + (count - 1) * delta and owner.flags.c_contiguous:
            base = _address(owner)
            rows = np.ndarray((count,) + a0.shape, a0.dtype, buffer=owner,
                              offset=addr[0] - base, strides=(delta,) + a0.strides)
            return ("rows", ("rows", addr[0], delta, a0.shape, a0.strides, count), rows)
    for p in range(2, len(head)):
        if all(addr[i] == addr[i % p] for i in range(len(head))) and \
                _address(last) == addr[(count - 1) % p]:
            views = head[:p]
            return ("ring", ("ring", tuple(addr[:p]), count), list(views))
    return None


# --- reductions ------------------------------------------------------------------------------

def _reduction(st: Storage, red: Reduction) -> list[Instr]:
    g, values = st.g, st.values
    absorbed = {x.id for x in red.absorbed}
    parts = []                  # calls returning a partial sum
    singles = []                # values added as they are
    code = []                   # the absorbed classes' peeled members, computed alone
    rows: dict[int, list[np.ndarray]] = {}
    for e, part in red.leaves:
        n = len(part.index)
        if e[0] == "n" or e[0] == "r":
            v = st.at(e, None)
            singles += [v] * n
            continue
        x = values[e[1]]
        rows.setdefault(x.id, []).append(part.index + e[2])
    for k, read in rows.items():
        x = values[k]
        idx = np.sort(np.concatenate(read))
        if x.reduction is not None:
            singles += [st.row(x, int(t)) for t in idx]
            continue
        if k in absorbed:
            for t, node, desc in x.peeled:
                code.append(_peeled(st, x, t, node, desc))
                singles.append(st.row(x, t))
            for a, b in x.runs:
                vals, flags, size = _fold_inputs(st, x, a, b)
                parts.append(((_batched, (x.rep.op, x.rep, flags, size, *vals)),
                              lambda out, x=x, f=flags, v=vals: sum_kernel(x.rep, f, v, out)))
            continue
        uniq, counts = np.unique(idx, return_counts=True)
        for times in sorted(set(counts.tolist())):
            for a, b in _runs(uniq[counts == times]):
                for _ in range(times):
                    rows = st.slab(x)[a - x.lo:b - x.lo + 1]
                    if len(rows) == 1:               # (added as it is: no partial sum)
                        singles.append(rows[0, ...])
                        continue
                    parts.append(((np.add.reduce, (rows, 0)),
                                  lambda out, rows=rows: (np.add.reduce, (rows, 0, None, out))
                                  if out.shape == rows.shape[1:] and out.dtype == rows.dtype
                                  else None))
    end = st.row(red.cls, red.end)
    for j, (_, into) in enumerate(parts):
        direct = into(end)
        if direct is not None:               # one part written straight into the sum
            rest = tuple(p for i, (p, _) in enumerate(parts) if i != j)
            code.append(Instr(*direct))
            if rest:
                code.append(Instr(add_into, (end, rest, tuple(singles))))
            else:                            # (ufunc calls: their effects are known)
                code += [Instr(np.add, (end, v, end)) for v in singles]
            return code
    return code + [Instr(sum_into, (end, tuple(p for p, _ in parts), tuple(singles)))]


def _runs(index: np.ndarray):
    from .group import runs
    return runs(index)


def add_into(out, parts, singles) -> None:
    """``out += Σ parts + Σ singles`` (parts as in ``sum_into``)."""
    for fn, args in parts:
        np.add(out, fn(*args), out=out)
    for v in singles:
        np.add(out, v, out=out)


def sum_into(out, parts, singles) -> None:
    """``out = Σ parts + Σ singles``, each part a call ``(function, arguments)`` returning a
    partial sum (one op over stacked steps)."""
    if parts:
        fn, args = parts[0]
        np.copyto(out, fn(*args))
    else:
        np.copyto(out, singles[0])
    add_into(out, parts[1:], singles[0 if parts else 1:])


def _batched(op, node, flags, size, *values):
    return op.batched(node, list(values), flags, size)


# --- rings -----------------------------------------------------------------------------------

def _rings(g: Grouping, units: list[Unit], exclude: set[int]) -> None:
    """Classes of a recurrent loop read only inside it, at most ``REACH`` steps after they are
    written (``W h(t−1)``, the sum it enters): they keep that many rows plus one, reused step
    after step."""
    where = {(p[0].id, p[1]): i for i, u in enumerate(units) for p in u.peeled}
    for i, u in enumerate(units):
        if u.kind != "loop" or not u.cyclic or _direction(u) in (None, 0):
            continue
        inside = {c.id for c in u.classes}
        peeled_in = {(p[0].id, p[1]) for p in u.peeled}
        forward = _direction(u) > 0
        lo = min([a for c in u.classes for a, _ in c.runs] + [p[1] for p in u.peeled])
        hi = max([b for c in u.classes for _, b in c.runs] + [p[1] for p in u.peeled])
        for c in u.classes:
            if c.id in g.kept or c.reduction is not None or c.absorbed or c.fed or \
                    c.id in exclude:
                continue
            # a peeled member outside the loop is written before it: safe in a ring only
            # before the loop's first step (a peeled first step of a backward pass), where
            # its own readers outside the loop read it before the loop starts
            before = [t for t, _, _ in c.peeled if (c.id, t) not in peeled_in]
            if any((t > lo if forward else t < hi) or where.get((c.id, t), i) >= i
                   for t in before):
                continue
            far = 0
            ok = True
            later = []          # rows read by units after the loop (the next chunk's first step)
            for reader, e in g.readers.get(c.id, ()):
                if e[0] != "c" or isinstance(reader, Single):
                    ok = False
                    break
                if reader.regular:
                    if reader.cls.id not in inside:
                        ok = False
                        break
                    far = max(far, abs(e[2]))
                    continue
                for t in reader.index.tolist():
                    at = where.get((reader.cls.id, t), i)
                    if (reader.cls.id, t) in peeled_in or t + e[2] in before and at < i:
                        far = max(far, abs(e[2]))
                    elif at > i:
                        later.append(t + e[2])
                    else:
                        ok = False
                        break
                if not ok:
                    break
            ring = max(far + 1, len(before))
            if later:
                # read after the loop: safe in a ring when among the rows the loop writes last
                written = sorted([t for a, b in c.runs for t in range(a, b + 1)] +
                                 [t for t, _, _ in c.peeled if (c.id, t) in peeled_in])
                last = set(written[-ring:] if forward else written[:ring])
                ok = ok and all(t in last for t in later)
            if ok and far < REACH and ring < c.rows:
                c.ring = ring


# --- values that need no call of their own ---------------------------------------------------

def _view_classes(st: Storage) -> None:
    """Classes of ops that move no data (basic indexing, transpose, reshape) reading one class
    row by row: their slab is a view of that class's rows, nothing computes them."""
    values = st.values
    for c in sorted(st.g.classes, key=lambda c: c.first):
        if c.rep.op not in VIEW_OPS or c.peeled or c.fed or c.reduction is not None or \
                c.absorbed or c.id in st.skip or c.id in st.written or len(c.desc) != 1 or \
                c.desc[0][0] != "c":
            continue
        _, k, delta = c.desc[0]
        d = values[k]
        if d.reduction is not None or d.absorbed or d.id in st.skip or \
                c.lo + delta < d.lo or c.hi + delta > d.hi:
            continue
        rows = st.slab(d)[c.lo + delta - d.lo:c.hi + delta - d.lo + 1]
        view = view_op(c.rep, rows, 1 + c.batched)
        if view is not None:
            st.view_slabs[c.id] = view
            st.skip.add(c.id)


def _siblings(st: Storage, units: list[Unit]) -> None:
    """Classes of one element-wise op, each reading its own slice of one class's last axis
    (the LSTM's gates ``σ(z[:, 0:n])``, ``σ(z[:, n:2n])``, ``σ(z[:, 2n:3n])``), side by side
    in the order of their slices: written into one slab, so that their calls join into one
    (``merge_adjacent``). On a batch, when a step loop computes them and every reader is a
    step loop or an element-wise op (``_spread_ok``), the slab is ``(steps, siblings, batch,
    …)``: each sibling's row ``(batch, …)`` one block — the step's ``i ⊙ g``, ``f ⊙ s(t−1)``,
    ``o ⊙ tanh s`` read contiguous rows, 1.5–2× cheaper for numpy than ``(batch, n)`` rows
    strided ``4n`` apart — and the joined call writes the blocks side by side; otherwise
    ``(steps, batch, siblings · width)``, adjacent slices of each row."""
    looped = {c.id for u in units if u.kind == "loop" for c in u.classes}
    values = st.values
    groups: dict = {}
    for c in st.g.classes:
        node = c.rep
        if not isinstance(node.op, Elementwise) or len(c.desc) != 1 or c.desc[0][0] != "c" or \
                c.fed or c.reduction is not None or c.absorbed or c.ring or node.ndim == 0 or \
                c.id in st.skip or c.id in st.written or c.id in st.view_slabs or \
                c.id in st.slabs or c.id in st.minus_hot:
            continue
        _, k, d = c.desc[0]
        view = st.view_slabs.get(k)
        if view is None or k in st.written or view.ndim != node.ndim + 1 + c.batched:
            continue
        key = (node.op, tuple(sorted(node.attrs.items(), key=str)), node.dtype, c.lo, c.hi,
               c.rows, c.batched, node.shape[:-1], d, values[k].lo, id(_owner(view)),
               view.shape[:-1], view.strides)
        groups.setdefault(key, []).append((_address(view), view, c))
    for members in groups.values():
        members.sort(key=lambda m: m[0])
        run = [members[0]]
        for m in members[1:] + [None]:
            if m is not None and _follows(run[-1][1], m[1]):
                run.append(m)
                continue
            if len(run) > 1:
                cs = [c for _, _, c in run]
                node = cs[0].rep
                lead = (cs[0].rows,) + st._lead(cs[0].batched)
                if len(lead) == 2 and len({c.rep.shape for c in cs}) == 1 and \
                        all(_spreads(st, c, looped) for c in cs):
                    slab = st._alloc((lead[0], len(cs)) + lead[1:] + node.shape, node.dtype)
                    for j, c in enumerate(cs):
                        st.view_slabs[c.id] = slab[:, j]
                        st.written.add(c.id)
                        st.spread.add(c.id)
                else:
                    width = sum(c.rep.shape[-1] for c in cs)
                    slab = st._alloc(lead + node.shape[:-1] + (width,), node.dtype)
                    at = 0
                    for c in cs:
                        w = c.rep.shape[-1]
                        st.view_slabs[c.id] = slab[..., at:at + w]
                        st.written.add(c.id)
                        at += w
            run = [m] if m is not None else []


def _spreads(st: Storage, c: Class, looped: set[int]) -> bool:
    """Whether sibling ``c`` may be spread (``_siblings``): computed by a step loop, no output,
    and read only by step loops and element-wise classes over unfolded rows."""
    if c.id not in looped or c.id in st.g.kept:
        return False
    for reader, _ in st.g.readers.get(c.id, ()):
        if not isinstance(reader, Part):
            return False
        r = reader.cls
        if r.id not in looped and not _spread_ok(st, r):
            return False
    return True


def _follows(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``b`` continues ``a`` along the last axis (same memory, layout and lead)."""
    return a.ndim == b.ndim >= 1 and a.dtype == b.dtype and a.shape[:-1] == b.shape[:-1] and \
        a.strides == b.strides and _owner(a) is _owner(b) and \
        _address(b) == _address(a) + a.shape[-1] * a.strides[-1] and \
        a.strides[-1] == a.itemsize


def _joined(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a`` and ``b`` (``_follows``) as one view."""
    owner = _owner(a)
    return np.ndarray(a.shape[:-1] + (a.shape[-1] + b.shape[-1],), a.dtype, buffer=owner,
                      offset=_address(a) - _address(owner), strides=a.strides)


def merge_adjacent(calls: list[tuple]) -> list[tuple]:
    """Calls ``(fn, args)`` of one element-wise function on slices side by side joined into one
    call, when no call between them touches their memory:

    * every array argument of the later continues the earlier's (``_follows``), the others
      are the same: one call on the joined slices (``σ(z[:, :n]) → i``, ``σ(z[:, n:2n]) → f``
      as ``σ(z[:, :2n]) → [i f]``);
    * a ufunc whose array arguments are, position by position, the same array or slices of
      one width side by side (``∇s ⊙ F_i → ∇z_i``, ``∇s ⊙ F_f → ∇z_f`` in an LSTM's backward
      step): one call on the slices stacked on a new axis, the same array broadcast over it
      (``_stacked``);
    * each array argument the same array, or views of one layout a fixed distance apart from
      one call to the next (the spread gates of ``_siblings``: ``σ(z[:, n:2n]) → f(t)`` a
      block after ``σ(z[:, :n]) → i(t)``): one call on the views stacked on a new first axis,
      the same array broadcast over it (``_spaced``)."""
    out: list = []
    stacks: dict[int, list] = {}            # out index → the calls stacked there, in memory order
    spaced: dict[int, list] = {}            # … stacked on a new first axis (``_spaced``)
    for fn, args in calls:
        if fn in JOINABLE or isinstance(fn, np.ufunc):
            for j in range(len(out) - 1, -1, -1):
                f, a = out[j]
                # a call of fn with nothing between that touches this call's arrays: join it
                if f is fn and not any(_touches(between, args) for between in out[j + 1:]):
                    if j not in stacks and j not in spaced and len(a) == len(args) and all(
                            _follows(x, y) if isinstance(x, np.ndarray) else
                            (not isinstance(y, np.ndarray) and x is y) for x, y in zip(a, args)):
                        out[j] = (fn, tuple(_joined(x, y) if isinstance(x, np.ndarray) else x
                                            for x, y in zip(a, args)))
                        break
                    members = _stacked(fn, stacks.get(j, [a]), args) \
                        if isinstance(fn, np.ufunc) and j not in spaced else None
                    if members is not None:
                        stacks[j] = members
                        out[j] = (fn, _stack_args(members))
                        break
                    members = _spaced(fn, spaced.get(j, [a]), args) if j not in stacks else None
                    if members is not None:
                        spaced[j] = members
                        out[j] = (fn, _spaced_args(members))
                        break
                if _touches(out[j], args):
                    out.append((fn, args))
                    break
            else:
                out.append((fn, args))
            continue
        out.append((fn, args))
    return out


def _stacked(fn: np.ufunc, members: list[tuple], args: tuple) -> list[tuple] | None:
    """``members`` (argument tuples of calls of ``fn``, side by side in memory) with ``args``
    at either end, or None: each array argument the same in all (an input, never written) or
    a slice of one width continuing the others' (the outputs always)."""
    if len(args) != fn.nin + fn.nout:                    # (outputs given: ``kernel``'s calls)
        return None
    first, last = members[0], members[-1]
    at_end = at_start = True
    outputs = len(args) - fn.nout
    for p, y in enumerate(args):
        x0, x1 = first[p], last[p]
        if not isinstance(y, np.ndarray):
            if isinstance(x0, np.ndarray) or x0 is not y:
                return None
            continue
        if not isinstance(x0, np.ndarray):
            return None
        if _same(y, x0) and _same(y, x1):                # the same array: broadcast
            if p >= outputs or any(np.may_share_memory(y, m[q]) for m in members + [args]
                                   for q in range(outputs, len(args))):
                return None
            continue
        if len(members) > 1 and _same(x0, x1) or y.shape != x0.shape:
            return None
        at_end &= _follows(x1, y)
        at_start &= _follows(y, x0)
    if at_end:
        return members + [args]
    if at_start:
        return [args] + members
    return None


def _outputs(fn, args) -> list[int] | None:
    """The positions of the arguments a call of an element-wise kernel writes, None if unknown."""
    if isinstance(fn, np.ufunc):
        return list(range(fn.nin, len(args))) if len(args) == fn.nin + fn.nout else None
    where = EFFECTS.get(fn)
    return list(where[1]) if where is not None and fn in JOINABLE else None


def _spaced(fn, members: list[tuple], args: tuple) -> list[tuple] | None:
    """``members`` (argument tuples of calls of ``fn``) with ``args`` after them, when each
    array argument is the same array in all (an input) or, position by position, views of
    one layout and memory a fixed nonzero distance apart from each call to the next; and no
    call reads what another writes (each may write over its own input). None otherwise."""
    outs = _outputs(fn, args)
    if outs is None or len(args) != len(members[0]):
        return None
    prev = members[-1]
    for p, y in enumerate(args):
        x0, x = members[0][p], prev[p]
        if not isinstance(y, np.ndarray):
            if isinstance(x0, np.ndarray) or x0 is not y or x is not y:
                return None
            continue
        if not isinstance(x0, np.ndarray) or not isinstance(x, np.ndarray):
            return None
        if _same(y, x0) and _same(y, x):
            if p in outs:
                return None
            continue
        if y.shape != x.shape or y.strides != x.strides or y.dtype != x.dtype or \
                _owner(y) is not _owner(x) or _same(x0, x) and len(members) > 1:
            return None
        d = _address(y) - _address(x)
        if d == 0 or len(members) > 1 and d != _address(x) - _address(members[-2][p]):
            return None
    calls = members + [args]
    written = [(k, c[q]) for k, c in enumerate(calls) for q in outs]
    for k, c in enumerate(calls):
        for p, a in enumerate(c):
            if p in outs or not isinstance(a, np.ndarray):
                continue
            for w, b in written:
                if np.may_share_memory(a, b) and not (w == k and _same(a, b)):
                    return None
    for (k, a), (w, b) in zip(written, written[1:]):
        if k != w and np.may_share_memory(a, b):
            return None
    return calls


def _spaced_args(members: list[tuple]) -> tuple:
    """The arguments of one call doing the calls ``members`` (``_spaced``)."""
    out = []
    k = len(members)
    for p, x in enumerate(members[0]):
        if not isinstance(x, np.ndarray) or _same(x, members[-1][p]):
            out.append(x)
            continue
        owner = _owner(x)
        d = _address(members[1][p]) - _address(x)
        out.append(np.ndarray((k,) + x.shape, x.dtype, buffer=owner,
                              offset=_address(x) - _address(owner), strides=(d,) + x.strides))
    return tuple(out)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays are views of the same memory with the same layout."""
    return a is b or (a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype and
                      _address(a) == _address(b) and _owner(a) is _owner(b))


def _stack_args(members: list[tuple]) -> tuple:
    """The arguments of one call doing the stacked calls ``members`` (``_stacked``)."""
    out = []
    k = len(members)
    for p, x in enumerate(members[0]):
        if not isinstance(x, np.ndarray):
            out.append(x)
        elif _same(x, members[-1][p]):
            out.append(x[..., None, :] if x.ndim else x)
        else:
            owner, w = _owner(x), x.shape[-1]
            out.append(np.ndarray(x.shape[:-1] + (k, w), x.dtype, buffer=owner,
                                  offset=_address(x) - _address(owner),
                                  strides=x.strides[:-1] + (w * x.itemsize, x.itemsize)))
    return tuple(out)


def _touches(call: tuple, arrays: tuple) -> bool:
    """Whether a call's array arguments may share memory with any of ``arrays``."""
    mine = [a for a in call[1] if isinstance(a, np.ndarray)]
    return any(np.may_share_memory(a, b) for a in mine for b in arrays
               if isinstance(b, np.ndarray))


def _read_by_views(st: Storage) -> set[int]:
    """The classes whose rows a view class (or an assembled gradient) looks at."""
    out = set()
    for k in st.view_slabs:
        c = st.values[k]
        if k not in st.written:
            out.add(c.desc[0][1])
    return out | st.written | set(st.view_slabs)


def _sole(g: Grouping, x, parent: Class) -> bool:
    """Whether class ``x`` is read by ``parent``'s members alone, once each, at their index."""
    return isinstance(x, Class) and g.sole_reader(x) is parent.part


def _scatter_tree(st: Storage, c: Class):
    """The parts of class ``c`` when it is a sum (additions read only by it) of scatters of
    disjoint basic slices, each scattering a whole value: [(part class, key)] and the classes
    never run (the scatters, the inner additions), or None."""
    g, values = st.g, st.values
    shape = c.rep.shape
    stack, parts, inner = [c], [], []
    while stack:
        x = stack.pop()
        if not isinstance(x, Class) or x.peeled or x.fed or x.reduction is not None or \
                x.absorbed or x.runs != c.runs or x.batched != c.batched:
            return None
        node = x.rep
        if node.op is ADD and node.shape == shape:
            if x is not c:
                inner.append(x)
            for e in x.desc:
                if e[0] != "c" or e[2] != 0 or not _sole(g, values[e[1]], x):
                    return None
                stack.append(values[e[1]])
        elif node.op is SCATTER and node.shape == shape:
            key = node.attrs["key"]
            e = x.desc[0]
            if any(isinstance(k, np.ndarray) for k in key) or e[0] != "c" or e[2] != 0:
                return None
            part = values[e[1]]
            # (a part's peeled members write into their rows of the slice as well)
            if not _sole(g, part, x) or part.fed or part.batched != c.batched or \
                    part.reduction is not None or part.absorbed or \
                    part.rep.shape != np.empty(shape, np.int8)[key].shape or \
                    not np.array_equal(_indices(part), _indices(c)):
                return None
            parts.append((part, key))
            inner.append(x)
        else:
            return None
    if len(parts) < 2:
        return None
    seen = np.zeros(shape, np.int8)
    for _, key in parts:
        seen[key] += 1
    if seen.max() > 1:
        return None
    return parts, inner, bool(seen.min())


def _indices(c: Class) -> np.ndarray:
    """Every member's index, sorted."""
    return np.sort(np.concatenate([p.index for p in c.parts]))


def _place(st: Storage) -> None:
    """Gradients assembled from disjoint slices — ``∇z = Σ_k scatter(∇z[key_k])``, built by the
    VJP of ``z[key_k]`` (the LSTM's four gates cut from one ``z``) — get their parts written in
    place: each part's class writes into its slice of the sum's slab (zero elsewhere), and the
    scatters and the additions are never run."""
    taken: set[int] = set()
    for c in sorted(st.g.classes, key=lambda c: -c.first):      # outermost sums first
        if c.rep.op is not ADD or c.id in st.skip or c.id in taken:
            continue
        found = _scatter_tree(st, c)
        if found is None:
            continue
        parts, inner, tiled = found
        if any(p.id in taken or p.id in st.skip for p, _ in parts):
            continue
        node = c.rep
        # (parts tiling the whole value leave no zeros to keep: the slab may then be shared)
        slab = st._alloc((c.rows,) + st._lead(c.batched) + node.shape, node.dtype,
                         zero=not tiled)
        st.slabs[c.id] = slab
        for p, key in parts:
            st.view_slabs[p.id] = slab[(slice(None),) * (1 + c.batched) + key]
            st.written.add(p.id)
            taken.add(p.id)
        st.skip.add(c.id)
        st.skip.update(x.id for x in inner)
        st.assembled[c.id] = [p.id for p, _ in parts]
        taken.add(c.id)


def _factors_in_place(st: Storage) -> None:
    """A class ``F`` read only by the members of one element-wise class ``Z`` written into a
    slice of an assembled gradient (``_place``), each member of ``Z`` reading ``F`` once, at its
    own index — ``∇z_o(t) = ∇h(t) ⊙ F_o(t)``, the off-path factor ``F_o = tanh s ⊙ σ′(o)`` of an
    LSTM gate's gradient, computed for all steps before the backward loop — is computed into
    ``Z``'s rows: each call of ``Z`` (a ufunc) then writes over the factor it reads, element for
    element, and the factors take no memory of their own (an LSTM's four: 4 τ·B·n slabs)."""
    g, values = st.g, st.values
    for z in g.classes:
        view = st.view_slabs.get(z.id)
        if view is None or z.id not in st.written or z.id in st.skip or \
                any(not isinstance(ufunc(p.node.op, p.node), np.ufunc) for p in z.parts):
            continue
        found = [values[e[1]] for e in z.desc if e[0] == "c" and e[2] == 0]
        for f in found:
            if not isinstance(f, Class) or f is z or f.id in g.kept or f.fed or \
                    f.reduction is not None or f.absorbed or f.id in st.skip or \
                    f.id in st.view_slabs or f.id in st.written or f.id in st.slabs or \
                    f.rep.shape != z.rep.shape or f.rep.dtype != z.rep.dtype or \
                    f.batched != z.batched or (f.lo, f.hi) != (z.lo, z.hi) or \
                    not np.array_equal(_indices(f), _indices(z)):
                continue
            readers = g.readers.get(f.id, ())
            if not readers or any(
                    not isinstance(r, Part) or r.cls is not z or e != ("c", f.id, 0) or
                    sum(1 for x in r.desc if x[0] == "c" and x[1] == f.id) != 1
                    for r, e in readers):
                continue
            lead = (view.shape[0] * (st.batch if f.batched and st.batch is not None else 1),)
            if _as_shape(view, lead + f.rep.shape) is None:    # (its rows are stacked as one)
                continue
            st.view_slabs[f.id] = view
            st.written.add(f.id)
            break


def _all_regular_vectors(g: Grouping, units: list[Unit]) -> list[Class]:
    """The vector units' classes with all their members regular, at consecutive indices."""
    return [u.classes[0] for u in units if u.kind == "vector" and not u.classes[0].peeled and
            len(u.classes[0].runs) == 1]


def _shared_log_softmax(g: Grouping, units: list[Unit]) -> dict[int, int]:
    """Cross-entropy classes whose logits' log-softmax is also a class (the VJP of
    cross-entropy builds ``softmax(o) = exp(log_softmax(o))``): the loss is then read off the
    log-probabilities, computed once. Cross-entropy class id → log-softmax class id."""
    vectors = _all_regular_vectors(g, units)
    ls = {(c.desc, c.lo, c.hi, c.rep.attrs["axis"]): c.id for c in vectors
          if c.rep.op is LOG_SOFTMAX}
    pairs = {}
    for c in vectors:
        if c.rep.op is CROSS_ENTROPY and c.desc[0][0] == "c":
            k = ls.get(((c.desc[0],), c.lo, c.hi, c.rep.attrs["axis"]))
            if k is not None:
                pairs[c.id] = k
    return pairs


def _minus_one_hot(g: Grouping, units: list[Unit]) -> dict[int, tuple]:
    """``p − one_hot(y)`` classes (cross-entropy's VJP, ``softmax(o) − 1_y``) whose one-hot is
    read by nothing else: ``p`` is copied and 1 taken off at each target, the one-hot never
    built. Subtraction class id → (p's class id, one-hot class id, its targets' entry)."""
    values = g.values
    vector = {c.id for c in _all_regular_vectors(g, units)}
    out = {}
    for k in vector:
        c = values[k]
        node = c.rep
        if node.op is not SUB or c.desc[0][0] != "c" or c.desc[1][0] != "c" or \
                c.desc[1][2] != 0:
            continue
        hot = values[c.desc[1][1]]
        if not isinstance(hot, Class) or hot.id not in vector or hot.rep.op is not ONE_HOT or \
                hot.rep.shape != node.shape or hot.desc[0][0] != "c" or \
                values[c.desc[0][1]].rep.shape != node.shape or hot.runs != c.runs or \
                hot.batched != c.batched or not _sole(g, hot, c):
            continue
        out[k] = (c.desc[0][1], hot.id, hot.desc[0])
    return out
