"""Reverse mode: ``grad(y, wrt)`` builds the gradient graph of ``y``.

Walking the graph from ``y`` back to its leaves (section 10.2.2 of the book: "first the internal
nodes, then the parameters"), each node's gradient is the sum of what its users send it,

    ∇x y = Σ_{users u of x} (∂u/∂x)ᵀ ∇u y,

and each op's ``vjp`` writes its term with other ops. Gradients are therefore ordinary nodes: they
can be evaluated, drawn, and differentiated again (Hessian-vector products).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .errors import GradError, UnfoldTypeError, describe
from .graph import (MANY, _NO_ATTRS, _PLAIN_META, Node, Walked, _adjoint_of, _make, _needed,
                    gc_paused, meta, topological, walk)
from .ops import add, constant, lift, sum_like
from .ops.elementwise import ADD
from .ops.base import ALIAS, broadcast_like, fit


def grad(y: Node, wrt: Node | Sequence[Node], seed: Any = None) -> Any:
    """∂y/∂x for each node ``x`` of ``wrt`` (a node gives a node, a sequence a list).

    ``y`` must be a scalar unless a ``seed`` (∂L/∂y, of ``y``'s shape) is given; the result is
    then the vector-Jacobian product ``seedᵀ ∂y/∂x``. ``wrt`` may hold any nodes of the graph:
    parameters, inputs, or intermediate values such as a hidden state. A node that ``y`` does not
    depend on gets zeros of its shape.

    On a batch, ``y`` is per example: gradients of parameters (and anything shared by the
    examples) are summed over the batch, those of batched nodes stay per example.
    """
    single = isinstance(wrt, Node)
    if not single and (isinstance(wrt, (str, bytes)) or not hasattr(wrt, "__iter__")):
        raise UnfoldTypeError(f"grad: wrt must be a node or a list of nodes, got "
                              f"{type(wrt).__name__} {wrt!r}")
    targets = [wrt] if single else list(wrt)
    for x in targets:
        if not isinstance(x, Node):
            raise UnfoldTypeError(f"grad: wrt must hold nodes, got {type(x).__name__} {x!r}")
    if not isinstance(y, Node):
        raise UnfoldTypeError(f"grad: y must be a node, got {type(y).__name__} {y!r}")
    if y.dtype.kind != "f":
        raise GradError(f"grad: {describe(y)} is not floating-point; nothing to differentiate")
    seed = _seed(y, seed)
    with gc_paused():
        results = _backward(y, seed, targets)
    return results[0] if single else results


def _backward(y: Node, seed: Node, targets: list[Node]) -> list[Node]:
    wanted = set(targets)
    # the nodes through which y depends on a target: y's ancestors (a list indexed by serial
    # number, 8 bytes a node), without those that depend on no target — in creation order, a
    # node's inputs are settled before it
    order, top, _, _, far = walk([y])
    dense = len(order) - len(far)
    for k in range(len(order) - 1, -1, -1):
        node = order[k]
        if node is None or node in wanted:
            continue
        b = node._b
        for i in (node._a,) if b is None else node._a if b is MANY else (node._a, b):
            j = top - (i._key >> 1)
            if order[j if j < dense else far[i]] is i:
                break
        else:
            order[k] = None
    on_path = Walked(order, top, far)

    # ∂y/∂node so far (only nodes on the path ever enter); each term is added as soon as it is
    # built (an accumulation chain ((t₁ + t₂) + t₃) + …), so ∇W = Σ_t ∇W(t) never holds all τ
    # terms at once
    pending: dict[Node, Node] = {y: seed} if order and order[0] is y else {}
    found: dict[Node, Node] = {}
    enter, leave = _adjoint_of.append, _adjoint_of.pop
    pop, get = pending.pop, pending.get
    _needed.append(on_path)
    try:
        # (written for speed: it runs once per node of the graph)
        for node in order:              # last built first
            if node is None:
                continue
            g = pop(node, None)
            if g is None:
                continue
            if node in wanted:
                found[node] = g
            b = node._b
            inputs = (node._a,) if b is None else node._a if b is MANY else (node._a, b)
            op = node.op
            if op is ALIAS:             # (a dummy copy W(t), a name: g passes unchanged)
                terms = (g,)
            elif inputs and op.differentiable:
                enter(node)             # tag what is built here as part of node's adjoint
                terms = op.vjp(node, g)
                leave()
            else:
                continue
            for x, term in zip(inputs, terms):
                if term is None:
                    continue
                k = top - (x._key >> 1)                              # x on the path?
                if k >= dense:
                    k = far.get(x, -1)
                if k < 0 or order[k] is not x or x._meta.dtype.kind != "f":
                    continue
                if term.shape != x.shape or term._key & ~x._key & 1:
                    enter(node)
                    term = fit(term, x)
                    leave()
                before = get(x)
                pending[x] = term if before is None else _added(before, term, node)
    finally:
        del _adjoint_of[1:]
        _needed.pop()
    unreached = [x for x in targets if x not in found]
    if unreached:                     # (rare: walk again rather than keep the order alive)
        _refuse_folded(unreached, topological([y]))
    return [_finish(found.get(x), x) for x in targets]


def _added(a: Node, b: Node, node: Node) -> Node:
    """``a + b`` built while differentiating ``node``: two terms of one gradient, most often of
    one shape and dtype — then made directly, as ``add`` would make it."""
    dtype = a._meta.dtype
    if a.shape is b.shape and dtype is b._meta.dtype and dtype.kind == "f":
        m = _PLAIN_META.get(dtype)
        return _make(ADD, (a, b), a.shape, meta(None, _NO_ATTRS, None, dtype) if m is None else m,
                     node, (a._key | b._key) & 1)
    return add(a, b)


def _refuse_folded(targets: list[Node], order: list[Node]) -> None:
    """A node of a folded recurrence (the sequence ``x``, the state ``h``, a folded ``W h``) is
    not in its unfolded graph — its per-step copies are: say so, rather than answer zeros.
    (Checked only for targets that got no gradient.)"""
    in_graph = set(order)
    absent = {x for x in targets if x not in in_graph}
    if not absent:
        return
    copied = {n.source for n in order if n.source is not None and n.source in absent}
    for x in targets:
        if x in copied or (x in absent and x.op.name in ("state", "child") and not x.inputs):
            ref = repr(x.name) if x.name else "node"
            raise GradError(f"grad: {describe(x)} is a node of the folded recurrence; the "
                            f"unfolded graph holds its per-step copies instead. Differentiate "
                            f"with respect to net.over_time({ref}) (every step) or "
                            f"net.at({ref}, t) (step t); a parameter's total gradient "
                            f"Σ_t ∇W(t) is grad with respect to the parameter itself")


def _seed(y: Node, seed: Any) -> Node:
    if seed is None:
        if y.shape != ():
            raise GradError(f"grad: {describe(y)} is not a scalar; pass seed= (an array or node "
                            f"of shape {y.shape}, ∂L/∂y) to get a vector-Jacobian product, or "
                            f"reduce y first, e.g. unfold.sum(y)")
        seed = constant(np.ones((), y.dtype))
    else:
        seed = lift(seed, (y,))
        if seed.shape != y.shape:
            raise GradError(f"grad: the seed {describe(seed)} must have the shape of y, "
                            f"{describe(y)}")
        if seed.dtype != y.dtype:
            raise GradError(f"grad: the seed's dtype {seed.dtype} differs from y's {y.dtype}")
    # on a batch y is per example, and so is its seed: every example's y is differentiated,
    # and a shared node (a param) reached without passing a batched value (y = f(x) + ‖W‖²)
    # still gets the sum over the batch
    return broadcast_like(seed, y)


def _finish(g: Node | None, x: Node) -> Node:
    if x.dtype.kind != "f":
        raise GradError(f"grad: {describe(x)} is not floating-point and has no gradient")
    if g is None:
        g = constant(np.zeros(x.shape, x.dtype))
    # a batched x gets its gradient per example, even where that gradient is the same for all
    return sum_like(g, x) if x.may_batch else g
