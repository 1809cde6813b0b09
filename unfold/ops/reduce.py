"""Reductions along per-example axes (the batch axis, when there is one, is never reduced except
by ``batch_sum``)."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..graph import Node, Op, apply
from .base import broadcast_like, common_float_dtype, lift, normalize_axes
from .shape import reshape
from .elementwise import cast, equal


class Reduce(Op):
    def __init__(self, name, fn):
        self.name, self._fn = name, fn

    def infer(self, inputs, attrs):
        (x,) = inputs
        keep = attrs["keepdims"]
        shape = tuple(1 if i in attrs["axes"] else d for i, d in enumerate(x.shape) if keep or
                      i not in attrs["axes"])
        return shape, common_float_dtype(self.name, inputs)

    def forward(self, node, x):
        return self._fn(x, axis=node.attrs["axes"], keepdims=node.attrs["keepdims"])

    def batched(self, node, values, flags, batch):
        axes = tuple(a + 1 for a in node.attrs["axes"])
        return self._fn(values[0], axis=axes, keepdims=node.attrs["keepdims"])

    def vjp(self, node, g):
        x = node.inputs[0]
        kept = reshape(g, _kept_shape(node))
        if self is SUM:
            return (broadcast_like(kept, x),)
        # max: the gradient is shared equally among the maximal elements
        top = reshape(node, _kept_shape(node))
        mask = cast(equal(x, top), x.dtype)
        return (mask * (kept / sum(mask, axis=node.attrs["axes"], keepdims=True)),)


def _kept_shape(node: Node) -> tuple[int, ...]:
    x = node.inputs[0]
    return tuple(1 if i in node.attrs["axes"] else d for i, d in enumerate(x.shape))


SUM, MAX = Reduce("sum", np.sum), Reduce("max", np.max)


def sum(x, axis=None, keepdims: bool = False) -> Node:  # noqa: A001 - numpy's name
    """Σ over ``axis`` (all per-example axes by default)."""
    x = lift(x)
    return apply(SUM, x, axes=normalize_axes("sum", x, axis), keepdims=bool(keepdims))


def max(x, axis=None, keepdims: bool = False) -> Node:  # noqa: A001 - numpy's name
    """Maximum over ``axis``; the gradient is split evenly among tied maxima."""
    x = lift(x)
    axes = normalize_axes("max", x, axis)
    if any(x.shape[a] == 0 for a in axes):
        raise ShapeError(f"max: cannot reduce the empty axis of {x.label!r} {x.shape}")
    return apply(MAX, x, axes=axes, keepdims=bool(keepdims))


def mean(x, axis=None, keepdims: bool = False) -> Node:
    """Arithmetic mean over ``axis``."""
    x = lift(x)
    axes = normalize_axes("mean", x, axis)
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    return sum(x, axes, keepdims) / count


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
