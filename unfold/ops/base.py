"""What the op families share: lifting Python numbers, the dtype rule, numpy broadcasting with a
batch axis, and the two bookkeeping ops that move gradients between shapes."""
from __future__ import annotations

import math
import reprlib
from numbers import Number
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import (DTypeError, ShapeError, UnfoldIndexError, UnfoldTypeError, UnfoldValueError,
                      describe)
from ..graph import Node, Op, Shape, apply, derived


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
        raise UnfoldTypeError(f"a leaf needs a non-empty string name, got {name!r}")
    return name


def is_int(value: Any) -> bool:
    """A Python or numpy integer — not a bool, not a float with an integral value (as numpy)."""
    kind = type(value)
    return kind is int or kind is not bool and isinstance(value, (int, np.integer))


def int_tuple(value: Any, what: Callable[[], str], part: str = "dimension") -> tuple[int, ...]:
    """An int or a sequence of ints (a shape, axes) as a tuple of Python ints; anything else —
    floats, bools, strings — is refused, naming the ``part`` that is not an integer (``what()``
    says what the value is for; it is only called for the message)."""
    if type(value) is tuple and all(type(v) is int for v in value):
        return value
    if is_int(value):
        return (int(value),)
    try:
        items = tuple(value)
    except TypeError:
        raise UnfoldTypeError(f"{what()} must be a tuple of ints, got {value!r}") from None
    for v in items:
        if not is_int(v):
            raise UnfoldTypeError(f"{what()} {value!r} has the {part} {v!r}, which is not an "
                                  f"integer; give whole numbers, e.g. (3, 4)")
    return tuple(int(v) for v in items)


def _check_shape(shape: Any, what: str) -> Shape:
    dims = int_tuple(shape, lambda: f"{what}: shape")
    if any(d < 0 for d in dims):
        raise ShapeError(f"{what}: shape {dims} has a negative dimension")
    if math.prod(dims) > _MAX_SIZE:
        raise ShapeError(f"{what}: shape {dims} has {math.prod(dims)} elements, more than an array "
                         f"can hold ({_MAX_SIZE})")
    return dims


_MAX_SIZE = np.iinfo(np.intp).max
_DTYPES: dict[Any, np.dtype] = {}


def check_dtype(dtype: Any, what: str | Callable[[], str]) -> np.dtype:
    """``dtype`` as a numpy dtype that unfold computes with (floating-point, integer, boolean);
    ``what`` (or ``what()``, called only for a message) names what the dtype is for."""
    try:
        found = _DTYPES.get(dtype)
    except TypeError:                       # an unhashable dtype argument
        found = None
    if found is not None:
        return found
    if callable(what):
        what = what()
    try:
        found = np.dtype(dtype)
    except (TypeError, ValueError) as exc:
        raise UnfoldTypeError(f"{what}: {dtype!r} is not a dtype ({exc}); use e.g. 'float64', "
                              f"'float32', 'int64' or 'bool'") from None
    if found.kind not in "biuf":
        given = f" (given as {dtype!r})" if str(dtype) != str(found) else ""
        raise UnfoldTypeError(f"{what}: dtype {found} is not supported{given}; unfold computes with "
                              f"floating-point, integer and boolean arrays (e.g. 'float64', "
                              f"'int64', 'bool')")
    try:
        _DTYPES[dtype] = found
    except TypeError:
        pass
    return found


def input(name: str, shape: Sequence[int] = (), dtype: Any = np.float64) -> Node:
    """A value fed at evaluation; it may be fed with one extra leading batch axis."""
    name = _check_name(name)
    what = f"input {name!r}"
    return Node(INPUT, (), _check_shape(shape, what), check_dtype(dtype, what), name=name,
                may_batch=True)


def param(name: str, shape: Sequence[int] = (), dtype: Any = np.float64) -> Node:
    """A learnable leaf, fed at evaluation (never with a batch axis)."""
    name = _check_name(name)
    what = f"param {name!r}"
    return Node(PARAM, (), _check_shape(shape, what), check_dtype(dtype, what), name=name,
                may_batch=False)


_SCALARS: dict[tuple, Node] = {}


def constant(value: Any, dtype: Any = None, name: str | None = None) -> Node:
    """A fixed array baked into the graph (copied, read-only)."""
    if name is None and isinstance(value, (int, float)) and dtype is not None:
        # a Python number in an expression: one shared node per (value, dtype)
        dtype = check_dtype(dtype, "constant")
        key = (type(value), value, dtype)
        node = _SCALARS.get(key)
        if node is None:
            if len(_SCALARS) > 4096:
                _SCALARS.clear()
            node = _SCALARS[key] = constant(to_array(value, dtype, "constant"))
        return node
    if name is not None:
        _check_name(name)
    array = to_array(value, dtype, "constant" if name is None else f"constant {name!r}")
    array.setflags(write=False)
    return Node(CONSTANT, (), array.shape, array.dtype, name=name, attrs={"value": array},
                may_batch=False)


def unmasked(value: Any, what: str, error: type[Exception] = UnfoldTypeError) -> Any:
    """``value``, unless it is a numpy masked array with masked elements: unfold reads no masks
    (``numpy.asarray`` would silently use the values under them), so ``error`` is raised, naming
    ``what``. A masked array with nothing masked is its plain data."""
    if isinstance(value, np.ma.MaskedArray):
        hidden = int(np.count_nonzero(np.ma.getmaskarray(value)))
        if hidden:
            raise error(f"{what} is a masked array with {hidden} masked element(s); unfold reads "
                        f"no masks, so the values under them would be used: fill them "
                        f"(value.filled(0.0)), or, for padded sequences, unfold with mask=True "
                        f"and feed the mask")
        return np.ma.getdata(value)
    return value


def to_array(value: Any, dtype: Any, what: str) -> np.ndarray:
    """``value`` as a new array of ``dtype`` (or its own), refused — never silently changed —
    when no supported dtype holds it: complex numbers, strings, objects, ragged lists, integers
    too large, finite numbers that overflow to inf, fractions cast to integers, masked values."""
    if isinstance(value, Node):
        raise UnfoldTypeError(f"{what}: {describe(value)} is already a node; use it directly")
    value = unmasked(value, what)
    if dtype is not None:
        dtype = check_dtype(dtype, what)
    if isinstance(value, (list, tuple)) and _holds_nodes(value):
        raise UnfoldTypeError(f"{what}: a {type(value).__name__} of nodes is not an array; join "
                              f"nodes with unfold.stack or unfold.concat")
    try:
        source = np.asarray(value)
        if source.dtype.kind in "biufO":
            with np.errstate(invalid="ignore", over="ignore"):   # refused below, with a message
                array = np.array(source, dtype=dtype) if source.dtype.kind != "O" or \
                    dtype is None else np.array(value, dtype=dtype)
        else:                   # complex numbers, strings, dates: refused below, never cast
            array = source
    except (TypeError, ValueError, OverflowError) as exc:
        raise UnfoldValueError(f"{what}: {_short(value)} cannot be an array of "
                               f"{dtype or 'numbers'} ({exc})") from None
    if array.dtype.kind not in "biuf" or source.dtype.kind not in "biufO":
        raise UnfoldTypeError(f"{what}: {_short(value)} is held by no supported dtype (numpy makes "
                              f"it {array.dtype}); unfold computes with real floating-point, "
                              f"integer and boolean values — no complex numbers, strings, objects "
                              f"or integers beyond 64 bits")
    if dtype is not None and source.dtype != array.dtype and source.size:
        _check_exact(source, array, what)
    return array


def _holds_nodes(value: Any) -> bool:
    """Whether a nest of lists and tuples holds a node (iterative: any depth)."""
    stack = [value]
    while stack:
        for v in stack.pop():
            if isinstance(v, Node):
                return True
            if isinstance(v, (list, tuple)):
                stack.append(v)
    return False


def _check_exact(source: np.ndarray, array: np.ndarray, what: str) -> None:
    """A conversion to another dtype must keep every value (up to floating-point rounding)."""
    def first(bad):
        found = source[bad].ravel()[0]
        return found.item() if isinstance(found, np.generic) else found
    if source.dtype.kind == "O":            # Python numbers (Fraction, Decimal, big ints)
        lost = (np.isinf(array) & (source != np.inf) & (source != -np.inf)) \
            if array.dtype.kind == "f" else source != array
        if np.any(lost):
            raise UnfoldValueError(f"{what}: {first(lost)!r} cannot be {array.dtype} without "
                                   f"changing its value")
    elif array.dtype.kind == "f":
        lost = np.isinf(array) & ~np.isinf(source)
        if lost.any():
            raise UnfoldValueError(f"{what}: {first(lost)} overflows {array.dtype} (largest "
                                   f"{np.finfo(array.dtype).max:.4g}); use a wider dtype")
    elif array.dtype.kind in "iu":
        if source.dtype.kind == "f":
            bad = ~np.isfinite(source) | (source != np.trunc(source))
            if bad.any():
                raise UnfoldValueError(f"{what}: {first(bad)} is not an integer, so it cannot be "
                                       f"{array.dtype}; round it first")
        info = np.iinfo(array.dtype)
        out = (source < info.min) | (source > info.max)
        if out.any():
            raise UnfoldValueError(f"{what}: {first(out)} is outside the range of {array.dtype} "
                                   f"[{info.min}, {info.max}]")


def _short(value: Any) -> str:
    text = reprlib.repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


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
        if isinstance(x, (complex, np.complexfloating)):
            raise UnfoldTypeError(f"cannot use the complex number {x!r} in an unfold expression: "
                                  f"unfold computes with real numbers")
        floats = [n.dtype for n in like if isinstance(n, Node) and n.dtype.kind == "f"]
        dtype = floats[0] if floats else (np.float64 if isinstance(x, float) else None)
        if dtype is None and isinstance(x, (int, np.integer)):
            # an integer among integer operands (``t > 0`` for int32 targets) takes their dtype
            ints = [n.dtype for n in like if isinstance(n, Node) and n.dtype.kind in "iu"]
            if ints:
                info = np.iinfo(ints[0])
                if not info.min <= x <= info.max:
                    raise UnfoldValueError(f"the integer {x} is outside the range of the {ints[0]} "
                                           f"operands [{info.min}, {info.max}]; cast them to a "
                                           f"wider dtype first")
                dtype = ints[0]
        return constant(x, dtype=dtype)
    if isinstance(x, (list, tuple)) and not _holds_nodes(x):
        return constant(x, _list_dtype(x, like))
    if isinstance(x, (np.ndarray, list, tuple, np.generic)):
        return constant(x)
    raise UnfoldTypeError(f"cannot use {_short(x)} in an unfold expression: give nodes, numbers "
                          f"or arrays")


def _list_dtype(x: list | tuple, like: Sequence[Node]) -> np.dtype | None:
    """A list of Python numbers takes the other operands' dtype, as a Python number does
    (``x + [1, 2, 3]`` for a float32 ``x`` is float32); booleans and arrays keep their own."""
    try:
        kind = np.asarray(x).dtype.kind
    except (TypeError, ValueError):
        return None                     # ragged: to_array says so
    floats = [n.dtype for n in like if isinstance(n, Node) and n.dtype.kind == "f"]
    if kind in "if" and floats:
        return floats[0]
    if kind == "i":
        ints = [n.dtype for n in like if isinstance(n, Node) and n.dtype.kind in "iu"]
        return ints[0] if ints else None
    return None


def lift_all(xs: Sequence[Any]) -> list[Node]:
    for x in xs:
        if x.__class__ is not Node:
            break
    else:
        return list(xs)
    nodes = [x for x in xs if isinstance(x, Node)]
    return [lift(x, nodes) for x in xs]


def terms(op: str, xs: Any) -> list[Node]:
    """The operands of an op taking a sequence of them (``add_n``, ``concat``, ``stack``)."""
    if isinstance(xs, (Node, str, bytes)) or not hasattr(xs, "__iter__"):
        raise UnfoldTypeError(f"{op} takes a list of nodes, got {_short(xs)}")
    xs = lift_all(list(xs))
    if not xs:
        raise UnfoldValueError(f"{op} needs at least one node, got an empty sequence")
    return xs


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
    value = lift(value)
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
        if contribution._meta.dtype is x._meta.dtype:
            return derived(SUM_LIKE, (contribution, x), x)     # (sum_like's shape rule)
    return sum_like(contribution, x)


def normalize_axes(op: str, node: Node, axis: Any) -> tuple[int, ...]:
    """``axis`` (None, int or tuple) as sorted non-negative per-example axes."""
    if axis is None:
        return tuple(range(node.ndim))
    if axis.__class__ is int and -node.ndim <= axis < node.ndim:
        return (axis % node.ndim,)
    if is_int(axis):
        axes = (axis,)
    elif isinstance(axis, (tuple, list)):
        axes = tuple(axis)
    else:
        raise UnfoldTypeError(f"{op}: axis must be an int, a tuple of ints or None, got "
                              f"{_short(axis)}")
    out = []
    for a in axes:
        if not is_int(a):
            raise UnfoldTypeError(f"{op}: axis {a!r} is not an integer (axis={axis!r})")
        if not -node.ndim <= a < node.ndim:
            raise UnfoldIndexError(f"{op}: axis {a} is out of range for {describe(node)} "
                                   f"(per-example rank {node.ndim}; the batch axis is not "
                                   f"counted)")
        out.append(int(a) % node.ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(out))


def check_axis(op: str, node: Node, axis: Any) -> int:
    """One axis of ``node``, non-negative."""
    if not is_int(axis):
        raise UnfoldTypeError(f"{op}: axis must be an int, got {_short(axis)}")
    (axis,) = normalize_axes(op, node, axis)
    return axis
