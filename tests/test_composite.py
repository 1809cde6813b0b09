"""Random composite graphs (``unfold.testing.strategies.expressions``: random DAGs of the ops over
random inputs, with broadcasting, reductions, reshapes, matmul, concat and softmax): reverse mode
agrees with finite differences to first and second order, and dtypes are preserved end to end."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import unfold as uf
from unfold.testing import gradcheck, gradgradcheck
from unfold.testing.strategies import arrays, broadcastable_shapes, expressions, shapes


@given(expr=expressions())
def test_random_graphs_pass_gradcheck(expr):
    report = gradcheck(expr.output, expr.leaves, expr.feed)
    assert report.checked == sum(leaf.size for leaf in expr.leaves)


@given(expr=expressions(max_leaves=3, max_ops=8, max_dims=3))
def test_larger_random_graphs_pass_gradcheck(expr):
    report = gradcheck(expr.output, expr.leaves, expr.feed)
    assert report.checked == sum(leaf.size for leaf in expr.leaves)


@settings(max_examples=max(5, settings().max_examples // 2))
@given(expr=expressions(max_ops=5))
def test_random_graphs_pass_gradgradcheck(expr):
    report = gradgradcheck(expr.output, expr.leaves, expr.feed)
    assert report.checked == sum(leaf.size for leaf in expr.leaves)


def _check_dtype_end_to_end(expr, dtype):
    y = expr.output
    grads = uf.grad(y, expr.leaves)
    hvp = uf.grad(uf.add_n([uf.sum(g * g) for g in grads]), expr.leaves)
    assert y.dtype == dtype
    assert all(g.dtype == dtype for g in grads + hvp)
    values = uf.evaluate([y] + grads + hvp, expr.feed)
    assert all(v.dtype == dtype for v in values), [v.dtype for v in values]
    assert all(np.all(np.isfinite(v)) for v in values)
    for leaf, g in zip(expr.leaves, values[1:1 + len(grads)]):
        assert g.shape == leaf.shape
    # on a batch too
    batched = {leaf: np.stack([v, v * 0.5]) for leaf, v in expr.feed.items()}
    values = uf.evaluate([y] + grads, batched)
    assert all(v.dtype == dtype for v in values)
    assert values[0].shape == (2,)


@given(expr=expressions(dtype=np.float32))
def test_float32_graphs_stay_float32_in_values_and_gradients(expr):
    assert all(leaf.dtype == np.float32 for leaf in expr.leaves)
    assert all(v.dtype == np.float32 for v in expr.feed.values())
    _check_dtype_end_to_end(expr, np.float32)


@given(expr=expressions(dtype=np.float64))
def test_float64_graphs_stay_float64_in_values_and_gradients(expr):
    _check_dtype_end_to_end(expr, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_python_numbers_take_the_dtype_of_the_other_operand(dtype):
    x = uf.input("x", (3,), dtype=dtype)
    exprs = [x + 1, 2 * x, x / 3, 1 - x, x ** 2, 2.0 ** x, uf.maximum(x, 0.5),
             uf.where(x > 0, x, 0.0), uf.mean(x), uf.mse(x, 0.5 * x), uf.sigmoid(x) * 1.5]
    values = uf.evaluate(exprs + uf.grad(uf.sum(uf.add_n([uf.sum(e) for e in exprs])), [x]),
                         {x: np.array([0.5, -1.0, 2.0], dtype=dtype)})
    for e in exprs:
        assert e.dtype == dtype, e
    for v in values:
        assert v.dtype == dtype


def _batched(expr, data):
    """The expression's feed with some leaves given a batch of 3 examples."""
    mask = data.draw(st.lists(st.booleans(), min_size=len(expr.leaves),
                              max_size=len(expr.leaves)), label="batched leaves")
    feed = {}
    for i, (leaf, value) in enumerate(expr.feed.items()):
        if mask[i]:
            shifts = np.array([0.0, 0.37, -0.61]).reshape((3,) + (1,) * value.ndim)
            value = value[None] + shifts
        feed[leaf] = value
    return feed


@given(expr=expressions(), data=st.data())
def test_random_graphs_pass_gradcheck_on_a_batch(expr, data):
    feed = _batched(expr, data)
    report = gradcheck(expr.output, expr.leaves, feed)
    assert report.checked == sum(np.size(v) for v in feed.values())


@settings(max_examples=max(5, settings().max_examples // 2))
@given(expr=expressions(max_ops=5), data=st.data())
def test_random_graphs_pass_gradgradcheck_on_a_batch(expr, data):
    feed = _batched(expr, data)
    report = gradgradcheck(expr.output, expr.leaves, feed)
    assert report.checked == sum(np.size(v) for v in feed.values())


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_python_integers_take_the_dtype_of_integer_operands(dtype):
    t = uf.input("t", (4,), dtype=dtype)
    masks = [t > 0, uf.equal(t, 2), uf.not_equal(1, t), t <= 1]
    values = uf.evaluate(masks, {t: np.array([0, 1, 2, 3], dtype=dtype)})
    expected = [[False, True, True, True], [False, False, True, False],
                [True, False, True, True], [True, True, False, False]]
    for m, v, e in zip(masks, values, expected):
        assert m.dtype == np.bool_
        np.testing.assert_array_equal(v, e)


# --- the strategies themselves -------------------------------------------------------------------

@given(value=arrays(shapes(max_dims=3), dtype=np.float32, low=-1.0, high=1.5,
                    away_from_zero=0.25))
def test_arrays_strategy_respects_dtype_bounds_and_distance_from_zero(value):
    assert value.dtype == np.float32 and value.ndim <= 3
    assert np.all(np.isfinite(value))
    assert np.all(np.abs(value) >= np.float32(0.25) * (1 - 1e-6))
    assert np.all(value >= -1.0 - 0.25) and np.all(value <= 1.5 + 0.25)


@given(shapes_=broadcastable_shapes(3, max_dims=3))
def test_broadcastable_shapes_broadcast(shapes_):
    assert len(shapes_) == 3
    np.broadcast_shapes(*shapes_)                       # raises if they do not


@given(expr=expressions())
def test_expressions_are_scalar_graphs_over_their_fed_leaves(expr):
    assert expr.output.shape == ()
    assert set(expr.feed) == set(expr.leaves)
    assert all(expr.feed[leaf].shape == leaf.shape for leaf in expr.leaves)
    assert np.isfinite(uf.evaluate(expr.output, expr.feed)[0])
