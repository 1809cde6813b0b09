"""Reductions along per-example axes (the batch axis, when there is one, is never reduced except
by ``batch_sum``)."""
from __future__ import annotations

import math

import numpy as np

from .. import arguments
from ..errors import DTypeError, ShapeError, UnfoldValueError, describe
from ..graph import Node, Op, apply
from .base import (broadcast_like, check_axis, common_float_dtype, constant, lift,
                   normalize_axes)
from .shape import concat, reshape, stack, transpose
from .elementwise import cast, equal, exp, sqrt, where


class Reduce(Op):
    """``fn`` over ``axes``; ``vjp(node, x, g)`` gets ``g`` reshaped with the reduced axes kept
    (size 1), so it broadcasts against ``x``."""

    def __init__(self, name, fn, vjp):
        self.name, self._fn, self._vjp = name, fn, vjp

    def infer(self, inputs, attrs):
        (x,) = inputs
        return _reduced_shape(x.shape, attrs["axes"], attrs["keepdims"]), \
            common_float_dtype(self.name, inputs)

    def forward(self, node, x):
        return self._fn(x, axis=node.attrs["axes"], keepdims=node.attrs["keepdims"])

    def batched(self, node, values, flags, batch):
        axes = tuple(a + 1 for a in node.attrs["axes"])
        return self._fn(values[0], axis=axes, keepdims=node.attrs["keepdims"])

    def vjp(self, node, g):
        if self is SUM and not g.shape:        # a total: g broadcasts as it is
            return (broadcast_like(g, node.inputs[0]),)
        return (self._vjp(node, node.inputs[0], reshape(g, _kept_shape(node))),)


def _reduced_shape(shape, axes, keepdims):
    return tuple(1 if i in axes else d for i, d in enumerate(shape) if keepdims or i not in axes)


def _kept_shape(node: Node) -> tuple[int, ...]:
    return _reduced_shape(node.inputs[0].shape, node.attrs["axes"], True)


def _extremum_vjp(node, x, g):
    """max and min: the gradient is shared equally among the elements equal to the result."""
    top = reshape(node, _kept_shape(node))
    mask = cast(equal(x, top), x.dtype)
    return mask * (g / sum(mask, axis=node.attrs["axes"], keepdims=True))


def _logsumexp(x, axis, keepdims):
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0)        # all −inf (or an inf): no shift
    with np.errstate(divide="ignore"):              # log 0 = −inf when every term is −inf
        out = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis)


SUM = Reduce("sum", np.sum, lambda node, x, g: broadcast_like(g, x))
MAX = Reduce("max", np.max, _extremum_vjp)
MIN = Reduce("min", np.min, _extremum_vjp)
PROD = Reduce("prod", np.prod, lambda node, x, g: g * _products_of_others(x, node.attrs["axes"]))
def _logsumexp_vjp(node, x, g):
    """g · softmax(x) = g · exp(x − y); where y = −inf (every term −inf) the gradient is 0, not
    the nan of −inf − (−inf)."""
    y = reshape(node, _kept_shape(node))
    return g * exp(x - where(y > -np.inf, y, 0))


LOGSUMEXP = Reduce("logsumexp", _logsumexp, _logsumexp_vjp)


def _reduction(op: Reduce, x, axis, keepdims, nonempty: bool = False) -> Node:
    x = lift(x)
    axes = normalize_axes(op.name, x, axis)
    keepdims = arguments.flag(f"{op.name}: keepdims", keepdims)
    if nonempty and any(x.shape[a] == 0 for a in axes):
        raise ShapeError(f"{op.name}: cannot reduce the empty axis of {describe(x)}")
    return apply(op, x, axes=axes, keepdims=keepdims)


def sum(x, axis=None, keepdims: bool = False) -> Node:  # noqa: A001 - numpy's name
    """Σ over ``axis`` (all per-example axes by default)."""
    return _reduction(SUM, x, axis, keepdims)


def max(x, axis=None, keepdims: bool = False) -> Node:  # noqa: A001 - numpy's name
    """Maximum over ``axis``; the gradient is split evenly among tied maxima."""
    return _reduction(MAX, x, axis, keepdims, nonempty=True)


def min(x, axis=None, keepdims: bool = False) -> Node:  # noqa: A001 - numpy's name
    """Minimum over ``axis``; the gradient is split evenly among tied minima."""
    return _reduction(MIN, x, axis, keepdims, nonempty=True)


def prod(x, axis=None, keepdims: bool = False) -> Node:
    """Π over ``axis``; ∂/∂xᵢ = Π_{j≠i} xⱼ, computed without division (exact with zeros)."""
    return _reduction(PROD, x, axis, keepdims)


def logsumexp(x, axis=None, keepdims: bool = False) -> Node:
    """log Σ exp x over ``axis``, from ``x − max x``: finite for any finite x, −inf when every
    term is −inf; d/dx = softmax(x) along the reduced axes."""
    return _reduction(LOGSUMEXP, x, axis, keepdims, nonempty=True)


def _count(op: str, x: Node, axes: tuple[int, ...]) -> int:
    count = math.prod(x.shape[a] for a in axes)
    if count == 0:
        raise ShapeError(f"{op}: reducing the empty axis of {describe(x)} is undefined (no "
                         f"elements to average)")
    return count


def mean(x, axis=None, keepdims: bool = False) -> Node:
    """Arithmetic mean over ``axis``."""
    x = lift(x)
    axes = normalize_axes("mean", x, axis)
    return sum(x, axes, keepdims) / _count("mean", x, axes)


def var(x, axis=None, keepdims: bool = False, ddof: int = 0) -> Node:
    """Variance over ``axis``, ``Σ (x − x̄)² / (N − ddof)`` as ``numpy.var`` (two passes)."""
    x = lift(x)
    axes = normalize_axes("var", x, axis)
    count = _count("var", x, axes)
    ddof = arguments.positive_int("var: ddof", ddof, minimum=0)
    if ddof >= count:
        raise UnfoldValueError(f"var: ddof={ddof} leaves no degrees of freedom for the {count} "
                               f"elements reduced of {describe(x)}; use ddof < {count}")
    centered = x - mean(x, axes, keepdims=True)
    return sum(centered * centered, axes, keepdims) / (count - ddof)


def std(x, axis=None, keepdims: bool = False, ddof: int = 0) -> Node:
    """Standard deviation, √var. Where the variance is 0 the value is 0 and the gradient is
    taken as 0 (√ has no derivative at 0; this is its smallest subgradient)."""
    v = var(x, axis, keepdims, ddof)
    positive = v > 0
    return where(positive, sqrt(where(positive, v, 1)), 0)


def _products_of_others(x: Node, axes: tuple[int, ...]) -> Node:
    """For each element of ``x``, the product of the other elements reduced with it (over
    ``axes``): a pairwise tree of products, so exact with zeros and differentiable again."""
    rest = [a for a in range(x.ndim) if a not in axes]
    order = rest + list(axes)
    moved = transpose(x, order)
    lead = moved.shape[:len(rest)]
    others = _others_along_last(reshape(moved, lead + (math.prod(x.shape[a] for a in axes),)))
    return transpose(reshape(others, moved.shape), tuple(np.argsort(order)))


def _others_along_last(x: Node) -> Node:
    """``out[..., i] = Π_{j≠i} x[..., j]``: pair the elements, take the product of the other
    pairs recursively, and give each element its partner times that."""
    n, lead = x.shape[-1], x.shape[:-1]
    if n <= 1:
        return constant(np.ones(x.shape, x.dtype))
    if n % 2:
        x = concat([x, constant(np.ones(lead + (1,), x.dtype))], axis=-1)
    a, b = x[..., 0::2], x[..., 1::2]
    up = _others_along_last(a * b)
    out = reshape(stack([up * b, up * a], axis=-1), x.shape)
    return out[..., :n] if n % 2 else out


class ArgMax(Op):
    """The index of the largest element along ``axis`` (of the flattened example for
    ``axis=None``), as ``numpy.argmax``: integers, so no gradient flows through it."""

    name = "argmax"
    differentiable = False

    def infer(self, inputs, attrs):
        (x,) = inputs
        if x.dtype.kind not in "biuf":
            raise DTypeError(f"argmax: {describe(x)} must hold numbers")
        axis, keep = attrs["axis"], attrs["keepdims"]
        if axis is None:
            return ((1,) * x.ndim if keep else ()), np.dtype(np.int64)
        return _reduced_shape(x.shape, (axis,), keep), np.dtype(np.int64)

    def forward(self, node, x):
        return self._argmax(node, x, 0)

    def batched(self, node, values, flags, batch):
        return self._argmax(node, values[0], 1)

    def _argmax(self, node, x, lead):
        axis, keep = node.attrs["axis"], node.attrs["keepdims"]
        if axis is None:
            flat = x.reshape(x.shape[:lead] + (-1,))
            found = np.argmax(flat, axis=lead).astype(np.int64, copy=False)
            return found.reshape(found.shape + (1,) * node.inputs[0].ndim) if keep else found
        return np.argmax(x, axis=axis + lead, keepdims=keep).astype(np.int64, copy=False)

    def vjp(self, node, g):
        return (None,)


ARGMAX = ArgMax()


def argmax(x, axis: int | None = None, keepdims: bool = False) -> Node:
    """Index of the maximum along ``axis`` (first one on ties), as ``numpy.argmax``; int64, with
    no gradient."""
    x = lift(x)
    keepdims = arguments.flag("argmax: keepdims", keepdims)
    if axis is not None:
        axis = check_axis("argmax", x, axis)
    if (x.size == 0 if axis is None else x.shape[axis] == 0):
        raise ShapeError(f"argmax: {describe(x)} has no element to choose along "
                         f"{'its axes' if axis is None else f'axis {axis}'}")
    return apply(ARGMAX, x, axis=axis, keepdims=keepdims)


class BatchSum(Op):
    """Σ over the batch: per example the identity, on a batch the sum of its examples. The total
    loss of a batch is ``batch_sum`` of the per-example loss."""

    name = "batch_sum"
    unbatches = True

    def infer(self, inputs, attrs):
        return inputs[0].shape, inputs[0].dtype

    def forward(self, node, x):
        return x

    def batched(self, node, values, flags, batch):
        return values[0].sum(axis=0)

    def vjp(self, node, g):
        return (g,)


BATCH_SUM = BatchSum()


def batch_sum(x: Node) -> Node:
    x = lift(x)
    if not x.may_batch:
        return x
    return apply(BATCH_SUM, x)
