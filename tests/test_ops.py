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


# --- edge cases of the ops users reach for ------------------------------------------------------

def test_prod_gradient_is_exact_with_zeros_to_second_order():
    x = uf.input("x", (2, 5))
    value = np.array([[0.0, 2.0, 3.0, -1.0, 0.5], [0.0, 0.0, 3.0, 2.0, 1.5]])   # one zero, two
    (g,) = uf.evaluate(uf.grad(uf.sum(uf.prod(x, axis=1)), x), {x: value})
    expected = np.array([[np.prod(np.delete(row, i)) for i in range(5)] for row in value])
    np.testing.assert_array_equal(g, expected)              # no 0/0: the product of the others
    assert g[0, 0] == -3.0 and not g[1].any()
    gradcheck(uf.prod(x, axis=1), [x], {x: value})
    gradgradcheck(uf.prod(x, axis=1), [x], {x: value})      # ∂²/∂x₀∂x₁ ≠ 0 with two zeros
    (p,) = uf.evaluate(uf.prod(uf.input("e", (0, 2)), axis=0), {"e": np.zeros((0, 2))})
    np.testing.assert_array_equal(p, [1.0, 1.0])            # an empty product is 1


def test_logsumexp_is_stable_for_large_values_and_handles_minus_infinity():
    x = uf.input("x", (4, 2))
    value = np.array([[1000.0, 1000.0], [-1000.0, -1000.0], [-np.inf, 0.0], [-np.inf, -np.inf]])
    y = uf.logsumexp(x, axis=1)
    v, g = uf.evaluate([y, uf.grad(uf.sum(y[:3]), x)], {x: value})
    np.testing.assert_allclose(v[:3], [1000 + np.log(2), -1000 + np.log(2), 0.0], rtol=1e-15)
    assert v[3] == -np.inf                                   # log Σ of nothing but zeros
    np.testing.assert_allclose(g, [[0.5, 0.5], [0.5, 0.5], [0.0, 1.0], [0.0, 0.0]])  # no nan
    f = uf.input("f", (2,), dtype="float32")
    (v32,) = uf.evaluate(uf.logsumexp(f), {f: np.array([80.0, 80.0], np.float32)})
    assert v32.dtype == np.float32 and np.isfinite(v32) and abs(v32 - (80 + np.log(2))) < 1e-4


def test_softplus_is_exact_for_large_magnitudes():
    x = uf.input("x", (4,))
    y = uf.softplus(x)
    v, g = uf.evaluate([y, uf.grad(uf.sum(y), x)], {x: np.array([1000.0, -1000.0, 40.0, 0.0])})
    np.testing.assert_allclose(v, [1000.0, 0.0, 40.0, np.log(2)], rtol=1e-15)
    assert v[1] > 0 or v[1] == np.exp(-1000.0)               # no log(1 + inf), no cancellation
    np.testing.assert_allclose(g, [1.0, 0.0, 1.0, 0.5])
    (small,) = uf.evaluate(uf.log1p(x) - uf.expm1(x), {x: np.full(4, 1e-10)})
    np.testing.assert_allclose(small, np.log1p(1e-10) - np.expm1(1e-10), rtol=1e-6, atol=0)


def test_std_at_zero_variance_is_zero_with_a_zero_gradient():
    x = uf.input("x", (2, 3))
    value = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]])
    s, v = uf.std(x, axis=1), uf.var(x, axis=1, ddof=1)
    sv, vv, gs, gv = uf.evaluate([s, v, uf.grad(uf.sum(s), x), uf.grad(uf.sum(v), x)], {x: value})
    np.testing.assert_allclose(sv, np.std(value, axis=1))
    np.testing.assert_allclose(vv, np.var(value, axis=1, ddof=1))
    np.testing.assert_array_equal(gs[0], [0.0, 0.0, 0.0])    # not nan (√ at 0)
    assert np.all(np.isfinite(gs)) and np.all(np.isfinite(gv))
    gradcheck(s[1], [x], {x: value})
    gradgradcheck(uf.std(x), [x], {x: value})


def test_clip_at_and_beyond_the_bounds():
    x = uf.input("x", (5,))
    value = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    y = uf.clip(x, -1.0, 1.0)
    v, g = uf.evaluate([y, uf.grad(uf.sum(y), x)], {x: value})
    np.testing.assert_array_equal(v, np.clip(value, -1.0, 1.0))
    np.testing.assert_array_equal(g, [0.0, 1.0, 1.0, 1.0, 0.0])   # 1 at the bounds, as torch
    lo, hi = uf.input("lo", ()), uf.input("hi", ())
    y = uf.sum(uf.clip(x, lo, hi))
    glo, ghi = uf.evaluate(uf.grad(y, [lo, hi]), {x: value, lo: -1.5, hi: 0.5})
    assert glo == 1.0 and ghi == 2.0                        # the clipped elements' bound
    (only_upper,) = uf.evaluate(uf.clip(x, upper=0.0), {x: value})
    np.testing.assert_array_equal(only_upper, np.minimum(value, 0.0))


def test_minimum_and_min_send_the_gradient_to_the_first_of_tied_operands():
    a, b = uf.input("a", (3,)), uf.input("b", (3,))
    ga, gb = uf.evaluate(uf.grad(uf.sum(uf.minimum(a, b)), [a, b]),
                         {a: np.array([1.0, 2.0, 3.0]), b: np.array([1.0, 0.0, 5.0])})
    np.testing.assert_array_equal(ga, [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(gb, [0.0, 1.0, 0.0])
    x = uf.input("x", (3,))
    (g,) = uf.evaluate(uf.grad(uf.min(x), [x]), {x: np.array([1.0, 1.0, 3.0])})
    np.testing.assert_array_equal(g, [0.5, 0.5, 0.0])


def test_argmax_picks_the_first_maximum_and_carries_no_gradient():
    x = uf.input("x", (2, 3))
    value = np.array([[1.0, 5.0, 5.0], [7.0, 0.0, 7.0]])
    i, j = uf.argmax(x, axis=1), uf.argmax(x)
    assert i.dtype == np.int64 and i.shape == (2,) and j.shape == ()
    iv, jv = uf.evaluate([i, j], {x: value})
    np.testing.assert_array_equal(iv, [1, 0])
    assert jv == 3                                           # the flattened example's index
    (batched,) = uf.evaluate([j], {x: np.stack([value, value[::-1]])})
    np.testing.assert_array_equal(batched, [3, 0])          # per example, flattened per example
    loss = uf.sum(x * uf.cast(i, "float64")[:, None])
    (g,) = uf.evaluate(uf.grad(loss, [x]), {x: value})
    np.testing.assert_array_equal(g, np.broadcast_to([[1.0], [0.0]], (2, 3)))   # through x only


def test_einsum_batching_never_takes_the_batch_axis_for_an_index():
    # the batch size equals every dimension, and '...' stands for axes of the example
    Q, K = uf.input("Q", (3, 3)), uf.input("K", (3, 3))
    W = uf.param("W", (3, 3))
    rng = np.random.default_rng(5)
    Qv, Kv, Wv = rng.standard_normal((3, 3, 3)), rng.standard_normal((3, 3, 3)), \
        rng.standard_normal((3, 3))
    ys = [uf.einsum("qd,kd->qk", Q, K), uf.einsum("ij,jk->ik", W, Q), uf.einsum("...i,...j->...ij", Q, K),
          uf.einsum("ij,ij", Q, W), uf.einsum("ii->i", Q)]
    values = uf.evaluate(ys, {Q: Qv, K: Kv, W: Wv})
    for y, got in zip(ys, values):
        singles = [uf.evaluate([y], {Q: Qv[b], K: Kv[b], W: Wv})[0] for b in range(3)]
        np.testing.assert_allclose(got, np.stack(singles), rtol=1e-12)
    # a shared operand's gradient is one summed einsum, not a (batch, …) array summed afterwards
    gW = uf.grad(uf.sum(ys[1]), W)
    assert gW.op.name == "batch_einsum"
    np.testing.assert_allclose(uf.evaluate(gW, {Q: Qv, W: Wv})[0], Qv.sum(axis=0).sum(axis=1)[None, :]
                               .repeat(3, axis=0), rtol=1e-12)


def test_embedding_is_a_row_gather_equal_to_the_one_hot_product():
    E = uf.param("E", (5, 3))
    tokens = uf.input("tokens", (4,), dtype="int64")
    rows, hot = uf.embedding(E, tokens), uf.one_hot(tokens, 5) @ E
    Ev = np.random.default_rng(2).standard_normal((5, 3))
    feed = {E: Ev, tokens: np.array([[1, 1, 4, 0], [2, 2, 2, 2]])}      # a batch, repeated tokens
    r, h, gr, gh = uf.evaluate([rows, hot, uf.grad(uf.sum(rows ** 2), E),
                                uf.grad(uf.sum(hot ** 2), E)], feed)
    np.testing.assert_allclose(r, h, rtol=1e-15)
    np.testing.assert_allclose(gr, gh, rtol=1e-12)                 # scatter-add, over the batch
    assert uf.grad(uf.sum(rows), E).op.name == "batch_scatter_rows"
    with pytest.raises(uf.FeedError, match=r"embedding: token 5 in 'tokens' is not a row of the "
                                           r"table in \[0, 5\)"):
        uf.evaluate(rows, {E: Ev, tokens: np.array([0, 1, 5, 2])})
    gradgradcheck(uf.tanh(rows), [E], {E: Ev, tokens: np.array([1, 1, 4, 0])})


def test_the_new_ops_in_an_unfolded_recurrence_compile_to_the_reference_values(monkeypatch):
    # the time-batching compiler folds time into the batch axis: every batching rule must hold
    # there too (embedding and its scatter-add, einsum's batch letter, pow's domain check …)
    from unfold import timebatch
    monkeypatch.setattr(timebatch, "STRICT", True)
    rec = uf.Recurrence("lm")
    x, y = rec.sequence("x", (), dtype="int64"), rec.target("y", ())
    h = rec.state("h", (4,))
    E, W, U, V = (rec.param(n, s) for n, s in [("E", (5, 3)), ("W", (4, 4)), ("U", (4, 3)),
                                               ("V", (5, 4))])
    pre = uf.einsum("ij,j->i", W, h) + U @ uf.embedding(E, x)
    h_t = rec.update(h, uf.clip(uf.tanh(pre), -0.9, 0.9) * uf.sigmoid(uf.softplus(pre)))
    o = rec.output("o", V @ h_t)
    rec.loss("L", uf.logsumexp(o) - uf.sum(o * uf.one_hot(y, 5)) + 0.1 * uf.std(h_t)
             + uf.prod(uf.cos(h_t[:2])) + uf.min(uf.sin(h_t)) + uf.expm1(h_t[0]) ** 2.0
             + uf.log1p(h_t[1] ** 2) + uf.var(uf.minimum(h_t, 0.5)))
    g = rec.unfold(5)
    params = [E, W, U, V]
    grads = uf.grad(g.loss, params)
    rng = np.random.default_rng(4)
    feed = {E: rng.standard_normal((5, 3)), W: rng.standard_normal((4, 4)) * 0.5,
            U: rng.standard_normal((4, 3)), V: rng.standard_normal((5, 4)),
            "x": rng.integers(0, 5, size=(5, 3)), "y": rng.integers(0, 5, size=(5, 3))}
    fast = uf.evaluate([g.loss] + grads, feed)
    reference = uf.evaluate([g.loss] + grads, feed, mode="reference")
    for a, b in zip(fast, reference):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    gradcheck(g.loss, params, dict(feed, x=feed["x"][:, 0], y=feed["y"][:, 0]))
