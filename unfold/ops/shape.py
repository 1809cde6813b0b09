"""Ops that move elements without arithmetic: reshape, transpose, indexing, concatenation."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from ..errors import (DTypeError, ShapeError, UnfoldIndexError, UnfoldTypeError, UnfoldValueError,
                      describe)
from ..graph import Node, Op, apply
from .base import check_axis, int_tuple, is_int, lift, lift_all, terms, unmasked


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
    shape = _target_shape(x, shape)
    if shape == x.shape:
        return x
    return apply(RESHAPE, x, shape=shape)


def _target_shape(x: Node, shape: Any) -> tuple[int, ...]:
    """``shape`` with its -1 filled in, by arithmetic (nothing is allocated)."""
    dims = int_tuple(shape, lambda: f"reshape of {describe(x)}: the new shape")
    free = dims.count(-1)
    known = -math.prod(dims) if free else math.prod(dims)     # (with one -1, checked below)
    size = x.size
    if free > 1 or min(dims, default=0) < -1:
        raise ShapeError(f"reshape: the new shape {dims} of {describe(x)} may have one -1 and "
                         f"otherwise non-negative dimensions")
    if free:
        if known == 0 or size % known:
            raise ShapeError(f"reshape: cannot reshape {describe(x)} ({size} elements) into "
                             f"{dims}: no size for the -1 makes {size} elements")
        dims = tuple(size // known if d == -1 else d for d in dims)
    elif known != size:
        raise ShapeError(f"reshape: cannot reshape {describe(x)} ({size} elements) into {dims} "
                         f"({known} elements)")
    return dims


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
    n = x.ndim
    if axes is None:
        axes = tuple(range(n - 1, -1, -1))
    else:
        axes = _permutation(x, axes)
    if axes == tuple(range(n)):
        return x
    return apply(TRANSPOSE, x, axes=axes)


def _permutation(x: Node, axes: Any) -> tuple[int, ...]:
    """``axes`` checked as numpy checks them: ints, in range, each axis exactly once."""
    n = x.ndim
    given = int_tuple(axes, lambda: f"transpose of {describe(x)}: axes", "axis")
    if len(given) != n:
        raise ShapeError(f"transpose: axes {given} do not match {describe(x)}: give a "
                         f"permutation of its {n} per-example axes (the batch axis is not "
                         f"counted)")
    for a in given:
        if not -n <= a < n:
            raise UnfoldIndexError(f"transpose: axis {a} is out of range for {describe(x)} "
                                   f"(per-example rank {n})")
    perm = tuple(int(a) % n for a in given)
    if len(set(perm)) != n:
        raise ShapeError(f"transpose: axes {given} are not a permutation of the {n} axes of "
                         f"{describe(x)}: an axis is repeated")
    return perm


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
        if isinstance(k, (list, tuple, np.ndarray)):
            k = _index_array(x, k)
            if k.dtype == np.bool_:
                parts.append(k)                 # a mask spans k.ndim axes: expanded below
                continue
        elif isinstance(k, slice):
            _check_slice(x, k)
        elif not (k is None or k is Ellipsis or is_int(k)):
            hint = ("; to gather rows by a computed index use unfold.embedding(table, indices)"
                    if isinstance(k, Node) else "")
            raise UnfoldTypeError(f"indexing {describe(x)} with {type(k).__name__} {k!r}: use "
                                  f"ints, slices, None, ..., or integer/boolean arrays{hint}")
        parts.append(k)
    if sum(1 for k in parts if k is Ellipsis) > 1:
        raise UnfoldIndexError(f"indexing {describe(x)}: at most one Ellipsis (...) per index")
    n_real = sum(k.ndim if isinstance(k, np.ndarray) and k.dtype == np.bool_ else 1
                 for k in parts if k is not None and k is not Ellipsis)
    if n_real > x.ndim:
        raise UnfoldIndexError(f"indexing {describe(x)} with {n_real} indices: too many for "
                               f"per-example rank {x.ndim}")
    ellipsis = [i for i, k in enumerate(parts) if k is Ellipsis]
    if ellipsis:
        i = ellipsis[0]
        parts[i:i + 1] = [slice(None)] * (x.ndim - n_real)
    else:
        parts += [slice(None)] * (x.ndim - n_real)
    out, axis = [], 0
    for k in parts:
        if isinstance(k, np.ndarray) and k.dtype == np.bool_:
            covered = x.shape[axis:axis + k.ndim]
            if k.shape != covered:
                raise UnfoldIndexError(f"indexing {describe(x)}: the boolean mask of shape "
                                       f"{k.shape} does not match axes {axis}…{axis + k.ndim - 1} "
                                       f"of shape {covered}")
            out.extend(np.nonzero(k))
            axis += k.ndim
            continue
        if is_int(k) or isinstance(k, np.ndarray):
            d = x.shape[axis]
            if np.any(k < -d) or np.any(k >= d):
                bad = k if is_int(k) else k[(k < -d) | (k >= d)].ravel()[0]
                raise UnfoldIndexError(f"index {bad} is out of bounds for axis {axis} of "
                                       f"{describe(x)} (size {d})")
            k = int(k) % d if is_int(k) else k % d
        out.append(k)
        axis += k is not None
    _check_advanced(x, out)
    return tuple(out)


def _index_array(x: Node, k: Any) -> np.ndarray:
    """An index given as a list or an array: integers or booleans, nothing else."""
    if isinstance(k, (list, tuple)) and any(isinstance(v, Node) for v in k):
        raise UnfoldTypeError(f"indexing {describe(x)} with a list of nodes: to gather by a "
                              f"computed index use unfold.embedding(table, indices)")
    try:
        array = np.asarray(unmasked(k, f"indexing {describe(x)}: the index"))
    except ValueError as exc:
        raise UnfoldValueError(f"indexing {describe(x)} with {k!r}: not an array ({exc})") from None
    if array.size == 0 and array.dtype.kind == "f":
        array = array.astype(np.intp)       # ``x[[]]``: no element selected
    if array.dtype.kind not in "iub":
        raise UnfoldTypeError(f"indexing {describe(x)} with a {array.dtype} array: index arrays "
                              f"hold integers or booleans")
    return array


def _check_slice(x: Node, k: slice) -> None:
    for part in (k.start, k.stop, k.step):
        if part is not None and not is_int(part):
            raise UnfoldTypeError(f"indexing {describe(x)} with {k}: slice bounds and steps are "
                                  f"ints or None, got {part!r}")
    if k.step == 0:
        raise UnfoldValueError(f"indexing {describe(x)} with {k}: a slice step cannot be zero")


def _indexed_shape(shape: tuple[int, ...], key: tuple) -> tuple[int, ...]:
    """The shape of ``array[key]`` for a normalized ``key``, by arithmetic: numpy's rule with the
    array indices (and the ints beside them) adjacent, their broadcast shape in their place."""
    arrays = [k.shape for k in key if isinstance(k, np.ndarray)]
    out, axis, placed = [], 0, False
    for k in key:
        if k is None:
            out.append(1)
            continue
        if arrays and (isinstance(k, np.ndarray) or is_int(k)):
            if not placed:
                out.extend(np.broadcast_shapes(*arrays))
                placed = True
        elif isinstance(k, slice):
            out.append(len(range(*k.indices(shape[axis]))))
        axis += 1
    return tuple(out)


def _check_advanced(x: Node, key: list) -> None:
    """numpy moves the axes of non-adjacent array indices to the front — before a batch axis.
    Keep them adjacent (index in two steps otherwise)."""
    arrays = [i for i, k in enumerate(key) if isinstance(k, np.ndarray)]
    if not arrays:
        return
    advanced = [i for i, k in enumerate(key) if isinstance(k, np.ndarray) or is_int(k)]
    if advanced != list(range(advanced[0], advanced[-1] + 1)):
        raise ShapeError(f"indexing {describe(x)}: array indices (and ints beside them) must be "
                         f"adjacent, or numpy would move their axes to the front; index in two "
                         f"steps, e.g. x[a][:, b]")
    try:
        np.broadcast_shapes(*(key[i].shape for i in arrays))
    except ValueError:
        raise UnfoldIndexError(f"indexing {describe(x)}: the index arrays' shapes "
                               f"{[key[i].shape for i in arrays]} do not broadcast") from None


def _has_arrays(key: tuple) -> bool:
    return any(isinstance(k, np.ndarray) for k in key)


class GetItem(Op):
    name = "getitem"

    def infer(self, inputs, attrs):
        return _indexed_shape(inputs[0].shape, attrs["key"]), inputs[0].dtype

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
    """``x[key]``, as numpy's basic and (adjacent) advanced indexing, per example."""
    x = lift(x)
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
    xs = terms("concat", xs)
    if xs[0].ndim == 0:
        raise ShapeError(f"concat: {describe(xs[0])} is a scalar; use unfold.stack")
    axis = check_axis("concat", xs[0], axis)
    if len(xs) == 1:
        return xs[0]
    return apply(CONCAT, *xs, axis=axis)


def stack(xs: Sequence[Any], axis: int = 0) -> Node:
    """Join nodes of one shape along a new per-example axis, as ``numpy.stack``."""
    xs = terms("stack", xs)
    for x in xs[1:]:
        if x.shape != xs[0].shape:
            raise ShapeError(f"stack: {describe(x)} and {describe(xs[0])} must have one shape")
    if not is_int(axis):
        raise UnfoldTypeError(f"stack: axis must be an int, got {axis!r}")
    ndim = xs[0].ndim + 1
    if not -ndim <= axis < ndim:
        raise UnfoldIndexError(f"stack: axis {axis} is out of range for rank {ndim} (the "
                               f"per-example rank of {describe(xs[0])}, plus the new axis)")
    axis = int(axis) % ndim
    shape = xs[0].shape[:axis] + (1,) + xs[0].shape[axis:]
    return concat([reshape(x, shape) for x in xs], axis=axis)
