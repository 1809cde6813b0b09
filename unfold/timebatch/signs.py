"""Signs folded into producers: σ(z) = 1 / (1 + e⁻ᶻ) in three numpy calls instead of four.

``kernels.sigmoid`` negates its input before ``exp``. When the columns σ reads are written only by
sums (``np.add``) and products (``np.dot``) of arrays nothing in the plan writes — fed values:
``U``ᵀ, ``b``, a copy of ``W``ᵀ — those columns can be stored as −z instead, and σ reads −z
directly (``kernels.sigmoid_of_negated``). Exact in IEEE arithmetic, rounding being symmetric:
``(−a) + (−b) = −(a + b)``, ``a · (−b) = −(a · b)``, so a GEMM of a negated column gives the
negated column, bit for bit — the same numbers as before.

Where the signs go, holding no copy of a weight matrix: a product of a fed matrix outside a
loop (all steps' ``U x``, the first step's ``W h``) has its output's columns multiplied by ±1
in place after the call, one call over all steps; the copy of ``W``ᵀ a loop reads, in place
after it is made; a fed operand of a sum (``b``) or of a product inside a loop is copied
negated, once a call, in a unit run first. Those copies and the ±1 factors (one row each) may
add ``BUDGET`` of the plan's buffers at most, else the pass leaves the plan alone.

The pass is conservative: each buffer the plan writes gets a set of negated columns (its last
axis); the sets grow until every call reading or writing them agrees (a sum: each operand
negated where its output is; a product ``h · M``: a column of the output where that column of
``M`` is, ``h`` never; σ: all its input or none). A call of any other kind touching a negated
column, a program output among them, or a layout it cannot follow, and the plan is left as it
was.
"""
from __future__ import annotations

import numpy as np

from .kernels import sigmoid, sigmoid_of_negated, transposed_copy
from .lower import Instr, It, Loop, _address, _owner
from .memory import SMALL

#: the most memory the fold may add (negated copies of fed operands, ±1 factors): this share of
#: the buffers the plan writes, or ``SMALL`` bytes if more; more, and the plan is left as it was
BUDGET = 0.02

_SUM, _PRODUCT, _SIGMOID, _COPY = "sum", "product", "sigmoid", "copy"
_KIND = {np.add: _SUM, np.dot: _PRODUCT, sigmoid: _SIGMOID, np.copyto: _COPY,
         transposed_copy: _COPY}
#: the arguments each kind is called with (another count: an opaque call)
_ARITY = {_SUM: 3, _PRODUCT: 3, _SIGMOID: 2, _COPY: 2}


def _kind(fn, args):
    kind = _KIND.get(fn)
    return kind if kind is not None and len(args) == _ARITY[kind] else None


class _Opaque(Exception):
    """A layout or call the pass does not follow."""


class _Site:
    """One call: its kind, its operands (each an array: a whole strided iterator stands for all
    its rows), which of them are a loop's rows, and where it is (the instruction, or a loop and
    the body index)."""

    __slots__ = ("kind", "arrays", "rows", "where", "owners")

    def __init__(self, kind, arrays, rows, where) -> None:
        self.kind, self.arrays, self.rows, self.where = kind, arrays, rows, where
        self.owners = {id(_owner(a)) for a in arrays if isinstance(a, np.ndarray)}


def _columns(a: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """The column (index on the owner's last axis) of each element of view ``a``, as an array
    broadcastable to ``a.shape``."""
    if not owner.flags.c_contiguous or owner.ndim == 0:
        raise _Opaque
    w, size = owner.shape[-1], a.itemsize
    offset, rem = divmod(_address(a) - _address(owner), size)
    if rem or any(s % size or s < 0 for s in a.strides):
        raise _Opaque
    total = np.full((1,) * a.ndim, offset % w, dtype=np.int64)
    for k, (n, s) in enumerate(zip(a.shape, a.strides)):
        step = (s // size) % w
        if step and n > 1:
            shape = [1] * a.ndim
            shape[k] = n
            total = total + (np.arange(n) * step).reshape(shape)
    return total % w


def _iterator_array(kind, views, steps):
    """The rows of a loop iterator as one array with a leading step axis, or None."""
    if isinstance(views, np.ndarray):
        return views if kind != "ring" else None
    views = list(views)
    if kind == "ring" and len(views) != 1:
        return None
    if len(views) == 1:
        return views[0][None]
    # (lower makes such a list of a strided array's rows: its spacing is checked at four rows)
    first = views[0]
    step = _address(views[1]) - _address(first)
    owner = _owner(first)
    for k in (1, len(views) // 2, len(views) - 1):
        v = views[k]
        if v.shape != first.shape or v.strides != first.strides or _owner(v) is not owner or \
                _address(v) - _address(first) != k * step or step < 0:
            return None
    return np.ndarray((len(views),) + first.shape, first.dtype, buffer=owner,
                      offset=_address(first) - _address(owner), strides=(step,) + first.strides)


def _sites(code) -> list[_Site]:
    """Every call of the plan; an operand it cannot represent makes the site opaque."""
    out = []
    for unit in code:
        for i in unit:
            if isinstance(i, Loop):
                steps, iterators, body = i.args
                rows = [_iterator_array(kind, views, steps) for kind, views in iterators]
                for j, (fn, args) in enumerate(body):
                    arrays = [rows[a.k] if isinstance(a, It) else a for a in args]
                    whole = all(r is not None for a, r in zip(args, arrays) if isinstance(a, It))
                    kind = _kind(fn, args) if whole else None
                    if kind is None:      # (an opaque call: every view it is passed)
                        arrays = [v for a, r in zip(args, arrays) for v in
                                  (list(iterators[a.k][1]) if isinstance(a, It) and r is None
                                   else [r])]
                    out.append(_Site(kind, arrays, [isinstance(a, It) for a in args], (i, j)))
            else:
                out.append(_Site(_kind(i.fn, i.args), list(i.args), [False] * len(i.args), i))
    return out


class _Signs:
    """The negated columns of each buffer written by the plan (owner id → bool per column)."""

    def __init__(self, written: set) -> None:
        self.written, self.negated = written, {}
        self._columns: dict = {}              # id(view) → its columns (the views outlive this)

    def columns(self, a: np.ndarray, owner: np.ndarray) -> np.ndarray:
        cols = self._columns.get(id(a))
        if cols is None:
            cols = self._columns[id(a)] = _columns(a, owner)
        return cols

    def touches(self, s: _Site) -> bool:
        """Whether the site reads or writes a buffer with negated columns."""
        return not s.owners.isdisjoint(self.negated)

    def pattern(self, a) -> np.ndarray:
        """Whether each element of ``a`` holds a negated value (broadcastable to its shape)."""
        if not isinstance(a, np.ndarray):
            return np.zeros((), bool)
        owner = _owner(a)
        neg = self.negated.get(id(owner))
        if neg is None:
            return np.zeros((1,) * a.ndim, bool)
        return neg[self.columns(a, owner)]

    def leaf(self, a) -> bool:
        return not isinstance(a, np.ndarray) or id(_owner(a)) not in self.written

    def require(self, a, where: np.ndarray) -> bool:
        """Negate the columns of ``a`` where ``where`` (broadcast to ``a``); True if it grew."""
        owner = _owner(a)
        where = np.broadcast_to(where, a.shape)
        cols, where = np.broadcast_arrays(_compact(np.broadcast_to(self.columns(a, owner),
                                                                   a.shape)), _compact(where))
        cols = cols[where]
        if cols.size == 0:
            return False
        neg = self.negated.setdefault(id(owner), np.zeros(owner.shape[-1], bool))
        grew = not neg[cols].all()
        neg[cols] = True
        return grew


def _compact(x: np.ndarray) -> np.ndarray:
    """``x`` with its broadcast axes (stride 0) cut to length one: the same values, few."""
    return x[tuple(slice(0, 1) if st == 0 else slice(None) for st in x.strides)]


def _product(s: _Site):
    """A product's operand whose signs its output carries, and the maps between their patterns:
    ``h · M`` (M a matrix) — a column of the output is negated where that column of ``M`` is;
    ``M · v`` (v a vector) — an element where that row of ``M`` is. None for other products."""
    a, m, out = s.arrays
    if getattr(m, "ndim", 0) == 2 and out.ndim and out.shape[-1] == m.shape[-1]:
        return 1, (lambda need: need.reshape(-1, need.shape[-1]).any(axis=0)[None]), \
            (lambda pat: np.broadcast_to(pat, m.shape).any(axis=0))
    if getattr(m, "ndim", 0) == 1 and getattr(a, "ndim", 0) == 2 and out.ndim == 1:
        return 0, (lambda need: need[:, None]), \
            (lambda pat: np.broadcast_to(pat, a.shape).any(axis=1))
    return None


def _need(s: _Site, signs: "_Signs") -> np.ndarray | None:
    """The elements of the site's output that must hold negated values, from its operands."""
    pats = [signs.pattern(a) for a in s.arrays]
    if s.kind not in (_SUM, _PRODUCT) or not any(p.any() for p in pats):
        return None
    return _carried(s, pats)


def _carried(s: _Site, pats: list) -> np.ndarray | None:
    out = s.arrays[-1]
    if s.kind == _SUM:
        return np.broadcast_to(pats[0] | pats[1] | pats[2], out.shape)
    if s.kind == _PRODUCT:
        how = _product(s)
        if how is None:
            return None
        k, _, to_out = how
        need = _compact(np.broadcast_to(pats[2], out.shape))
        if out.ndim:
            need = need | _compact(np.broadcast_to(to_out(pats[k]), out.shape))
        return np.broadcast_to(need, out.shape)
    return None


def fold(code, outputs: list, fed: list, pinned: set, chunks: list) -> int:
    """Store the columns σ reads negated where the producers allow it (module docstring):
    ``outputs`` the program's output arrays, ``fed`` the buffers fed values are written into
    (nothing in the plan writes them), ``pinned`` (ids) the buffers memory sharing leaves
    alone — the ±1 factors join them —, ``chunks`` each unit's chunk of steps (strip.py): the
    negated copies of fed operands are made in a unit of their own, ranked before them all.
    Returns the number of σ calls made three-call."""
    try:
        sites = _sites(code)
        fed_ids = {id(_owner(a)) for a in fed}
        written = {id(_owner(a)) for s in sites for a in _writes(s)} - fed_ids
        signs = _Signs(written)
        for s in sites:
            if s.kind == _SIGMOID and not signs.leaf(s.arrays[0]):
                signs.require(s.arrays[0], np.ones((), bool))
        if not signs.negated:
            return 0
        grew = True
        while grew:
            grew = False
            for s in sites:
                if not signs.touches(s):
                    continue
                need = _need(s, signs)
                if need is None or not need.any():
                    continue
                if s.kind == _SUM:
                    for a in s.arrays:
                        if not signs.leaf(a):
                            grew |= signs.require(a, _reduced(need, a))
                else:
                    k, to_operand, _ = _product(s)
                    grew |= signs.require(s.arrays[2], need)
                    if not signs.leaf(s.arrays[k]):
                        grew |= signs.require(s.arrays[k], to_operand(need))
        held = {id(o): o.nbytes for s in sites for a in _writes(s) for o in [_owner(a)]
                if id(o) in written}
        return _rewrite(code, sites, signs, outputs, pinned, chunks,
                        max(BUDGET * sum(held.values()), SMALL))
    except (_Opaque, ValueError):             # (ValueError: shapes that do not broadcast)
        return 0


def _writes(s: _Site) -> list:
    if s.kind is None:            # an opaque call: as if it wrote every array it is passed
        return [a for a in s.arrays if isinstance(a, np.ndarray)]
    return [s.arrays[{_SUM: 2, _PRODUCT: 2, _SIGMOID: 1, _COPY: 0}[s.kind]]]


def _reduced(need: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``need`` (an output's shape) over operand ``a``'s shape, which broadcasts to it: the
    same along broadcast axes, or the pass cannot negate ``a``."""
    lead = need.ndim - a.ndim
    r = need.reshape(need.shape) if lead == 0 else need
    if lead:
        if not (r == r[(0,) * lead]).all():
            raise _Opaque
        r = r[(0,) * lead]
    for k, n in enumerate(a.shape):
        if n == 1 and r.shape[k] != 1:
            if not (r == r.take([0], axis=k)).all():
                raise _Opaque
            r = r.take([0], axis=k)
    return r


def _check(s: _Site, signs: _Signs):
    """The site's new form once the signs are settled: None for unchanged, else ``(function or
    None, {operand index: the ±1 factors of a negated copy of that fed operand})`` — or, for a
    copy of a fed value and a product of one outside a loop, ``{"after": (its output, the
    factors to multiply it by after the call)}``."""
    pats = [signs.pattern(a) for a in s.arrays]
    if not any(p.any() for p in pats):
        return None
    factors = {}

    def leaf_copy(k: int, want: np.ndarray) -> None:
        a = s.arrays[k]
        if want.any():
            if s.rows[k] or not isinstance(a, np.ndarray):
                raise _Opaque                 # (a loop's rows, a Python scalar: no copy made)
            factors[k] = _factors(want, a.dtype)

    def agrees(k: int, want: np.ndarray) -> None:
        if not (np.broadcast_to(pats[k], s.arrays[k].shape) == want).all():
            raise _Opaque

    if s.kind == _SIGMOID:
        if pats[1].any() or not np.broadcast_to(pats[0], s.arrays[0].shape).all():
            raise _Opaque
        return sigmoid_of_negated, factors
    if s.kind == _SUM:
        need = np.broadcast_to(pats[2], s.arrays[2].shape)
        for k in (0, 1):
            a = s.arrays[k]
            want = _reduced(need, a) if isinstance(a, np.ndarray) else need
            if signs.leaf(a):
                leaf_copy(k, want)
            else:
                agrees(k, np.broadcast_to(want, a.shape))
        return None, factors
    if s.kind == _PRODUCT and _product(s) is not None:
        k, to_operand, to_out = _product(s)
        out = s.arrays[2]
        need = np.broadcast_to(pats[2], out.shape)
        want = np.broadcast_to(to_operand(need), s.arrays[k].shape)
        if not (np.broadcast_to(to_out(want), out.shape) == need).all():
            raise _Opaque                     # (a product's negated output not column-wise)
        if pats[1 - k].any():
            raise _Opaque
        if signs.leaf(s.arrays[k]) and not isinstance(s.where, tuple) and want.any():
            # (outside a loop: the output negated after the call, one pass, no copy of M)
            return None, {"after": (out, _factors(need, out.dtype))}
        if signs.leaf(s.arrays[k]):
            leaf_copy(k, want)
        else:
            agrees(k, want)
        return None, factors
    if s.kind == _COPY and not isinstance(s.where, tuple):   # of a fed value: negated after
        dst, src = s.arrays
        if not signs.leaf(src) or pats[1].any():
            raise _Opaque
        return None, {"after": (dst, _factors(np.broadcast_to(pats[0], dst.shape), dst.dtype))}
    raise _Opaque                              # an opaque call touching a negated column


def _factors(want: np.ndarray, dtype) -> np.ndarray:
    """The ±1 factors (−1 where ``want``) as the smallest array broadcasting to its shape:
    a row of columns, not a matrix of them."""
    f = np.where(_compact(want), -1, 1)
    lead = next((k for k, n in enumerate(f.shape) if n != 1), f.ndim)
    return f.reshape(f.shape[lead:]).astype(dtype)    # (a buffer of its own: pinned)


def _rewrite(code, sites, signs: _Signs, outputs, pinned: set, chunks: list,
             budget: float) -> int:
    for o in outputs:
        if signs.pattern(o).any():
            raise _Opaque
    plans = [(s, how) for s in sites if signs.touches(s) for how in [_check(s, signs)] if how]
    factors: dict = {}                        # the ±1 arrays, one of each content

    def unique(f: np.ndarray) -> np.ndarray:
        return factors.setdefault((f.dtype.str, f.shape, f.tobytes()), f)

    plans = [(s, fn, {k: (f[0], unique(f[1])) if k == "after" else unique(f)
                      for k, f in copies.items()}) for s, (fn, copies) in plans]
    leaves = {(id(s.arrays[k]), id(f)): s.arrays[k].nbytes
              for s, _, copies in plans for k, f in copies.items() if k != "after"}
    if sum(leaves.values()) + sum(f.nbytes for f in factors.values()) > budget:
        raise _Opaque                         # (more held memory than the fold may add)
    negated: dict = {}                        # (fed array, factors) → its negated copy
    prologue: list = []                       # the calls making them: a unit run first
    after: dict = {}                          # instruction → calls to insert after it
    changed = 0
    for s, fn, copies in plans:
        i, j = s.where if isinstance(s.where, tuple) else (s.where, None)
        if "after" in copies:
            dst, sign = copies.pop("after")
            after.setdefault(id(i), []).append(Instr(np.multiply, (dst, sign, dst)))
        args = list(i.args) if j is None else list(i.args[2][j][1])
        for k, sign in copies.items():
            leaf = args[k]
            key = (id(leaf), id(sign))
            neg = negated.get(key)
            if neg is None:
                neg = negated[key] = np.empty_like(leaf)
                prologue.append(Instr(np.multiply, (leaf, sign, neg)))
            args[k] = neg
        if j is None:
            i.fn = fn or i.fn
            i.args = tuple(args)
        else:
            steps, iterators, body = i.args
            body = list(body)
            body[j] = (fn or body[j][0], tuple(args))
            i.args = (steps, iterators, tuple(body))
        changed += fn is not None
    # (pinned too, the copies: held apart, as the fed values are, they move no schedule)
    pinned.update(id(a) for a in list(factors.values()) + list(negated.values()))
    for unit in code:
        if any(id(i) in after for i in unit):
            unit[:] = [x for i in unit for x in [i] + after.get(id(i), [])]
    if prologue:
        code.insert(0, prologue)
        chunks.insert(0, min(chunks, default=0) - 1)
    return changed
