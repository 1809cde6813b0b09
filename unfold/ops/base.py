"""What the op families share: lifting Python numbers, the dtype rule, numpy broadcasting with a
batch axis, and the two bookkeeping ops that move gradients between shapes."""
from __future__ import annotations

from numbers import Number
from typing import Any, Sequence

import numpy as np

from ..errors import DTypeError, ShapeError, describe
from ..graph import Node, Op, Shape, apply


# --- leaves -------------------------------------------------------------------------------------

class Placeholder(Op):
    """A leaf whose value is fed at evaluation: an ``input`` (may carry a batch axis) or a
    ``param`` (never does)."""

    def __init__(self, kind: str) -> None:
        self.name = kind

    def forward(self, node, *values):  # pragma: no cover - the executor feeds placeholders
        raise AssertionError("placeholders are fed, not computed")


INPUT, PARAM = Placeholder("input"), Placeholder("param")


class Constant(Op):
    name = "constant"

    def forward(self, node):
        return node.attrs["value"]

    def vjp(self, node, g):
        return ()


CONSTANT = Constant()


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"a leaf needs a non-empty string name, got {name!r}")
    return name


def _check_shape(shape: Any, what: str) -> Shape:
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        raise ShapeError(f"{what}: shape must be a tuple of ints, got {shape!r}") from None
    if any(d < 0 for d in shape):
        raise ShapeError(f"{what}: shape {shape} has a negative dimension")
    return shape


def input(name: str, shape: Sequence[int] = (), dtype: Any = np.float64) -> Node:
    """A value fed at evaluation; it may be fed with one extra leading batch axis."""
    name = _check_name(name)
    return Node(INPUT, (), _check_shape(shape, f"input {name!r}"), np.dtype(dtype), name=name,
                may_batch=True)


def param(name: str, shape: Sequence[int] = (), dtype: Any = np.float64) -> Node:
    """A learnable leaf, fed at evaluation (never with a batch axis)."""
    name = _check_name(name)
    return Node(PARAM, (), _check_shape(shape, f"param {name!r}"), np.dtype(dtype), name=name,
                may_batch=False)


_SCALARS: dict[tuple, Node] = {}


def constant(value: Any, dtype: Any = None, name: str | None = None) -> Node:
    """A fixed array baked into the graph (copied, read-only)."""
    if name is None and isinstance(value, (int, float)) and dtype is not None:
        # a Python number in an expression: one shared node per (value, dtype)
        key = (type(value), value, np.dtype(dtype))
        node = _SCALARS.get(key)
        if node is None:
            if len(_SCALARS) > 4096:
                _SCALARS.clear()
            node = _SCALARS[key] = constant(np.array(value, dtype=dtype))
        return node
    array = np.array(value, dtype=dtype)
    array.setflags(write=False)
    return Node(CONSTANT, (), array.shape, array.dtype, name=name, attrs={"value": array},
                may_batch=False)


def is_placeholder(node: Node) -> bool:
    return isinstance(node.op, Placeholder)


def lift(x: Any, like: Sequence[Node] = ()) -> Node:
    """A node for ``x``. Python numbers become constants of the other operands' dtype, as numpy
    scalars do; numpy arrays keep their own dtype."""
    if isinstance(x, Node):
        return x
    if x.__class__ is float or x.__class__ is int:       # (1 − h², a ** 2: already made?)
        for n in like:
            if isinstance(n, Node) and n.dtype.kind == "f":
                found = _SCALARS.get((x.__class__, x, n.dtype))
                if found is not None:
                    return found
                break
    if isinstance(x, (Number, np.bool_)) and not isinstance(x, np.ndarray):
        floats = [n.dtype for n in like if isinstance(n, Node) and n.dtype.kind == "f"]
        dtype = floats[0] if floats else (np.float64 if isinstance(x, float) else None)
        if dtype is None and isinstance(x, (int, np.integer)):
            # an integer among integer operands (``t > 0`` for int32 targets) takes their dtype
            ints = [n.dtype for n in like if isinstance(n, Node) and n.dtype.kind in "iu"]
            if ints and np.iinfo(ints[0]).min <= x <= np.iinfo(ints[0]).max:
                dtype = ints[0]
        return constant(x, dtype=dtype)
    if isinstance(x, (np.ndarray, list, tuple, np.generic)):
        return constant(x)
    raise TypeError(f"cannot use {type(x).__name__} {x!r} in an unfold expression")


def lift_all(xs: Sequence[Any]) -> list[Node]:
    for x in xs:
        if x.__class__ is not Node:
            break
    else:
        return list(xs)
    nodes = [x for x in xs if isinstance(x, Node)]
    return [lift(x, nodes) for x in xs]


# --- the dtype rule -----------------------------------------------------------------------------

def common_float_dtype(op: str, inputs: Sequence[Node]) -> np.dtype:
    """Differentiable ops take floating operands of one dtype: float32 stays float32."""
    dtype = inputs[0].dtype
    if dtype.kind == "f":
        for n in inputs:
            if n.dtype is not dtype:
                break
        else:
            return dtype
    for node in inputs:
        if node.dtype.kind != "f":
            raise DTypeError(f"{op}: operand {describe(node)} is {node.dtype}, but {op} needs "
                             f"floating-point operands; convert it with unfold.cast(x, 'float64')")
    dtypes = {n.dtype for n in inputs}
    if len(dtypes) > 1:
        listed = ", ".join(describe(n) for n in inputs)
        raise DTypeError(f"{op}: operands have different dtypes ({listed}); unfold never promotes "
                         f"silently — cast one with unfold.cast(x, dtype)")
    return inputs[0].dtype


# --- broadcasting with a batch axis -------------------------------------------------------------

def broadcast_shapes(op: str, inputs: Sequence[Node]) -> Shape:
    shape = inputs[0].shape
    for n in inputs:
        if n.shape != shape:
            break
    else:
        return shape
    shapes = tuple([n.shape for n in inputs])
    found = _BROADCAST.get(shapes)
    if found is not None:
        return found
    try:
        found = tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        listed = ", ".join(describe(n) for n in inputs)
        raise ShapeError(f"{op}: shapes do not broadcast ({listed}); numpy's rule: aligned from "
                         f"the right, each pair of dimensions must be equal or one of them 1"
                         ) from None
    if len(_BROADCAST) > 4096:
        _BROADCAST.clear()
    _BROADCAST[shapes] = found
    return found


_BROADCAST: dict[tuple[Shape, ...], Shape] = {}     # numpy's rule is slow on tiny shapes


def align(value: np.ndarray, batched: bool, ndim: int) -> np.ndarray:
    """Make a value broadcast per example against a result of per-example rank ``ndim``:
    a batched value ``(B,) + s`` becomes ``(B, 1, …, 1) + s``."""
    if not batched or value.ndim - 1 == ndim:
        return value
    return value.reshape(value.shape[:1] + (1,) * (ndim - value.ndim + 1) + value.shape[1:])


def reduce_to(value: np.ndarray, shape: Shape, lead: int) -> np.ndarray:
    """Sum the per-example part of ``value`` (after ``lead`` batch axes) down to ``shape``."""
    per = value.shape[lead:]
    extra = len(per) - len(shape)
    axes = tuple(range(lead, lead + extra)) + tuple(
        lead + extra + i for i, d in enumerate(shape) if d == 1 and per[extra + i] != 1)
    if axes:
        value = value.sum(axis=axes)
    return value.reshape(value.shape[:lead] + shape)


class Elementwise(Op):
    """An op applied element by element with numpy broadcasting."""

    def infer(self, inputs, attrs):
        if len(inputs) == 2:                 # the common case, e.g. g ⊙ (1 − h²)
            a, b = inputs
            if a.shape is b.shape and a.dtype is b.dtype and a.dtype.kind == "f":
                return a.shape, a.dtype
        return broadcast_shapes(self.name, inputs), common_float_dtype(self.name, inputs)

    def batched(self, node, values, flags, batch):
        nd = len(node.shape)
        for v, f in zip(values, flags):
            if f and v.ndim - 1 != nd:       # a batched operand of lower rank: align them all
                values = [align(v, f, nd) for v, f in zip(values, flags)]
                break
        return self.forward(node, *values)


class SumLike(Op):
    """``sum_like(g, x)``: sum ``g`` down to the shape — and batchedness — of ``x``.

    This is how a gradient returns to an operand that was broadcast: over broadcast dimensions,
    and over the batch for operands (parameters) shared by every example. Only ``x``'s shape and
    batch flag are read, never its value."""

    name = "sum_like"
    meta_inputs = (1,)
    batch_like = 1

    def infer(self, inputs, attrs):
        return inputs[1].shape, inputs[0].dtype

    def forward(self, node, g, x=None):
        return reduce_to(g, node.shape, 0)

    def batched(self, node, values, flags, batch):
        g, (gb, xb) = values[0], flags
        if gb and not xb:
            return reduce_to(g.sum(axis=0), node.shape, 0)
        if gb:
            return reduce_to(g, node.shape, 1)
        return np.broadcast_to(reduce_to(g, node.shape, 0), (batch,) + node.shape)

    def is_identity(self, node, flags):
        return node.inputs[0].shape == node.shape and flags[0] == flags[1]

    def vjp(self, node, g):
        return broadcast_like(g, node.inputs[0]), None


class BroadcastLike(Op):
    """``broadcast_like(g, x)``: broadcast ``g`` to the shape and batchedness of ``x``."""

    name = "broadcast_like"
    meta_inputs = (1,)

    def infer(self, inputs, attrs):
        return inputs[1].shape, inputs[0].dtype

    def forward(self, node, g, x=None):
        return np.broadcast_to(g, node.shape)

    def batched(self, node, values, flags, batch):
        g = align(values[0], flags[0], node.ndim)
        return np.broadcast_to(g, (batch,) + node.shape)

    def is_identity(self, node, flags):
        return node.inputs[0].shape == node.shape and flags[0] == flags[1]

    def vjp(self, node, g):
        return sum_like(g, node.inputs[0]), None


SUM_LIKE, BROADCAST_LIKE = SumLike(), BroadcastLike()


def sum_like(g: Node, x: Node) -> Node:
    return apply(SUM_LIKE, g, x)


def broadcast_like(g: Node, x: Node) -> Node:
    if g.shape == x.shape and not (x._key & ~g._key & 1):     # (x.may_batch, not g.may_batch)
        return g
    return apply(BROADCAST_LIKE, g, x)


class Identity(Op):
    """Ops whose value is their input's: run as an alias, no copy is made."""

    def infer(self, inputs, attrs):
        return inputs[0].shape, inputs[0].dtype

    def forward(self, node, x):
        return x

    def is_identity(self, node, flags):
        return True

    def out_batched(self, node, flags):
        return flags[0]


class Alias(Identity):
    """The identity, under another name: a parameter's per-step dummy copy ``W(t)``, or a name
    given to a value (``h``, a gate ``f``)."""

    name = "alias"

    def vjp(self, node, g):
        return (g,)


ALIAS = Alias()


def named(value: Node, name: str) -> Node:
    """``value`` under ``name``: a variable of the book's drawings (``h``, ``o``, a gate ``f``)."""
    return Node(ALIAS, (value,), value.shape, value.dtype, name=_check_name(name))


def fit(contribution: Node, x: Node) -> Node:
    """A gradient contribution brought to ``x``'s shape; summed over the batch when ``x`` is
    shared by all examples (a parameter or anything computed from parameters only)."""
    # (the batch flags read as in Node.may_batch, without a property call: this runs per term)
    if contribution.shape == x.shape and not (contribution._key & ~x._key & 1):
        return contribution
    if contribution.shape == x.shape:
        summed = contribution.op.summed_over_batch(contribution)
        if summed is not None:
            return summed
    return sum_like(contribution, x)


def normalize_axes(op: str, node: Node, axis: Any) -> tuple[int, ...]:
    """``axis`` (None, int or tuple) as sorted non-negative per-example axes."""
    if axis is None:
        return tuple(range(node.ndim))
    if axis.__class__ is int and -node.ndim <= axis < node.ndim:
        return (axis % node.ndim,)
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -node.ndim <= a < node.ndim:
            raise ShapeError(f"{op}: axis {a} is out of range for {describe(node)} "
                             f"(per-example rank {node.ndim}; the batch axis is not counted)")
        out.append(int(a) % node.ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(out))
