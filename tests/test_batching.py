"""Batches: shapes in the graph are per example; an ``input`` fed with one extra leading axis makes
every op run on the whole batch with its per-example meaning.

The property, for every op of the table in ``op_table``: evaluating on a batch gives exactly the
stack of the per-example evaluations, whichever operands are batched (the others — inputs fed
without the batch axis, or params — are shared by every example); and the gradient of the batched
scalar is per example for batched operands and summed over the batch for shared ones."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import unfold as uf

from op_table import CASE_IDS, CASES, draw_arrays

RTOL, ATOL = 1e-12, 1e-12


def _batched_example(case, data):
    """The case's node over leaves of which some are fed batched; the batched and per-example
    feeds."""
    args, kwargs = case.draw(data)
    n = len(args)
    mask = data.draw(st.lists(st.booleans(), min_size=n, max_size=n), label="batched operands")
    if not any(mask):
        mask[data.draw(st.integers(0, n - 1), label="the batched operand")] = True
    as_param = data.draw(st.lists(st.booleans(), min_size=n, max_size=n), label="shared as param")
    batch = data.draw(st.integers(1, 4), label="batch size")
    nodes = []
    for i, (a, batched, p) in enumerate(zip(args, mask, as_param)):
        node = a.node(f"x{i}")
        if p and not batched:
            node = uf.param(f"x{i}", node.shape, dtype=node.dtype)
        nodes.append(node)
    y = case.build(*nodes, **kwargs)
    shared = draw_arrays(data, args, label="seeds of shared values")
    stacked = draw_arrays(data, args, lead=(batch,), label="seeds of batched values")
    feed = {x: (v if m else s) for x, m, s, v in zip(nodes, mask, shared, stacked)}
    examples = [{x: (v[b] if m else s) for x, m, s, v in zip(nodes, mask, shared, stacked)}
                for b in range(batch)]
    return args, nodes, mask, batch, y, feed, examples


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@given(data=st.data())
def test_a_batch_evaluates_to_the_stack_of_its_examples(case, data):
    args, nodes, mask, batch, y, feed, examples = _batched_example(case, data)
    (value,) = uf.evaluate([y], feed)
    per_example = [uf.evaluate([y], ex)[0] for ex in examples]
    assert value.shape == (batch,) + y.shape
    assert value.dtype == y.dtype
    if y.dtype == np.bool_:
        np.testing.assert_array_equal(value, np.stack(per_example))
    else:
        np.testing.assert_allclose(value, np.stack(per_example), rtol=RTOL, atol=ATOL)


GRAD_CASES = [c for c in CASES if c.wrt != ()]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c.name for c in GRAD_CASES])
@given(data=st.data())
def test_batched_gradients_are_per_example_or_summed_over_the_batch(case, data):
    args, nodes, mask, batch, y, feed, examples = _batched_example(case, data)
    weights = np.random.default_rng(3).uniform(0.5, 1.5, size=y.shape)
    loss = uf.sum(y * uf.constant(weights))                 # a scalar per example
    picked = case.float_operands(args)
    grads = uf.grad(loss, [nodes[i] for i in picked])
    values = uf.evaluate([loss] + grads, feed)
    per_example = [uf.evaluate([loss] + grads, ex) for ex in examples]

    assert values[0].shape == (batch,)                     # the loss stays per example
    np.testing.assert_allclose(values[0], [p[0] for p in per_example], rtol=RTOL, atol=ATOL)
    for k, i in enumerate(picked, start=1):
        got, each = values[k], np.stack([p[k] for p in per_example])
        if mask[i]:
            assert got.shape == (batch,) + nodes[i].shape
            np.testing.assert_allclose(got, each, rtol=1e-10, atol=1e-12)
        else:
            assert got.shape == nodes[i].shape
            np.testing.assert_allclose(got, each.sum(axis=0), rtol=1e-10, atol=1e-12)


# --- the cases the issue names explicitly --------------------------------------------------------

def test_unbatched_operand_of_higher_rank_broadcasts_per_example():
    x = uf.input("x", (3,))                # batched below: (B, 3)
    W = uf.param("W", (2, 3))              # per-example rank 2 > 1
    c = uf.input("c", (2, 1))              # fed unbatched
    ys = [x + W, W * x, uf.maximum(x, W), uf.where(x > 0, W, x), x - c, uf.add_n([W, W, x])]
    rng = np.random.default_rng(0)
    xv, Wv, cv = rng.standard_normal((4, 3)), rng.standard_normal((2, 3)), rng.standard_normal((2, 1))
    values = uf.evaluate(ys, {x: xv, W: Wv, c: cv})
    for y, v in zip(ys, values):
        assert y.shape == (2, 3) and v.shape == (4, 2, 3)
        for b in range(4):
            (single,) = uf.evaluate([y], {x: xv[b], W: Wv, c: cv})
            np.testing.assert_array_equal(v[b], single)


@pytest.mark.parametrize("batch", [3, 4, 5])
def test_W_at_h_is_per_example_also_when_the_batch_size_equals_a_dimension_of_W(batch):
    W = uf.param("W", (3, 4))
    h = uf.input("h", (4,))
    v = uf.input("v", (3,))
    A = uf.input("A", (3, 4))
    ys = [W @ h, v @ W, A @ h, v @ A, h @ h, A @ W.T]
    rng = np.random.default_rng(batch)
    Wv = rng.standard_normal((3, 4))
    hv, vv, Av = (rng.standard_normal((batch,) + s) for s in ((4,), (3,), (3, 4)))
    values = uf.evaluate(ys, {W: Wv, h: hv, v: vv, A: Av})
    expected = [hv @ Wv.T, vv @ Wv, np.einsum("bij,bj->bi", Av, hv), np.einsum("bi,bij->bj", vv, Av),
                np.einsum("bi,bi->b", hv, hv), Av @ Wv.T]
    for y, got, want in zip(ys, values, expected):
        assert got.shape == (batch,) + y.shape
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_readme_network_parameter_gradients_sum_and_hidden_gradients_stay_per_example():
    W, b = uf.param("W", (3, 4)), uf.param("b", (3,))
    x, t = uf.input("x", (4,)), uf.input("t", (), dtype="int64")
    h = uf.tanh(W @ x + b)
    loss = uf.cross_entropy(h, t)
    grads = uf.grad(loss, [W, b, h, x])
    rng = np.random.default_rng(1)
    feed = {W: rng.standard_normal((3, 4)), b: rng.standard_normal(3),
            x: rng.standard_normal((8, 4)), t: rng.integers(0, 3, size=8)}
    L, gW, gb, gh, gx = uf.evaluate([loss] + grads, feed)
    assert L.shape == (8,) and gW.shape == (3, 4) and gb.shape == (3,)
    assert gh.shape == (8, 3) and gx.shape == (8, 4)
    singles = [uf.evaluate([loss] + grads, {W: feed[W], b: feed[b], x: feed[x][i], t: feed[t][i]})
               for i in range(8)]
    np.testing.assert_allclose(L, [s[0] for s in singles], rtol=1e-12)
    np.testing.assert_allclose(gW, sum(s[1] for s in singles), rtol=1e-12)
    np.testing.assert_allclose(gb, sum(s[2] for s in singles), rtol=1e-12)
    np.testing.assert_allclose(gh, np.stack([s[3] for s in singles]), rtol=1e-12)
    np.testing.assert_allclose(gx, np.stack([s[4] for s in singles]), rtol=1e-12)


def test_gradient_of_a_batched_node_that_does_not_depend_on_the_batch_is_still_per_example():
    x = uf.input("x", (2,))
    p = uf.param("p", (2,))
    loss = uf.sum(p * p)                   # y does not read x at all
    gx, gp = uf.evaluate(uf.grad(uf.sum(x) * 0.0 + loss, [x, p]),
                         {x: np.ones((5, 2)), p: np.array([1.0, 2.0])})
    assert gx.shape == (5, 2)
    np.testing.assert_array_equal(gx, np.zeros((5, 2)))
    np.testing.assert_array_equal(gp, 5 * np.array([2.0, 4.0]))   # summed over 5 examples


def test_batch_sum_sums_over_the_batch_and_is_the_identity_per_example():
    x, W = uf.input("x", (3,)), uf.param("W", (3,))
    total = uf.batch_sum(uf.sum(x * W))
    assert uf.batch_sum(W) is W                              # nothing to sum for a param
    xv, Wv = np.arange(12.0).reshape(4, 3), np.array([1.0, -1.0, 2.0])
    (v,) = uf.evaluate([total], {x: xv, W: Wv})
    assert v.shape == () and v == pytest.approx((xv @ Wv).sum())
    (single,) = uf.evaluate([total], {x: xv[0], W: Wv})
    assert single == pytest.approx(xv[0] @ Wv)
    gx, gW = uf.evaluate(uf.grad(total, [x, W]), {x: xv, W: Wv})
    np.testing.assert_allclose(gx, np.broadcast_to(Wv, (4, 3)))
    np.testing.assert_allclose(gW, xv.sum(axis=0))


def test_the_same_program_runs_with_and_without_a_batch():
    x, W = uf.input("x", (3,)), uf.param("W", (2, 3))
    y = uf.softmax(W @ x)
    rng = np.random.default_rng(2)
    Wv, xv = rng.standard_normal((2, 3)), rng.standard_normal((5, 3))
    (batched,) = uf.evaluate([y], {x: xv, W: Wv})
    singles = [uf.evaluate([y], {x: xv[i], W: Wv})[0] for i in range(5)]
    (again,) = uf.evaluate([y], {x: xv, W: Wv})
    np.testing.assert_allclose(batched, np.stack(singles), rtol=1e-12)
    np.testing.assert_array_equal(batched, again)


# --- feeding errors specific to batches ----------------------------------------------------------

def test_a_param_fed_with_a_batch_axis_raises_feed_error():
    W, x = uf.param("W", (2, 3)), uf.input("x", (3,))
    with pytest.raises(uf.FeedError, match=r"param .*'W'.*\(4, 2, 3\).*never take a batch axis"):
        uf.evaluate([W @ x], {W: np.zeros((4, 2, 3)), x: np.zeros((4, 3))})


def test_mismatched_batch_sizes_raise_feed_error():
    x, z = uf.input("x", (3,)), uf.input("z", (3,))
    with pytest.raises(uf.FeedError, match=r"batch of (4|5) .* batch of (4|5).*share the batch"):
        uf.evaluate([x + z], {x: np.zeros((4, 3)), z: np.zeros((5, 3))})
