"""Matrix product with numpy's ``@`` semantics per example."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError, describe
from ..graph import Node, Op, apply, derived, needs_gradient
from .base import align, common_float_dtype, lift_all
from .shape import reshape, swap_last


class MatMul(Op):
    """``a @ b``. For ``W`` (n×m) and a vector ``h`` (m): ``W @ h`` is the book's ``W h``.

    Derivatives (matrices; vectors are promoted as numpy does, then the promoted axis dropped):
    ``∂L/∂a = g bᵀ`` and ``∂L/∂b = aᵀ g``.
    """

    name = "matmul"

    def infer(self, inputs, attrs):
        a, b = inputs
        dtype = common_float_dtype("matmul", inputs)
        sa, sb = a.shape, b.shape
        if len(sa) == 2 and 0 < len(sb) <= 2 and sa[1] == sb[0]:      # W h and A B, at once
            return (sa[0],) + sb[1:], dtype
        if len(sa) == 1 and len(sb) == 2 and sa[0] == sb[0]:          # hᵀ W
            return sb[1:], dtype
        if a.ndim == 0 or b.ndim == 0:
            raise ShapeError(f"matmul: {describe(a)} @ {describe(b)} — an operand is a scalar; "
                             f"use * for scaling")
        sa = (1,) + a.shape if a.ndim == 1 else a.shape
        sb = b.shape + (1,) if b.ndim == 1 else b.shape
        if sa[-1] != sb[-2]:
            raise ShapeError(f"matmul: {describe(a)} @ {describe(b)} — the inner dimensions "
                             f"{sa[-1]} and {sb[-2]} differ")
        try:
            lead = np.broadcast_shapes(sa[:-2], sb[:-2])
        except ValueError:
            raise ShapeError(f"matmul: {describe(a)} @ {describe(b)} — the stacked (leading) "
                             f"dimensions do not broadcast") from None
        shape = tuple(lead) + (() if a.ndim == 1 else (sa[-2],)) + (() if b.ndim == 1 else
                                                                     (sb[-1],))
        return shape, dtype

    def forward(self, node, a, b):
        return a @ b

    def batched(self, node, values, flags, batch):
        (a, b), (fa, fb) = values, flags
        na, nb = node.inputs[0].ndim, node.inputs[1].ndim
        # the common shapes of a recurrent net, as single GEMMs
        if nb == 1 and fb and not fa and na == 2:       # W @ h(t) for every example
            return b @ a.T
        if na == 1 and fa and not fb and nb == 2:       # hᵀ W for every example
            return a @ b
        if na == 1 and nb == 1:                         # per-example dot products
            return np.einsum("...i,...i->...", a if fa else a[None], b if fb else b[None])
        # general case: make both operands at least matrices, align the batch, multiply
        a = a[..., None, :] if na == 1 else a
        b = b[..., :, None] if nb == 1 else b
        rank = max(na if na > 1 else 2, nb if nb > 1 else 2)
        a = align(a, fa, rank)
        b = align(b, fb, rank)
        out = a @ b
        if na == 1:
            out = out[..., 0, :]
        if nb == 1:
            out = out[..., 0]
        return out

    def vjp(self, node, g):
        a, b = node.inputs
        na, nb = len(a.shape), len(b.shape)
        if na == 1 and nb == 1:                         # g is a scalar
            return g * b, g * a
        if na == 2 and nb == 1:                         # W h: ∇W = g hᵀ, ∇h = Wᵀ g = gᵀ W
            return (_weight_term(g, b, a) if needs_gradient(a) else None,
                    _vector_matrix(g, a, b) if needs_gradient(b) else None)  # (not for U x(t))
        if na == 1 and nb == 2:                         # hᵀ W: ∇h = W g, ∇W = h gᵀ
            return b @ g, _weight_term(a, g, b)
        if na == 1:                                 # (k) @ (…, k, m) → (…, m)
            g2 = reshape(g, g.shape[:-1] + (1, g.shape[-1]))                # (…, 1, m)
            ga = reshape(g2 @ swap_last(b), g.shape[:-1] + (a.shape[0],))
            gb = reshape(a, (a.shape[0], 1)) * g2
            return ga, gb
        if nb == 1:                                     # (…, n, k) @ (k) → (…, n)
            g2 = reshape(g, g.shape + (1,))                                  # (…, n, 1)
            ga = g2 * b
            gb = reshape(swap_last(a) @ g2, g.shape[:-1] + (b.shape[0],))
            return ga, gb
        return g @ swap_last(b), swap_last(a) @ g


MATMUL = MatMul()


def _weight_term(g: Node, v: Node, w: Node) -> Node:
    """``g vᵀ``, the term of ∂L/∂w: a weight shared by every example gets it summed over the
    batch, ``Σ_batch g vᵀ`` (what ``fit`` makes of ``outer(g, v)``, built directly)."""
    summed = not (w._key & 1) and (g._key | v._key) & 1
    op = BATCH_OUTER if summed else OUTER
    if g._meta.dtype is w._meta.dtype is v._meta.dtype:
        return derived(op, (g, v), w)                   # (outer's shape rule: w's shape)
    return apply(op, g, v)


def _vector_matrix(g: Node, w: Node, h: Node) -> Node:
    """``gᵀ W`` (= Wᵀ g, of ``h``'s shape): the term of ∂L/∂h in ``W h``."""
    if g._meta.dtype is w._meta.dtype is h._meta.dtype:
        return derived(MATMUL, (g, w), h)
    return g @ w


def matmul(a, b) -> Node:
    a, b = lift_all((a, b))
    return apply(MATMUL, a, b)


class Outer(Op):
    """``outer(a, b)[i, j] = a[i] b[j]`` for vectors — the ``g hᵀ`` of a weight's gradient.
    ``∂/∂a = G b``, ``∂/∂b = Gᵀ a``."""

    name = "outer"

    def infer(self, inputs, attrs):
        a, b = inputs
        if a.ndim != 1 or b.ndim != 1:
            raise ShapeError(f"outer: {describe(a)} and {describe(b)} must be vectors")
        return (a.shape[0], b.shape[0]), common_float_dtype(self.name, inputs)

    def forward(self, node, a, b):
        return np.multiply.outer(a, b)

    def batched(self, node, values, flags, batch):
        (a, b), (fa, fb) = values, flags
        return (a[..., :, None] if fa else a[:, None]) * (b[..., None, :] if fb else b[None, :])

    def vjp(self, node, g):
        a, b = node.inputs
        return g @ b, a @ g

    def summed_over_batch(self, node):
        return apply(BATCH_OUTER, *node.inputs)


class BatchOuter(Outer):
    """``Σ_batch outer(a, b)``: on a batch, the sum over examples of their outer products — one
    GEMM ``Aᵀ B`` instead of a (batch, n, m) array. What a shared weight's gradient needs."""

    name = "batch_outer"
    unbatches = True

    def batched(self, node, values, flags, batch):
        (a, b), (fa, fb) = values, flags
        if fa and fb:
            return a.T @ b
        return np.multiply.outer(a.sum(axis=0) if fa else a, b.sum(axis=0) if fb else b)


OUTER, BATCH_OUTER = Outer(), BatchOuter()


def outer(a, b) -> Node:
    a, b = lift_all((a, b))
    return apply(OUTER, a, b)
