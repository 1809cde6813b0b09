"""Every op: forward agreement with plain numpy, reverse mode against central finite differences
(float64, random shapes with broadcasting), and second order for the ops that have one.

The cases live in ``op_table.CASES``; each draws operand shapes, value domains (positive for log,
sqrt and pow's base, away from 0 for denominators, away from kinks for relu/abs/maximum) and static
arguments (axes, keepdims, reductions, indices)."""
from __future__ import annotations

import inspect
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import unfold as uf
from unfold.testing import gradcheck, gradgradcheck

from op_table import CASE_IDS, CASES, COVERED, draw_arrays, leaves


def _example(case, data):
    args, kwargs = case.draw(data)
    arrays = draw_arrays(data, args)
    nodes = leaves(args)
    y = case.build(*nodes, **kwargs)
    wrt = [nodes[i] for i in case.float_operands(args)]
    return y, nodes, arrays, kwargs, wrt


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@given(data=st.data())
def test_forward_matches_numpy_and_gradients_match_finite_differences(case, data):
    y, nodes, arrays, kwargs, wrt = _example(case, data)
    expected = np.asarray(case.ref(*arrays, **kwargs))
    # the shape rule and the dtype rule agree with numpy's result
    assert y.shape == expected.shape, (y, expected.shape)
    assert y.dtype == expected.dtype, (y, expected.dtype)

    feed = dict(zip(nodes, arrays))
    (value,) = uf.evaluate([y], feed)
    assert value.shape == expected.shape and value.dtype == expected.dtype
    if expected.dtype == np.bool_:
        np.testing.assert_array_equal(value, expected)
    else:
        np.testing.assert_allclose(value, expected, rtol=case.rtol, atol=1e-12)

    if wrt:
        report = gradcheck(y, wrt, feed, **case.tol)
        assert report.checked == sum(n.size for n in wrt)


SECOND_ORDER = [c for c in CASES if c.second_order and c.wrt != ()]


@pytest.mark.parametrize("case", SECOND_ORDER, ids=[c.name for c in SECOND_ORDER])
@settings(max_examples=max(4, settings().max_examples // 3))
@given(data=st.data())
def test_second_order_matches_finite_differences_of_the_gradient(case, data):
    y, nodes, arrays, kwargs, wrt = _example(case, data)
    feed = dict(zip(nodes, arrays))
    report = gradgradcheck(y, wrt, feed, **case.tol)
    assert report.checked == sum(n.size for n in wrt)


def test_the_table_covers_every_public_op():
    public = {name for name, fn in vars(uf).items()
              if inspect.isfunction(fn) and fn.__module__.startswith("unfold.ops.")
              and not name.startswith("_")}
    # leaves are exercised by every test; batch_sum has its own tests in test_batching
    public -= {"input", "param", "constant", "batch_sum"}
    assert public <= COVERED, public - COVERED
    assert {c.name for c in CASES} >= {"matmul", "getitem", "cross_entropy", "where"}


# --- matmul: every combination of vector, matrix and stack on both sides ------------------------

MATMUL_SHAPES = {"vector": ((3,), (3,)), "matrix": ((2, 3), (3, 4)),
                 "stack": ((5, 2, 3), (5, 3, 4)), "broadcast stack": ((2, 1, 2, 3), (5, 3, 4))}


@pytest.mark.parametrize("kind_a,kind_b", list(itertools.product(MATMUL_SHAPES, repeat=2)))
def test_matmul_every_operand_kind(kind_a, kind_b):
    sa, sb = MATMUL_SHAPES[kind_a][0], MATMUL_SHAPES[kind_b][1]
    rng = np.random.default_rng(7)
    a, b = uf.input("a", sa), uf.input("b", sb)
    feed = {a: rng.standard_normal(sa), b: rng.standard_normal(sb)}
    y = a @ b
    expected = feed[a] @ feed[b]
    assert y.shape == expected.shape
    np.testing.assert_allclose(uf.evaluate(y, feed)[0], expected, rtol=1e-12)
    gradcheck(y, [a, b], feed)
    gradgradcheck(uf.tanh(y), [a, b], feed)


# --- documented conventions at non-differentiable points ---------------------------------------

def test_maximum_sends_the_gradient_to_the_first_operand_on_ties():
    a, b = uf.input("a", (3,)), uf.input("b", (3,))
    ga, gb = uf.evaluate(uf.grad(uf.sum(uf.maximum(a, b)), [a, b]),
                         {a: np.array([1.0, 2.0, 3.0]), b: np.array([1.0, 5.0, 0.0])})
    np.testing.assert_array_equal(ga, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(gb, [0.0, 1.0, 0.0])


def test_max_splits_the_gradient_evenly_among_tied_maxima():
    x = uf.input("x", (2, 3))
    (g,) = uf.evaluate(uf.grad(uf.sum(uf.max(x, axis=1)), [x]),
                       {x: np.array([[1.0, 3.0, 3.0], [4.0, 4.0, 4.0]])})
    np.testing.assert_allclose(g, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


def test_relu_and_abs_have_zero_gradient_at_zero():
    x = uf.input("x", (3,))
    g_relu, g_abs = uf.evaluate([uf.grad(uf.sum(uf.relu(x)), x), uf.grad(uf.sum(uf.abs(x)), x)],
                                {x: np.array([-1.0, 0.0, 2.0])})
    np.testing.assert_array_equal(g_relu, [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(g_abs, [-1.0, 0.0, 1.0])


# --- ops whose derivative finite differences cannot see ----------------------------------------

def test_stop_gradient_blocks_the_gradient():
    x = uf.input("x", (4,))
    value = np.array([0.5, -1.0, 2.0, 3.0])
    (g,) = uf.evaluate(uf.grad(uf.sum(x * uf.stop_gradient(x)), [x]), {x: value})
    np.testing.assert_array_equal(g, value)            # d/dx (x · c) with c = x held fixed
    (g0,) = uf.evaluate(uf.grad(uf.sum(uf.stop_gradient(x) ** 2), [x]), {x: value})
    np.testing.assert_array_equal(g0, np.zeros(4))


def test_cast_sends_the_gradient_back_in_the_operand_dtype():
    x = uf.input("x", (2, 3))
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = uf.sum(uf.cast(x, "float32") * uf.constant(w))
    assert y.dtype == np.float32
    g = uf.grad(y, x)
    assert g.dtype == np.float64
    (gv,) = uf.evaluate([g], {x: np.ones((2, 3))})
    assert gv.dtype == np.float64
    np.testing.assert_array_equal(gv, w.astype(np.float64))


def test_cast_to_the_same_dtype_is_the_node_itself():
    x = uf.input("x", (2,))
    assert uf.cast(x, "float64") is x


def test_one_hot_values_and_dtype():
    t = uf.input("t", (4,), dtype="int64")
    h = uf.one_hot(t, 3, dtype=np.float32)
    assert h.shape == (4, 3) and h.dtype == np.float32
    (v,) = uf.evaluate(h, {t: np.array([0, 2, 1, 2])})
    np.testing.assert_array_equal(v, np.eye(3, dtype=np.float32)[[0, 2, 1, 2]])
    assert v.dtype == np.float32
