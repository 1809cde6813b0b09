"""Numerical stability (extreme logits, saturated sigmoids), scale (a 100 000-node chain without
recursion), and the properties of the IR and of reverse mode the other files take for granted:
second derivatives, gradients with respect to intermediate and unrelated nodes, fan-out, node
identity and immutability, the compiled-program cache and the freeing of intermediates."""
from __future__ import annotations

import math
import weakref

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import unfold as uf
from unfold.graph import apply
from unfold.testing import strategies as ufst

# overflow, invalid operations and divisions by zero raise; underflow (exp(-2e4) = 0) is fine
STRICT = dict(over="raise", invalid="raise", divide="raise")


# --- stability -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_log_softmax_and_cross_entropy_are_finite_for_logits_of_1e4(dtype):
    o = uf.input("o", (4,), dtype=dtype)
    t = uf.input("t", (), dtype="int64")
    logits = np.array([1e4, -1e4, 0.0, 1e4 - 1.0], dtype=dtype)
    ls, ce, sm = uf.log_softmax(o), uf.cross_entropy(o, t), uf.softmax(o)
    grads = uf.grad(ce, [o])
    for target in range(4):
        with np.errstate(**STRICT):
            lv, cv, sv, gv = uf.evaluate([ls, ce, sm] + grads, {o: logits, t: target})
        for v in (lv, cv, sv, gv):
            assert v.dtype == dtype and np.all(np.isfinite(v))
        assert sv.sum() == pytest.approx(1.0, rel=1e-6)
        assert cv == pytest.approx(-lv[target], rel=1e-6)
        np.testing.assert_allclose(gv, sv - np.eye(4)[target], atol=1e-6)   # softmax − 1_y
    lse = 1e4 + math.log1p(math.exp(-1))                # log Σ exp, without overflow
    np.testing.assert_allclose(lv, logits.astype(np.float64) - lse, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_on_a_batch_of_extreme_logits(dtype):
    o = uf.input("o", (3,), dtype=dtype)
    t = uf.input("t", (), dtype="int64")
    loss = uf.cross_entropy(o, t)
    batch = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=dtype)
    with np.errstate(**STRICT):
        L, g = uf.evaluate([loss, uf.grad(loss, o)], {o: batch, t: np.array([1, 0, 2])})
    assert np.all(np.isfinite(L)) and np.all(np.isfinite(g))
    np.testing.assert_allclose(L, [2e4, math.log(3), 2e4 + math.log(2)], rtol=1e-6)


@given(shape=ufst.shapes(min_dims=1, max_dims=3), data=st.data())
def test_softmax_sums_to_one_along_its_axis_at_any_scale(shape, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    scale = data.draw(st.sampled_from([1.0, 1e2, 1e4]), label="scale")
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    x = uf.input("x", shape, dtype=dtype)
    value = ufst.array(shape, seed, dtype, -scale, scale)
    with np.errstate(**STRICT):
        (s,) = uf.evaluate([uf.softmax(x, axis=axis)], {x: value})
    assert s.dtype == dtype
    assert np.all(s >= 0) and np.all(s <= 1)
    np.testing.assert_allclose(s.sum(axis=axis), 1.0, rtol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_saturates_without_overflow_at_1000(dtype):
    x = uf.input("x", (4,), dtype=dtype)
    y = uf.sigmoid(x)
    with np.errstate(**STRICT):
        v, g = uf.evaluate([y, uf.grad(uf.sum(y), x)],
                           {x: np.array([-1000.0, -50.0, 50.0, 1000.0], dtype=dtype)})
    assert v.dtype == dtype and g.dtype == dtype
    np.testing.assert_allclose(v, [0.0, 0.0, 1.0, 1.0], atol=1e-20)
    assert np.all(np.isfinite(g)) and np.all(g >= 0) and np.all(g < 1e-20)


# --- scale: no recursion anywhere ----------------------------------------------------------------

def test_a_chain_of_100_000_nodes_builds_differentiates_and_evaluates():
    n = 100_000
    x = uf.input("x", (3,))
    h = x
    for _ in range(n):
        h = uf.tanh(h)
    y = uf.sum(h)
    g = uf.grad(y, x)                                  # would overflow the stack if recursive
    x0 = np.array([0.5, -1.0, 2.0])
    value, grad_value = uf.evaluate([y, g], {x: x0})
    # the same recurrence, by hand: h ← tanh h, ∂h/∂x ← (1 − h²) ∂h/∂x
    hs, ds = list(x0), [1.0, 1.0, 1.0]
    for _ in range(n):
        for i in range(3):
            hs[i] = math.tanh(hs[i])
            ds[i] *= 1.0 - hs[i] * hs[i]
    assert value == pytest.approx(sum(hs), rel=1e-9)
    np.testing.assert_allclose(grad_value, ds, rtol=1e-6)


def _scalar_recurrence():
    """``h(t) = tanh(w h(t−1) + u x(t))``, ``L = Σ_t h(t)²``: a scalar state."""
    rec = uf.Recurrence("long")
    x, h = rec.sequence("x", ()), rec.state("h", ())
    w, u = rec.param("w", ()), rec.param("u", ())
    rec.loss("L", rec.update(h, uf.tanh(w * h + u * x)) ** 2)
    return rec, w, u


def _by_hand(w: float, u: float, xs) -> tuple[float, float, float]:
    """L, ∂L/∂w, ∂L/∂u of the scalar recurrence, by hand (Python floats: the fastest loop)."""
    hs = [0.0]
    for x in xs:
        hs.append(math.tanh(w * hs[-1] + u * x))
    loss = sum(h * h for h in hs[1:])
    gh = gw = gu = 0.0
    for t in range(len(xs), 0, -1):
        da = (gh + 2 * hs[t]) * (1 - hs[t] * hs[t])
        gw += da * hs[t - 1]
        gu += da * xs[t - 1]
        gh = w * da
    return loss, gw, gu


def test_tau_one_hundred_thousand_unfolds_differentiates_and_evaluates(monkeypatch):
    """τ = 100 000 (2.3 M nodes) through the default, time-batched path — which must not give
    up on the graph (``STRICT``: a failure of the compiler is raised, not rerun node by node)."""
    from unfold import timebatch
    monkeypatch.setattr(timebatch, "STRICT", True)
    steps = 100_000
    rec, w, u = _scalar_recurrence()
    g = rec.unfold(steps)
    program = uf.compile([g.loss] + uf.grad(g.loss, [w, u]))
    xs = np.random.default_rng(0).standard_normal(steps)
    got = program({"w": 0.5, "u": 1.0, "x": xs})
    assert [p is not None for p in program._batched_plans.values()] == [True]
    np.testing.assert_allclose(got, _by_hand(0.5, 1.0, xs.tolist()), rtol=1e-9)


@pytest.mark.parametrize("batch", [None, 3])
def test_a_scalar_state_runs_time_batched_in_a_loop(monkeypatch, batch):
    """A scalar state's loop iterates 0-d rows (numpy would hand out scalars, not views)."""
    from unfold import timebatch
    from unfold.timebatch import lower
    monkeypatch.setattr(timebatch, "STRICT", True)
    monkeypatch.setattr(lower, "LOOP_STEPS", 2)
    rec, w, u = _scalar_recurrence()
    g = rec.unfold(9)
    outputs = [g.loss] + uf.grad(g.loss, [w, u]) + [g.final("h")]
    xs = np.random.default_rng(1).standard_normal((9,) if batch is None else (9, batch))
    feed = {"w": 0.7, "u": -1.2, "x": xs}
    program = uf.compile(outputs)
    got = program(feed)
    assert [p is not None for p in program._batched_plans.values()] == [True]
    want = uf.evaluate(outputs, feed, mode="reference")
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-300)
    if batch is None:
        np.testing.assert_allclose(got[:3], _by_hand(0.7, -1.2, xs.tolist()), rtol=1e-12)


# --- second order, intermediate and unrelated nodes, fan-out -------------------------------------

def _mlp():
    W1, b1, W2 = uf.param("W1", (4, 3)), uf.param("b1", (4,)), uf.param("W2", (2, 4))
    x, t = uf.input("x", (3,)), uf.input("t", (), dtype="int64")
    h = uf.tanh(W1 @ x + b1)
    loss = uf.cross_entropy(W2 @ h, t) + 0.1 * uf.sum(uf.sigmoid(h))
    rng = np.random.default_rng(11)
    feed = {W1: rng.standard_normal((4, 3)), b1: rng.standard_normal(4),
            W2: rng.standard_normal((2, 4)), x: rng.standard_normal(3), t: 1}
    return (W1, b1, W2), x, h, loss, feed


def test_hessian_vector_product_of_a_small_mlp_matches_finite_differences():
    params, x, h, loss, feed = _mlp()
    rng = np.random.default_rng(5)
    direction = {p: rng.standard_normal(p.shape) for p in params}
    grads = uf.grad(loss, params)
    gv = uf.add_n([uf.sum(g * uf.constant(direction[p])) for g, p in zip(grads, params)])
    hvp = uf.evaluate(uf.grad(gv, params), feed)      # H v, as graphs: grad of grad
    eps = 1e-5
    plus = uf.evaluate(grads, {**feed, **{p: feed[p] + eps * direction[p] for p in params}})
    minus = uf.evaluate(grads, {**feed, **{p: feed[p] - eps * direction[p] for p in params}})
    for got, a, b in zip(hvp, plus, minus):
        np.testing.assert_allclose(got, (a - b) / (2 * eps), rtol=1e-6, atol=1e-8)
    assert any(np.abs(v).max() > 1e-3 for v in hvp)    # a nontrivial second derivative


def test_gradient_with_respect_to_an_intermediate_node():
    x, W = uf.input("x", (3,)), uf.param("W", (2, 3))
    h = uf.tanh(W @ x)
    c = np.array([1.5, -0.5])
    y = uf.sum(h * h * uf.constant(c)) + uf.sum(x)      # x also reaches y directly
    dh, dx = uf.grad(y, [h, x])
    rng = np.random.default_rng(0)
    feed = {x: rng.standard_normal(3), W: rng.standard_normal((2, 3))}
    hv, dhv, dxv = uf.evaluate([h, dh, dx], feed)
    np.testing.assert_allclose(dhv, 2 * hv * c, rtol=1e-12)               # ∂y/∂h, x held fixed
    expected_dx = feed[W].T @ (2 * hv * c * (1 - hv ** 2)) + 1             # total derivative
    np.testing.assert_allclose(dxv, expected_dx, rtol=1e-12)
    # on a batch, ∂y/∂h stays per example
    xb = rng.standard_normal((5, 3))
    hb, dhb = uf.evaluate([h, dh], {x: xb, W: feed[W]})
    assert dhb.shape == (5, 2)
    np.testing.assert_allclose(dhb, 2 * hb * c, rtol=1e-12)


def test_gradient_with_respect_to_a_node_y_does_not_depend_on_is_zeros_of_its_shape():
    x, z = uf.input("x", (3,)), uf.input("z", (2, 4), dtype="float32")
    u = uf.param("u", (5,))
    unrelated = uf.tanh(u)                              # an intermediate node elsewhere
    y = uf.sum(x * x)
    gz, gu, gunrelated = uf.grad(y, [z, u, unrelated])
    assert (gz.shape, gz.dtype) == ((2, 4), np.float32)
    assert gu.shape == (5,) and gunrelated.shape == (5,)
    values = uf.evaluate([gz, gu, gunrelated], {x: np.ones(3), z: np.ones((2, 4), np.float32),
                                                u: np.ones(5)})
    assert values[0].dtype == np.float32
    for v, shape in zip(values, [(2, 4), (5,), (5,)]):
        np.testing.assert_array_equal(v, np.zeros(shape))
    (gzb,) = uf.evaluate(uf.grad(y, [z]), {x: np.ones(3), z: np.ones((4, 2, 4), np.float32)})
    assert gzb.shape == (4, 2, 4)                       # fed with a batch: zeros per example
    np.testing.assert_array_equal(gzb, np.zeros((4, 2, 4)))


def test_fan_out_accumulates_every_use():
    x = uf.input("x", (3,))
    y = uf.sum(x * 2.0 + uf.tanh(x) + x * x)            # x used 4 times, by 3 users
    (g,) = uf.evaluate(uf.grad(y, [x]), {x: np.array([0.5, -1.0, 2.0])})
    xv = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(g, 2.0 + (1 - np.tanh(xv) ** 2) + 2 * xv, rtol=1e-12)
    h = uf.tanh(x)
    y2 = uf.sum(h + h * h + uf.exp(h))                  # an intermediate node used 4 times
    (g2,) = uf.evaluate(uf.grad(y2, [x]), {x: xv})
    hv = np.tanh(xv)
    np.testing.assert_allclose(g2, (1 + 2 * hv + np.exp(hv)) * (1 - hv ** 2), rtol=1e-12)


# --- the IR ----------------------------------------------------------------------------------------

def test_nodes_hash_by_identity_and_compare_element_wise():
    a, b = uf.input("a", (2,)), uf.input("a", (2,))     # same name, shape and dtype
    assert (a == b).op.name == "equal" and (a != b).op.name == "not_equal"   # element-wise
    assert hash(a) != hash(b) or a is not b
    table = {a: 1, b: 2}
    assert table[a] == 1 and table[b] == 2 and len({a, b, a}) == 2
    y1, y2 = a + b, a + b
    assert y1 is not y2 and len({y1, y2}) == 2
    assert uf.evaluate(y1, {a: np.ones(2), b: np.ones(2)})[0].tolist() == [2.0, 2.0]


def test_nodes_are_immutable():
    x = uf.input("x", (2,))
    y = uf.sum(x, axis=0)
    for attr, value in [("shape", (3,)), ("name", "z"), ("inputs", ()), ("dtype", np.float32)]:
        with pytest.raises(AttributeError, match=r"immutable"):
            setattr(y, attr, value)
    with pytest.raises(AttributeError, match=r"immutable"):
        del y.name
    with pytest.raises(TypeError):
        y.attrs["axes"] = (1,)                          # static attributes are read-only too
    with pytest.raises(AttributeError):
        y.something_new = 1
    c = uf.constant(np.arange(3.0))
    with pytest.raises(ValueError):
        c.attrs["value"][0] = 5.0                        # a constant's array is read-only
    assert y.shape == () and y.name is None


def test_evaluating_the_same_outputs_twice_reuses_the_compiled_program():
    x = uf.input("x", (3,))
    y = uf.sum(uf.tanh(x))
    g = uf.grad(y, x)
    program = uf.compile([y, g])
    assert uf.compile([y, g]) is program
    first = uf.evaluate([y, g], {x: np.ones(3)})
    assert uf.compile([y, g]) is program                # evaluate used (and kept) the same one
    second = uf.evaluate([y, g], {x: np.ones(3)})
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert uf.compile([g, y]) is not program            # other outputs, another program


class _Record(uf.Op):
    """The identity as a fresh array, remembered by a weak reference."""

    name = "record"
    made: list = []

    def infer(self, inputs, attrs):
        return inputs[0].shape, inputs[0].dtype

    def forward(self, node, x):
        out = np.array(x, copy=True)
        _Record.made.append(weakref.ref(out))
        return out


class _AssertFreed(_Record):
    """The identity, checking that every recorded array has been freed by now."""

    name = "assert_freed"
    alive_when_checked: list = []

    def forward(self, node, x):
        _AssertFreed.alive_when_checked.append(sum(r() is not None for r in _Record.made))
        return x


def test_intermediates_are_freed_as_soon_as_no_later_op_needs_them():
    x = uf.input("x", (1000,))
    recorded = apply(_Record(), x)
    h = uf.tanh(uf.tanh(recorded))                      # its last reader is the inner tanh
    out = apply(_AssertFreed(), h)
    _Record.made.clear()
    _AssertFreed.alive_when_checked.clear()
    (v,) = uf.evaluate([out], {x: np.linspace(-1, 1, 1000)})
    assert len(_Record.made) == 1
    assert _AssertFreed.alive_when_checked == [0]       # freed before the last op ran
    np.testing.assert_allclose(v, np.tanh(np.tanh(np.linspace(-1, 1, 1000))))
