"""Flat: a compiled graph, for one pattern of batched feeds, as *values* — in one pass over its
nodes, keeping nothing per node but one machine integer while the pass runs.

Every node is one of

* an **alias** of another node's value: a dummy copy ``W(t)``, a name, an op that is the identity
  for these batch flags (``stop_gradient``, ``sum_like`` of a same-shaped gradient), ``x · 1``,
  ``x + 0``;
* a **single**: a leaf (fed, or a constant), or a node whose inputs are all singles — computed
  once however many copies the graph holds (``Wᵀ`` of every ``W(t)`` is one value), and folded
  when planning if its inputs are constants;
* a **member** of a **class**: the copies of one computation, one per *index* (see group.py).
  The copies are the nodes with the same *kid* — forward: the same folded ``source``; gradient:
  the same kid of their ``adjoint``; others ``("D",)`` — and the same op, shape, dtype and
  attributes, told apart by their *rank* (the r-th such node at an index, in creation order) and
  their batchedness. A node's index is its step, or, untagged, the largest index of its inputs
  — but a node of the gradient of an untagged member (a masked update's ``where``) has that
  member's index, as grad gives the others their adjoint's step. (By its inputs, ∇h(t−2)'s sum
  of a delay-2 read at t and the where at t−1 would land at t, a step after the backward loop
  computes it: a loop read both ways.)

Each member is described by where its inputs are, relative to it: the member of a class ``d``
steps away, a single, or an input whose value is never read. The members of a class with the
same description form a *variant*; group.py takes the largest as the class's regular members.

The pass visits the nodes in creation order (a topological order) from a list indexed by serial
number; per node it keeps one 64-bit code (``packed``): ``-(v + 1)`` for single ``v``, and
``(c << 32) + MID + t`` for the member of class ``c`` at index ``t``. An input's code minus the
member's index is that input's entry in the member's description — a class and a distance in one
integer. Decisions (alias, single or member, the batch flag) are made once per kid and
description, not per node.
"""
from __future__ import annotations

from array import array
from types import CodeType, FunctionType
from typing import Any, Sequence

import numpy as np

from ..graph import MANY, _NO_ATTRS, Meta, Node, Op, Tagged
from ..ops.base import ALIAS, CONSTANT, is_placeholder
from ..ops.elementwise import ADD, DIV, MUL, SUB

MID = 1 << 31
#: the entries of inputs whose value is never read (``Op.meta_inputs``): whether the input is a
#: class member, and whether it is batched
META = {(False, False): -(1 << 62), (False, True): -(1 << 62) + 1,
        (True, False): -(1 << 62) + 2, (True, True): -(1 << 62) + 3}
_META = {v: k for k, v in META.items()}
_ALIAS, _SINGLE, _MEMBER = 0, 1, 2


def entry(e: int) -> tuple:
    """A description entry decoded: ``("c", class, distance)``, ``("n", single)`` or
    ``("m", from a class, batched)``."""
    if e <= -(1 << 62) + 3:
        return ("m",) + _META[e]
    if e < 0:
        return ("n", -e - 1)
    return ("c", e >> 32, (e & 0xFFFFFFFF) - MID)


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


def attrs_signature(attrs) -> tuple:
    """Attributes as a hashable value: equal for attributes that compute the same."""
    if not attrs:
        return ()
    return tuple((k, _freeze(v)) for k, v in sorted(attrs.items()))


class Single:
    """A value computed once (or fed, or known when planning)."""

    __slots__ = ("id", "node", "batched", "desc", "fed", "value", "first")

    def __init__(self, vid: int, node: Node, batched: bool, desc: tuple = (), fed: bool = False,
                 value: Any = None) -> None:
        self.id, self.node, self.batched, self.desc = vid, node, batched, desc
        self.fed, self.value = fed, value
        self.first = node.serial

    @property
    def known(self) -> bool:
        return self.value is not None

    @property
    def computed(self) -> bool:
        return not self.fed and self.value is None

    def __repr__(self) -> str:
        return f"<Single {self.id}: {self.node.label}>"


class Class:
    """The copies of one computation (its members), stored in one slab; see group.py."""

    __slots__ = ("id", "kid", "rank", "batched", "rep", "fed", "variants", "reps", "desc",
                 "runs", "peeled", "lo", "hi", "count", "first", "reduction", "absorbed", "ring",
                 "parts", "part")

    def __init__(self, cid: int, kid, rank: int, batched: bool, rep: Node, fed: bool) -> None:
        self.id, self.kid, self.rank, self.batched, self.rep = cid, kid, rank, batched, rep
        self.fed = fed
        #: description → offsets of the members it describes (during the pass)
        self.variants: dict[tuple, array] = {}
        self.reps: dict[tuple, Node] = {}    # a node of each variant
        self.desc: tuple = ()            # the regular members' description (decoded)
        self.runs: list[tuple[int, int]] = []    # regular members: runs of consecutive indices
        self.peeled: list = []           # the others: (index, node, description)
        self.lo = self.hi = 0
        self.count = 0
        self.first = 0                   # the smallest serial number of a regular member
        self.reduction = None
        self.absorbed = False
        self.ring: int | None = None     # rows kept (a ring buffer), if fewer than all
        self.parts: list = []            # its members by description (group.Part)
        self.part = None                 # the regular ones

    @property
    def rows(self) -> int:
        return self.hi - self.lo + 1

    @property
    def regular(self) -> int:
        return sum(b - a + 1 for a, b in self.runs)

    def __repr__(self) -> str:
        return (f"<Class {self.id} {self.rep.op.name}: runs {self.runs}, "
                f"{len(self.peeled)} peeled, rows {self.lo}…{self.hi}>")


class _Kid:
    """The copies of one computation while the pass runs: per index, how many were seen (the
    next one's rank); per description, the decision."""

    __slots__ = ("memo", "count", "classes", "overflow", "shape", "dtype", "meta")

    def __init__(self, node: Node | None = None) -> None:
        if node is not None:
            self.shape, self.dtype, self.meta = node.shape, node.dtype, node._meta
        self.memo: dict[tuple, tuple] = {}
        self.count = bytearray(64)
        self.classes: dict[tuple[int, bool], Class] = {}
        self.overflow: dict[int, int] = {}

    def rank(self, t: int) -> int:
        """The rank of the next copy at index ``t`` (and count it)."""
        count = self.count
        if 0 <= t < len(count):
            r = count[t]
            if r < 255:
                count[t] = r + 1
                return r
        elif t >= 0:
            count.extend(bytes(max(t + 1, 2 * len(count)) - len(count)))
            count[t] = 1
            return 0
        r = self.overflow.get(t, 0)
        self.overflow[t] = r + 1
        return r + (255 if t >= 0 else 0)


class Flat:
    """The values of a program for one pattern of batched feeds (see the module docstring)."""

    def __init__(self, order: Sequence[Node | None], top: int, far: dict[Node, int],
                 outputs: Sequence[Node], fed: dict[Node, bool],
                 fed_sequences: dict[Node, bool], batch: int | None) -> None:
        self.batch = batch
        self.values: list[Single | Class] = []
        self.batched: list[bool] = []          # by value id
        self._kids: dict[tuple, _Kid] = {}          # (role, op) → the last kid alike
        self._full: dict[tuple, _Kid] = {}          # (role, op, shape, dtype, attrs) → kid
        self._roles: dict[tuple, int] = {}
        self._source_roles: dict[tuple, int] = {}
        self._attrs: dict[int, tuple[Any, int]] = {}
        self._sigs: dict[tuple, int] = {}
        #: a sequence's steps by their shared Meta: (kid, class of rank 0, its members)
        self._steps: dict = {}
        self._fed, self._fed_sequences = fed, fed_sequences
        packed = self._scan(order, top, far)
        #: each output as ("n", single) or ("r", class, index)
        self.outputs = [_where(packed[self._place(o)]) for o in outputs]
        self.classes = [v for v in self.values if isinstance(v, Class)]
        self.singles = [v for v in self.values if isinstance(v, Single)]
        self._finish(packed)
        for c in self.classes:
            c.kid = None                   # (the kids refer back to their classes)
        del self._kids, self._full, self._roles, self._source_roles, self._attrs, self._sigs
        del self._steps, self._far

    # --- the pass --------------------------------------------------------------------------------

    def _place(self, node: Node) -> int:
        """Where ``node``'s code is in ``packed`` (−1: not in the graph)."""
        i = (node._key >> 1) - self.low
        return self._far.get(node, -1) if i < len(self._far) else i

    def _scan(self, order: list, top: int, far: dict[Node, int]) -> array:
        """The pass: ``order`` (a walk's list, indexed by ``top − serial``, then the nodes set
        apart beyond a gap at their places ``far``) is consumed from its end — creation order —
        while ``packed`` (indexed by ``serial − low``; the far nodes first, by ``self._far``)
        grows. Written for speed: it runs once per node."""
        low = self.low = top - len(order) + 1
        last = len(order) - 1
        self._far = places = {node: last - k for node, k in far.items()}
        nfar = len(places)          # (an input i with ``serial − low < nfar`` is far)
        packed = array("q")
        append, pop = packed.append, order.pop
        kids = self._kids
        batched = self.batched
        role_of, source_roles = self._role, self._source_roles
        copy_kids: dict = {}
        last_adjoint = last_role = None
        stamps = _Stamps(self, packed, low, order)
        watch, note = stamps.watch, stamps.note
        run, next_at, recording = None, -1, False
        k = -1
        stamped = 0
        while order:
            if k + 1 == next_at and len(order) >= stamps.span:      # a period as recorded
                m = run(k + 1)
                k += m
                stamped += m
                if m == stamps.span:
                    next_at += stamps.period
                    continue
                run, next_at = stamps.missed()
                if not order:
                    break
            node = pop()
            k += 1
            if node is None:
                append(0)
                if recording:
                    recording = note(_NONE)
                    if not recording:
                        run, next_at = stamps.run, stamps.next_at
                continue
            b = node._b
            ins = (node._a,) if b is None else node._a if b is MANY else (node._a, b)
            if not ins:
                step = self._steps.get(node._meta)       # a step of a sequence seen before
                if step is not None:
                    t = node._at
                    kid, cid, members = step
                    if t.__class__ is int and 0 <= t < len(kid.count) and kid.count[t] == 0:
                        kid.count[t] = 1                 # (its rank 0, as kid.rank counts)
                        members.append(k)
                        append((cid << 32) + MID + t)
                        if recording:
                            recording = note((_STEP, node._meta, kid.count, members,
                                                 (cid << 32) + MID))
                            if not recording:
                                run, next_at = stamps.run, stamps.next_at
                        continue
                append(self._leaf(node, k))
                if recording:
                    recording = note(False)
                    if not recording:
                        run, next_at = stamps.run, stamps.next_at
                continue
            op = node.op
            if op is ALIAS:
                i = (ins[0]._key >> 1) - low
                append(packed[i if i >= nfar else places[ins[0]]])
                if recording:
                    recording = note(_ALIAS_ENTRY if b is None else False)
                    if not recording:
                        run, next_at = stamps.run, stamps.next_at
                continue
            if not recording and run is None:
                recording = watch(node, k)
            adj = node._at                     # (node.adjoint and node.step, inlined)
            if adj.__class__ is Node:
                t = adj._at
                if t is not None and t.__class__ is not int:
                    t = adj.step
            elif adj.__class__ is Tagged:
                t, adj = adj.step, adj.adjoint
            else:
                t, adj = adj, None
            if t is not None and len(ins) == 2:              # (the common case, unrolled)
                x, y = ins
                i, j = (x._key >> 1) - low, (y._key >> 1) - low
                if i < nfar or j < nfar:
                    i, j = (i if i >= nfar else places[x]), (j if j >= nfar else places[y])
                px, py = packed[i], packed[j]
                codes = (px, py)
                desc = (px - t if px >= 0 else px, py - t if py >= 0 else py)
            elif t is not None and len(ins) == 1:
                i = (ins[0]._key >> 1) - low
                px = packed[i if i >= nfar else places[ins[0]]]
                codes = (px,)
                desc = (px - t if px >= 0 else px,)
            elif t is not None and len(ins) == 3:
                x, y, z = ins
                i, j, m = (x._key >> 1) - low, (y._key >> 1) - low, (z._key >> 1) - low
                if i < nfar or j < nfar or m < nfar:
                    i, j, m = (i if i >= nfar else places[x]), (j if j >= nfar else places[y]), \
                        (m if m >= nfar else places[z])
                px, py, pz = packed[i], packed[j], packed[m]
                codes = (px, py, pz)
                desc = (px - t if px >= 0 else px, py - t if py >= 0 else py,
                        pz - t if pz >= 0 else pz)
            else:
                codes = [packed[self._place(i)] for i in ins]
                a = adj
                if t is None and a is not None and 0 <= self._place(a) < len(packed):
                    p = packed[self._place(a)]
                    if p > 0:                   # of an untagged member's gradient: its index
                        t = (p & 0xFFFFFFFF) - MID
                if t is None:
                    for i, p in zip(ins, codes):
                        u = i.step
                        if u is None and p >= 0:
                            u = (p & 0xFFFFFFFF) - MID
                        if u is not None and (t is None or u > t):
                            t = u
                if t is None:
                    desc = tuple(codes)
                else:
                    desc = tuple([p - t if p >= 0 else p for p in codes])
            if op.meta_inputs:
                meta = op.meta_inputs
                desc = tuple([META[p >= 0, batched[_vid(p)]] if j in meta else e
                              for j, (p, e) in enumerate(zip(codes, desc))])
            # the kid: which copies this node is one of
            a = adj
            mine = node._meta
            if a is None and t is not None and mine.source is not None:
                found = copy_kids.get(mine)     # (a copy: its Meta, shared by its kid)
                if found is not None and found[1] is op and found[2] is node.shape:
                    kid = found[0]
                else:
                    kid = self._kid(mine.source, node)
                    copy_kids[mine] = (kid, op, node.shape)
            else:
                if a is not None:
                    if a is not last_adjoint:
                        last_adjoint = a
                        m = a._meta             # (a copy's role: _role's cache, inlined)
                        found = source_roles.get(m)
                        if found is not None and found[1] is a.op and found[2] is a.shape and \
                                a._at.__class__ is int:     # (a copy: a step, no adjoint)
                            last_role = found[0]
                        else:
                            last_role = role_of(a)
                    role = last_role
                else:
                    role = None
                kid = kids.get((role, op))
                if kid is None or kid.shape is not node.shape or kid.meta is not mine:
                    kid = self._kid(role, node)
            d = kid.memo.get(desc)
            if d is None:
                d = kid.memo[desc] = self._decide(node, kid, desc, codes)
            what = d[0]
            if what == _MEMBER:
                count = kid.count
                if 0 <= t < len(count) and not count[t]:      # (rank 0, the common case)
                    count[t] = 1
                    d[2].append(k)
                    append(d[4] + t)
                else:
                    append(self._member(kid, d, node, desc, k, t))
            elif what == _ALIAS:
                append(codes[d[1]])
            else:
                append(-d[1] - 1)
            if recording:
                recording = note(_entry(node, ins, codes, desc, kid, d))
                if not recording:
                    run, next_at = stamps.run, stamps.next_at
        #: how many positions were decided by stamps (the rest in full)
        self.stamped = stamped
        return packed

    def _member(self, kid: _Kid, d: tuple, node: Node, desc: tuple, k: int, t: int) -> int:
        """The code of the member at ``k`` of index ``t``, its rank counted (decision ``d``:
        rank 0 joins its variant; another rank its class and variant, found or made)."""
        r = kid.rank(t)
        if r == 0:
            d[2].append(k)
            return d[4] + t
        cls = self._class(kid, r, d[3], node)
        self._variant(cls, desc, node).append(k)
        return (cls.id << 32) + MID + t

    def _kid(self, role, node: Node) -> _Kid:
        """The kid of ``node`` (role, op, shape, dtype, attributes), kept also under ``(role,
        op)`` for the next node alike."""
        attrs = node.attrs
        key = (role, node.op, node.shape, node.dtype,
               0 if attrs is _NO_ATTRS else self._attrs_id(attrs))
        kid = self._full.get(key)
        if kid is None:
            kid = self._full[key] = _Kid(node)
        self._kids[(role, node.op)] = kid
        return kid

    def _variant(self, cls: Class, desc: tuple, node: Node) -> array:
        """The members of ``cls`` described by ``desc`` (their ``serial − low``); the first
        node seen stands for them all (same op, attributes, shapes and inputs' places)."""
        members = cls.variants.get(desc)
        if members is None:
            members = cls.variants[desc] = array("i")
            cls.reps[desc] = node
        return members

    def _leaf(self, node: Node, k: int) -> int:
        if is_placeholder(node):
            if node.step is not None and node.source is not None:      # a step of a sequence
                key = ("I", node.source)
                kid = self._kids.get(key)
                if kid is None:
                    kid = self._kids[key] = _Kid()
                t = node.step
                rank = kid.rank(t)
                cls = self._class(kid, rank, self._fed_sequences[node.source], node, fed=True)
                members = self._variant(cls, (), node)
                members.append(k)
                if rank == 0:
                    self._steps[node._meta] = (kid, cls.id, members)
                return (cls.id << 32) + MID + t
            v = self._single(node, self._fed[node], fed=True)
        elif node.op is CONSTANT:
            v = self._single(node, False, value=np.asarray(node.attrs["value"]))
        else:
            v = self._single(node, False)
        return -v.id - 1

    def _single(self, node, batched, desc=(), fed=False, value=None) -> Single:
        v = Single(len(self.values), node, batched, desc, fed, value)
        self.values.append(v)
        self.batched.append(bool(batched))
        return v

    def _class(self, kid: _Kid, rank: int, batched: bool, node: Node, fed: bool = False):
        cls = kid.classes.get((rank, batched))
        if cls is None:
            cls = kid.classes[(rank, batched)] = Class(len(self.values), kid, rank, batched,
                                                       node, fed)
            self.values.append(cls)
            self.batched.append(bool(batched))
        return cls

    def _attrs_id(self, attrs) -> int:
        found = self._attrs.get(id(attrs))
        if found is None:
            sig = attrs_signature(attrs)
            found = self._attrs[id(attrs)] = (attrs, self._sigs.setdefault(sig, len(self._sigs)
                                                                            + 1))
        return found[1]

    def _role(self, a: Node) -> int:
        """The role of the nodes built while differentiating ``a``: a small number standing
        for what identifies the copies of ``a`` (its role, op, shape, dtype, attributes)."""
        m = a._meta
        if a.adjoint is None and m.source is not None and a.step is not None:
            # (the copies of one folded node share their Meta: one role for them all)
            found = self._source_roles.get(m)
            if found is not None and found[1] is a.op and found[2] is a.shape and \
                    found[3] is a.dtype:
                return found[0]
            role = self._role_of(a)
            self._source_roles[m] = (role, a.op, a.shape, a.dtype)
            return role
        return self._role_of(a)

    def _role_of(self, a: Node) -> int:
        if a.adjoint is not None:
            role = ("G", self._role(a.adjoint))
        elif a.source is not None and a.step is not None:
            role = ("F", a.source)
        elif a.inputs:
            role = ("D",)
        else:
            role = ("X", a)                # a leaf
        attrs = a.attrs
        key = (role, a.op, a.shape, a.dtype, 0 if attrs is _NO_ATTRS else self._attrs_id(attrs))
        found = self._roles.get(key)
        if found is None:
            found = self._roles[key] = len(self._roles)
        return found

    def _decide(self, node: Node, kid: _Kid, desc: tuple, codes: list) -> tuple:
        """What the nodes of this kid with this description are: (_ALIAS, input), (_SINGLE,
        value id) or (_MEMBER, class of rank 0, its members with this description, batched)."""
        op = node.op
        flags = tuple([self.batched[_vid(p)] for p in codes])
        batched = op.out_batched(node, flags) if True in flags else False
        if type(op).is_identity is not Op.is_identity and op.is_identity(node, flags):
            return (_ALIAS, 0)
        if op in _NEUTRAL:
            j = self._neutral(node, codes, flags, batched)
            if j is not None:
                return (_ALIAS, j)
        meta = op.meta_inputs
        if all(p < 0 or j in meta for j, p in enumerate(codes)):
            # every input read is a single: one value for all these nodes
            v = self._single(node, batched, desc=tuple(_vid(p) for p in codes))
            v.value = self._fold(v)
            return (_SINGLE, v.id)
        cls = self._class(kid, 0, batched, node)
        return (_MEMBER, cls, self._variant(cls, desc, node), batched, (cls.id << 32) + MID)

    def _neutral(self, node: Node, codes, flags, batched) -> int | None:
        """The input whose value ``node`` is, when its other operand is a known neutral
        constant (``x · 1``, ``x + 0``, ``x − 0``, ``x / 1``) changing neither shape nor batch."""
        for keep, neutral in _NEUTRAL[node.op]:
            other = codes[1 - keep]
            if other >= 0:
                continue
            v = self.values[-other - 1]
            if v.value is None or flags[keep] != batched:
                continue
            if node.inputs[keep].shape != node.shape or v.value.ndim > node.ndim + flags[keep]:
                continue
            if np.all(v.value == neutral):
                return keep
        return None

    def _fold(self, v: Single):
        """The single's value when planning, if every input it reads is known (None
        otherwise, or if its op fails: the run then names the failure)."""
        node = v.node
        meta = node.op.meta_inputs
        values = []
        for j, x in enumerate(v.desc):
            if j in meta:
                values.append(None)
            elif self.values[x].value is None:
                return None
            else:
                values.append(self.values[x].value)
        flags = tuple(self.batched[x] for x in v.desc)
        try:
            if True in flags:
                out = node.op.batched(node, values, flags, self.batch)
            else:
                out = node.op.forward(node, *values)
        except Exception:
            return None
        return np.asarray(out)

    # --- after the pass --------------------------------------------------------------------------

    def _finish(self, packed: array) -> None:
        """Each class's variants as (description, indices, the first one's serial number, a
        node standing for them), descriptions decoded."""
        codes = np.frombuffer(packed, np.int64)
        for c in self.classes:
            out = []
            for desc, members in c.variants.items():
                if not len(members):
                    continue
                offsets = np.frombuffer(members, np.int32)
                index = ((codes[offsets] & 0xFFFFFFFF) - MID).astype(np.int32)
                out.append((tuple(entry(e) for e in desc), index,
                            self.low + int(offsets[0]), c.reps[desc]))
            c.variants = out
            c.reps = None
        self.classes = [c for c in self.classes if c.variants]


def _where(p: int) -> tuple:
    if p < 0:
        return ("n", -p - 1)
    return ("r", p >> 32, (p & 0xFFFFFFFF) - MID)


def _vid(p: int) -> int:
    return -p - 1 if p < 0 else p >> 32


# --- stamping: the pass over a graph that repeats itself ------------------------------------------
#
# An unfolded graph and its gradient repeat one step's nodes τ times, and the pass decides the
# same for each copy. So it records, for one period of nodes, what it found for each (its kid,
# description and decision) as straight-line code, and for the node one period later checks
# only what the decision reads — op, Meta, shape, the adjoint's op, Meta and shape (or, for an
# untagged node, how each input gives its index), and the description from the inputs' codes —
# and appends the same code at its index. A node that is not alike takes the ordinary path (and
# is recorded for the next period).

#: the longest period looked for (nodes of one step)
MAX_PERIOD = 4096
#: whether the pass stamps repeated nodes (False: every node decided in full)
STAMP = True
#: periods found (and recorded) in one pass at most: a graph that does not repeat stops there
MAX_TEMPLATES = 64
_NONE, _ALIAS_ENTRY, _STEP, _OP = "none", "alias", 2, 3
_STEP_OF, _INDEX_OF = "step", "index"       # how an untagged node's input gives its index


class Periods:
    """Finds the period of a pass over a graph that repeats itself, and records one period's
    template: two copies of one computation a step apart (steps ``t`` and ``t ± 1``), twice at
    the same distance in the pass, give the period; the next ``period`` entries are noted, and
    the replayable span of them (``stamped_span``) becomes the stamp ``run(k)`` (``compile``).
    Shared by this pass and grad's backward pass, which differ in what they watch and record."""

    __slots__ = ("period", "start", "template", "seen", "left", "names", "run", "next_at",
                 "span")

    def __init__(self, names: dict, stamp: bool) -> None:
        self.period = self.start = self.span = 0
        self.left = MAX_TEMPLATES if stamp else 0
        self.template: list = []
        self.seen: dict = {}
        self.run, self.next_at = None, -1
        #: what the stamps' generated code reads
        self.names = names

    def found(self, key, t: int, k: int) -> bool:
        """Whether the copy of ``key`` at step ``t``, position ``k`` of the pass, gives the
        period (the recording then starts at ``k``)."""
        seen = self.seen.get(key)
        if seen is None or abs(seen[1] - t) != 1:
            self.seen[key] = (k, t, 0)
            return False
        period = k - seen[0]
        self.seen[key] = (k, t, period)
        if period != seen[2] or not 0 < period <= MAX_PERIOD:
            return False                        # (a period is two equal distances)
        self.left -= 1
        self.period, self.start, self.template = period, k, []
        return True

    def note(self, entry) -> bool:
        """The next position's template entry while recording; False once the period is
        recorded (``run``, ``next_at`` and ``span`` are then set)."""
        self.template.append(entry)
        if len(self.template) < self.period:
            return True
        entries, p = self.template, self.period
        begin, span = stamped_span(entries, p)
        self.template = []
        if span < 2:
            self.run, self.next_at = None, -1
        else:
            self.span = span
            self.run = self.compile([entries[(begin + j) % p] for j in range(span)])
            self.next_at = self.start + p + begin
        return False

    def compile(self, entries: list):
        """The stamp ``run(k) -> m`` replaying ``entries``."""
        return _run(entries, self.names)

    def missed(self):
        """A period not alike the recorded one (a node taking the ordinary path): back to
        looking for a period."""
        self.seen = {}
        self.run, self.next_at = None, -1
        return None, -1


class _Stamps(Periods):
    """The stamps of this pass (see above): a tagged node is watched by its Meta, an adjoint by
    its primal's Meta and its op."""

    __slots__ = ()

    def __init__(self, flat: Flat, packed: array, low: int, order: list) -> None:
        super().__init__({"Node": Node, "MANY": MANY, "ALIAS": ALIAS, "packed": packed,
                          "append": packed.append, "pop": order.pop, "back": order.append,
                          "LOW": low, "NFAR": len(flat._far), "PLACES": flat._far,
                          "BATCHED": flat.batched, "META": META, "MID": MID,
                          "member": flat._member}, STAMP)

    def watch(self, node: Node, k: int) -> bool:
        """Whether ``node``, at ``k``, starts the recording of a period."""
        if not self.left:
            return False
        a = node._at
        if a.__class__ is int:
            return self.found(node._meta, a, k)
        if a.__class__ is Node and a._at.__class__ is int:
            return self.found((a._meta, node.op), a._at, k)
        return False


def _entry(node: Node, ins: tuple, codes, desc: tuple, kid: _Kid, d: tuple):
    """What the pass decided for ``node`` (its inputs' codes ``codes``), as a template entry
    (False if it is not one)."""
    a, n = node._at, len(ins)
    if not 1 <= n <= 3:
        return False
    if a is None:                       # untagged: its index is the largest of its inputs'
        return _untagged(node, ins, codes, desc, kid, d)
    if not (a.__class__ is int or a.__class__ is Node and a._at.__class__ is int and
            (a._b is not MANY or a._a)):
        return False                    # (a leaf's role is the leaf itself: not stamped)
    return (_OP, node, n, desc, kid, d, None)


def _untagged(node: Node, ins: tuple, codes, desc: tuple, kid: _Kid, d: tuple):
    """The entry of an untagged node (a running sum ``L(1) + … + L(t)``) — its index ``t``
    is the largest index of its inputs: a tagged input's step, an untagged member's index
    from its code (a single has none) — with how each input gave it (False if an input is
    of another kind, or none gave an index)."""
    how = []
    for i, p in zip(ins, codes):
        at = i._at
        if at.__class__ is int:
            how.append(_STEP_OF)
        elif at is None:
            how.append(_INDEX_OF if p >= 0 else None)
        else:
            return False
    if not any(how):
        return False
    return (_OP, node, len(ins), desc, kid, d, tuple(how))


def _run(entries: list, names: dict):
    """The function ``run(k) -> m`` of a period: it takes the nodes from the end of the order
    (positions ``k, k + 1, …``) while they are alike the entries, appends their codes, and
    returns how many it took (a node not alike is put back)."""
    const = Constants()
    code = ["def run(k):"]

    def place(x: str) -> str:
        """The code of node ``x`` in ``packed`` (without far nodes, every node of the graph
        lies at ``serial − low ≥ 0``)."""
        if not names["NFAR"]:
            return f"packed[({x}._key >> 1) - LOW]"
        return f"packed[(({x}._key >> 1) - LOW) if ({x}._key >> 1) - LOW >= NFAR else PLACES[{x}]]"

    for j, e in enumerate(entries):
        fail = f"        back(node)\n        return {j}"
        code.append("    node = pop()")
        if e is _NONE:
            code.append(f"    if node is not None:\n{fail}\n    append(0)")
            continue
        code.append(f"    if node is None:\n        back(node)\n        return {j}")
        if e is _ALIAS_ENTRY:
            code.append(f"    if node.op is not ALIAS or node._b is not None:\n{fail}\n"
                        f"    append({place('node._a')})")
            continue
        if e[0] == _STEP:
            _, meta, count, members, base = e
            code.append(f"    t = node._at\n    count = {const(count)}\n"
                        f"    if node._meta is not {const(meta)} or node._b is not MANY or "
                        f"node._a or t.__class__ is not int or not 0 <= t < len(count) or "
                        f"count[t]:\n{fail}\n"
                        f"    count[t] = 1\n    {const(members)}.append(k + {j})\n"
                        f"    append({base} + t)")
            continue
        _, node, n, desc, kid, d, how = e
        a = node._at
        code.append(f"    if node.op is not {const(node.op)} or node._meta is not "
                    f"{const(node._meta)}:\n{fail}")        # (a Meta holds the shape)
        if how is not None:
            code.append(f"    if node._at is not None:\n{fail}")
        elif a.__class__ is int:
            code.append(f"    t = node._at\n    if t.__class__ is not int:\n{fail}")
        else:
            code.append(f"    a = node._at\n"
                        f"    if a.__class__ is not Node or a._meta is not {const(a._meta)} or "
                        f"a.op is not {const(a.op)}:\n{fail}\n"
                        f"    t = a._at\n    if t.__class__ is not int:\n{fail}")
        if n == 1:
            code.append(f"    if node._b is not None:\n{fail}\n    x0 = node._a")
        elif n == 2:
            code.append(f"    x1 = node._b\n    if x1 is None or x1 is MANY:\n{fail}\n"
                        f"    x0 = node._a")
        else:
            code.append(f"    if node._b is not MANY or len(node._a) != 3:\n{fail}\n"
                        f"    x0, x1, x2 = node._a")
        meta = node.op.meta_inputs
        for i in range(n):
            code.append(f"    p{i} = {place(f'x{i}')}")
        if how is not None:
            code.append(_index_of(how, fail))
        for i in range(n):
            if i in meta:
                code.append(f"    if META[p{i} >= 0, BATCHED[-p{i} - 1 if p{i} < 0 else "
                            f"p{i} >> 32]] != {desc[i]}:\n{fail}")
            elif desc[i] >= 0:      # a member's: (a single's code minus t is negative too)
                code.append(f"    if p{i} - t != {desc[i]}:\n{fail}")
            else:                   # a single's: (a member's code is never negative)
                code.append(f"    if p{i} != {desc[i]}:\n{fail}")
        what = d[0]
        if what == _MEMBER:
            # (rank 0 — the first copy at index t — inline; any other through ``kid.rank``)
            count = const(kid.count)
            code.append(f"    if 0 <= t < len({count}) and not {count}[t]:\n"
                        f"        {count}[t] = 1\n        {const(d[2])}.append(k + {j})\n"
                        f"        append({d[4]} + t)\n"
                        f"    else:\n        append(member({const(kid)}, {const(d)}, node, "
                        f"{const(desc)}, k + {j}, t))")
        elif what == _ALIAS:
            code.append(f"    append(p{d[1]})")
        else:
            code.append(f"    append({-d[1] - 1})")
    code.append(f"    return {len(entries)}\n")
    return generated(code, names, const)


def _index_of(how: tuple, fail: str) -> str:
    """The code giving ``t``, an untagged node's index, from its inputs ``x0, x1, …`` and
    their codes ``p0, p1, …`` as the recorded node's inputs gave it (``_untagged``)."""
    code = []
    for i, h in enumerate(how):
        if h is _STEP_OF:
            code.append(f"    u{i} = x{i}._at\n    if u{i}.__class__ is not int:\n{fail}")
        else:                       # (an untagged single's code is negative, a member's not)
            code.append(f"    if x{i}._at is not None or p{i} {'<' if h else '>='} 0:\n{fail}")
            if h:
                code.append(f"    u{i} = (p{i} & 0xFFFFFFFF) - MID")
    us = [f"u{i}" for i, h in enumerate(how) if h]
    code.append(f"    t = {us[0]}")
    code += [f"    if {u} > t:\n        t = {u}" for u in us[1:]]
    return "\n".join(code)


_COMPILED: dict[str, Any] = {}


def stamped_span(entries: list, period: int) -> tuple[int, int]:
    """``(begin, span)``: the run of a recorded period's ``entries`` (read cyclically) that a
    stamp replays — no False in it, a position the ordinary path must take — starting after
    the first False (``Periods.note``)."""
    first = next((j for j, e in enumerate(entries) if e is False), None)
    begin = 0 if first is None else (first + 1) % period
    span = 0
    while span < period and entries[(begin + span) % period] is not False:
        span += 1
    return begin, span


class Constants(dict):
    """The values a generated function reads by the names ``K0, K1, …`` its text uses:
    ``name = const(value)``."""

    def __call__(self, value: Any) -> str:
        name = f"K{len(self)}"
        self[name] = value
        return name


def generated(code: list[str], names: dict, const: Constants):
    """The one function the lines ``code`` define, reading ``names`` and ``const``'s values."""
    return FunctionType(compiled("\n".join(code)), {**names, **const})


def compiled(code: str):
    """The code object of the one function ``code`` defines (compiled once per text: entries
    alike differ only in the constants they read)."""
    found = _COMPILED.get(code)
    if found is None:
        if len(_COMPILED) > 4096:
            _COMPILED.clear()
        module = compile(code, "<unfold stamp>", "exec")
        found = _COMPILED[code] = next(c for c in module.co_consts if isinstance(c, CodeType))
    return found


#: (kept operand, neutral value of the other) for ops with a neutral element
_NEUTRAL = {MUL: ((0, 1.0), (1, 1.0)), ADD: ((0, 0.0), (1, 0.0)), SUB: ((0, 0.0),),
            DIV: ((0, 1.0),)}
