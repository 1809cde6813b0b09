"""The graph as the time-batching compiler sees it, for one pattern of batched feeds: every
position's value is that of a *root* (aliases — dummy copies ``W(t)``, names, ``stop_gradient``
and ops that are the identity for these batch flags — share their input's value), each root's
inputs as root positions, and which roots carry the batch."""
from __future__ import annotations

from typing import Sequence

from ..graph import Node, Op
from ..ops.base import ALIAS, CONSTANT, is_placeholder
import numpy as np

from ..ops.elementwise import ADD, DIV, MUL, SUB


class Flat:
    def __init__(self, order: Sequence[Node], positions: Sequence[tuple[int, ...]],
                 placeholders: Sequence[Node], outputs: Sequence[int],
                 signature: Sequence[bool], batch: int | None,
                 position: dict[Node, int] | None = None) -> None:
        self.order = order
        n = len(order)
        self.position = position if position is not None else \
            {node: i for i, node in enumerate(order)}
        fed = {self.position[p]: flag for p, flag in zip(placeholders, signature)}
        root = list(range(n))
        index: list = [None] * n
        batched = [False] * n
        inputs: list[tuple[int, ...]] = [()] * n
        computed = [False] * n
        #: values known when planning: constants, and nodes computed from constants only
        value: dict[int, np.ndarray] = {}
        for i, node in enumerate(order):
            ins = tuple([root[j] for j in positions[i]])
            inputs[i] = ins
            op = node.op
            # the index of a node: its step, or the largest index of its inputs
            t = node.step
            if t is None:
                for r in ins:
                    u = index[r]
                    if u is not None and (t is None or u > t):
                        t = u
            index[i] = t
            if i in fed:
                batched[i] = fed[i]
                continue
            if not node.inputs:
                if op is CONSTANT:
                    value[i] = node.attrs["value"]
                continue
            flags = tuple([batched[j] for j in ins])
            if True in flags:
                batched[i] = op.out_batched(node, flags)
            if op is ALIAS or (type(op).is_identity is not Op.is_identity and
                               op.is_identity(node, flags)):
                root[i] = ins[0]
                batched[i] = batched[ins[0]]
                continue
            if op in _NEUTRAL and value:
                same = _neutral(node, ins, batched, value)
                if same is not None:                     # x · 1, x + 0: the value of x
                    root[i] = same
                    batched[i] = batched[same]
                    continue
            meta = op.meta_inputs
            if all(j in meta or r in value for j, r in enumerate(ins)):
                folded = _fold(node, ins, flags, batch, value)
                if folded is not None:
                    value[i] = folded
                    continue
            computed[i] = True
        self.root, self.inputs, self.batched, self.computed = root, inputs, batched, computed
        self.index = index
        self.rewritten: set[int] = set()       # positions whose value is no longer their node's
        #: a topological order of the positions (their own order, until ``reassociate``)
        self.rank: list[float] = list(range(n))
        self.fed = fed
        self.value = value
        #: roots that hold a value: computed nodes and fed placeholders
        self.stored = [computed[i] or i in fed for i in range(n)]
        self.outputs = [root[j] for j in outputs]
        self.kept = set(self.outputs)
        readers = [0] * n
        for i in range(n):
            if computed[i]:
                meta = order[i].op.meta_inputs
                for j, r in enumerate(inputs[i]):
                    if j not in meta:
                        readers[r] += 1
        for r in self.outputs:
            readers[r] += 1
        self.readers = readers

    def reassociate(self, cyclic: dict[int, int]) -> bool:
        """Move work off the recurrent path: ``(p ∘ q) ∘ x`` becomes ``q ∘ (p ∘ x)`` for ``∘`` an
        addition or a multiplication when only ``q`` is on its recurrent cycle (``cyclic`` maps
        the positions on cycles to their cycle), so that
        ``p ∘ x`` runs for all steps at once. ``b + W h(t−1) + U x(t)`` becomes
        ``W h(t−1) + (b + U x(t))``; the LSTM's ``(∂h · tanh s) · σ'(o)`` becomes
        ``∂h · (tanh s · σ'(o))``. Exact up to rounding (≈1e-16). Returns whether it changed
        anything."""
        order, inputs = self.order, self.inputs
        changed = False
        for i in sorted(cyclic):
            op = order[i].op
            k = cyclic.get(i)
            if (op is not ADD and op is not MUL) or not self.computed[i] or k is None:
                continue
            for side in (0, 1):
                a, x = inputs[i][side], inputs[i][1 - side]
                if order[a].op is not op or cyclic.get(a) != k or not self.computed[a] or \
                        self.readers[a] != 1 or a in self.kept or cyclic.get(x) == k:
                    continue
                p, q = inputs[a]
                if (cyclic.get(p) == k) == (cyclic.get(q) == k):
                    continue
                if cyclic.get(p) == k:
                    p, q = q, p
                shape = order[i].shape
                if not (order[a].shape == order[p].shape == order[q].shape == order[x].shape ==
                        shape):
                    continue
                inputs[a] = (p, x)
                inputs[i] = (q, a)
                self.rewritten.add(a)
                # ``a`` now reads ``x``, perhaps built after it: it runs just after its inputs
                self.rank[a] = max(self.rank[p], self.rank[x]) + 1e-3
                self.batched[a] = self.batched[p] or self.batched[x]
                del cyclic[a]
                changed = True
                break
        return changed

    def flags(self, i: int) -> tuple[bool, ...]:
        return tuple([self.batched[r] for r in self.inputs[i]])


def _fold(node: Node, ins, flags, batch, value) -> np.ndarray | None:
    """``node`` computed when planning, from values known then (None if its op fails)."""
    meta = node.op.meta_inputs
    values = [None if j in meta else value[r] for j, r in enumerate(ins)]
    try:
        if True in flags:
            out = node.op.batched(node, values, flags, batch)
        else:
            out = node.op.forward(node, *values)
    except Exception:
        return None
    return np.asarray(out)


#: (kept operand, neutral value of the other) for ops with a neutral element
_NEUTRAL = {MUL: ((0, 1.0), (1, 1.0)), ADD: ((0, 0.0), (1, 0.0)), SUB: ((0, 0.0),),
            DIV: ((0, 1.0),)}


def _neutral(node: Node, ins, batched, value) -> int | None:
    """The input whose value ``node`` is, when its other operand is a neutral constant
    (``x · 1``, ``x + 0``, ``x − 0``, ``x / 1``) that changes neither shape nor batch."""
    for keep, neutral in _NEUTRAL[node.op]:
        other = ins[1 - keep]
        v = value.get(other)
        x = ins[keep]
        if v is None or batched[x] != (batched[x] or batched[other]):
            continue
        if node.inputs[keep].shape != node.shape or v.ndim > node.ndim + batched[x]:
            continue
        if np.all(v == neutral):
            return x
    return None
