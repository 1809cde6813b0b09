"""Error paths: each raises the library's exception — a subclass of the builtin a caller expects —
with a message that names the nodes, their shapes and the rule broken."""
from __future__ import annotations

import re

import numpy as np
import pytest

import unfold as uf
from unfold.graph import apply
from unfold.testing import gradcheck, gradgradcheck


def test_exception_hierarchy():
    assert issubclass(uf.ShapeError, ValueError) and issubclass(uf.ShapeError, uf.UnfoldError)
    assert issubclass(uf.DTypeError, TypeError) and issubclass(uf.DTypeError, uf.UnfoldError)
    assert issubclass(uf.FeedError, uf.UnfoldError)
    assert issubclass(uf.GradError, uf.UnfoldError)
    assert issubclass(uf.GradcheckError, AssertionError)


# --- shapes, when the node is built --------------------------------------------------------------

def test_add_shape_mismatch_names_both_operands_and_the_broadcasting_rule():
    a, b = uf.input("a", (2, 3)), uf.input("b", (4,))
    with pytest.raises(uf.ShapeError) as info:
        a + b
    msg = str(info.value)
    assert msg.startswith("add:")
    assert "'a'" in msg and "(2, 3)" in msg and "'b'" in msg and "(4,)" in msg
    assert "do not broadcast" in msg and "equal or one of them 1" in msg


def test_matmul_inner_dimension_mismatch():
    W, x = uf.param("W", (3, 4)), uf.input("x", (5,))
    with pytest.raises(uf.ShapeError, match=r"matmul: 'W' \[param, shape \(3, 4\), float64\] @ "
                                            r"'x' \[input, shape \(5,\), float64\] — the inner "
                                            r"dimensions 4 and 5 differ"):
        W @ x


def test_matmul_scalar_operand_and_stacked_dimensions():
    W = uf.param("W", (3, 4))
    with pytest.raises(uf.ShapeError, match=r"'W'.*an operand is a scalar; use \* for scaling"):
        W @ 2.0
    s, r = uf.input("s", (2, 3, 4)), uf.input("r", (3, 4, 2))
    with pytest.raises(uf.ShapeError, match=r"'s'.*\(2, 3, 4\).*'r'.*\(3, 4, 2\).*stacked"):
        s @ r


def test_concat_mismatch_names_both_nodes_and_the_axis():
    a, c = uf.input("a", (2, 3)), uf.input("c", (2, 4))
    with pytest.raises(uf.ShapeError, match=r"concat along axis 0: 'c' \[input, shape \(2, 4\).*"
                                            r"'a' \[input, shape \(2, 3\).*agree on every "
                                            r"other axis"):
        uf.concat([a, c], axis=0)
    with pytest.raises(uf.ShapeError, match=r"concat: 'z' .* is a scalar; use unfold.stack"):
        uf.concat([uf.input("z"), uf.input("w")])


def test_reshape_size_mismatch():
    a = uf.input("a", (2, 3))
    with pytest.raises(uf.ShapeError, match=r"reshape: cannot reshape 'a' \[input, shape "
                                            r"\(2, 3\), float64\] \(6 elements\) into \(4,\)"):
        uf.reshape(a, (4,))


def test_other_shape_rules():
    a, b = uf.input("a", (2, 3)), uf.input("b", (4,))
    with pytest.raises(uf.ShapeError, match=r"sum: axis 2 is out of range for 'a'.*per-example "
                                            r"rank 2; the batch axis is not counted"):
        uf.sum(a, axis=2)
    with pytest.raises(uf.ShapeError, match=r"repeated axis"):
        uf.max(a, axis=(0, -2))
    with pytest.raises(uf.ShapeError, match=r"transpose: axes \(0, 0\) are not a permutation"):
        uf.transpose(a, (0, 0))
    with pytest.raises(uf.ShapeError, match=r"stack: 'b' .*\(4,\).*'a' .*\(2, 3\).*one shape"):
        uf.stack([a, b])
    with pytest.raises(uf.ShapeError, match=r"index 5 is out of bounds for axis 0 of 'a'"):
        a[5]
    with pytest.raises(uf.ShapeError, match=r"mse: 'a' .* and 'b' .* must have one shape"):
        uf.mse(a, b)
    with pytest.raises(uf.ShapeError, match=r"softmax: 's' .* is a scalar; it needs an axis"):
        uf.softmax(uf.input("s"))
    with pytest.raises(TypeError, match=r"indexing 'a' .* with float 1.5: use ints, slices"):
        a[1.5]


def test_cross_entropy_targets_of_the_wrong_shape():
    logits, t = uf.input("o", (4, 3)), uf.input("t", (3,), dtype="int64")
    with pytest.raises(uf.ShapeError, match=r"cross_entropy: targets 't' .*\(3,\).* without the "
                                            r"class axis 1, i\.e\. \(4,\); logits are 'o'"):
        uf.cross_entropy(logits, t)
    with pytest.raises(ValueError, match=r"reduction must be one of .*got 'avg'"):
        uf.cross_entropy(logits, uf.input("t4", (4,), dtype="int64"), reduction="avg")


# --- dtypes ----------------------------------------------------------------------------------------

def test_float32_plus_float64_is_a_dtype_error_not_a_silent_promotion():
    f, g = uf.input("f", (2,), dtype="float32"), uf.input("g", (2,))
    with pytest.raises(uf.DTypeError) as info:
        f + g
    msg = str(info.value)
    assert "'f' [input, shape (2,), float32]" in msg and "'g' [input, shape (2,), float64]" in msg
    assert "never promotes" in msg and "unfold.cast" in msg


def test_tanh_of_an_integer_input():
    n = uf.input("n", (3,), dtype="int64")
    with pytest.raises(uf.DTypeError, match=r"tanh: operand 'n' \[input, shape \(3,\), int64\] is "
                                            r"int64, but tanh needs floating-point operands"):
        uf.tanh(n)


def test_other_dtype_rules():
    a = uf.input("a", (3,))
    with pytest.raises(uf.DTypeError, match=r"where: the condition 'a' .* must be boolean"):
        uf.where(a, a, a)
    with pytest.raises(uf.DTypeError, match=r"one_hot: targets 'a' .* must be integers"):
        uf.one_hot(a, 3)
    with pytest.raises(uf.DTypeError, match=r"concat: .* differ in dtype"):
        uf.concat([a, uf.input("h", (3,), dtype="float32")])


# --- feeds, before any computation -----------------------------------------------------------------

class _Counting(uf.Op):
    """The identity, counting how often it runs."""

    name = "counting"
    calls = 0

    def infer(self, inputs, attrs):
        return inputs[0].shape, inputs[0].dtype

    def forward(self, node, x):
        _Counting.calls += 1
        return x

    def batched(self, node, values, flags, batch):
        return self.forward(node, values[0])


def _graph():
    a, b = uf.input("a", (2, 3)), uf.param("b", (3,))
    return a, b, apply(_Counting(), a) * 2.0 + b


def _raises_before_computing(feed, match):
    a, b, y = _graph()
    _Counting.calls = 0
    with pytest.raises(uf.FeedError, match=match):
        uf.evaluate([y], {(a if k == "A" else b if k == "B" else k): v for k, v in feed.items()})
    assert _Counting.calls == 0


def test_missing_feed_names_the_placeholder():
    _raises_before_computing({"A": np.zeros((2, 3))},
                             r"missing feed for 1 placeholder\(s\): 'b'; every input and param")


def test_unknown_feed_name_lists_the_known_ones():
    _raises_before_computing({"A": np.zeros((2, 3)), "B": np.zeros(3), "z": 1.0},
                             r"unknown feed name 'z': the graph's placeholders are \['a', 'b'\]")


def test_mis_shaped_feed_states_the_expected_shapes():
    _raises_before_computing({"A": np.zeros((3, 2)), "B": np.zeros(3)},
                             r"'a' \[input, shape \(2, 3\), float64\] is fed with shape \(3, 2\); "
                             r"expected \(2, 3\) for one example, or \(batch,\) \+ \(2, 3\)")


def test_a_param_fed_with_a_batch_axis():
    _raises_before_computing({"A": np.zeros((2, 3)), "B": np.zeros((5, 3))},
                             r"param 'b' .* is fed with shape \(5, 3\).*never take a batch axis")


def test_feeding_a_float_array_to_an_integer_input():
    logits, t = uf.input("o", (3,)), uf.input("t", (), dtype="int64")
    loss = uf.cross_entropy(logits, t)
    with pytest.raises(uf.FeedError, match=r"'t' \[input, shape \(\), int64\] is fed an array of "
                                           r"dtype float64, which cannot be converted to int64"):
        uf.evaluate(loss, {logits: np.zeros(3), t: 1.5})


def test_an_ambiguous_name_must_be_fed_by_node():
    x1, x2 = uf.input("x", (2,)), uf.input("x", (2,))
    with pytest.raises(uf.FeedError, match=r"the name 'x' is shared by 2 placeholders .*feed them "
                                           r"by node"):
        uf.evaluate(x1 + x2, {"x": np.zeros(2)})
    (v,) = uf.evaluate(x1 + x2, {x1: np.ones(2), x2: np.ones(2)})    # by node it works
    np.testing.assert_array_equal(v, [2.0, 2.0])


def test_feeding_a_computed_node_and_bad_keys():
    a = uf.input("a", (2,))
    y = a * 2.0
    with pytest.raises(uf.FeedError, match=r"'mul#\d+' \[mul.*is computed by the graph, not fed"):
        uf.evaluate([y + 1.0], {y: np.zeros(2), a: np.zeros(2)})
    with pytest.raises(uf.FeedError, match=r"feed keys must be nodes or names, got int 3"):
        uf.evaluate([y], {3: 1.0})
    with pytest.raises(uf.FeedError, match=r"'a' is fed twice \(by node and by name\)"):
        uf.evaluate([y], {a: np.zeros(2), "a": np.zeros(2)})


def test_cross_entropy_target_out_of_range_is_reported_at_evaluation():
    logits, t = uf.input("o", (3,)), uf.input("t", (), dtype="int64")
    loss = uf.cross_entropy(logits, t)
    with pytest.raises(uf.FeedError, match=r"cross_entropy: target value 5 in 't' is not a "
                                           r"class index in \[0, 3\)"):
        uf.evaluate(loss, {logits: np.zeros(3), t: 5})
    with pytest.raises(uf.FeedError, match=r"target value -1 in 't'"):       # also on a batch
        uf.evaluate(loss, {logits: np.zeros((2, 3)), t: np.array([0, -1])})


def test_a_failing_forward_names_the_node():
    class Broken(_Counting):
        name = "broken"

        def forward(self, node, x):
            raise ZeroDivisionError("boom")

    x = uf.input("x", (2,))
    with pytest.raises(uf.UnfoldError, match=r"evaluating 'broken#\d+' \[broken, shape \(2,\), "
                                             r"float64\] failed: ZeroDivisionError: boom"):
        uf.evaluate(apply(Broken(), x), {x: np.zeros(2)})


# --- grad ------------------------------------------------------------------------------------------

def test_non_scalar_grad_without_a_seed():
    a = uf.input("a", (2, 3))
    y = uf.tanh(a)
    with pytest.raises(uf.GradError) as info:
        uf.grad(y, a)
    msg = str(info.value)
    assert re.search(r"'tanh#\d+' \[tanh, shape \(2, 3\), float64\] is not a scalar", msg)
    assert "seed=" in msg and "(2, 3)" in msg and "unfold.sum(y)" in msg
    # with a seed of y's shape it is a vector-Jacobian product
    (g,) = uf.evaluate(uf.grad(y, [a], seed=np.full((2, 3), 2.0)), {a: np.zeros((2, 3))})
    np.testing.assert_allclose(g, np.full((2, 3), 2.0))


def test_grad_seed_of_the_wrong_shape():
    a = uf.input("a", (2, 3))
    with pytest.raises(uf.GradError, match=r"the seed 'constant#\d+' \[constant, shape \(3,\), "
                                           r"float64\] must have the shape of y, 'tanh#\d+' "
                                           r"\[tanh, shape \(2, 3\)"):
        uf.grad(uf.tanh(a), a, seed=np.ones(3))


def test_grad_of_or_with_respect_to_integers():
    a, t = uf.input("a", (3,)), uf.input("t", (), dtype="int64")
    with pytest.raises(uf.GradError, match=r"'t' \[input, shape \(\), int64\] is not "
                                           r"floating-point and has no gradient"):
        uf.grad(uf.cross_entropy(a, t), [a, t])
    with pytest.raises(uf.GradError, match=r"not floating-point; nothing to differentiate"):
        uf.grad(uf.sum(a) > 0.0, a)
    with pytest.raises(TypeError, match=r"wrt must hold nodes"):
        uf.grad(uf.sum(a), [np.zeros(3)])


# --- nodes are symbolic -----------------------------------------------------------------------------

def test_a_node_in_an_if_raises_type_error():
    x = uf.input("x", (2,))
    with pytest.raises(TypeError, match=r"truth value of node 'greater#\d+' is only known at "
                                        r"evaluation; use unfold.where"):
        if x > 0.0:
            pass
    with pytest.raises(TypeError, match=r"truth value of node 'x' is only known at evaluation"):
        bool(x)
    with pytest.raises(TypeError, match=r"cannot be iterated"):
        list(x)
    with pytest.raises(TypeError, match=r"len\(\) of a scalar node"):
        len(uf.sum(x))


# --- gradcheck itself -------------------------------------------------------------------------------

class WrongSquare(uf.Op):
    """x², with a deliberately wrong derivative (3x instead of 2x)."""

    name = "wrong_square"

    def infer(self, inputs, attrs):
        return inputs[0].shape, inputs[0].dtype

    def forward(self, node, x):
        return x * x

    def vjp(self, node, g):
        return (g * node.inputs[0] * 3.0,)


class GoodSquareWrongSecond(WrongSquare):
    """x² with the right first derivative 2x, written with an op whose own derivative is wrong."""

    name = "square_wrong_second"

    def vjp(self, node, g):
        return (g * apply(WrongDouble(), node.inputs[0]),)


class WrongDouble(WrongSquare):
    """2x, whose vjp claims 3."""

    name = "wrong_double"

    def forward(self, node, x):
        return 2.0 * x

    def vjp(self, node, g):
        return (g * 3.0,)


def test_gradcheck_names_the_leaf_index_and_both_values():
    x = uf.input("x", (3,))
    y = uf.sum(apply(WrongSquare(), x))
    with pytest.raises(uf.GradcheckError) as info:
        gradcheck(y, [x], {x: np.array([0.5, -1.0, 2.0])})
    msg = str(info.value)
    assert "worst element: x[2]" in msg                     # |3x − 2x| is largest at x = 2
    m = re.search(r"analytic ([-\d.e+]+), numeric ([-\d.e+]+)", msg)
    assert m, msg
    assert float(m.group(1)) == pytest.approx(6.0)
    assert float(m.group(2)) == pytest.approx(4.0, rel=1e-6)


def test_gradcheck_passes_and_reports_on_a_right_vjp():
    x = uf.input("x", (3,))
    report = gradcheck(uf.sum(x * x), [x], {x: np.array([0.5, -1.0, 2.0])})
    assert report.checked == 3 and report.error < 1e-6
    assert "3 elements checked" in str(report)


def test_gradgradcheck_catches_a_wrong_second_derivative_that_gradcheck_misses():
    x = uf.input("x", (2,))
    y = uf.sum(apply(GoodSquareWrongSecond(), x))
    feed = {x: np.array([0.5, 1.5])}
    gradcheck(y, [x], feed)                      # first order is right
    with pytest.raises(uf.GradcheckError, match=r"worst element: x\[\d\]"):
        gradgradcheck(y, [x], feed)


def test_gradcheck_needs_float64_fed_leaves():
    x = uf.input("x", (2,), dtype="float32")
    with pytest.raises(TypeError, match=r"needs float64"):
        gradcheck(uf.sum(x), [x], {x: np.zeros(2, np.float32)})
    h = uf.tanh(uf.input("z", (2,)))
    with pytest.raises(TypeError, match=r"must be an input or param"):
        gradcheck(uf.sum(h), [h], {"z": np.zeros(2)})
