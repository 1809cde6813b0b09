"""Einstein summation, as ``numpy.einsum``, per example: ``einsum("ij,j->i", W, h)`` is ``W h``;
``einsum("qd,kd->qk", Q, K)`` the scores of attention; ``einsum("i,j->ij", a, b)`` an outer product.

The subscripts are checked and made explicit when the node is built: ``...`` becomes letters of
its own, the implicit output (letters used once, in order) is spelled out. On a batch, the batch
axis gets a letter no operand uses, so it is never taken for an axis of the user's subscripts.
"""
from __future__ import annotations

import string
from typing import Any

import numpy as np

from ..errors import ShapeError, UnfoldTypeError, UnfoldValueError, describe
from ..graph import Node, Op, apply
from .base import common_float_dtype, constant, lift_all

_LETTERS = string.ascii_letters


class Einsum(Op):
    """``einsum(s, x₁, …, xₙ)`` for explicit subscripts ``s`` without ``...``.

    For operand k with subscripts ``Tₖ`` and output ``O``: ``∂L/∂xₖ = einsum(O, T_{j≠k} → Tₖ)``
    of ``g`` and the other operands — an einsum again, so twice differentiable. A letter that
    only ``xₖ`` has (summed away) is broadcast back with a vector of ones; a letter repeated in
    ``Tₖ`` (a diagonal) is put back with an identity matrix.
    """

    name = "einsum"

    def infer(self, inputs, attrs):
        terms, out = _split(attrs["subscripts"])
        sizes = _sizes(terms, inputs)
        return tuple(sizes[c] for c in out), common_float_dtype(self.name, inputs)

    def forward(self, node, *values):
        return _run(node.attrs["subscripts"], values)

    def batched(self, node, values, flags, batch):
        return _run(_with_batch(node.attrs["subscripts"], flags, self.unbatches), values)

    def kernel(self, node, flags):
        subscripts = node.attrs["subscripts"]
        if True in flags:
            subscripts = _with_batch(subscripts, flags, self.unbatches)
        optimize = len(flags) > 1
        return lambda *values: np.einsum(subscripts, *values, optimize=optimize)

    def summed_over_batch(self, node):
        return apply(BATCH_EINSUM, *node.inputs, subscripts=node.attrs["subscripts"])

    def vjp(self, node, g):
        terms, out = _split(node.attrs["subscripts"])
        sizes = _sizes(terms, node.inputs)
        return tuple(_operand_gradient(node, k, terms, out, sizes, g)
                     for k in range(len(terms)))


class BatchEinsum(Einsum):
    """``Σ_batch einsum(s, …)``: the batch letter summed inside the one einsum (a single GEMM for
    ``Σ_b g_b h_bᵀ``) — what a shared operand's gradient needs."""

    name = "batch_einsum"
    unbatches = True


EINSUM, BATCH_EINSUM = Einsum(), BatchEinsum()


def _run(subscripts: str, values) -> np.ndarray:
    return np.einsum(subscripts, *values, optimize=len(values) > 1)


def _split(subscripts: str) -> tuple[list[str], str]:
    lhs, out = subscripts.split("->")
    return lhs.split(","), out


def _with_batch(subscripts: str, flags, summed: bool) -> str:
    """The subscripts for a batch: a fresh letter in front of each batched operand, and of the
    output unless it is summed over the batch."""
    terms, out = _split(subscripts)
    b = next(c for c in _LETTERS if c not in subscripts)
    terms = [b + t if f else t for t, f in zip(terms, flags)]
    return ",".join(terms) + "->" + (out if summed else b + out)


def _sizes(terms: list[str], inputs) -> dict[str, int]:
    """Each letter's size; a letter may have size 1 in some operands and n in others (numpy's
    broadcasting), but a letter repeated within one operand never broadcasts."""
    sizes: dict[str, int] = {}
    where: dict[str, Node] = {}
    for term, x in zip(terms, inputs):
        for c, d in zip(term, x.shape):
            known = sizes.get(c)
            if known is None or known == 1:
                sizes[c], where[c] = d, x
            elif d != known and d != 1:
                raise ShapeError(f"einsum: index {c!r} has size {known} in {describe(where[c])} "
                                 f"but {d} in {describe(x)} (subscripts {term!r}); the sizes of "
                                 f"an index must agree (or be 1)")
    return sizes


def _operand_gradient(node: Node, k: int, terms: list[str], out: str, sizes: dict[str, int],
                      g: Node) -> Node:
    x = node.inputs[k]
    if x.dtype.kind != "f":
        return None
    used = set(node.attrs["subscripts"])
    fresh = (c for c in _LETTERS if c not in used)
    target, extra_terms, extra = [], [], []
    for c in terms[k]:
        if c not in target:
            target.append(c)
        else:                                   # a diagonal: x[…i…i…] gets g through δ(i, i′)
            c2 = next(fresh)
            target.append(c2)
            extra_terms.append(c + c2)
            extra.append(constant(np.eye(sizes[c], dtype=x.dtype)))
    others = [t for j, t in enumerate(terms) if j != k]
    seen = set(out).union(*others, *extra_terms)
    for c in dict.fromkeys(terms[k]):
        if c not in seen:                       # summed away in xₖ only: broadcast it back
            extra_terms.append(c)
            extra.append(constant(np.ones(x.shape[terms[k].index(c)], dtype=x.dtype)))
    subscripts = ",".join([out] + others + extra_terms) + "->" + "".join(target)
    operands = [g] + [n for j, n in enumerate(node.inputs) if j != k] + extra
    return apply(EINSUM, *operands, subscripts=subscripts)


def einsum(subscripts: str, *operands: Any) -> Node:
    """Einstein summation over per-example operands, as ``numpy.einsum``: ``"ij,jk->ik"``,
    ``"...ij,...jk->...ik"``, implicit outputs (``"ij,jk"``), diagonals (``"ii->i"``),
    broadcasting of size-1 indices. Refused when built, naming the operand: subscripts that do
    not match the operands' ranks, sizes that disagree, unknown or repeated output indices."""
    if not isinstance(subscripts, str):
        raise UnfoldTypeError(f"einsum: the subscripts must be a string such as 'ij,jk->ik', got "
                              f"{subscripts!r}")
    if not operands:
        raise UnfoldValueError(f"einsum {subscripts!r} needs at least one operand")
    nodes = lift_all(list(operands))
    spec = _explicit(subscripts, nodes)
    return apply(EINSUM, *nodes, subscripts=spec)


def _explicit(subscripts: str, nodes: list[Node]) -> str:
    """``subscripts`` checked against the operands, with ``...`` replaced by letters of its own
    and the output written out."""
    text = "".join(subscripts.split())
    if text.count("->") > 1:
        raise UnfoldValueError(f"einsum {subscripts!r}: more than one '->'")
    lhs, arrow, out = text.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(nodes):
        raise UnfoldValueError(f"einsum {subscripts!r} has {len(terms)} operand subscript(s) but "
                               f"was given {len(nodes)} operand(s)")
    for term in terms + ([out] if arrow else []):
        rest = term.replace("...", "", 1)
        bad = [c for c in rest if c not in _LETTERS]
        if bad:
            raise UnfoldValueError(f"einsum {subscripts!r}: {bad[0]!r} in {term!r} is not an "
                                   f"index; indices are letters, with at most one '...'")
    letters = set(lhs)
    fresh = [c for c in _LETTERS if c not in letters]
    ranks = []
    for term, x in zip(terms, nodes):
        named = len(term) - 3 if "..." in term else len(term)
        if "..." in term and x.ndim < named or "..." not in term and x.ndim != named:
            raise ShapeError(f"einsum {subscripts!r}: the subscripts {term!r} give {named} "
                             f"ind{'ex' if named == 1 else 'ices'}"
                             f"{' and ...' if '...' in term else ''} to {describe(x)}, of "
                             f"per-example rank {x.ndim} (the batch axis is not counted)")
        ranks.append(x.ndim - named if "..." in term else 0)
    ellipsis_rank = max(ranks)
    if ellipsis_rank > len(fresh):
        raise UnfoldValueError(f"einsum {subscripts!r}: too many indices (at most 52 letters)")
    dots = "".join(fresh[:ellipsis_rank])
    terms = [t.replace("...", dots[len(dots) - r:]) for t, r in zip(terms, ranks)]
    if not arrow:
        counts = "".join(terms)
        out = dots + "".join(sorted(c for c in set(counts) - set(dots) if counts.count(c) == 1))
    else:
        if "..." not in out and ellipsis_rank:
            raise UnfoldValueError(f"einsum {subscripts!r}: the operands' '...' stand for "
                                   f"{ellipsis_rank} axes, so the output must have '...' too")
        out = out.replace("...", dots)
        for c in out:
            if out.count(c) > 1:
                raise UnfoldValueError(f"einsum {subscripts!r}: the output repeats index {c!r}")
            if c not in letters and c not in dots:
                raise UnfoldValueError(f"einsum {subscripts!r}: the output index {c!r} is not "
                                       f"in any operand")
    for term, x in zip(terms, nodes):
        for c in set(term):
            if term.count(c) > 1 and len({d for e, d in zip(term, x.shape) if e == c}) > 1:
                raise ShapeError(f"einsum {subscripts!r}: index {c!r} repeats in {term!r} (a "
                                 f"diagonal) but the axes of {describe(x)} it names differ")
    spec = ",".join(terms) + "->" + out
    sizes = _sizes(terms, nodes)
    for term, x in zip(terms, nodes):
        for c in set(term):
            if term.count(c) > 1 and sizes[c] != x.shape[term.index(c)]:
                raise ShapeError(f"einsum {subscripts!r}: index {c!r} names a diagonal of "
                                 f"{describe(x)}, so it cannot be broadcast from size "
                                 f"{x.shape[term.index(c)]} to {sizes[c]}")
    # its gradient may need a letter per repeated index, and a batch one more letter
    needed = len(set(spec) - set(",->")) + max(len(t) - len(set(t)) for t in terms) + 1
    if needed > len(_LETTERS):
        raise UnfoldValueError(f"einsum {subscripts!r}: too many indices ({needed} letters "
                               f"needed with the gradient's and the batch's, 52 exist)")
    return spec
