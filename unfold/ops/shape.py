"""Ops that move elements without arithmetic: reshape, transpose, indexing, concatenation."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..errors import DTypeError, ShapeError, describe
from ..graph import Node, Op, apply
from .base import lift, lift_all, normalize_axes


class Reshape(Op):
    name = "reshape"

    def infer(self, inputs, attrs):
        return attrs["shape"], inputs[0].dtype

    def forward(self, node, x):
        return x.reshape(node.shape)

    def batched(self, node, values, flags, batch):
        return values[0].reshape((values[0].shape[0],) + node.shape)

    def vjp(self, node, g):
        return (reshape(g, node.inputs[0].shape),)


RESHAPE = Reshape()


def reshape(x, shape: Sequence[int] | int) -> Node:
    """The same elements in a new per-example shape (one dimension may be -1)."""
    x = lift(x)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(d) for d in shape)
    if shape == x.shape:
        return x
    if min(shape, default=0) >= 0 and math.prod(shape) == math.prod(x.shape):   # valid as is
        return apply(RESHAPE, x, shape=shape)
    try:
        shape = np.empty(x.shape, dtype=np.int8).reshape(shape).shape
    except ValueError:
        raise ShapeError(f"reshape: cannot reshape {describe(x)} ({x.size} elements) into "
                         f"{shape}") from None
    if shape == x.shape:
        return x
    return apply(RESHAPE, x, shape=tuple(shape))


class Transpose(Op):
    name = "transpose"

    def infer(self, inputs, attrs):
        return tuple(inputs[0].shape[a] for a in attrs["axes"]), inputs[0].dtype

    def forward(self, node, x):
        return x.transpose(node.attrs["axes"])

    def batched(self, node, values, flags, batch):
        return values[0].transpose((0,) + tuple(a + 1 for a in node.attrs["axes"]))

    def vjp(self, node, g):
        return (transpose(g, tuple(np.argsort(node.attrs["axes"]))),)


TRANSPOSE = Transpose()


def transpose(x, axes: Sequence[int] | None = None) -> Node:
    """Permute per-example axes (reverse them by default), as ``numpy.transpose``."""
    x = lift(x)
    if axes is None and len(x.shape) == 2:       # a matrix (Wᵀ in every matmul's gradient)
        return apply(TRANSPOSE, x, axes=(1, 0))
    if axes is None:
        axes = tuple(reversed(range(x.ndim)))
    axes = tuple(int(a) % x.ndim if x.ndim else int(a) for a in axes)
    if sorted(axes) != list(range(x.ndim)):
        raise ShapeError(f"transpose: axes {axes} are not a permutation of the "
                         f"{x.ndim} axes of {describe(x)}")
    if axes == tuple(range(x.ndim)):
        return x
    return apply(TRANSPOSE, x, axes=axes)


def swap_last(x: Node) -> Node:
    """Swap the last two axes (the matrix transpose of a stack of matrices)."""
    axes = list(range(x.ndim))
    axes[-2], axes[-1] = axes[-1], axes[-2]
    return transpose(x, axes)


# --- indexing -----------------------------------------------------------------------------------

def _normalize_key(x: Node, key: Any) -> tuple:
    """``key`` with the Ellipsis expanded, negative ints made positive, boolean masks turned into
    integer arrays, and every index checked against ``x``'s per-example shape."""
    key = key if isinstance(key, tuple) else (key,)
    parts = []
    for k in key:
        if isinstance(k, (bool, np.bool_)) or not (
                k is None or k is Ellipsis or isinstance(k, (slice, int, np.integer, list,
                                                             np.ndarray))):
            raise TypeError(f"indexing {describe(x)} with {type(k).__name__} {k!r}: use ints, "
                            f"slices, None, ..., or integer/boolean arrays")
        if isinstance(k, (list, np.ndarray)):
            k = np.asarray(k)
            if k.dtype == np.bool_:
                parts.extend(np.nonzero(k))        # a mask spans k.ndim axes
                continue
            if k.dtype.kind not in "iu":
                raise TypeError(f"indexing {describe(x)} with a {k.dtype} array: index arrays "
                                f"hold integers or booleans")
        parts.append(k)
    n_real = sum(1 for k in parts if k is not None and k is not Ellipsis)
    if sum(1 for k in parts if k is Ellipsis) > 1:
        raise ShapeError(f"indexing {describe(x)}: at most one Ellipsis")
    if n_real > x.ndim:
        raise ShapeError(f"indexing {describe(x)} with {n_real} indices: too many for "
                         f"per-example rank {x.ndim}")
    ellipsis = [i for i, k in enumerate(parts) if k is Ellipsis]
    if ellipsis:
        i = ellipsis[0]
        parts[i:i + 1] = [slice(None)] * (x.ndim - n_real)
    else:
        parts += [slice(None)] * (x.ndim - n_real)
    out, axis = [], 0
    for k in parts:
        if isinstance(k, (int, np.integer, np.ndarray)):
            d = x.shape[axis]
            if np.any(k < -d) or np.any(k >= d):
                raise ShapeError(f"index {k} is out of bounds for axis {axis} of {describe(x)}")
            k = int(k) % d if not isinstance(k, np.ndarray) else k % d
        out.append(k)
        axis += k is not None
    _check_advanced(x, out)
    return tuple(out)


def _check_advanced(x: Node, key: list) -> None:
    """numpy moves the axes of non-adjacent array indices to the front — before a batch axis.
    Keep them adjacent (index in two steps otherwise)."""
    arrays = [i for i, k in enumerate(key) if isinstance(k, np.ndarray)]
    if not arrays:
        return
    advanced = [i for i, k in enumerate(key) if isinstance(k, (np.ndarray, int))]
    if advanced != list(range(advanced[0], advanced[-1] + 1)):
        raise ShapeError(f"indexing {describe(x)}: array indices (and ints beside them) must be "
                         f"adjacent, or numpy would move their axes to the front; index in two "
                         f"steps, e.g. x[a][:, b]")
    try:
        np.broadcast_shapes(*(key[i].shape for i in arrays))
    except ValueError:
        raise ShapeError(f"indexing {describe(x)}: the index arrays' shapes do not broadcast"
                         ) from None


def _has_arrays(key: tuple) -> bool:
    return any(isinstance(k, np.ndarray) for k in key)


class GetItem(Op):
    name = "getitem"

    def infer(self, inputs, attrs):
        shape = np.broadcast_to(np.empty((), np.int8), inputs[0].shape)[attrs["key"]].shape
        return shape, inputs[0].dtype

    def forward(self, node, x):
        return x[node.attrs["key"]]

    def batched(self, node, values, flags, batch):
        return values[0][(slice(None),) + node.attrs["key"]]

    def vjp(self, node, g):
        return (apply(SCATTER, g, node.inputs[0], key=node.attrs["key"]),)


class Scatter(Op):
    """``scatter(g, x)``: zeros shaped like ``x`` with ``g`` written at ``key`` — the adjoint of
    ``x[key]``."""

    name = "scatter"
    meta_inputs = (1,)

    def infer(self, inputs, attrs):
        return inputs[1].shape, inputs[0].dtype

    def forward(self, node, g, x=None):
        out = np.zeros(node.shape, g.dtype)
        self._write(out, node.attrs["key"], g)
        return out

    @staticmethod
    def _write(out, key, g):
        if _has_arrays(key):
            np.add.at(out, key, g)           # a repeated index receives every contribution
        else:
            out[key] = g

    def batched(self, node, values, flags, batch):
        g = values[0]
        out = np.zeros((batch,) + node.shape, g.dtype)
        self._write(out, (slice(None),) + node.attrs["key"], g if flags[0] else g[None])
        return out

    def vjp(self, node, g):
        return apply(GETITEM, g, key=node.attrs["key"]), None


GETITEM, SCATTER = GetItem(), Scatter()


def getitem(x: Node, key: Any) -> Node:
    return apply(GETITEM, x, key=_normalize_key(x, key))


# --- joining ------------------------------------------------------------------------------------

class Concat(Op):
    name = "concat"

    def infer(self, inputs, attrs):
        axis, first = attrs["axis"], inputs[0]
        for node in inputs[1:]:
            if node.dtype != first.dtype:
                raise DTypeError(f"concat: {describe(node)} and {describe(first)} differ in dtype")
            if node.ndim != first.ndim or any(
                    a != b for i, (a, b) in enumerate(zip(node.shape, first.shape)) if i != axis):
                raise ShapeError(f"concat along axis {axis}: {describe(node)} and "
                                 f"{describe(first)} must agree on every other axis")
        shape = list(first.shape)
        shape[axis] = builtins_sum(n.shape[axis] for n in inputs)
        return tuple(shape), first.dtype

    def forward(self, node, *xs):
        return np.concatenate(xs, axis=node.attrs["axis"])

    def batched(self, node, values, flags, batch):
        values = [v if f else np.broadcast_to(v, (batch,) + v.shape)
                  for v, f in zip(values, flags)]
        return np.concatenate(values, axis=node.attrs["axis"] + 1)

    def vjp(self, node, g):
        axis, start, grads = node.attrs["axis"], 0, []
        for x in node.inputs:
            stop = start + x.shape[axis]
            grads.append(getitem(g, (slice(None),) * axis + (slice(start, stop),)))
            start = stop
        return tuple(grads)


CONCAT = Concat()
builtins_sum = sum


def concat(xs: Sequence[Any], axis: int = 0) -> Node:
    """Join nodes along an existing per-example axis, as ``numpy.concatenate``."""
    xs = lift_all(list(xs))
    if not xs:
        raise ShapeError("concat needs at least one node")
    if xs[0].ndim == 0:
        raise ShapeError(f"concat: {describe(xs[0])} is a scalar; use unfold.stack")
    (axis,) = normalize_axes("concat", xs[0], axis)
    if len(xs) == 1:
        return xs[0]
    return apply(CONCAT, *xs, axis=axis)


def stack(xs: Sequence[Any], axis: int = 0) -> Node:
    """Join nodes of one shape along a new per-example axis, as ``numpy.stack``."""
    xs = lift_all(list(xs))
    if not xs:
        raise ShapeError("stack needs at least one node")
    for x in xs[1:]:
        if x.shape != xs[0].shape:
            raise ShapeError(f"stack: {describe(x)} and {describe(xs[0])} must have one shape")
    ndim = xs[0].ndim + 1
    if not -ndim <= axis < ndim:
        raise ShapeError(f"stack: axis {axis} is out of range for rank {ndim}")
    axis %= ndim
    shape = xs[0].shape[:axis] + (1,) + xs[0].shape[axis:]
    return concat([reshape(x, shape) for x in xs], axis=axis)
