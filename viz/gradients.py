"""What each node of a gradient graph means: ``∇h(3)``, ``∇W(2)``, ``∇W = Σ_t ∇W(t)``.

``unfold.grad`` builds reverse mode one forward node at a time (latest first): every node it
builds while differentiating forward node ``u`` records ``u`` as its ``adjoint``. The gradient
``∇x`` of a forward node ``x`` is then the node that ``x``'s own backward step reads, and that
the backward step of one of ``x``'s users built — so it can be read off the graph:

* ``∇x`` is an input of a node whose adjoint is ``x``, built in the backward step of a user of
  ``x`` (through identity aliases: ``h(t)`` names ``tanh(a)``, whose gradient is ``∇h(t)``);
* an alias whose backward step builds nothing (a name, a dummy copy on one example) has the
  gradient of what it names;
* a parameter's dummy copy ``W(t)`` contributes ``∇W(t)`` (summed over the batch) to the running
  sum ``∇W(τ) + ∇W(τ−1) + …``, whose last term is ``∇W = Σ_t ∇W(t)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable, Mapping

import numpy as np

from unfold.graph import Node
from unfold.ops.base import ALIAS, CONSTANT, PARAM

from .labels import OPS


@dataclass(frozen=True)
class Meaning:
    """A gradient node's meaning: the gradient of ``of`` (``kind="grad"``), the total of a
    parameter over its dummy copies (``"total"``), or a running part of that sum
    (``"partial"``)."""

    of: Node
    kind: str = "grad"
    name: str | None = None     # what ``of`` is called, if not its own name: an unnamed gate's
    #                             letter, a joined graph's qualified ``encoder.W``
    index: str = "t"            # what the copies are indexed by: time t, a tree position p

    @property
    def title(self) -> str | None:
        """The name of ``of`` as drawn (``name``, else its own), or None."""
        return self.name if self.name is not None else self.of.name

    @property
    def label(self) -> str:
        x = self.of
        name = self.title if self.title is not None else _unnamed(x)
        if self.kind == "total":
            return f"∇{name} = Σ_{self.index} ∇{name}({self.index})"
        if self.kind == "partial":
            return f"Σ ∇{name}({self.index})"
        if self.kind == "seed":
            return f"∇{name} = 1"
        return f"∇{name}" if x.step is None else f"∇{name}({x.step})"


def _unnamed(x: Node) -> str:
    """An unnamed value by its op and operands: ``(W @ ·)``, ``(· + b)``, ``tanh(·)`` (a
    name where the operand has one, a dot where not; ``∇matmul(1)`` said which op, not which
    of them)."""
    names = [i.name if i.name is not None else "·" for i in x.inputs]
    symbol = OPS.get(x.op.name)
    if symbol is not None and len(names) == 2:
        return f"({names[0]} {symbol} {names[1]})"
    return f"{symbol or x.op.name}({', '.join(names)})"


def _is_copy(node: Node) -> bool:
    return node.op is ALIAS and node.step is not None and node.inputs[0].op is PARAM


def meanings(forward: Iterable[Node], backward: Iterable[Node],
             names: Mapping[Node, str] = MappingProxyType({})) -> dict[Node, Meaning]:
    """The meaning of the gradient nodes of ``backward`` (inputs before users) with respect to
    the forward nodes ``forward``; nodes without a clear meaning are left out. ``names``: what
    forward nodes are called instead of their own names — an inline σ gate's letter
    (``viz.recovered.gate_names``: ``∇f(t)``, a named value in its own right), a joined graph's
    qualified parameters (``∇encoder.W(t)``)."""
    forward = list(forward)
    fset = set(forward)
    users: dict[Node, set[Node]] = {}          # (sets: == between nodes is element-wise)
    for node in forward:
        for i in node.inputs:
            users.setdefault(i, set()).add(node)
    block: dict[Node, list[Node]] = {}
    bset = set()
    for g in backward:
        bset.add(g)
        if g.adjoint in fset:
            block.setdefault(g.adjoint, []).append(g)

    def sends(u: Node | None, x: Node) -> bool:
        """Whether the backward step of ``u`` sends ``x`` its gradient: ``u`` reads ``x``, or
        reads a node that passes its gradient on unchanged (an alias naming ``x``, an add
        whose backward step builds nothing) and sends it to ``x``."""
        if u is None or u not in fset:
            return False
        stack, seen = [u], set()
        while stack:
            v = stack.pop()
            if v in seen:
                continue
            seen.add(v)
            for i in v.inputs:
                if i is x:
                    return True
                if i in fset and ((i.op is ALIAS and not _is_copy(i)) or not block.get(i)) \
                        and i.inputs:
                    stack.append(i)
        return False

    grad_of: dict[Node, Node] = {}
    seeds: set[Node] = set()
    for x, nodes in block.items():
        if _is_copy(x):
            continue
        inside = set(nodes)
        found = [i for n in nodes for i in n.inputs
                 if i in bset and i not in inside and sends(i.adjoint, x)]
        if not found:           # the seed ∂L/∂L = 1, made before any backward step
            found = [i for n in nodes for i in n.inputs if i in bset and i.op is CONSTANT and
                     i.shape == x.shape and bool(np.all(i.attrs["value"] == 1))]
            seeds.update(found)
        if found:
            same = [g for g in found if g.shape == x.shape] or found
            grad_of[x] = max(same, key=lambda g: g.serial)
    out: dict[Node, Meaning] = {}
    # a parameter's copies: the term each adds to the running sum, and the sum itself
    copy_of: dict[Node, Node] = {}          # a copy's contribution → the copy
    sums: dict[Node, list[Node]] = {}       # param → its running sums, in order
    firsts: dict[Node, list[Node]] = {}     # param → what the first running sum starts from
    for x in forward:
        if not _is_copy(x):
            continue
        param, nodes = x.inputs[0], block.get(x, [])
        mine = set(nodes)
        adds = [n for n in nodes if n.op.name == "add" and len(n.inputs) == 2 and
                all(i in bset for i in n.inputs)]
        if adds:
            acc = adds[-1]
            term = next((i for i in acc.inputs if i in mine or sends(i.adjoint, x)), None)
            sums.setdefault(param, []).append(acc)
            firsts.setdefault(param, []).extend(i for i in acc.inputs if i is not term)
        elif nodes:                          # the first contribution, brought to W's shape
            term = nodes[-1]
        else:                                # built by a user: known as the next sum's start
            term = None
        if term is not None:
            copy_of[term] = x
    for param, parts in sums.items():
        parts.sort(key=lambda n: n.serial)
        inner = set(parts)
        for start in firsts.get(param, ()):
            if start not in inner and start not in copy_of:
                sender = next((c for c in sorted(users.get(param, ()), key=lambda c: c.serial)
                               if sends(start.adjoint, c)), None)
                if sender is not None:
                    copy_of[start] = sender
        for p in parts[:-1]:
            out[p] = Meaning(param, "partial", names.get(param))
        out[parts[-1]] = Meaning(param, "total", names.get(param))
    for g, x in copy_of.items():
        out.setdefault(g, Meaning(x, name=names.get(x)))
    # an op whose backward step builds nothing (a name, an add) passes its gradient on as it
    # is: to an input it alone reads, whose gradient is then the same node
    for x in forward:
        if x in grad_of or _is_copy(x):
            continue
        for i in x.inputs:
            g = grad_of.get(i)
            if g is not None and g.adjoint is not x and len(users.get(i, ())) == 1:
                grad_of[x] = g
                break
    sinks = [x for x in forward if x not in users]
    for seed in seeds:
        out[seed] = Meaning(sinks[-1] if sinks else forward[-1], "seed")
    # named values first: the gradient of h(t) rather than of the tanh it names
    for x in forward:
        g = grad_of.get(x)
        if g is None:
            continue
        old = out.get(g)
        name = names.get(x, x.name)
        if old is None or (old.kind == "grad" and name is not None and
                           (old.title is None or old.of.op is not ALIAS)):
            out[g] = Meaning(x, name=names.get(x))
    return out
