"""The IR: an immutable ``Node`` made by applying an ``Op`` to other nodes.

A node records *what* is computed (its op, inputs and static attributes), the per-example shape
and dtype that the op's shape rule inferred when the node was built, an optional user-facing name,
and — for nodes of an unfolded recurrence — its time step and the folded node it was copied from.
Nodes of a gradient graph record the forward node whose derivative they compute (``adjoint``).

Shapes are per example, as the book writes them: ``W @ h`` is "W times h". A batch is a property
of an evaluation, not of the graph: an ``input`` may be fed with one extra leading axis, and every
op then runs on the whole batch with its per-example meaning (see ``Op.batched``).
"""
from __future__ import annotations

import contextlib
import gc
import heapq
from itertools import repeat
import math
import operator
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import UnfoldAttributeError, UnfoldNotImplementedError, UnfoldTypeError, describe

Shape = tuple[int, ...]

_NO_ATTRS: Mapping[str, Any] = MappingProxyType({})
_adjoint_of: list = [None]
_needed: list = [None]         # while grad builds: the nodes it wants gradients for
_BOOLS = (False, True)


class Op:
    """One primitive: its shape rule, its numpy forward and its vector-Jacobian product.

    Subclasses define
      * ``infer(inputs, attrs) -> (shape, dtype)`` — the shape rule, raising a library error;
      * ``forward(node, *values)`` — numpy on per-example (unbatched) values;
      * ``batched(node, values, flags, batch)`` — the same on values whose leading axis is the
        batch where ``flags[i]`` is true (called only when some flag is);
      * ``vjp(node, g) -> tuple`` — one gradient node (or ``None``) per input, written with ops,
        so that gradients are themselves graphs.
    """

    name: str = "op"
    #: whether any input can carry a gradient; integer and boolean ops say False.
    differentiable: bool = True
    #: indices of inputs whose *value* the op never reads (only their shape and batch flag).
    meta_inputs: tuple[int, ...] = ()
    #: true for ops whose result is never batched (a sum over the batch).
    unbatches: bool = False
    #: the input whose batchedness the result has (``sum_like(g, x)``: x's); None: any input's.
    batch_like: int | None = None

    def infer(self, inputs: Sequence["Node"], attrs: Mapping[str, Any]) -> tuple[Shape, np.dtype]:
        raise UnfoldNotImplementedError(f"op {self.name} has no shape rule (define infer)")

    def forward(self, node: "Node", *values: np.ndarray) -> np.ndarray:
        raise UnfoldNotImplementedError(f"op {self.name} has no forward (define forward)")

    def batched(self, node: "Node", values, flags, batch: int):
        raise UnfoldNotImplementedError(f"op {self.name} has no batching rule (define batched "
                                        f"to evaluate {describe(node)} on a batch)")

    def out_batched(self, node: "Node", flags) -> bool:
        """Whether the output carries the batch axis, given the inputs' batch flags (the same
        rule, on the ``may_batch`` flags, gives a node's own ``may_batch``)."""
        if self.batch_like is not None:
            return flags[self.batch_like]
        return not self.unbatches and any(flags)

    def kernel(self, node: "Node", flags):
        """Optionally, a plain function of the input values computing this node for these batch
        flags (e.g. ``np.tanh``): the executor then calls it directly."""
        return None

    def summed_over_batch(self, node: "Node") -> "Node | None":
        """Optionally, a node computing ``node`` summed over the batch more cheaply than summing
        its batched value (``Σ_batch outer(g, h) = Gᵀ H``, one GEMM)."""
        return None

    def is_identity(self, node: "Node", flags) -> bool:
        """True when, for these batch flags, the output is the first input unchanged."""
        return False

    def vjp(self, node: "Node", g: "Node") -> tuple:
        raise UnfoldNotImplementedError(f"op {self.name} has no derivative (define vjp to "
                                        f"differentiate through {describe(node)})")

    def __repr__(self) -> str:
        return self.name


class _Fields:
    """The storage of a node (Node adds behaviour and forbids assignment).

    Six slots and nothing else (no ``__dict__``, no ``__weakref__``): an unfolded graph holds
    millions of nodes. A node takes 80 bytes; its inputs are kept in two of them (``_a``,
    ``_b``, see ``inputs``) rather than in a tuple of its own (56–64 bytes more for one or two
    inputs, most nodes). ``_key`` packs two facts into one int: the serial number (creation
    order) times two, plus one if the node may be batched. ``_meta`` (a ``Meta``) holds the
    node's name, attributes, folded source, dtype and shape — one record shared by the copies
    of a folded node, and by the nodes with the same attributes, dtype and shape and neither a
    name nor a source (most nodes, every gradient node; see ``meta``). ``_at`` holds the step, or for a
    node of a gradient its adjoint (whose step it has; a ``Tagged`` pair in the rare case it
    has another)."""

    __slots__ = ("op", "_a", "_b", "_meta", "_at", "_key")


#: ``_b`` of a node with no input or more than two: its ``_a`` is the tuple of its inputs
MANY = object()


class Meta:
    """The name, attributes, folded source, dtype and shape of a node (shared by many nodes)."""

    __slots__ = ("name", "attrs", "source", "dtype", "shape")

    def __init__(self, name: str | None, attrs: Mapping[str, Any], source: "Node | None",
                 dtype: np.dtype, shape: Shape):
        self.name, self.attrs, self.source, self.dtype = name, attrs, source, dtype
        self.shape = shape


_SHARED_META: dict[tuple, Meta] = {}
_PLAIN_META: dict[tuple, Meta] = {}    # (no name, no source, no attributes: by dtype and shape)


def meta(name: str | None, attrs: Mapping[str, Any], source: "Node | None",
         dtype: np.dtype, shape: Shape) -> Meta:
    """What ``_make`` stores for these fields (``attrs`` in stored form, see ``_frozen_attrs``;
    ``dtype`` a numpy dtype, ``shape`` from ``_shared_shape``): without a name and a source,
    one shared record per attributes, dtype and shape; one ``meta`` may serve many nodes (the
    copies of a folded node)."""
    if name is None and source is None:
        if attrs is _NO_ATTRS:
            key = (dtype, shape)
            found = _PLAIN_META.get(key)
            if found is None:
                if len(_PLAIN_META) > 4096:
                    _PLAIN_META.clear()
                found = _PLAIN_META[key] = Meta(None, attrs, None, dtype, shape)
            return found
        key = (id(attrs), dtype, shape)
        found = _SHARED_META.get(key)
        if found is None:
            if len(_SHARED_META) > 4096:
                _SHARED_META.clear()
            found = _SHARED_META[key] = Meta(None, attrs, None, dtype, shape)   # (keeps attrs)
        return found
    return Meta(name, attrs, source, dtype, shape)


class Tagged:
    """``_at`` of a gradient node whose step is not its adjoint's."""

    __slots__ = ("step", "adjoint")

    def __init__(self, step: int | None, adjoint: "Node") -> None:
        self.step, self.adjoint = step, adjoint


def at(step: int | None, adjoint: "Node | None"):
    """What ``_make`` stores for a node's step and adjoint (see ``_Fields``)."""
    if adjoint is None:
        return step
    return adjoint if step == adjoint.step else Tagged(step, adjoint)


class _Filling(_Fields):
    """A node while its fields are set: plain slot assignment, the fastest Python has."""

    __slots__ = ()


#: the keys of the nodes to come, in creation order (a node's ``_key`` is ``next(_keys)`` plus its
#: batch flag): an iterator over a range, so that ``next_key`` can read where it is
_KEYS_END = 1 << 62
_keys = iter(range(0, _KEYS_END, 2))


def next_key() -> int:
    """The ``_key`` (without its batch flag) the next node built will have."""
    return _KEYS_END - 2 * operator.length_hint(_keys)

_object_new = object.__new__


def _make(op: Op, inputs: tuple, meta: Meta, at: Any, batch: int) -> "Node":
    """A node from fields already in their stored form (``meta`` from ``meta``, with the
    node's shape; ``at`` from
    ``at``: a step, or an adjoint node whose step it takes) — how every node is made (``Node``
    and ``apply`` call it; unfolding's common copies and grad's stamps do the same inlined, as
    they run per node at τ = 100 000). ``batch`` is 1 (or True) if the node may be batched."""
    self = _object_new(_Filling)
    self.op = op
    n = len(inputs)
    if n == 2:
        self._a, self._b = inputs
    elif n == 1:
        self._a = inputs[0]
        self._b = None
    else:
        self._a = inputs
        self._b = MANY
    self._meta = meta
    self._at = at
    self._key = next(_keys) + batch
    self.__class__ = Node          # from here on, immutable
    return self


_SHAPES: dict[Shape, Shape] = {}
_ATTRS: dict[tuple, Mapping[str, Any]] = {}
_PLAIN = frozenset([int, bool, str, type(None)])


def _shared_shape(shape: Any) -> Shape:
    """``shape`` as a tuple, one object per distinct shape (millions of nodes share a few)."""
    if shape.__class__ is not tuple:
        shape = tuple(shape)
    found = _SHAPES.get(shape)
    if found is None:
        if len(_SHAPES) > 4096:
            _SHAPES.clear()
        found = _SHAPES[shape] = shape
    return found


def _typed(value: Any) -> Any:
    """A hashable stand-in for an attribute value that equals another's only if the values are
    interchangeable (same types all the way down), or None when there is no cheap one."""
    cls = value.__class__
    if cls in _PLAIN or isinstance(value, np.dtype):
        return cls, value
    if cls is tuple:
        for v in value:
            if v.__class__ is not int:
                parts = tuple([_typed(v) for v in value])
                return None if None in parts else (tuple, parts)
        return value                   # axes, shapes: a tuple of ints stands for itself
    return None


def _frozen_attrs(attrs: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``attrs`` as a read-only copy; equal attributes of simple values (axes, sizes, dtypes)
    share one mapping — a dict costs ~200 bytes per node otherwise."""
    if not attrs:
        return _NO_ATTRS
    if attrs.__class__ is MappingProxyType:
        return attrs
    key = []
    for k, v in attrs.items():
        typed = _typed(v)
        if typed is None:
            return MappingProxyType(dict(attrs))
        key.append((k, typed))
    key = tuple(key)
    found = _ATTRS.get(key)
    if found is None:
        if len(_ATTRS) > 4096:
            _ATTRS.clear()
        found = _ATTRS[key] = MappingProxyType(dict(attrs))
    return found


class Node(_Fields):
    """An immutable vertex of the graph. Hashes by identity; ``==`` is element-wise."""

    __slots__ = ()

    # numpy must hand mixed expressions (``array * node``) back to unfold: unfold.ops runs the
    # ufuncs it has as its ops (and refuses the others); until then numpy defers to Node's
    # reflected operators.
    __array_ufunc__ = None

    def __new__(cls, op: Op, inputs: Sequence["Node"], shape: Shape, dtype: np.dtype,
                name: str | None = None, attrs: Mapping[str, Any] | None = None,
                step: int | None = None, source: "Node | None" = None,
                may_batch: bool | None = None) -> "Node":
        inputs = tuple(inputs)
        if may_batch is None:
            may_batch = _batch_flag(op, inputs)
        # a node built while differentiating forward node n is part of n's adjoint (backward)
        # computation: it records n, and n's time step
        adjoint = _adjoint_of[-1] if inputs else None
        self = _make(op, inputs,
                     meta(name, _frozen_attrs(attrs), source,
                          dtype if isinstance(dtype, np.dtype) else np.dtype(dtype),
                          _shared_shape(shape)),
                     adjoint if step is None and adjoint is not None else at(step, adjoint),
                     1 if may_batch else 0)
        if cls is not Node:
            object.__setattr__(self, "__class__", cls)
        return self

    @property
    def inputs(self) -> tuple["Node", ...]:
        """The nodes this one is computed from, in the op's order."""
        b = self._b
        if b is None:
            return (self._a,)
        return self._a if b is MANY else (self._a, b)

    @property
    def shape(self) -> Shape:
        """The per-example shape (the batch axis, if any, is not part of it)."""
        return self._meta.shape

    @property
    def name(self) -> str | None:
        """The user-facing name (``h``, ``W``), or None."""
        return self._meta.name

    @property
    def attrs(self) -> Mapping[str, Any]:
        """The op's static attributes (axes, a constant's value, …), read-only."""
        return self._meta.attrs

    @property
    def source(self) -> "Node | None":
        """For a copy in an unfolded graph, the folded node it copies (else None)."""
        return self._meta.source

    @property
    def dtype(self) -> np.dtype:
        return self._meta.dtype

    @property
    def step(self) -> int | None:
        """The time step of a copy in an unfolded graph (for a gradient node: its adjoint's),
        else None."""
        a = self._at
        c = a.__class__
        if c is Node:
            return a.step
        return a.step if c is Tagged else a

    @property
    def adjoint(self) -> "Node | None":
        """For a node of a gradient graph, the forward node whose derivative it helps compute
        (it was built by that node's VJP), else None."""
        a = self._at
        c = a.__class__
        return a if c is Node else a.adjoint if c is Tagged else None

    @property
    def serial(self) -> int:
        """The node's number in creation order (inputs are always older than their users)."""
        return self._key >> 1

    @property
    def may_batch(self) -> bool:
        """Whether the node may carry a batch axis: it depends on an input (fed per example)."""
        return _BOOLS[self._key & 1]

    def __setattr__(self, key, value):
        raise UnfoldAttributeError(f"node {self.label!r} is immutable (setting {key!r}); build a "
                                   f"new node instead")

    def __delattr__(self, key):
        raise UnfoldAttributeError(f"node {self.label!r} is immutable (deleting {key!r}); build a "
                                   f"new node instead")

    # ``==`` and ``!=`` are element-wise, as numpy's (``x == z`` is the node ``equal(x, z)``,
    # set in unfold.ops); hashing stays object identity, so nodes still key dicts and sets (as
    # torch tensors do). Compare nodes themselves with ``is``, never with ``==`` or ``in`` a list.
    __hash__ = object.__hash__

    def __bool__(self):
        hint = ("; == and != between nodes are element-wise: compare nodes themselves with `is`, "
                "and look them up in sets or dicts, not lists") \
            if self.op.name in ("equal", "not_equal") else ""
        raise UnfoldTypeError(f"the truth value of node {self.label!r} is only known at "
                              f"evaluation; use unfold.where for a data-dependent choice{hint}")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)          # exact: no int64 overflow for huge shapes

    @property
    def label(self) -> str:
        """The name used in messages and drawings: ``h``, ``h(3)`` or ``tanh#17``."""
        base = self.name if self.name is not None else f"{self.op.name}#{self.serial}"
        return base if self.step is None else f"{base}({self.step})"

    def __repr__(self) -> str:
        return f"<Node {describe(self)}>"

    def __len__(self) -> int:
        if not self.shape:
            raise UnfoldTypeError(f"len() of a scalar node {self.label!r}")
        return self.shape[0]

    def __iter__(self):
        raise UnfoldTypeError(f"node {self.label!r} is symbolic and cannot be iterated; "
                              f"index it instead")

    def _no_value(self, *args, **kwargs):
        raise UnfoldTypeError(f"node {self.label!r} is symbolic: it has no value until it is "
                              f"evaluated; use unfold.evaluate([node], feed) for its array, and "
                              f"unfold's ops (unfold.sum, unfold.exp, …) to compute with it")

    __float__ = __int__ = __complex__ = __index__ = __round__ = __array__ = _no_value
    __contains__ = _no_value


@contextlib.contextmanager
def adjoint_of(node: Node):
    """Nodes built inside belong to the backward computation of ``node`` (see ``Node.adjoint``)."""
    _adjoint_of.append(node)
    try:
        yield
    finally:
        _adjoint_of.pop()


def needs_gradient(x: "Node") -> bool:
    """For an op's ``vjp``: whether the gradient being built needs the term for input ``x``.
    False for inputs no target depends on (a sequence's x(t), a constant): the vjp may then
    return None for it instead of building nodes nobody reads. Always True outside ``grad``."""
    wanted = _needed[-1]
    return wanted is None or x in wanted


def apply(op: Op, *inputs: Node, name: str | None = None, **attrs: Any) -> Node:
    """Build the node ``op(*inputs)``, running the op's shape rule now."""
    shape, dtype = op.infer(inputs, attrs)
    found = _SHAPES.get(shape) if shape.__class__ is tuple else None
    shape = _shared_shape(shape) if found is None else found
    adjoint = _adjoint_of[-1] if inputs else None
    attrs = _frozen_attrs(attrs) if attrs else _NO_ATTRS
    if not isinstance(dtype, np.dtype):
        dtype = np.dtype(dtype)
    m = None if name is not None else _PLAIN_META.get((dtype, shape)) if attrs is _NO_ATTRS \
        else _SHARED_META.get((id(attrs), dtype, shape))
    return _make(op, inputs, meta(name, attrs, None, dtype, shape) if m is None else m, adjoint,
                 _batch_flag(op, inputs))


def derived(op: Op, inputs: tuple, like: "Node", attrs: Mapping[str, Any] = _NO_ATTRS) -> Node:
    """``op(*inputs)`` with the shape and dtype of node ``like`` and ``attrs`` in stored form,
    for a VJP that knows them (its shape rule would answer the same): built without running
    it — a gradient graph is built once per node of an unfolded graph."""
    lm = like._meta
    m = _PLAIN_META.get((lm.dtype, lm.shape)) if attrs is _NO_ATTRS else None
    if m is None:
        m = meta(None, attrs, None, lm.dtype, lm.shape)
    return _make(op, inputs, m, _adjoint_of[-1], _batch_flag(op, inputs))


def _batch_flag(op: Op, inputs: Sequence["Node"]) -> int:
    """1 if ``op`` applied to ``inputs`` may be batched: ``Op.out_batched`` on the inputs'
    ``may_batch`` flags."""
    if op.unbatches:
        return 0
    if op.batch_like is not None:
        return inputs[op.batch_like]._key & 1
    flag = 0
    for i in inputs:
        flag |= i._key
    return flag & 1


def topological(outputs: Iterable[Node]) -> list[Node]:
    """Every ancestor of ``outputs``, inputs before users, in the order the nodes were built.

    A node's inputs exist before it does, so creation order is a topological order — and a good
    schedule: an unfolded graph runs step after step, and a gradient graph in the order reverse
    mode built it, each accumulation right after the term it adds. Iterative: depth is unbounded.
    """
    return sorted(ancestors(outputs), key=_key_of)


def ancestors(outputs: Iterable[Node]) -> set[Node]:
    """``outputs`` and every node they depend on (iterative)."""
    seen = set(outputs)
    stack = list(seen)
    add, push, pop = seen.add, stack.append, stack.pop
    while stack:
        node = pop()
        b = node._b
        for i in (node._a,) if b is None else node._a if b is MANY else (node._a, b):
            if i not in seen:
                add(i)
                push(i)
    return seen


_key_of = operator.attrgetter("_key")      # creation order


class Walked:
    """Membership in a graph listed by ``walk``: ``node in Walked(order, top, far)``."""

    __slots__ = ("order", "top", "far", "dense")

    def __init__(self, order: list, top: int, far: Mapping[Node, int] | None = None) -> None:
        self.order, self.top, self.far = order, top, far or {}
        self.dense = len(order) - len(self.far)

    def __contains__(self, node: Node) -> bool:
        k = self.top - (node._key >> 1)
        if 0 <= k < self.dense:
            return self.order[k] is node
        k = self.far.get(node)
        return k is not None and self.order[k] is node


#: how far past the end of a walk's list a node may lie before it is set apart (see ``walk``)
_GAP = 4096


def walk(outputs: Sequence[Node]) -> tuple[list, int, list[Node], int, dict[Node, int]]:
    """Every ancestor of ``outputs`` in a list indexed by ``top − serial`` — so that reading it
    backwards is creation order, a topological order — with None at the serial numbers of
    nodes not in the graph; ``top`` (the largest serial number), the placeholders (leaves that
    are fed) in creation order, the number of nodes, and ``far``.

    The list costs 8 bytes per serial number (a set of the nodes costs about 50 per node) — but
    a graph may read a leaf made long before the rest (a parameter read by graph after graph, a
    shared constant): the leaves beyond a gap larger than the list itself are set apart, listed
    after it, and ``far`` gives their places. So a walk costs what its nodes do, not what was
    built between them and the leaves they read."""
    from .ops.base import is_placeholder
    if not outputs:
        return [], -1, [], 0, {}
    top = max(o._key for o in outputs) >> 1
    size = max(1024, 2 * len(outputs))
    order: list = [None] * size
    later: dict[int, Node] = {}          # leaves beyond the list's end, by index: set apart
    heap: list[int] = []                 # their indices

    def reach(i: Node, k: int) -> None:
        """``i``, at index ``k ≥ size``: the list grows to it — unless ``i`` is a leaf beyond a
        large gap: then it waits in ``later`` until the list grows past it (or for ever: it is
        far). (Only leaves: the forward values a gradient reads lie a gap away too, at first.)"""
        nonlocal size
        if k - size > max(_GAP, size) and i._b is MANY and not i._a:
            if k not in later:
                later[k] = i
                heapq.heappush(heap, k)
            return
        order.extend(repeat(None, k + 1 - size + size // 8))     # (an eighth more: tight)
        size = len(order)
        order[k] = i
        while heap and heap[0] < size:
            j = heapq.heappop(heap)
            if order[j] is None:
                order[j] = later[j]
            del later[j]

    for o in outputs:
        k = top - (o._key >> 1)
        if k >= size:
            reach(o, k)
        else:
            order[k] = o
    # one sweep from the latest node back: a node's inputs are older, so they lie further on
    # and are reached after it (the list grows as the sweep goes: the iterator follows it)
    placeholders = []
    count = 0
    for node in order:
        if node is None:
            continue
        count += 1
        b = node._b
        if b is None or b is not MANY:       # (one input or two: the common cases, unrolled)
            i = node._a
            k = top - (i._key >> 1)
            if k >= size:
                reach(i, k)
            elif order[k] is None:
                order[k] = i
            if b is None:
                continue
            k = top - (b._key >> 1)
            if k >= size:
                reach(b, k)
            elif order[k] is None:
                order[k] = b
            continue
        ins = node._a
        if not ins:
            if is_placeholder(node):
                placeholders.append(node)
            continue
        for i in ins:
            k = top - (i._key >> 1)
            if k >= size:
                reach(i, k)
            elif order[k] is None:
                order[k] = i
    while order and order[-1] is None:
        order.pop()
    # the far leaves, latest first
    far: dict[Node, int] = {}
    for k in sorted(later):
        node = later[k]
        far[node] = len(order)
        order.append(node)
        if is_placeholder(node):
            placeholders.append(node)
    count += len(far)
    placeholders.reverse()               # (swept latest first)
    return order, top, placeholders, count, far


def substitute(outputs: Sequence[Node], mapping: Mapping[Node, Node]) -> list[Node]:
    """``outputs`` rebuilt with every node of ``mapping`` replaced by its image: the nodes on a
    path from a replaced node are copied (same op, attributes, name and tags), the rest shared."""
    new: dict[Node, Node] = dict(mapping)
    for node in topological(outputs):
        if node in new or not node.inputs:
            continue
        inputs = tuple(new.get(i, i) for i in node.inputs)
        if any(a is not b for a, b in zip(inputs, node.inputs)):
            new[node] = Node(node.op, inputs, node.shape, node.dtype, name=node.name,
                             attrs=node.attrs, step=node.step, source=node.source)
    return [new.get(n, n) for n in outputs]


@contextlib.contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector while building or running a large graph: its
    passes over millions of young nodes cost more than the work itself (nodes form no cycles).

    After a large build the young generation holds millions of nodes; the collector's next
    young passes would scan them all twice on their way to the oldest generation (about a
    second per ten million objects). They are moved there at once instead (``gc.freeze`` then
    ``gc.unfreeze``: two list splices), unless the caller uses ``gc.freeze`` itself."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if gc.get_count()[0] > _LARGE_BUILD and not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
            gc.enable()


_LARGE_BUILD = 100_000          # objects allocated while paused
