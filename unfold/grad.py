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
from . import graph
from .graph import (MANY, _NO_ATTRS, _PLAIN_META, Node, Tagged, Walked, _adjoint_of, _key_of,
                    _make, _needed, gc_paused, meta, topological, walk)
from .ops import add, constant, lift, sum_like
from .ops.elementwise import ADD
from .ops.base import ALIAS, CONSTANT, broadcast_like, fit
from .timebatch.flat import Constants, Periods, generated


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
        if node is None:
            continue
        b = node._b
        if b is not MANY:               # (one input or two, unrolled)
            a = node._a
            j = top - (a._key >> 1)
            if order[j if j < dense else far[a]] is not a:
                if b is None:
                    if node not in wanted:      # (a target stays, whatever it reads)
                        order[k] = None
                else:
                    j = top - (b._key >> 1)
                    if order[j if j < dense else far[b]] is not b and node not in wanted:
                        order[k] = None
            continue
        for i in node._a:
            j = top - (i._key >> 1)
            if order[j if j < dense else far[i]] is i:
                break
        else:
            if node not in wanted:
                order[k] = None
    on_path = Walked(order, top, far)

    # ∂y/∂node so far (only nodes on the path ever enter); each term is added as soon as it is
    # built (an accumulation chain ((t₁ + t₂) + t₃) + …), so ∇W = Σ_t ∇W(t) never holds all τ
    # terms at once
    pending: dict[Node, Node] = {y: seed} if order and order[0] is y else {}
    found: dict[Node, Node] = {}
    enter, leave = _adjoint_of.append, _adjoint_of.pop
    pop, get = pending.pop, pending.get
    size = len(order)
    _needed.append(on_path)
    stamps = _Stamps(order, top, far, pending, wanted, found)
    try:
        # (written for speed: it runs once per node of the graph)
        watch, note = stamps.watch, stamps.note
        run, next_at, span, period, recording = None, -1, 0, 0, False
        k = 0
        while k < size:                 # last built first
            if k == next_at:            # a period alike the recorded one: stamped
                if k + span <= size:
                    m = run(k)
                    k += m
                    if m == span:
                        next_at += period
                        continue
                run, next_at = stamps.missed()
                if k >= size:
                    break
            node = order[k]
            k += 1
            g = None if node is None else pop(node, None)
            if g is None:
                if recording:
                    recording = note(_SKIP)
                    if not recording:
                        run, next_at, span, period = stamps.stamped()
                continue
            if recording:
                recorded = _Recording(stamps, node, g)
            elif run is None:
                recorded = watch(node, g, k - 1)
                recording = recorded is not None
            else:
                recorded = None
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
                terms = ()
            for x, term in zip(inputs, terms):
                if term is None:
                    continue
                j = top - (x._key >> 1)                              # x on the path?
                if j >= dense:
                    j = far.get(x, -1)
                if j < 0 or order[j] is not x or x._meta.dtype.kind != "f":
                    continue
                if term.shape != x.shape or term._key & ~x._key & 1:
                    enter(node)
                    term = fit(term, x)
                    leave()
                before = get(x)
                pending[x] = term if before is None else added(before, term, node)
            if recorded is not None:
                recording = note(recorded.entry(node, inputs))
                if not recording:
                    run, next_at, span, period = stamps.stamped()
    finally:
        del _adjoint_of[1:]
        _needed.pop()
    unreached = [x for x in targets if x not in found]
    if unreached:                     # (rare: walk again rather than keep the order alive)
        _refuse_folded(unreached, topological([y]))
    return [_finish(found.get(x), x) for x in targets]


def added(a: Node, b: Node, at: Any) -> Node:
    """``a + b`` — two terms of one sum (a gradient, an unfolding's total loss), most often of
    one shape and dtype: then made directly, as ``add`` would make it, with ``at`` its stored
    step or adjoint (``graph.at``: while differentiating node n, n)."""
    am, bm = a._meta, b._meta
    dtype, shape = am.dtype, am.shape
    if shape is bm.shape and dtype is bm.dtype and dtype.kind == "f":
        m = _PLAIN_META.get((dtype, shape))
        return _make(ADD, (a, b), meta(None, _NO_ATTRS, None, dtype, shape) if m is None else m,
                     at, (a._key | b._key) & 1)
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


# --- stamping: the gradient of an unfolded graph, one period at a time ---------------------------
#
# An unfolded graph repeats one step's nodes τ times, so reverse mode does the same work τ
# times: a copy's vjp builds the same nodes as its copy one step later, from inputs alike. The
# loop therefore records what one node's processing built — its new nodes (op, inputs as roles:
# the node, its inputs, g, the terms already pending; shape, Meta, batch flag) and what it left
# pending — and, for the node one period later, checks that everything the processing reads is
# alike (op, Meta, shape and batch flag of the node, of g, of each input and its being on the
# path, of each pending term it adds to) and then builds the same nodes with ``_make`` alone,
# in the same order: the graph is the one the vjps would have built. Anything else — a node
# that is not alike, a vjp reaching beyond its node's inputs — takes the ordinary path.

#: whether ``grad`` stamps repeated nodes (False: every node through its op's vjp, the reference;
#: the longest period and the most periods looked for are flat's)
STAMP = True
_UNTOUCHED = object()          # an input whose pending term the node leaves as it is
_SKIP = "skip"                 # a position without a node, or whose node has no gradient


class _Stamps(Periods):
    """The period, the template and its function of the loop in ``_backward`` (see above): a
    node is watched by its Meta; its recording is a ``_Recording``."""

    __slots__ = ("order", "top", "far", "dense", "pending")

    def __init__(self, order, top, far, pending, wanted, found) -> None:
        self.order, self.top, self.far, self.dense = order, top, far, len(order) - len(far)
        self.pending = pending
        super().__init__({"new": graph._object_new, "Filling": graph._Filling, "Node": Node,
                          "key": graph._keys.__next__, "MANY": MANY, "ORDER": order,
                          "TOP": top, "SIZE": len(order), "DENSE": self.dense, "FAR": far,
                          "get": pending.get, "pop": pending.pop, "pending": pending,
                          "WANTED": wanted, "FOUND": found}, STAMP)

    def watch(self, node: Node, g: Node, k: int):
        """The recording of ``node``'s processing when it starts a period (else None)."""
        if not self.left:
            return None
        m = node._meta
        if node._at.__class__ is not int or m.source is None:
            return None
        return _Recording(self, node, g) if self.found(m, node._at, k) else None

    def compile(self, entries: list):
        return _run(entries, self.names)

    def stamped(self) -> tuple:
        """The period's function, where it runs first, its span and the period."""
        return self.run, self.next_at, self.span, self.period


class _Recording:
    """One node's ordinary processing, watched: ``entry`` gives its template entry."""

    __slots__ = ("stamps", "g", "befores", "mark")

    def __init__(self, stamps: _Stamps, node: Node, g: Node) -> None:
        self.stamps, self.g = stamps, g
        get = stamps.pending.get
        self.befores = [get(x) for x in node.inputs]
        self.mark = graph.next_key()

    def entry(self, node: Node, inputs: tuple):
        """The template entry (False when the processing cannot be replayed)."""
        entry = self._entry(node, inputs)
        return False if entry is None else entry

    def _entry(self, node: Node, inputs: tuple) -> tuple | None:
        """The template entry, or None when the processing cannot be replayed."""
        s, g, n = self.stamps, self.g, len(inputs)
        if n > 3 or node._at.__class__ is Tagged:
            return None
        get = s.pending.get
        afters = [get(x) for x in inputs]
        updated = [afters[i] is not self.befores[i] for i in range(n)]
        env = [node, g, *inputs] + [self.befores[i] if updated[i] else None for i in range(n)]
        where: dict[int, int] = {}
        for e, x in enumerate(env):
            if x is not None:
                if id(x) in where:          # one node in two roles: not told apart
                    return None
                where[id(x)] = e
        # the nodes built: reached from the new pending terms, newer than the mark
        fixed, created, stack = [], [], [afters[i] for i in range(n) if updated[i]]
        while stack:
            x = stack.pop()
            if id(x) in where:
                continue
            if x._b is MANY and not x._a:
                if x.op is not CONSTANT:
                    return None
                where[id(x)] = None
                fixed.append(x)
            elif x._key < self.mark or x.__class__ is not Node or x._at is not node:
                return None                 # (reached beyond its node's inputs)
            else:
                where[id(x)] = None
                created.append(x)
                stack.extend(x.inputs)
        base = len(env)
        for i, x in enumerate(fixed):
            where[id(x)] = base + i
        created.sort(key=_key_of)
        base += len(fixed)
        for i, x in enumerate(created):
            where[id(x)] = base + i
        order, top, dense, far = s.order, s.top, s.dense, s.far
        props = []
        for x in inputs:
            k = top - (x._key >> 1)
            on_path = (order[k] if 0 <= k < dense else order[far.get(x, -1)]) is x
            props.append((x.op, x._meta, x.shape, x._key & 1, on_path))
        befores = []
        for i, x in enumerate(inputs):
            before = self.befores[i]
            befores.append(_UNTOUCHED if not updated[i] else None if before is None else
                           (before._meta, before.shape, before._key & 1))
        return (node.op, node._meta, node.shape, node._key & 1, node._at.__class__, g.op,
                g._meta, g.shape, g._key & 1, tuple(props), tuple(befores), tuple(fixed),
                tuple((c.op, tuple([where[id(i)] for i in c.inputs]), c.shape, c._meta,
                       c._key & 1) for c in created),
                tuple((i, where[id(afters[i])]) for i in range(n) if updated[i]), g,
                tuple(created), tuple(self.befores))


def _run(entries: list, names: dict):
    """The function ``run(k) -> m`` of a period: for the positions ``k, k + 1, …`` of the order
    it checks that each node (and its g, inputs and pending terms) is alike the recorded one
    and, if so, builds the recorded nodes and pending terms for it; it returns how many
    positions it took (a position not alike is left as it was)."""
    const = Constants()
    code = ["def run(k):"]
    wanted = {id(x._meta) for x in names["WANTED"]}
    made: dict[int, str] = {}         # id of a node built by an earlier entry → its variable
    for j, e in enumerate(entries):
        code.append(f"    node = ORDER[k + {j}]")
        if e is _SKIP:
            code.append(f"    if node is not None and node in pending:\n        return {j}")
            continue
        code.append(f"    if node is None:\n        return {j}\n"
                    f"    g = pop(node, None)\n    if g is None:\n        return {j}")
        code.append(_stamp(e, const, f"        pending[node] = g\n        return {j}",
                           not names["FAR"], wanted, j, made))
        made.update((id(c), f"c{j}_{m}") for m, c in enumerate(e[-2]))
    code.append(f"    return {len(entries)}\n")
    return generated(code, names, const)


def _stamp(entry: tuple, const, fail: str, dense: bool, wanted: set[int], j: int,
           made: dict[int, str]) -> str:
    """The code of entry ``j`` of a template: checks that ``node`` and ``g`` are alike the
    recorded ones (``fail`` if not, having built nothing), then builds the recorded nodes and
    pending terms for them. ``dense``: the walk set no node apart (every input of a node of the
    graph is then at ``TOP − serial``, inside the order). ``wanted``: the ids of the targets'
    Metas (a node of another Meta is no target: it is not looked up). ``made``: the variables
    of the nodes earlier entries built, by id — a recorded g or pending term that was one of
    them is known alike when it is that variable's node."""
    (op, meta, shape, flag, at_class, gop, gmeta, gshape, gflag, props, befores, fixed,
     created, updates, g_was, _, befores_were) = entry
    n = len(props)
    g_made = made.get(id(g_was))

    def alike(x: str, xop, xmeta, xflag) -> str:                # (a Meta holds the shape)
        return (f"    if {x}.op is not {const(xop)} or {x}._meta is not {const(xmeta)} or "
                f"{x}._key & 1 != {xflag}:\n{fail}\n")

    code = alike("node", op, meta, flag) + \
        f"    if node._at.__class__ is not {const(at_class)}:\n{fail}\n"
    if g_made is None:
        code += alike("g", gop, gmeta, gflag)
    else:                   # (built alike by this very run: most often it is)
        code += (f"    if g is not {g_made} and (g.op is not {const(gop)} or g._meta is not "
                 f"{const(gmeta)} or g._key & 1 != {gflag}):\n{fail}\n")
    xs = [f"x{i}" for i in range(n)]
    if n == 0:
        code += f"    if node._b is not MANY or node._a:\n{fail}\n"
    elif n == 1:
        code += f"    if node._b is not None:\n{fail}\n    x0 = node._a\n"
    elif n == 2:
        code += (f"    x1 = node._b\n    if x1 is None or x1 is MANY:\n{fail}\n"
                 f"    x0 = node._a\n    if x0 is x1:\n{fail}\n")
    else:
        code += (f"    if node._b is not MANY or len(node._a) != 3:\n{fail}\n"
                 f"    x0, x1, x2 = node._a\n"
                 f"    if x0 is x1 or x0 is x2 or x1 is x2:\n{fail}\n")
    for x, (xop, xmeta, xshape, xflag, on_path) in zip(xs, props):
        code += alike(x, xop, xmeta, xflag)
        if dense:
            code += f"    if ORDER[TOP - ({x}._key >> 1)] is {'not ' if on_path else ''}{x}:\n{fail}\n"
        else:
            code += (f"    i = TOP - ({x}._key >> 1)\n"
                     f"    if {'not ' if on_path else ''}((ORDER[i] if 0 <= i < DENSE else "
                     f"ORDER[FAR.get({x}, -1)]) is {x}):\n"
                     f"{fail}\n")
    bs = []
    for i, (x, bp) in enumerate(zip(xs, befores)):
        if bp is _UNTOUCHED:
            bs.append("None")
            continue
        bs.append(f"b{i}")
        code += f"    b{i} = get({x})\n"
        if bp is None:
            code += f"    if b{i} is not None:\n{fail}\n"
        else:
            was = made.get(id(befores_were[i]))
            known = "" if was is None else f"b{i} is not {was} and "
            code += (f"    if {known}(b{i} is None or b{i}._meta is not {const(bp[0])} or "
                     f"b{i}._key & 1 != {bp[2]}):\n{fail}\n")
    if id(meta) in wanted:
        code += "    if node in WANTED:\n        FOUND[node] = g\n"
    env = ["node", "g", *xs, *bs] + [const(f) for f in fixed]
    for m, (cop, refs, cshape, cmeta, cflag) in enumerate(created):
        # (``_make``, inlined)
        ins = [env[r] for r in refs]
        a, b = (ins[0], "None") if len(ins) == 1 else ins if len(ins) == 2 else \
            ("(" + ", ".join(ins) + ")", "MANY")
        c = f"c{j}_{m}"
        code += (f"    {c} = new(Filling)\n    {c}.op = {const(cop)}\n    {c}._a = {a}\n"
                 f"    {c}._b = {b}\n    {c}._meta = {const(cmeta)}\n    {c}._at = node\n"
                 f"    {c}._key = key() + {cflag}\n    {c}.__class__ = Node\n")
        env.append(c)
    for i, e in updates:
        code += f"    pending[{xs[i]}] = {env[e]}\n"
    return code.rstrip("\n")
