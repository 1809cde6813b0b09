"""Recursive neural networks (section 10.6, Fig. 10.14): one set of weights combines children up a
tree.

A recurrent network unfolds one step over a chain of τ steps; a recursive network unfolds one
*node body* over a tree. ``Recursive`` is the folded graph — what a leaf computes from its input
``x(i)``, what an inner node computes from its two children, what is read out of the root — and
``Recursive.unfold(trees)`` copies the node body once per tree node, every shared parameter
reaching node ``p`` through its own dummy copy ``U(p)``, ``W(p)`` (section 10.2.2's device, on a
tree): back-propagation then gives ``∇U = Σ_p ∇U(p)`` as explicit nodes. The unfolded graph is
built, differentiated and run without recursion, so a chain-shaped tree of 10 000 leaves (depth
9 999) is as fine as a balanced one (depth ⌈log₂ τ⌉).

Positions (the ``step`` tag of every copy, and what ``at`` takes) number the nodes of the unfolded
forest from 1: the leaves first, in order (tree 1's leaves, then tree 2's, …; leaf position ``i``
reads ``x(i)``), then the inner nodes tree by tree, each after its children. What is read out of a
root — outputs, losses, targets, and the copies ``V(k)``, ``c(k)`` — is tagged with the tree's
index ``k`` (1-based) instead.

A batch of trees of different shapes is one graph holding every tree's copy: ``L = Σ_k L(k)``,
exactly the sum of the single trees' losses (and so of their gradients). Trees of one shape may
also share one unfolding along the ordinary batch axis.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from .. import arguments, ops
from ..errors import (RecurrenceError, UnfoldIndexError, UnfoldKeyError, UnfoldTypeError,
                      UnfoldValueError, describe)
from ..graph import Node, gc_paused, topological
from ..ops import batch_sum
from ..ops.base import (ALIAS, CONSTANT, INPUT, PARAM, Placeholder, _check_name, _check_shape,
                        check_dtype, is_int, named)
from ..ops.base import input as leaf_input, param as leaf_param
from ..recurrence import _check_node, check_loss
from ._parts import _check_choice, affine, builder, output_loss, target_sequence

#: the leaf standing for a child's (or the root's) representation inside the folded node body
CHILD = Placeholder("child")


# --- trees --------------------------------------------------------------------------------------

def _is_pair(obj: Any) -> bool:
    return isinstance(obj, (tuple, list))


def _pairs(children: Any) -> tuple[tuple[int, int], ...]:
    """``children`` as (left, right) pairs of integers, refused — never truncated or parsed —
    when it is anything else."""
    if isinstance(children, (str, bytes)) or not isinstance(children, Iterable):
        raise UnfoldTypeError(f"Tree: children must be a list of (left, right) pairs, got "
                              f"{type(children).__name__} {children!r:.80}")
    pairs = []
    for pair in children:
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Iterable):
            raise UnfoldTypeError(f"Tree: each child entry is a (left, right) pair of node "
                                  f"numbers, got {pair!r:.80}")
        pair = tuple(pair)
        if len(pair) != 2:
            raise UnfoldValueError(f"Tree: each child entry is a (left, right) pair of node "
                                   f"numbers, got {len(pair)} values: {pair!r:.80}")
        pairs.append(tuple(arguments.positive_int("Tree: a child (node number)", c, minimum=0)
                           for c in pair))
    return tuple(pairs)


class Tree:
    """A binary tree over ``n_leaves`` leaves.

    Nodes are numbered from 0: ``0 … n−1`` are the leaves (leaf ``i`` reads the ``i``-th input),
    ``n … 2n−2`` the inner nodes, each after both of its children, the root last. ``children[j]``
    is the ``(left, right)`` pair of inner node ``n + j``. Any binary tree can be given this way
    (the leaves need not appear in reading order); ``balanced``, ``chain``, ``random`` and
    ``from_nested`` build the usual ones. The depth is the number of edges from the root to its
    farthest leaf (0 for a single leaf).
    """

    __slots__ = ("n_leaves", "children", "heights")

    def __init__(self, n_leaves: int, children: Iterable[Sequence[int]] = ()) -> None:
        n = arguments.positive_int("Tree: n_leaves", n_leaves)
        pairs = _pairs(children)
        if len(pairs) != n - 1:
            raise UnfoldValueError(f"Tree: a binary tree over {n} leaves has {n - 1} inner nodes,"
                                   f" got {len(pairs)} (left, right) pairs")
        used = bytearray(2 * n - 1)
        heights = [0] * (2 * n - 1)
        for j, (a, b) in enumerate(pairs):
            p = n + j
            for c in (a, b):
                if not 0 <= c < p:
                    raise UnfoldValueError(f"Tree: inner node {p} has child {c}; a child must be "
                                           f"a node numbered before its parent (0 … {p - 1})")
                if used[c]:
                    raise UnfoldValueError(f"Tree: node {c} is a child twice (again under node "
                                           f"{p}); in a tree every node has one parent")
                used[c] = 1
            heights[p] = 1 + max(heights[a], heights[b])
        self.n_leaves, self.children, self.heights = n, pairs, tuple(heights)

    # --- the usual trees ------------------------------------------------------------------------

    @classmethod
    @arguments.allocates
    def balanced(cls, n: int) -> "Tree":
        """Neighbours paired level by level (an odd one out moves up a level): depth ⌈log₂ n⌉."""
        n = arguments.positive_int("Tree.balanced: the number of leaves", n)
        level, pairs, nxt = list(range(n)), [], n
        while len(level) > 1:
            up = []
            for i in range(0, len(level) - 1, 2):
                pairs.append((level[i], level[i + 1]))
                up.append(nxt)
                nxt += 1
            if len(level) % 2:
                up.append(level[-1])
            level = up
        return cls(n, pairs)

    @classmethod
    @arguments.allocates
    def chain(cls, n: int, side: str = "left") -> "Tree":
        """The degenerate tree, a chain of depth n − 1: ``((x1 x2) x3) …`` with ``side="left"``,
        ``x1 (x2 (… xn))`` with ``side="right"``."""
        if side not in ("left", "right"):
            raise UnfoldValueError(f"Tree.chain: side must be 'left' or 'right', got {side!r}")
        n = arguments.positive_int("Tree.chain: the number of leaves", n)
        if side == "left":
            pairs = [(0, 1)] + [(n + j - 1, j + 1) for j in range(1, n - 1)] if n > 1 else []
        else:
            pairs = [(n - 2, n - 1)] + [(n - 2 - j, n + j - 1) for j in range(1, n - 1)] \
                if n > 1 else []
        return cls(n, pairs)

    @classmethod
    @arguments.allocates
    def random(cls, n: int, seed: int | np.random.Generator = 0) -> "Tree":
        """A random shape over ``n`` leaves in reading order: neighbours merged at random."""
        n = arguments.positive_int("Tree.random: the number of leaves", n)
        rng = arguments.generator("Tree.random: seed", seed)
        level, pairs = list(range(n)), []
        while len(level) > 1:
            i = int(rng.integers(len(level) - 1))
            pairs.append((level[i], level[i + 1]))
            level[i:i + 2] = [int(n) + len(pairs) - 1]
        return cls(n, pairs)

    @classmethod
    def from_nested(cls, nested: Any) -> tuple["Tree", list]:
        """A tree written as nested pairs, e.g. ``(("the", "cat"), "sat")``: every tuple or list is
        an inner node with exactly two children, anything else a leaf. Returns the tree and its
        leaves in reading order."""
        leaves: list = []
        pairs: list[tuple[tuple[str, int], tuple[str, int]]] = []
        done: list[tuple[str, int]] = []
        stack = [(nested, False)]
        open_ = set()                                 # ids of the pairs being expanded
        while stack:                                  # post-order, without recursion
            obj, children_done = stack.pop()
            if _is_pair(obj) and not children_done:
                if id(obj) in open_:
                    raise UnfoldValueError("Tree.from_nested: a list contains itself (a cycle), "
                                           "so it is no tree")
                if len(obj) == 2:
                    open_.add(id(obj))
            elif _is_pair(obj):
                open_.discard(id(obj))
            if not _is_pair(obj):
                done.append(("leaf", len(leaves)))
                leaves.append(obj)
            elif len(obj) != 2:
                raise UnfoldValueError(f"Tree.from_nested: an inner node has exactly two "
                                       f"children, got {len(obj)}: {obj!r:.80}")
            elif children_done:
                right, left = done.pop(), done.pop()
                done.append(("inner", len(pairs)))
                pairs.append((left, right))
            else:
                stack += [(obj, True), (obj[1], False), (obj[0], False)]
        n = len(leaves)

        def number(ref: tuple[str, int]) -> int:
            return ref[1] if ref[0] == "leaf" else n + ref[1]
        return cls(n, [(number(a), number(b)) for a, b in pairs]), leaves

    def to_nested(self, leaves: Sequence[Any] | None = None) -> Any:
        """The tree as nested pairs of its leaves (of ``leaves``, or of the leaf numbers)."""
        built: list[Any] = list(range(self.n_leaves)) if leaves is None else list(leaves)
        if len(built) != self.n_leaves:
            raise UnfoldValueError(f"to_nested: the tree has {self.n_leaves} leaves, got "
                                   f"{len(built)} values")
        for a, b in self.children:
            built.append((built[a], built[b]))
        return built[-1]

    # --- shape ----------------------------------------------------------------------------------

    @property
    def n_nodes(self) -> int:
        return 2 * self.n_leaves - 1

    @property
    def root(self) -> int:
        return self.n_nodes - 1

    @property
    def depth(self) -> int:
        return self.heights[-1]

    def parents(self) -> list[int | None]:
        """The parent of every node (``None`` for the root)."""
        out: list[int | None] = [None] * self.n_nodes
        for j, (a, b) in enumerate(self.children):
            out[a] = out[b] = self.n_leaves + j
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tree) and (self.n_leaves, self.children) == \
            (other.n_leaves, other.children)

    def __hash__(self) -> int:
        return hash((self.n_leaves, self.children))

    def __len__(self) -> int:
        return self.n_leaves

    def __repr__(self) -> str:
        if self.n_leaves <= 8:
            return f"Tree({self.to_nested()!r})"
        return f"Tree(n_leaves={self.n_leaves}, depth={self.depth})"


def as_trees(trees: Tree | int | Iterable[Tree | int]) -> tuple[Tree, ...]:
    """A forest from a tree, a number of leaves (the balanced tree) or a sequence of either."""
    if isinstance(trees, (str, bytes)):
        _not_a_tree(trees)
    if isinstance(trees, (Tree, int, np.integer)) or not isinstance(trees, Iterable):
        trees = [trees]
    out = tuple(t if isinstance(t, Tree) else Tree.balanced(t) if
                is_int(t) and t >= 1 else _not_a_tree(t) for t in trees)
    if not out:
        raise UnfoldValueError("unfold: give at least one tree")
    return out


def _not_a_tree(t: Any):
    raise UnfoldTypeError(f"unfold: {t!r} is not a Tree (nor a positive number of leaves, for the "
                          f"balanced tree)")


# --- the folded graph ---------------------------------------------------------------------------

class Recursive:
    """The folded graph of a recursive network: a per-leaf input ``x(i)``, the representation
    ``h`` of a leaf (from its input) and of an inner node (from its two children ``rn.left``,
    ``rn.right``), outputs and losses read from the root's ``h`` (``rn.root``) against per-tree
    targets, and shared parameters::

        rn = Recursive("tree", (n,))
        x = rn.leaf_input("x", (m,))
        rn.leaf(rn.param("E", (n, m)) @ x)                                  # h(i)
        U, W, b = rn.param("U", (n, n)), rn.param("W", (n, n)), rn.param("b", (n,))
        rn.combine(unfold.tanh(b + U @ rn.left + W @ rn.right))             # h(p)
        o = rn.output("o", rn.param("c", (k,)) + rn.param("V", (k, n)) @ rn.root)
        rn.loss("L", unfold.cross_entropy(o, rn.target("y")))
        net = rn.unfold(Tree.balanced(8))
    """

    def __init__(self, name: str, shape: Sequence[int], dtype: Any = np.float64) -> None:
        self.name = _check_name(name)
        self.shape = _check_shape(shape, f"recursive net {name!r}")
        self.dtype = check_dtype(dtype, f"recursive net {name!r}")
        self.left, self.right, self.root = (
            Node(CHILD, (), self.shape, self.dtype, name="h", attrs={"child": which},
                 may_batch=True) for which in ("left", "right", "root"))
        self.inputs: dict[str, Node] = {}
        self.targets: dict[str, Node] = {}
        self.params: dict[str, Node] = {}
        self.outputs: dict[str, Node] = {}
        self.losses: dict[str, Node] = {}
        self.named: dict[str, Node] = {}
        self.leaf_value: Node | None = None
        self.node_value: Node | None = None

    # --- declarations ----------------------------------------------------------------------------

    def _fresh(self, name: str) -> str:
        name = _check_name(name)
        if name == "h" or any(name in d for d in (self.inputs, self.targets, self.params,
                                                  self.outputs, self.losses, self.named)):
            raise RecurrenceError(f"recursive net {self.name!r}: the name {name!r} is already "
                                  f"declared (h is the representation); choose another")
        return name

    def leaf_input(self, name: str, shape: Sequence[int] = (), dtype: Any = np.float64) -> Node:
        """The input ``x(i)`` of every leaf, fed as one array (leaves, [batch,] …)."""
        node = self.inputs[name] = leaf_input(self._fresh(name), shape, dtype)
        return node

    def target(self, name: str, shape: Sequence[int] = (), dtype: Any = np.int64) -> Node:
        """A target ``y`` of every tree, fed as one array (trees, [batch,] …)."""
        node = self.targets[name] = leaf_input(self._fresh(name), shape, dtype)
        return node

    def param(self, name: str, shape: Sequence[int] = (), dtype: Any = np.float64) -> Node:
        """A parameter shared by every tree node; unfolding gives it a dummy copy per node."""
        node = self.params[name] = leaf_param(self._fresh(name), shape, dtype)
        return node

    def _representation(self, value: Node, what: str) -> Node:
        if not isinstance(value, Node):
            raise UnfoldTypeError(f"recursive net {self.name!r}: the {what} value must be a node")
        if getattr(self, f"{what}_value") is not None:
            raise RecurrenceError(f"recursive net {self.name!r}: the {what} representation is "
                                  f"declared twice")
        if value.shape != self.shape or value.dtype != self.dtype:
            raise RecurrenceError(f"recursive net {self.name!r}: h is {self.shape} {self.dtype} "
                                  f"but the {what} value is {describe(value)}")
        value = named(value, "h")
        setattr(self, f"{what}_value", value)
        return value

    def leaf(self, value: Node) -> Node:
        """``h(i) = value``: a leaf's representation, from its inputs and the parameters."""
        return self._representation(value, "leaf")

    def combine(self, value: Node) -> Node:
        """``h(p) = value``: an inner node's representation, from ``left``, ``right`` and the
        parameters."""
        return self._representation(value, "node")

    def output(self, name: str, value: Node) -> Node:
        """An output of every tree, read from ``root``."""
        _check_node(value, f"output {name!r}")
        self.outputs[name] = value = named(value, self._fresh(name))
        return value

    def loss(self, name: str, value: Node) -> Node:
        """A loss of every tree (a scalar per example); ``L = Σ_k L(k)``."""
        name = self._fresh(name)
        check_loss(name, value)
        self.losses[name] = value = named(value, name)
        return value

    def name_node(self, name: str, value: Node) -> Node:
        """Give a name to an inner value so that drawings show it."""
        _check_node(value, f"name_node {name!r}")
        self.named[name] = value = named(value, self._fresh(name))
        return value

    # --- the three bodies ------------------------------------------------------------------------

    def bodies(self) -> dict[str, list[Node]]:
        """The nodes of the leaf, node and readout bodies (inputs before users), checked: a leaf
        reads its inputs, an inner node its children, the readout the root and the targets."""
        if self.leaf_value is None or self.node_value is None:
            raise RecurrenceError(f"recursive net {self.name!r}: declare both rn.leaf(…) and "
                                  f"rn.combine(…)")
        readout = list(self.outputs.values()) + list(self.losses.values())
        allowed = {"leaf": set(self.inputs.values()), "node": {self.left, self.right},
                   "readout": {self.root} | set(self.targets.values())}
        roots = {"leaf": [self.leaf_value], "node": [self.node_value], "readout": readout}
        out = {}
        for part, nodes in roots.items():
            body = topological(nodes)
            for n in body:
                if (n.op is INPUT or n.op is CHILD) and n not in allowed[part]:
                    what = n.attrs["child"] if n.op is CHILD else n.name
                    raise RecurrenceError(
                        f"recursive net {self.name!r}: {what!r} is read by the {part} body; "
                        f"leaves read the leaf inputs, inner nodes rn.left and rn.right, "
                        f"outputs and losses rn.root and the targets")
            out[part] = [n for n in body if n.op is not CONSTANT and n.op is not CHILD]
        return out

    def unfold(self, trees: Tree | int | Iterable[Tree | int]) -> "UnfoldedTree":
        """The computational graph over ``trees`` (a ``Tree``, a number of leaves for the balanced
        tree, or a sequence of them: a batch of trees of different shapes)."""
        forest = as_trees(trees)
        bodies = self.bodies()
        with gc_paused():
            return UnfoldedTree(self, forest, bodies)

    # --- what unfold.train.Trainer asks of a model -------------------------------------------------
    #
    # A batch for the Trainer is a feed with the forest under "trees" — {"trees": [t1, t2, …],
    # "x": (leaves, [batch,] …), "y": (trees, [batch])} — one compiled program per forest.

    #: feed entries that give the graph's shape, not values (the Trainer does not feed them)
    structure = ("trees",)

    @property
    def sequences(self) -> dict[str, Node]:
        """What a batch feeds besides the parameters: the leaf inputs and the tree targets."""
        return {**self.inputs, **self.targets}

    def check(self) -> None:
        """Validate the folded graph (both bodies declared, each reading what it may)."""
        self.bodies()
        if not self.losses:
            raise RecurrenceError(f"recursive net {self.name!r} declares no loss (rn.loss(…))")

    def lengths(self, feed: Any) -> tuple[tuple[Tree, ...]]:
        """The forest a batch asks for, ``(trees,)`` — from its ``"trees"`` entry."""
        if not hasattr(feed, "get") or feed.get("trees") is None:
            raise UnfoldKeyError(f"recursive net {self.name!r}: a batch gives its trees under "
                                 f"'trees' ({{'trees': [tree, …], 'x': …, 'y': …}}); they decide "
                                 f"the graph")
        return (as_trees(feed["trees"]),)


class UnfoldedTree:
    """A recursive net unfolded over a forest: every node tagged with its position (see the
    module's docstring) and folded source.

    ``at(node, p)`` is the copy of folded ``node`` at position ``p`` (for the readout, at tree
    ``k``); ``hidden(k, i)`` is ``h`` at node ``i`` of tree ``k`` (0-based, as ``trees[k]``);
    ``copies(U)`` lists ``U(p)`` for every position; ``loss`` is ``L = Σ_k L(k)``, summed over the
    batch; ``children(p)`` gives the positions of the children of position ``p`` (for drawings).
    """

    def __init__(self, rn: Recursive, trees: tuple[Tree, ...], bodies: dict[str, list[Node]]
                 ) -> None:
        self.recursive, self.trees = rn, trees
        self.n_leaves = sum(t.n_leaves for t in trees)
        self.n_positions = sum(t.n_nodes for t in trees)
        self._leaf_start, self._inner_start = [], []
        leaves, inner = 0, self.n_leaves
        for t in trees:
            self._leaf_start.append(leaves)
            self._inner_start.append(inner)
            leaves, inner = leaves + t.n_leaves, inner + t.n_leaves - 1
        model = frozenset([*rn.inputs, *rn.targets, *rn.params])
        self._input_attrs = {"steps": self.n_leaves, "model": model}
        self._target_attrs = {"steps": len(trees), "model": model}
        self._part_of = {n: part for part, body in bodies.items() for n in body}
        self._copies: dict[Node, dict[int, Node]] = {n: {} for n in self._part_of}
        self._children: dict[int, tuple[int, int]] = {}
        total: Node | None = None
        for k, tree in enumerate(trees):
            h: list[Node] = []
            for i in range(tree.n_leaves):
                h.append(self._copy(bodies["leaf"], self.position(k, i), {})[rn.leaf_value])
            for j, (a, b) in enumerate(tree.children):
                p = self.position(k, tree.n_leaves + j)
                self._children[p] = (self.position(k, a), self.position(k, b))
                made = self._copy(bodies["node"], p, {rn.left: h[a], rn.right: h[b]})
                h.append(made[rn.node_value])
            made = self._copy(bodies["readout"], k + 1, {rn.root: h[-1]})
            for value in rn.losses.values():
                total = made[value] if total is None else total + made[value]
        self._total = total

    def _copy(self, body: list[Node], step: int, env: dict[Node, Node]) -> dict[Node, Node]:
        made = dict(env)
        for n in body:
            if n.op is PARAM:
                c = Node(ALIAS, (n,), n.shape, n.dtype, name=n.name, step=step, source=n,
                         may_batch=False)
            elif n.op is INPUT:
                attrs = self._input_attrs if self.recursive.inputs.get(n.name) is n else \
                    self._target_attrs
                c = Node(INPUT, (), n.shape, n.dtype, name=n.name, step=step, source=n,
                         attrs=attrs, may_batch=True)
            else:
                c = Node(n.op, tuple([made.get(i, i) for i in n.inputs]), n.shape, n.dtype,
                         name=n.name, attrs=n.attrs, step=step, source=n)
            made[n] = self._copies[n][step] = c
        return made

    # --- positions -------------------------------------------------------------------------------

    def position(self, k: int, node: int) -> int:
        """The position (1-based) of node ``node`` of tree ``k`` (both 0-based)."""
        if not is_int(k) or not 0 <= k < len(self.trees):
            raise (UnfoldIndexError if is_int(k) else UnfoldTypeError)(
                f"the unfolding has trees 0 … {len(self.trees) - 1}, not {k!r}")
        tree = self.trees[k]
        if not is_int(node):
            raise UnfoldTypeError(f"tree {k}: a node number is an integer, got {node!r}")
        if not 0 <= node < tree.n_nodes:
            raise UnfoldValueError(f"tree {k} has nodes 0 … {tree.n_nodes - 1}, not {node}")
        if node < tree.n_leaves:
            return self._leaf_start[k] + node + 1
        return self._inner_start[k] + node - tree.n_leaves + 1

    def children(self, position: int) -> tuple[int, int] | None:
        """The positions of the (left, right) children of ``position``; ``None`` for a leaf."""
        if not is_int(position) or not 1 <= position <= self.n_positions:
            raise (UnfoldValueError if is_int(position) else UnfoldTypeError)(
                f"children: positions are 1 … {self.n_positions}, got {position!r}")
        return self._children.get(position)

    # --- lookups ---------------------------------------------------------------------------------

    def _resolve(self, node: Node | str) -> Node:
        if isinstance(node, Node):
            return node
        rn = self.recursive
        if node == "h":
            return rn.node_value
        for table in (rn.outputs, rn.losses, rn.named, rn.inputs, rn.targets, rn.params):
            if node in table:
                return table[node]
        raise RecurrenceError(f"recursive net {rn.name!r} has no variable named {node!r}")

    def at(self, node: Node | str, index: int) -> Node:
        """The copy of folded ``node`` at position ``index`` — or at tree ``index`` for what is
        read out of the roots. ``"h"`` is the representation at any position."""
        node = self._resolve(node)
        rn = self.recursive
        if node is rn.node_value or node is rn.leaf_value:
            node = rn.leaf_value if index <= self.n_leaves else rn.node_value
        copies = self._copies.get(node)
        if copies is None:
            raise RecurrenceError(f"{describe(node)} is not part of recursive net {rn.name!r}")
        if index not in copies:
            raise RecurrenceError(f"{describe(node)} has no copy at {index}; it has copies at "
                                  f"{min(copies)} … {max(copies)}" if copies else
                                  f"{describe(node)} is not copied in this unfolding")
        return copies[index]

    def hidden(self, k: int = 0, node: int | None = None) -> Node:
        """``h`` at node ``node`` of tree ``k`` (the root by default)."""
        if node is None:
            self.position(k, 0)                      # (checks k)
            node = self.trees[k].root
        return self.at("h", self.position(k, node))

    def copies(self, param: Node | str) -> list[Node]:
        """The dummy copies of a shared parameter, in position order."""
        param = self._resolve(param)
        if param.op is not PARAM:
            raise RecurrenceError(f"{describe(param)} is not a parameter")
        return [c for _, c in sorted(self._copies.get(param, {}).items())]

    def losses(self, name: str | None = None) -> list[Node]:
        """The per-tree losses ``L(1) … L(K)`` (of one named loss, or of all)."""
        names = [name] if name is not None else list(self.recursive.losses)
        return [self.at(n, k) for n in names for k in range(1, len(self.trees) + 1)]

    @property
    def loss(self) -> Node:
        """``L = Σ_k L(k)``, summed over every declared loss and over the batch."""
        cached = self.__dict__.get("_loss")
        if cached is None:
            if self._total is None:
                raise RecurrenceError(f"recursive net {self.recursive.name!r} declares no loss")
            cached = self._loss = Node(ALIAS, (batch_sum(self._total),), (),
                                       self._total.dtype, name="L")
        return cached

    @property
    def terms(self) -> Node:
        """How many loss terms ``loss`` sums per example: one per tree and declared loss (the
        Trainer's mean loss is ``loss`` over this times the batch)."""
        return ops.constant(np.array(len(self.trees) * len(self.recursive.losses),
                                     self.recursive.dtype))

    @property
    def params(self) -> list[Node]:
        """The shared parameters the unfolded graph uses, in creation order."""
        return sorted((n for n in self._part_of if n.op is PARAM), key=lambda n: n.serial)

    def nodes(self) -> list[Node]:
        """Every node of the unfolded graph, inputs before users."""
        roots = [c for copies in self._copies.values() for c in copies.values()]
        return topological(roots + ([self.loss] if self._total is not None else []))

    def __repr__(self) -> str:
        return (f"<UnfoldedTree {self.recursive.name!r}, {len(self.trees)} tree(s), "
                f"{self.n_leaves} leaves>")


# --- the book's recursive network ---------------------------------------------------------------

@builder
def recursive_net(n_in: int, n_hidden: int, n_out: int, *, loss: str = "cross_entropy",
                  inputs: str = "vectors", embed: bool = True, dtype: Any = np.float64
                  ) -> Recursive:
    """The recursive network of Fig. 10.14: a tree over the inputs ``x(1) … x(n)``, the same
    ``U``, ``W`` combining the left and right child at every inner node, the output ``o`` read
    from the root through ``V``::

        h(i) = E x(i)                              leaf i          (h(i) = x(i) with embed=False)
        a(p) = b + U h(left(p)) + W h(right(p))     inner node p
        h(p) = tanh(a(p))
        o    = c + V h(root)
        L    = −log softmax(o)_y                    (or Σ_j (o_j − y_j)² with loss="squared_error")

    ``inputs="tokens"`` feeds ``x(i)`` as integer ids in ``[0, n_in)``, one-hot inside, so
    ``E x(i)`` is column ``x(i)`` of ``E`` (learned word vectors). ``embed=False`` uses the inputs
    themselves as the leaves' representations (``n_in`` must equal ``n_hidden``), as the figure
    draws it.

    Params: ``E`` (n_hidden×n_in, unless embed=False), ``U``, ``W`` (n_hidden×n_hidden), ``b``
    (n_hidden), ``V`` (n_out×n_hidden), ``c`` (n_out). Feed ``x`` as (leaves, [batch,] n_in) —
    the leaves of all trees in order — and ``y`` as (trees, [batch]) class indices (or (trees,
    [batch,] n_out) reals). ``unfold(tree)`` / ``unfold([tree, …])`` gives the graph.
    ``unfold.train.Trainer(rn, …)`` trains it on batches that name their forest, ``{"trees":
    [tree, …], "x": …, "y": …}`` (one compiled program per forest, kept for the most recent
    ``Trainer.PROGRAMS``); its mean loss is ``L`` over the number of trees and examples.
    """
    _check_choice("inputs", inputs, ("vectors", "tokens"))
    embed = arguments.flag("recursive_net: embed", embed)
    n_in, n_hidden, n_out = (arguments.positive_int(f"recursive_net: {what}", n) for what, n in
                             (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)))
    if not embed and n_in != n_hidden:
        raise UnfoldValueError(f"recursive_net: with embed=False the inputs are the leaves' "
                               f"representations, so n_in ({n_in}) must equal n_hidden "
                               f"({n_hidden}); or keep embed=True (h(i) = E x(i))")
    rn = Recursive("recursive_net", (n_hidden,), dtype)
    if inputs == "tokens":
        x = ops.one_hot(rn.leaf_input("x", (), np.int64), n_in, dtype)
    else:
        x = rn.leaf_input("x", (n_in,), dtype)
    rn.leaf(rn.param("E", (n_hidden, n_in), dtype) @ x if embed else x)
    a = rn.name_node("a", affine(rn, n_hidden, "b", {"U": rn.left, "W": rn.right}))
    rn.combine(ops.tanh(a))
    y = target_sequence(rn, n_out, loss, dtype)
    o = rn.output("o", affine(rn, n_out, "c", {"V": rn.root}))
    rn.loss("L", output_loss(o, y, loss))
    return rn
