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
import itertools
import operator
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import UnfoldAttributeError, UnfoldTypeError, describe

Shape = tuple[int, ...]

_serial = itertools.count()
_NO_ATTRS: Mapping[str, Any] = MappingProxyType({})
_adjoint_of: list = [None]


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

    def infer(self, inputs: Sequence["Node"], attrs: Mapping[str, Any]) -> tuple[Shape, np.dtype]:
        raise NotImplementedError

    def forward(self, node: "Node", *values: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def batched(self, node: "Node", values, flags, batch: int):
        raise NotImplementedError(f"op {self.name} has no batching rule")

    def out_batched(self, node: "Node", flags) -> bool:
        """Whether the output carries the batch axis, given the inputs' batch flags."""
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
        raise NotImplementedError(f"op {self.name} is not differentiable")

    def __repr__(self) -> str:
        return self.name


class _Fields:
    """The storage of a node (Node adds behaviour and forbids assignment)."""

    __slots__ = ("op", "inputs", "shape", "dtype", "name", "attrs", "step", "source",
                 "adjoint", "may_batch", "serial", "__weakref__")


class _Filling(_Fields):
    """A node while its fields are set: plain slot assignment, the fastest Python has."""

    __slots__ = ()


class Node(_Fields):
    """An immutable vertex of the graph. Hashes by identity; ``==`` is element-wise."""

    __slots__ = ()

    # numpy must hand mixed expressions (``array * node``) back to Node's reflected operators.
    __array_ufunc__ = None

    def __new__(cls, op: Op, inputs: Sequence["Node"], shape: Shape, dtype: np.dtype,
                name: str | None = None, attrs: Mapping[str, Any] | None = None,
                step: int | None = None, source: "Node | None" = None,
                may_batch: bool | None = None) -> "Node":
        inputs = tuple(inputs)
        if may_batch is None:
            may_batch = False
            for i in inputs:
                if i.may_batch:
                    may_batch = True
                    break
        self = object.__new__(_Filling)
        self.op = op
        self.inputs = inputs
        self.shape = shape if type(shape) is tuple else tuple(shape)
        self.dtype = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
        self.name = name
        self.attrs = _NO_ATTRS if not attrs else \
            attrs if type(attrs) is MappingProxyType else MappingProxyType(attrs)
        # a node built while differentiating forward node n is part of n's adjoint (backward)
        # computation: it records n, and n's time step
        adjoint = _adjoint_of[-1] if inputs else None
        self.adjoint = adjoint
        self.step = step if step is not None or adjoint is None else adjoint.step
        self.source = source
        self.may_batch = may_batch
        self.serial = next(_serial)
        self.__class__ = cls          # from here on, immutable
        return self

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
        return int(np.prod(self.shape, dtype=np.int64))

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


@contextlib.contextmanager
def adjoint_of(node: Node):
    """Nodes built inside belong to the backward computation of ``node`` (see ``Node.adjoint``)."""
    _adjoint_of.append(node)
    try:
        yield
    finally:
        _adjoint_of.pop()


def apply(op: Op, *inputs: Node, name: str | None = None, **attrs: Any) -> Node:
    """Build the node ``op(*inputs)``, running the op's shape rule now."""
    shape, dtype = op.infer(inputs, attrs)
    return Node(op, inputs, shape, dtype, name=name, attrs=attrs,
                may_batch=False if op.unbatches else None)


def topological(outputs: Iterable[Node]) -> list[Node]:
    """Every ancestor of ``outputs``, inputs before users, in the order the nodes were built.

    A node's inputs exist before it does, so creation order is a topological order — and a good
    schedule: an unfolded graph runs step after step, and a gradient graph in the order reverse
    mode built it, each accumulation right after the term it adds. Iterative: depth is unbounded.
    """
    seen: set[Node] = set()
    stack = [n for n in outputs]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            stack.extend(node.inputs)
    return sorted(seen, key=_serial_of)


_serial_of = operator.attrgetter("serial")


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
    passes over millions of young nodes cost more than the work itself (nodes form no cycles)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
