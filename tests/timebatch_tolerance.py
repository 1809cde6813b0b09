"""How close the time-batched evaluation must come to the per-node reference.

The compiler reassociates sums: ``∇W = Σ_t ∇W(t)`` as one GEMM over stacked steps, a gradient's
parts added in another order. Rounding then differs by a few units in the last place of the
*terms* summed, not of the result: when the terms cancel (a gradient of 1.4e-4 summed from
terms of 0.4), a difference of 2e-16 is 1.4e-12 of the result but 5e-16 of the terms. So each
output is compared relative to its scale — the largest of ``|reference|`` and ``Σ |term|``
over the terms of the sum it is (the leaves of its tree of additions and subtractions in the
graph, evaluated by the reference): the condition of the summation, as in the classic bound
``|fl(Σ x_i) − Σ x_i| ≤ γ_n Σ |x_i|``. A reduction in that tree (``sum``, ``sum_like``,
``batch_sum``: the batch and broadcast sums of a gradient) is a sum too: its terms are its
input's elements' terms, all summed (a bound for each of its elements; the fuzz of
tests/test_fuzz_models.py met a memory network's ∇b = sum_like(g) of 1.5e-5, 2.5e-17 apart).
An output that is no sum has the scale ``|reference|``.

    |compiled − reference| ≤ rtol · max(max |reference|, max Σ |term|)    (norm-wise)
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume

import unfold as uf
from unfold.timebatch import lower
from unfold.ops.base import ALIAS, SUM_LIKE
from unfold.ops.elementwise import ADD, ADD_N, SUB
from unfold.ops.reduce import BATCH_SUM, SUM

SUMS = (ADD, ADD_N, SUB)
#: reductions whose terms are their (first) input's elements
REDUCTIONS = (SUM, SUM_LIKE, BATCH_SUM)


def terms(node) -> list:
    """The terms of the sum ``node`` is (itself when it is none): the leaves of its tree of
    additions and subtractions, through aliases."""
    out, stack, seen = [], [node], set()
    while stack:
        x = stack.pop()
        if id(x) in seen:
            out.append(x)                     # (a term read twice counts twice)
            continue
        seen.add(id(x))
        if x.op is ALIAS or x.op in SUMS:
            stack.extend(x.inputs)
        else:
            out.append(x)
    return out


def _magnitude(node, shape: tuple, feed: dict) -> np.ndarray:
    """Σ |term| for each element of ``node`` (its value of ``shape``) over the terms of the sum it
    is; a term that is a reduction counts the magnitudes of its input's terms, all summed (an
    upper bound for each element of the reduction)."""
    leaves = terms(node)
    magnitude = np.zeros(shape)
    for leaf, v in zip(leaves, uf.evaluate(leaves, feed, mode="reference")):
        if leaf.op in REDUCTIONS:
            inner = leaf.inputs[0]
            u = uf.evaluate([inner], feed, mode="reference")[0]
            v = np.full(np.shape(v), float(np.sum(_magnitude(inner, u.shape, feed))))
        try:
            magnitude = magnitude + np.abs(np.broadcast_to(v, shape))
        except ValueError:                    # (a term broadcast the other way: not counted)
            continue
    return magnitude


def _sum_scale(node, b: np.ndarray, feed: dict) -> float:
    """max Σ |term| over the terms of the sum ``node`` is (0 when it is none)."""
    leaves = terms(node)
    if len(leaves) < 2 and leaves[0].op not in REDUCTIONS:
        return 0.0
    magnitude = _magnitude(node, b.shape, feed)
    return float(np.max(magnitude)) if magnitude.size else 0.0


def assert_agree(outputs, got: list, want: list, feed: dict, rtol: float = 1e-12) -> None:
    """Compiled ``got`` and reference ``want`` agree within ``rtol`` of each output's scale
    (the terms of a sum are evaluated only for an output that misses ``rtol · max |want|``)."""
    for node, a, b in zip(outputs, got, want):
        assert a.shape == b.shape and a.dtype == b.dtype, node
        err = float(np.max(np.abs(a - b))) if b.size else 0.0
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        if err > rtol * max(scale, 1e-300) and err != 0:
            scale = max(scale, _sum_scale(node, b, feed))
        assert err <= rtol * max(scale, 1e-300) or err == 0, \
            f"{node.label}: |compiled − reference| = {err:.3g}, scale {scale:.3g}"


def compiled_and_reference(outputs, feed: dict, loops: bool = False) -> tuple[list, list]:
    """``outputs`` by a compiled program (after a first call on other values, so that the second
    reuses the cached plan) and by the per-node reference; the compiler must have batched the
    graph, and cases whose reference overflows are discarded. With ``loops`` every recurrent
    core of two steps or more runs as a loop (``lower.LOOP_STEPS = 2``)."""
    with pytest.MonkeyPatch.context() as mp:
        if loops:
            mp.setattr(lower, "LOOP_STEPS", 2)
        program = uf.compile(outputs)
        program({k: v * v.dtype.type(0.9) if v.dtype.kind == "f" and k != "mask" else v
                 for k, v in feed.items()})
        got = program(feed)
    assert any(p is not None for p in program._batched_plans.values()), \
        "the time-batched compiler gave up on this graph"
    want = uf.evaluate(outputs, feed, mode="reference")
    assume(all(np.all(np.isfinite(w)) and np.all(np.abs(w) < 1e8) for w in want))
    return got, want
