"""The calls a time-batched plan makes in its step loops: what they read, and that the values are
the reference's (float64, tests/timebatch_tolerance.py), through the planner (STRICT)."""
from __future__ import annotations

import ast

import numpy as np
import pytest

import unfold as uf
from unfold import timebatch
from unfold.timebatch import kernels
from unfold.timebatch.kernels import transposed_copy
from unfold.timebatch.lower import It, _contiguous_operands
from bench.workloads import data, unfold_program
from timebatch_tolerance import assert_agree


@pytest.fixture(autouse=True)
def strict(monkeypatch):
    monkeypatch.setattr(timebatch, "STRICT", True)


def _plan(workload: str, size: str = "tiny", dtype=np.float64):
    program = unfold_program(workload, size, dtype)
    feed = data(workload, size, dtype)
    got = program(feed)
    outputs = list(program.outputs)
    assert_agree(outputs, got, uf.evaluate(outputs, feed, mode="reference"), feed)
    (plan,) = program._batched_plans.values()
    assert plan is not None
    return plan


def _loop_calls(plan):
    """Each call in a step loop of the plan's function: (function, arguments — an array, or
    None for a row of the loop)."""
    space = plan.run_code.__globals__

    def value(name):                             # (a loop reads its constants as locals)
        return space.get(name[1:]) if name.startswith("_") else None

    out = []
    for node in ast.walk(ast.parse(plan.run_code.source)):
        if isinstance(node, ast.For):
            for s in node.body:
                call = s.value
                out.append((value(call.func.id), [value(a.id) for a in call.args]))
    return out


#: the products a step loop calls: np.dot as its C function (codegen), np.matmul a ufunc
_PRODUCTS = (np.dot._implementation, np.matmul)


@pytest.mark.parametrize("workload", ["rnn", "lstm"])
def test_generated_code_calls_no_array_function_dispatcher(workload):
    """``np.dot``, ``np.copyto``, … are called as the C functions their ``__array_function__``
    dispatchers call for plain ndarrays (codegen): the same function, ~120 ns less a call."""
    plan = _plan(workload)
    called = [v for v in plan.run_code.__globals__.values() if callable(v)]
    assert np.dot._implementation in called
    assert not any(type(v) is type(np.dot) for v in called)


@pytest.mark.parametrize("workload", ["rnn", "lstm"])
def test_step_loops_multiply_by_c_contiguous_weights(workload):
    """``h(t−1) Wᵀ`` in the forward loop reads a C-contiguous copy of ``Wᵀ`` made before the
    loop (OpenBLAS is 1.2–2.2× slower on a transposed operand with few rows), and every other
    product in a loop reads its constant operand C-contiguous."""
    plan = _plan(workload)
    products = [(fn, args) for fn, args in _loop_calls(plan) if fn in _PRODUCTS]
    assert len(products) == 2                               # forward, backward
    for _, args in products:
        for a in args[:2]:
            assert a is None or a.flags.c_contiguous
    assert any(v is transposed_copy for v in plan.run_code.__globals__.values())


def test_a_weight_written_inside_the_loop_is_not_copied_before_it():
    """The copy is made only when nothing in the loop may write the operand's memory."""
    w = np.zeros((3, 4))
    out, other = np.empty((2, 3)), np.empty((3, 4))
    st = type("St", (), {"_alloc": staticmethod(lambda shape, dtype: np.empty(shape, dtype)),
                         "fed_owners": staticmethod(set), "contiguous": {}})
    read_only = [(np.dot, (It(0), w.T, out))]
    pre, body = _contiguous_operands(st, read_only, [("rows", np.zeros((5, 2, 4)))])
    assert len(pre) == 1 and body[0][1][1].flags.c_contiguous
    written = read_only + [(np.negative, (other, w))]       # (w written in the loop)
    pre, body = _contiguous_operands(st, written, [("rows", np.zeros((5, 2, 4)))])
    assert pre == [] and body[0][1][1] is read_only[0][1][1]
    walked = [("rows", np.zeros((5, 2, 4))), ("ring", [w[:2], w[1:]])]   # (w a loop's rows)
    pre, _ = _contiguous_operands(st, read_only, walked)
    assert pre == []


@pytest.mark.parametrize("shape", [(5, 3), (70, 130), (64, 64), (129, 65)])
def test_a_transposed_copy_by_blocks_is_the_transpose(shape):
    w = np.random.default_rng(0).standard_normal(shape)
    out = np.empty(shape[::-1])
    transposed_copy(out, w.T)
    assert np.array_equal(out, w.T)


def _agreeing_plan(outputs, feed):
    """The time-batched plan of ``outputs``, once its values are checked against the reference."""
    program = uf.compile(outputs)
    assert_agree(outputs, program(feed), uf.evaluate(outputs, feed, mode="reference"), feed)
    (plan,) = program._batched_plans.values()
    return plan


def test_a_wide_recurrence_copies_its_transposed_weight_by_blocks_and_agrees():
    """A state wider than a block (n = 80 > kernels.BLOCK): ``Wᵀ`` copied block by block before
    the forward loop, every value the reference's."""
    rec = uf.models.rnn(3, 80, 4)
    net = rec.unfold(9)
    outputs = [net.loss] + uf.grad(net.loss, net.params)
    rng = np.random.default_rng(1)
    feed = {k: rng.standard_normal(p.shape) / 8 for k, p in rec.params.items()}
    feed.update(x=rng.standard_normal((9, 2, 3)), y=rng.integers(0, 4, (9, 2)))
    plan = _agreeing_plan(outputs, feed)
    space = plan.run_code.__globals__
    (name,) = [k for k, v in space.items() if v is transposed_copy]
    assert plan.run_code.source.count(f"{name}(") == 1


@pytest.mark.parametrize("order", ["batched first", "shared first", "four terms"])
def test_add_n_in_a_step_loop_is_two_adds_a_call_not_the_ops_forward(order):
    """``add_n`` in the recurrent step (terms batched or shared by every example, in any order)
    runs as ``kernels.add_n`` — ``np.add`` into the output, term after term, AddN's order — and
    every value is the reference's."""
    rec = uf.Recurrence("sum3")
    x, y = rec.sequence("x", (3,)), rec.target("y", ())
    W, U, b = rec.param("W", (4, 4)), rec.param("U", (4, 3)), rec.param("b", (4,))
    V = rec.param("V", (2, 4))
    h = rec.state("h", (4,))
    terms = {"batched first": [W @ h, U @ x, b], "shared first": [b, W @ h, U @ x],
             "four terms": [W @ h, b, U @ x, uf.tanh(W @ h)]}[order]
    h_t = rec.update(h, uf.tanh(uf.add_n(terms)))
    rec.loss("L", uf.cross_entropy(V @ h_t, y))
    net = rec.unfold(12)
    outputs = [net.loss] + uf.grad(net.loss, net.params)
    rng = np.random.default_rng(3)
    feed = {k: rng.standard_normal(p.shape) / 2 for k, p in rec.params.items()}
    feed.update(x=rng.standard_normal((12, 5, 3)), y=rng.integers(0, 2, (12, 5)))
    plan = _agreeing_plan(outputs, feed)
    functions = {v for v in plan.run_code.__globals__.values() if callable(v)}
    assert kernels.add_n in functions and kernels.compute not in functions


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64, np.int32, np.uint16])
def test_negate_is_minus_x_at_any_strides(dtype):
    """``kernels.negate`` (the kernel of ``np.negative``) and ``sigmoid``'s ``−x``: exactly
    ``−x`` for inputs and outputs strided by 1…11 elements (numpy 2.4.6's ``np.negative``
    read a float64 input strided 64 bytes apart as contiguous, into a strided output)."""
    a = (np.arange(1, 401) * 3 - 500).astype(dtype)
    for si in range(1, 12):
        for so in range(1, 12):
            out = np.zeros(400, dtype)
            kernels.negate(a[::si][:17], out[::so][:17])
            assert np.array_equal(out[::so][:17], -a[::si][:17]), (si, so)
            if np.dtype(dtype).kind == "f":
                kernels.sigmoid(a[::si][:17] / 100, out[::so][:17])
                assert np.array_equal(out[::so][:17], 1 / (1 + np.exp(-(a[::si][:17] / 100))))


@pytest.mark.parametrize("steps", [1, 3])
def test_a_width_one_gate_of_a_wide_vector_agrees(steps):
    """Regression (test_timebatch_slices at 400 random examples): ``h(t) = σ(z[2:3]) ⊙ z[0:2]
    + h(t−1) ⊙ σ(z[0:2])``, ``z`` 8 wide, float64, batch 3 — σ(z[2:3]) was computed from the
    wrong elements (the ``np.negative`` of ``negate``'s docstring): the loss 1.36 off."""
    rec = uf.Recurrence("narrow")
    x, h, b = rec.sequence("x", (2,)), rec.state("h", (2,)), rec.param("b", (8,))
    z = rec.param("W", (8, 2)) @ h + rec.param("U", (8, 2)) @ x + b
    h_t = rec.update(h, uf.sigmoid(z[2:3]) * z[0:2] + h * uf.sigmoid(z[0:2]))
    rec.loss("L", uf.sum(h_t * h_t))
    net = rec.unfold(steps)
    outputs = [net.loss] + uf.grad(net.loss, net.params)
    rng = np.random.default_rng(0)
    feed = {k: rng.standard_normal(p.shape) for k, p in rec.params.items()}
    feed["x"] = rng.standard_normal((steps, 3, 2))
    _agreeing_plan(outputs, feed)
