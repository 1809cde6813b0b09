"""Recursive networks (section 10.6, Fig. 10.14): trees, the unfolded tree against the equations in
numpy, gradcheck over random trees, forests and batches, a batch of trees equals the sum of single
trees, a 10 000-leaf chain, and a task the net learns (evaluating Boolean expressions)."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import unfold as uf
from unfold import models as M
from unfold import train
from unfold.data.tasks import logic_expressions
from unfold.models import Recursive, Tree
from unfold.testing import gradcheck

FEW = max(8, settings().max_examples // 3)


# --- trees ---------------------------------------------------------------------------------------

@given(st.integers(1, 3000))
def test_the_balanced_tree_has_depth_ceil_log2_n(n):
    tree = Tree.balanced(n)
    assert tree.depth == math.ceil(math.log2(n)) and tree.n_leaves == n
    assert Tree.chain(n).depth == Tree.chain(n, "right").depth == n - 1


@given(st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_nested_form_round_trips_and_leaves_keep_reading_order(n, seed):
    tree = Tree.random(n, seed)
    nested = tree.to_nested()
    again, leaves = Tree.from_nested(nested)      # numbered in post-order: equal as nested pairs
    assert again.to_nested() == nested and leaves == list(range(n))
    assert Tree.from_nested(again.to_nested())[0] == again and again.depth == tree.depth
    parents = tree.parents()
    assert parents[tree.root] is None and sum(p is None for p in parents) == 1


def test_malformed_trees_are_refused_with_the_reason():
    with pytest.raises(uf.UnfoldError, match="3 inner nodes"):
        Tree(4, [(0, 1)])
    with pytest.raises(ValueError, match="child twice"):
        Tree(3, [(0, 1), (0, 3)])
    with pytest.raises(ValueError, match="numbered before its parent"):
        Tree(2, [(0, 2)])
    with pytest.raises(ValueError, match="exactly two children"):
        Tree.from_nested((1, 2, 3))
    with pytest.raises(TypeError, match="not a Tree"):
        M.recursive_net(2, 2, 2).unfold(["tree"])


# --- the reference: Fig. 10.14's equations in numpy, batched along axis 0 ------------------------

def log_softmax(o):
    o = o - o.max(axis=-1, keepdims=True)
    return o - np.log(np.exp(o).sum(axis=-1, keepdims=True))


def reference(P, trees, x, y, o):
    """L = Σ_k L(k) with h(i) = E x(i) (or x(i)), h(p) = tanh(b + U h(l) + W h(r)), o = c + V h."""
    total, start = 0.0, 0
    for k, tree in enumerate(trees):
        leaves = x[start:start + tree.n_leaves]
        start += tree.n_leaves
        if o["inputs"] == "tokens":
            leaves = np.eye(o["m"])[leaves]
        h = [leaf @ P["E"].T if o["embed"] else leaf for leaf in leaves]
        for a, b in tree.children:
            h.append(np.tanh(P["b"] + h[a] @ P["U"].T + h[b] @ P["W"].T))
        out = P["c"] + h[-1] @ P["V"].T
        if o["loss"] == "cross_entropy":
            total += -np.take_along_axis(log_softmax(out), y[k][:, None], axis=1).sum()
        else:
            total += ((out - y[k]) ** 2).sum()
    return total


@st.composite
def forests(draw):
    """A recursive net with random sizes and options, a forest of random trees, a feed."""
    o = {"inputs": draw(st.sampled_from(["vectors", "tokens"])), "embed": draw(st.booleans()),
         "loss": draw(st.sampled_from(M.LOSSES)), "n": draw(st.integers(1, 3)),
         "k": draw(st.integers(2, 3)), "batch": draw(st.none() | st.integers(1, 2))}
    o["m"] = o["n"] if not o["embed"] else draw(st.integers(1, 3))
    if o["inputs"] == "tokens":
        o["m"] = max(o["m"], 2)
        o["n"] = o["m"] if not o["embed"] else o["n"]
    sizes = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3))
    seed = draw(st.integers(0, 2**32 - 1))
    trees = [Tree.random(n, seed + i) for i, n in enumerate(sizes)]
    rn = M.recursive_net(o["m"], o["n"], o["k"], loss=o["loss"], inputs=o["inputs"],
                         embed=o["embed"])
    rng = np.random.default_rng(seed)
    lead = () if o["batch"] is None else (o["batch"],)
    leaves = sum(sizes)
    feed = {name: rng.uniform(-1, 1, p.shape) for name, p in rn.params.items()}
    feed["x"] = rng.integers(0, o["m"], (leaves,) + lead) if o["inputs"] == "tokens" else \
        rng.standard_normal((leaves,) + lead + (o["m"],))
    feed["y"] = rng.integers(0, o["k"], (len(trees),) + lead) if o["loss"] == "cross_entropy" \
        else rng.standard_normal((len(trees),) + lead + (o["k"],))
    return rn, trees, feed, o


def as_batch(feed, o):
    return feed if o["batch"] is not None else {
        k: (v[:, None] if k in ("x", "y") else v) for k, v in feed.items()}


@settings(max_examples=FEW)
@given(forests())
def test_unfolded_trees_follow_fig_10_14_and_pass_gradcheck(case):
    rn, trees, feed, o = case
    net = rn.unfold(trees)
    loss, = uf.evaluate([net.loss], feed)
    b = as_batch(feed, o)
    expected = reference(feed, trees, b["x"], b["y"], o)
    np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-12)
    wrt = net.params + ([net.at("x", i) for i in range(1, net.n_leaves + 1)]
                        if o["inputs"] == "vectors" else [])
    gradcheck(net.loss, wrt, feed)


@settings(max_examples=FEW)
@given(forests())
def test_a_batch_of_trees_equals_the_sum_of_single_trees(case):
    rn, trees, feed, o = case
    together = rn.unfold(trees)
    nodes = list(rn.params.values())
    joint = uf.evaluate([together.loss, *uf.grad(together.loss, nodes)], feed)
    total, start = np.zeros(len(joint)), 0
    parts = [np.zeros(1)] + [np.zeros(p.shape) for p in nodes]
    for k, tree in enumerate(trees):
        single = rn.unfold(tree)
        part = dict(feed, x=feed["x"][start:start + tree.n_leaves], y=feed["y"][k:k + 1])
        start += tree.n_leaves
        values = uf.evaluate([single.loss, *uf.grad(single.loss, nodes)], part)
        parts = [a + v for a, v in zip(parts, values)]
    for a, b in zip(joint, parts):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    del total


def test_every_tree_node_has_its_dummy_copies_and_the_gradient_is_their_sum():
    rn = M.recursive_net(2, 3, 2)
    tree = Tree.from_nested(((0, 1), (2, (3, 4))))[0]
    net = rn.unfold(tree)
    U = rn.params["U"]
    assert [c.label for c in net.copies(U)] == ["U(6)", "U(7)", "U(8)", "U(9)"]
    assert [c.label for c in net.copies("E")] == [f"E({i})" for i in range(1, 6)]
    assert net.children(9) == (6, 8) and net.children(3) is None
    assert net.hidden(0).label == "h(9)" and net.hidden(0, 2).label == "h(3)"
    assert net.at("o", 1).label == "o(1)" and net.losses()[0].label == "L(1)"
    rng = np.random.default_rng(1)
    feed = {k: rng.standard_normal(p.shape) for k, p in rn.params.items()}
    feed.update(x=rng.standard_normal((5, 2)), y=np.array([1]))
    total, *per_node = uf.evaluate(uf.grad(net.loss, [U] + net.copies(U)), feed)
    np.testing.assert_allclose(total, sum(per_node), rtol=1e-12)


def test_trees_of_one_shape_share_an_unfolding_along_the_batch_axis():
    rn = M.recursive_net(5, 4, 2, inputs="tokens")
    tree, tokens, truth = logic_expressions(3, batch=6, seed=2)
    params = train.init_params(list(rn.params.values()), seed=0)
    batched = rn.unfold(tree)
    loss, = uf.evaluate([batched.loss], {**params, "x": tokens, "y": truth[None]})
    singles = sum(uf.evaluate([batched.loss], {**params, "x": tokens[:, j],
                                               "y": truth[j:j + 1]})[0] for j in range(6))
    np.testing.assert_allclose(loss, singles, rtol=1e-12)


def test_a_chain_shaped_tree_of_10000_leaves_builds_differentiates_and_runs():
    n = 10_000
    rn = M.recursive_net(2, 2, 2)
    tree = Tree.chain(n)
    assert tree.depth == n - 1
    net = rn.unfold(tree)
    rng = np.random.default_rng(0)
    P = {k: rng.standard_normal(p.shape) * 0.5 for k, p in rn.params.items()}
    x = rng.standard_normal((n, 2))
    values = uf.evaluate([net.loss, *uf.grad(net.loss, net.params)], {**P, "x": x, "y": [1]})
    expected = reference(P, [tree], x[:, None], np.array([[1]]),
                         {"inputs": "vectors", "embed": True, "loss": "cross_entropy"})
    np.testing.assert_allclose(values[0], expected, rtol=1e-12)
    assert all(np.all(np.isfinite(g)) for g in values[1:])


def test_bodies_read_only_what_they_may():
    rn = Recursive("bad", (2,))
    x = rn.leaf_input("x", (2,))
    rn.leaf(x)
    rn.combine(uf.tanh(rn.left + rn.right + x))          # an inner node reading a leaf input
    with pytest.raises(uf.RecurrenceError, match="'x' is read by the node body"):
        rn.unfold(3)
    with pytest.raises(uf.RecurrenceError, match="declared twice"):
        rn.combine(rn.left)
    with pytest.raises(ValueError, match="must equal n_hidden"):
        M.recursive_net(3, 4, 2, embed=False)


def test_a_recursive_net_learns_to_evaluate_boolean_expressions():
    """Trained on expressions of 1–3 operators (every bracketing, one unfolding per bracketing,
    the examples along the batch axis), evaluated on unseen ones with 4 and 5 operators."""
    rng = np.random.default_rng(0)
    rn = M.recursive_net(5, 16, 2, inputs="tokens")
    params = train.init_params(list(rn.params.values()), seed=0)
    shapes = [Tree.random(k + 1, rng) for k in (1, 2, 2, 3, 3, 3, 3)]
    net = rn.unfold([logic_expressions(s.n_leaves - 1, 1, rng, s)[0] for s in shapes])
    nodes = net.params
    program = uf.compile([net.loss, *uf.grad(net.loss, nodes)])
    optimizer, batch = train.Adam(lr=0.02), 16
    start = time.perf_counter()
    for _ in range(300):
        drawn = [logic_expressions(s.n_leaves - 1, batch, rng, s) for s in shapes]
        out = program({**params, "x": np.concatenate([d[1] for d in drawn]),
                       "y": np.stack([d[2] for d in drawn])})
        optimizer.update(params, {p.name: g / (batch * len(shapes))
                                  for p, g in zip(nodes, out[1:])})
    trained = time.perf_counter() - start
    for n_ops in (4, 5):
        tests = [logic_expressions(n_ops, 100, rng) for _ in range(4)]
        held_out = rn.unfold([t for t, _, _ in tests])
        logits = uf.evaluate([held_out.at("o", k) for k in range(1, 5)],
                             {**params, "x": np.concatenate([t[1] for t in tests])})
        accuracy = np.mean([np.mean(np.argmax(o, -1) == t[2]) for o, t in zip(logits, tests)])
        print(f"{n_ops} operators: accuracy {accuracy:.3f} (trained in {trained:.2f} s)")
        assert accuracy > 0.9
