"""Fuse: patterns of classes that run as one kernel, in the passes a careful person would write.

Found on the grouping (before lowering), each fusion names the classes it computes; lowering
then emits its kernel once, at the first of their units, and nothing for the others.

* **softmax cross-entropy.** A cross-entropy loss differentiated by ``grad`` reads its logits
  ``o``; its VJP builds ``exp(log_softmax(o)) − one_hot(y)``. When the log-softmax, the softmax
  and the one-hot are read by nothing else, the four classes become one kernel
  (``kernels.softmax_cross_entropy``) writing the loss and ``softmax(o) − 1_y`` — the
  log-softmax and the softmax are never stored apart.
"""
from __future__ import annotations

from .group import Grouping
from ..ops.elementwise import EXP
from ..ops.nn import CROSS_ENTROPY


class SoftmaxCrossEntropy:
    """Classes: ``loss`` (cross-entropy), ``log_softmax``, ``softmax`` (its exp) and ``grad``
    (softmax − one-hot)."""

    __slots__ = ("loss", "log_softmax", "softmax", "grad")

    def __init__(self, loss: int, log_softmax: int, softmax: int, grad: int) -> None:
        self.loss, self.log_softmax, self.softmax, self.grad = loss, log_softmax, softmax, grad

    @property
    def classes(self) -> tuple[int, int, int, int]:
        return (self.loss, self.log_softmax, self.softmax, self.grad)


def softmax_cross_entropy(g: Grouping, vector: set[int], pairs: dict[int, int],
                          minus_hot: dict[int, tuple]) -> list[SoftmaxCrossEntropy]:
    """The fusions of cross-entropy classes ``pairs`` (cross-entropy id → log-softmax id) with
    the softmax − one-hot classes ``minus_hot`` (subtraction id → (softmax id, one-hot id,
    targets)), among the classes run as one op (``vector``)."""
    flat = g.flat
    by_softmax = {p: (k, targets) for k, (p, _, targets) in minus_hot.items()}

    def alone(c) -> bool:
        """Every member of class ``c`` is read once (by the next class of the pattern, which
        reads each member at its own index) and is not an output."""
        return all(flat.readers[m] == 1 and m not in flat.kept for m in c.members)

    out = []
    for ce_id, ls_id in pairs.items():
        ce, ls = g.classes[ce_id], g.classes[ls_id]
        node = flat.order[ce.rep]
        logits = flat.order[ls.rep]
        axis = node.attrs["axis"]
        if axis != logits.ndim - 1 or ce.desc[1][0] != "c" or ce.rows != len(ce.members) or \
                flat.computed[g.classes[ce.desc[1][1]].rep]:
            continue                               # classes on the last axis, fed targets
        exps = [k for k in vector if g.classes[k].desc == (("c", ls_id, 0),) and
                flat.order[g.classes[k].rep].op is EXP]
        if len(exps) != 1:
            continue
        sm = g.classes[exps[0]]
        found = by_softmax.get(sm.id)
        if found is None:
            continue
        sub_id, targets = found
        sub = g.classes[sub_id]
        same = (ce, ls, sm, sub)
        if targets != ce.desc[1] or sub.desc[0] != ("c", sm.id, 0) or not alone(ls) or \
                not alone(sm) or \
                any(c.index != ce.index or not all(c.regular) or
                    flat.batched[c.rep] != flat.batched[ce.rep] for c in same) or \
                any(k not in vector for k in (ce_id, ls_id, sub_id)):
            continue
        out.append(SoftmaxCrossEntropy(ce_id, ls_id, sm.id, sub_id))
    return out
