"""Fuse: patterns of classes that run as one kernel, in the passes a careful person would write.

Found on the grouping (before lowering), each fusion names the classes it computes; lowering
emits its kernel once, at the first unit of those that read its inputs, and nothing for the
others.

* **softmax cross-entropy.** A cross-entropy loss differentiated by ``grad`` reads its logits
  ``o`` and targets ``y``; its VJP builds ``exp(log_softmax(o)) − one_hot(y)``. When the
  log-softmax, the softmax and the one-hot are read by nothing else, the five classes become one
  kernel (``kernels.softmax_cross_entropy``) writing the loss and ``softmax(o) − 1_y`` — the
  log-softmax and the softmax are never stored apart, the one-hot never built.
"""
from __future__ import annotations

from .distribute import Unit
from .group import Grouping
from ..ops.elementwise import EXP, SUB
from ..ops.nn import CROSS_ENTROPY, LOG_SOFTMAX, ONE_HOT


class SoftmaxCrossEntropy:
    """The classes (ids): ``loss`` (cross-entropy), ``log_softmax``, ``softmax`` (its exp),
    ``hot`` (the one-hot of the targets) and ``grad`` (softmax − one-hot)."""

    __slots__ = ("loss", "log_softmax", "softmax", "hot", "grad")

    def __init__(self, loss, log_softmax, softmax, hot, grad) -> None:
        self.loss, self.log_softmax, self.softmax = loss, log_softmax, softmax
        self.hot, self.grad = hot, grad

    @property
    def classes(self) -> tuple:
        return (self.loss, self.log_softmax, self.softmax, self.hot, self.grad)

    @property
    def first(self) -> tuple:
        """The classes whose units may run the kernel: those reading the logits."""
        return (self.loss, self.log_softmax)


def softmax_cross_entropy(g: Grouping, units: list[Unit]) -> list[SoftmaxCrossEntropy]:
    """The softmax cross-entropy fusions among the classes run as one op (vector units)."""
    values = g.values
    vector = {u.classes[0].id for u in units if u.kind == "vector"}

    def plain(c) -> bool:
        """Regular at every index lo…hi, a vector unit, no output, stored as a slab."""
        return c.id in vector and not c.peeled and c.runs == [(c.lo, c.hi)] and \
            c.id not in g.kept and c.reduction is None and not c.absorbed and not c.fed

    def sole_reader(c):
        """The class reading every member of ``c`` at its own index, if it is the only reader."""
        readers = g.readers.get(c.id, ())
        if len(readers) != 1:
            return None
        part, e = readers[0]
        if not hasattr(part, "cls") or not part.regular or part.cls.peeled or \
                e != ("c", c.id, 0):
            return None
        return part.cls

    out = []
    for ce in (values[k] for k in vector):
        if ce.rep.op is not CROSS_ENTROPY or not plain(ce) or ce.desc[0][0] != "c" or \
                ce.desc[1][0] != "c" or ce.desc[0][2] != 0 or ce.desc[1][2] != 0:
            continue
        logits, targets = ce.desc
        axis = ce.rep.attrs["axis"]
        if not values[targets[1]].fed or axis != ce.rep.inputs[0].ndim - 1:
            continue                                # fed targets, classes on the last axis
        ls = [values[k] for k in vector if values[k].rep.op is LOG_SOFTMAX and
              values[k].desc == (logits,) and values[k].rep.attrs["axis"] == axis]
        if len(ls) != 1 or not plain(ls[0]):
            continue
        sm = sole_reader(ls[0])
        if sm is None or sm.rep.op is not EXP or not plain(sm):
            continue
        sub = sole_reader(sm)
        if sub is None or sub.rep.op is not SUB or not plain(sub) or sub.desc[0] != \
                ("c", sm.id, 0) or sub.desc[1][0] != "c" or sub.desc[1][2] != 0:
            continue
        hot = values[sub.desc[1][1]]
        if hot.rep.op is not ONE_HOT or not plain(hot) or hot.desc != (targets,) or \
                sole_reader(hot) is not sub:
            continue
        group = (ce, ls[0], sm, hot, sub)
        if any((c.lo, c.hi, c.batched) != (ce.lo, ce.hi, ce.batched) for c in group) or \
                any(c.rep.shape != ce.rep.inputs[0].shape for c in group[1:]) or \
                any(c.rep.dtype != ce.rep.dtype for c in (ls[0], sm, sub)):
            continue
        out.append(SoftmaxCrossEntropy(*(c.id for c in group)))
    return out
