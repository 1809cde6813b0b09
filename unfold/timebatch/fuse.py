"""Fuse: patterns of classes that run as one kernel, in the passes a careful person would write.

Found on the grouping (before lowering), each fusion names the classes it computes; lowering
emits its kernel once, at the first unit of those that read its inputs, and nothing for the
others.

* **softmax cross-entropy.** A cross-entropy loss differentiated by ``grad`` reads its logits
  ``o`` and targets ``y``; its VJP is one node, ``cross_entropy_grad(g, o, y) = g ⊙ (softmax(o) −
  1_y)``. The two classes become one kernel (``kernels.softmax_cross_entropy``) writing the loss
  and ``softmax(o) − 1_y`` — the log-softmax and the softmax are never stored apart, the one-hot
  never built — and one product by ``g`` where the gradient's unit runs (``g`` is known there).
"""
from __future__ import annotations

from .distribute import Unit
from .group import Grouping
from ..ops.nn import CROSS_ENTROPY, CROSS_ENTROPY_GRAD


class SoftmaxCrossEntropy:
    """The classes (ids): ``loss`` (cross-entropy) and ``grad`` (``cross_entropy_grad``)."""

    __slots__ = ("loss", "grad")

    def __init__(self, loss, grad) -> None:
        self.loss, self.grad = loss, grad

    @property
    def classes(self) -> tuple:
        return (self.loss, self.grad)

    @property
    def first(self) -> tuple:
        """The classes whose units may run the kernel: those reading the logits."""
        return (self.loss, self.grad)


def softmax_cross_entropy(g: Grouping, units: list[Unit]) -> list[SoftmaxCrossEntropy]:
    """The softmax cross-entropy fusions among the classes run as one op (vector units)."""
    values = g.values
    vector = {u.classes[0].id for u in units if u.kind == "vector"}

    def plain(c) -> bool:
        """Regular at every index lo…hi, a vector unit, no output, stored as a slab."""
        return c.id in vector and not c.peeled and c.runs == [(c.lo, c.hi)] and \
            c.id not in g.kept and c.reduction is None and not c.absorbed and not c.fed

    grads = {}
    for k in vector:
        c = values[k]
        if c.rep.op is CROSS_ENTROPY_GRAD and plain(c):
            grads.setdefault((c.desc[1:], c.rep.attrs["axis"]), []).append(c)
    out = []
    for ce in (values[k] for k in vector):
        if ce.rep.op is not CROSS_ENTROPY or not plain(ce) or ce.desc[0][0] != "c" or \
                ce.desc[1][0] != "c" or ce.desc[0][2] != 0 or ce.desc[1][2] != 0:
            continue
        logits, targets = ce.desc
        axis = ce.rep.attrs["axis"]
        if not values[targets[1]].fed or axis != ce.rep.inputs[0].ndim - 1:
            continue                                # fed targets, classes on the last axis
        found = grads.get((ce.desc, axis), ())
        if len(found) != 1:
            continue
        grad = found[0]
        if (grad.lo, grad.hi, grad.batched) != (ce.lo, ce.hi, ce.batched) or \
                grad.rep.dtype != ce.rep.dtype:
            continue
        out.append(SoftmaxCrossEntropy(ce.id, grad.id))
    return out
