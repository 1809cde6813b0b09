"""Bad input at the op and graph level: each case ends in a library error that is also the builtin
a caller catches (``except ValueError`` keeps working), with a message naming what is wrong and
the fix — or in a correct result. One test (or a few) per class of bad input."""
from __future__ import annotations

import numpy as np
import pytest

import unfold as uf


def raises(builtin, *fragments):
    """``pytest.raises`` for a library error that is also ``builtin``, whose message contains
    every fragment."""
    class _Check:
        def __enter__(self):
            self._ctx = pytest.raises(uf.UnfoldError)
            self.info = self._ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            handled = self._ctx.__exit__(*exc)
            assert isinstance(self.info.value, builtin), (type(self.info.value).__mro__, builtin)
            msg = str(self.info.value)
            for f in fragments:
                assert f in msg, (f, msg)
            return handled
    return _Check()


# --- == and != are element-wise; hashing stays identity ----------------------------------------

def test_equality_between_nodes_is_element_wise_like_numpy():
    x, z = uf.input("x", (3,)), uf.input("z", (3,))
    xv, zv = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0])
    eq, ne, eq_number, eq_array = x == z, x != z, x == 2.0, np.array([1.0, 5.0, 3.0]) == x
    for node, op in [(eq, "equal"), (ne, "not_equal"), (eq_number, "equal"), (eq_array, "equal")]:
        assert isinstance(node, uf.Node) and node.op.name == op and node.dtype == np.bool_
    values = uf.evaluate([eq, ne, eq_number, eq_array, x * uf.cast(x == z, "float64")],
                         {x: xv, z: zv})
    np.testing.assert_array_equal(values[0], xv == zv)
    np.testing.assert_array_equal(values[1], xv != zv)
    np.testing.assert_array_equal(values[2], xv == 2.0)
    np.testing.assert_array_equal(values[3], [True, False, True])
    np.testing.assert_array_equal(values[4], [1.0, 0.0, 3.0])      # not silently 0


def test_nodes_still_key_dicts_and_sets_by_identity():
    a, b = uf.input("a", (2,)), uf.input("a", (2,))      # same name, shape and dtype
    table = {a: 1, b: 2}
    assert table[a] == 1 and table[b] == 2 and len({a, b, a}) == 2 and a in {a} and b not in {a}
    assert (a == None) is False and (a != None) is True     # noqa: E711 - not element-wise
    assert (a == "a") is False


def test_a_node_looked_up_in_a_list_says_to_compare_with_is():
    a, b = uf.input("a", (2,)), uf.input("b", (2,))
    with raises(TypeError, "truth value of node", "element-wise", "`is`", "sets or dicts"):
        b in [a, b]
    with raises(TypeError, "element-wise", "`is`"):
        [a, b].index(b)
    with raises(TypeError, "truth value of node 'a'", "unfold.where"):
        bool(a)


# --- shapes and axes: integers, validated as numpy validates them --------------------------------

@pytest.mark.parametrize("axes", [(3, 0), (0, -3), (5, 1)])
def test_transpose_axes_out_of_range_are_refused_not_wrapped(axes):
    x = uf.input("x", (2, 3))
    with raises(IndexError, "transpose", f"axis {[a for a in axes if not -2 <= a < 2][0]}",
                "out of range", "'x'", "(2, 3)"):
        uf.transpose(x, axes)
    with raises(ValueError, "out of range"):
        uf.transpose(x, axes)


@pytest.mark.parametrize("axes", [(2, 1), (0,), (0, 1, 2, 3)])
def test_transpose_axes_of_the_wrong_length_are_refused_not_ignored(axes):
    z = uf.input("z", (2, 3, 4))
    with raises(ValueError, "transpose", str(axes), "do not match", "'z'", "3 per-example axes"):
        uf.transpose(z, axes)


def test_transpose_axes_must_be_distinct_integers():
    x = uf.input("x", (2, 3))
    with raises(ValueError, "not a permutation", "repeated"):
        uf.transpose(x, (1, -1))
    for bad in [(1.0, 0), (True, False), ("1", "0")]:
        with raises(TypeError, "transpose", "not an integer"):
            uf.transpose(x, bad)
    y = uf.transpose(x, (-1, 0))
    (v,) = uf.evaluate(y, {x: np.arange(6.0).reshape(2, 3)})
    np.testing.assert_array_equal(v, np.arange(6.0).reshape(2, 3).T)


@pytest.mark.parametrize("make", [
    lambda s: uf.input("x", s), lambda s: uf.param("x", s),
    lambda s: uf.reshape(uf.input("x", (6,)), s),
    lambda s: uf.Recurrence("r").sequence("x", s), lambda s: uf.Recurrence("r").param("x", s),
], ids=["input", "param", "reshape", "sequence", "rec.param"])
@pytest.mark.parametrize("shape", [(3.5,), (2.0, 3), (True, 6), ("6",), (np.float64(6),), "ab",
                                   (None,)])
def test_shapes_hold_integers_only(make, shape):
    with raises(TypeError, "not an integer"):
        make(shape)


@pytest.mark.parametrize("make", [lambda s: uf.input("x", s), lambda s: uf.param("x", s)])
def test_shapes_that_no_array_can_have(make):
    with raises(ValueError, "negative dimension", "(2, -1)"):
        make((2, -1))
    with raises(ValueError, "more than an array can hold"):
        make((2**40, 2**40))
    with raises(TypeError, "shape must be a tuple of ints"):
        make(3.0)
    assert make(np.int64(3)).shape == (3,) and make([2, np.int32(3)]).shape == (2, 3)


def test_reshape_is_inferred_by_arithmetic_and_refuses_impossible_sizes():
    big = uf.input("big", (10**6, 10**6))            # 10¹² elements: never allocated
    assert uf.reshape(big, (-1, 1000)).shape == (10**9, 1000)
    with raises(ValueError, "reshape", "'big'", "1000000000000 elements", "(-1, 7)"):
        uf.reshape(big, (-1, 7))
    x = uf.input("x", (2, 3))
    with raises(ValueError, "6 elements", "(1099511627776, 1099511627776)"):
        uf.reshape(x, (2**40, 2**40))
    for bad in [(-1, -1), (-2, -3), (3, -2)]:
        with raises(ValueError, "one -1 and otherwise non-negative"):
            uf.reshape(x, bad)
    with raises(ValueError, "no size for the -1"):
        uf.reshape(uf.input("e", (0, 3)), (0, -1))
    assert uf.reshape(uf.input("e", (0, 3)), (3, 0)).shape == (3, 0)
    with raises(TypeError, "not an integer"):
        x.reshape(3.0, 2)


# --- powers: x ** 0 has gradient 0 at 0, and the other edge cases -----------------------------

def _grad_of_sum(y, x, value):
    return uf.evaluate([uf.sum(y), uf.grad(uf.sum(y), x)], {x: value})


@pytest.mark.parametrize("zero", [0, 0.0, np.zeros(3)])
def test_x_to_the_power_zero_has_gradient_zero_also_at_zero(zero):
    x = uf.input("x", (3,))
    value, g = _grad_of_sum(x ** zero, x, np.array([0.0, -2.0, 3.0]))
    assert value == 3.0
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.0])


def test_power_gradients_at_zero_are_finite_where_they_exist():
    x, b = uf.input("x", (3,)), uf.input("b", (3,))
    values = {x: np.array([0.0, 0.0, 2.0]), b: np.array([0.0, 2.0, 3.0])}
    y = uf.sum(x ** b)
    v, gx, gb = uf.evaluate([y, *uf.grad(y, [x, b])], values)
    assert v == 1.0 + 0.0 + 8.0
    np.testing.assert_allclose(gx, [0.0, 0.0, 12.0])         # b xᵇ⁻¹, 0 where b = 0
    np.testing.assert_allclose(gb, [0.0, 0.0, 8 * np.log(2)])  # xᵇ ln x, 0 at x = 0
    _, g = _grad_of_sum(x ** np.array([0.0, 1.0, 2.0]), x, np.array([0.0, 0.0, 0.0]))
    np.testing.assert_array_equal(g, [0.0, 1.0, 0.0])


def test_zero_to_a_negative_power_is_inf_like_division_by_zero():
    x = uf.input("x", (2,))
    with np.errstate(divide="ignore"):
        (v,) = uf.evaluate(x ** -1.0, {x: np.array([0.0, 2.0])})
        (w,) = uf.evaluate(1.0 / x, {x: np.array([0.0, 2.0])})
    np.testing.assert_array_equal(v, w)
    assert v[0] == np.inf


@pytest.mark.parametrize("batched", [False, True])
def test_a_negative_base_with_a_non_integer_exponent_is_refused_when_evaluated(batched):
    x, b = uf.input("x", (3,)), uf.input("b", ())
    value = np.array([4.0, -8.0, 1.0])
    value = np.stack([value, np.abs(value)]) if batched else value
    with raises(ValueError, "pow", "'x'", "negative base -8.0", "non-integer power 0.5",
                "abs(x)"):
        uf.evaluate(x ** 0.5, {x: value})
    with raises(ValueError, "negative base -8.0", "non-integer power 0.25"):
        uf.evaluate(x ** b, {x: value, b: 0.25})
    (ok,) = uf.evaluate(x ** 3, {x: value})                 # integer exponents are fine
    np.testing.assert_array_equal(ok, value ** 3)
    (ok,) = uf.evaluate(x ** b, {x: value, b: 2.0})
    np.testing.assert_array_equal(ok, value ** 2)


# --- Python values no dtype holds, and other values of expressions --------------------------

@pytest.mark.parametrize("value,builtin,fragment", [
    (1j, TypeError, "complex"), (np.complex128(1 + 2j), TypeError, "complex"),
    (10**400, ValueError, "cannot be an array of float64"), ("a", TypeError, "str 'a'"),
    (None, TypeError, "NoneType"), (object(), TypeError, "object"),
    ([1, [2, 3]], ValueError, "inhomogeneous"), (np.array(["a"]), TypeError, "no supported"),
    (np.array([1, None], dtype=object), TypeError, "no supported dtype"),
])
def test_values_no_dtype_holds_are_refused_in_expressions(value, builtin, fragment):
    x = uf.input("x", (2,))
    with raises(builtin, fragment):
        x + value
    with raises(builtin, fragment):
        value * x if not isinstance(value, np.ndarray) else uf.multiply(value, x)


@pytest.mark.parametrize("value,dtype,builtin,fragment", [
    (2**70, None, TypeError, "integers beyond 64 bits"),
    (1e300, "float32", ValueError, "overflows float32"),
    (np.array([1.0, 1e300]), "float32", ValueError, "1e+300 overflows float32"),
    (np.array([1.5]), "int64", ValueError, "1.5 is not an integer"),
    (np.nan, "int32", ValueError, "nan is not an integer"),
    (300, "int8", ValueError, "outside the range of int8"),
    (np.array([300]), "int8", ValueError, "300 is outside"),
    ("x", "float64", TypeError, "<U1"), (np.zeros(2, complex), None, TypeError, "complex128"),
    ([1, [2]], None, ValueError, "inhomogeneous"),
])
def test_constants_are_refused_rather_than_changed(value, dtype, builtin, fragment):
    with raises(builtin, fragment):
        uf.constant(value, dtype=dtype)


def test_python_numbers_that_overflow_the_operands_dtype():
    f = uf.input("f", (2,), dtype="float32")
    with raises(ValueError, "1e+300 overflows float32"):
        f * 1e300
    t = uf.input("t", (), dtype="int8")
    with raises(ValueError, "300", "outside the range of the int8"):
        t > 300
    assert (f * 1e30).dtype == np.float32 and (f + np.inf).dtype == np.float32   # inf is meant
    with raises(TypeError, "list of nodes", "unfold.stack"):
        f + [f, f]


def test_a_fraction_or_a_numpy_scalar_is_a_correct_value():
    from fractions import Fraction
    x = uf.input("x", ())
    (v,) = uf.evaluate(x * Fraction(1, 4) + np.float64(1.0), {x: 2.0})
    assert v == 1.5


# --- indexing ----------------------------------------------------------------------------------

def test_slices_with_step_zero_or_non_integer_bounds():
    x = uf.input("x", (4, 3))
    with raises(ValueError, "slice step cannot be zero", "'x'"):
        x[::0]
    with raises(ValueError, "slice step cannot be zero"):
        x[:, 1:2:0]
    with raises(TypeError, "slice bounds", "0.5"):
        x[0.5:]
    with raises(TypeError, "slice bounds", "'1'"):
        x[:"1"]


def test_index_errors_are_index_errors():
    x = uf.input("x", (4, 3))
    with raises(IndexError, "index 7 is out of bounds for axis 1", "(size 3)"):
        x[:, 7]
    with raises(IndexError, "index -5 is out of bounds for axis 0"):
        x[[0, -5]]
    with raises(IndexError, "boolean mask of shape (3,)", "(4,)"):
        x[np.array([True, False, True])]                   # numpy: mask must match the axis
    with raises(IndexError, "too many"):
        x[0, 0, 0]
    with raises(TypeError, "float64 array"):
        x[np.array([0.5])]
    with raises(TypeError, "unfold.embedding"):
        x[uf.input("i", (), dtype="int64")]
    (v,) = uf.evaluate([x[np.array([[True, False, True]] * 4)]], {x: np.arange(12.0).reshape(4, 3)})
    np.testing.assert_array_equal(v, np.arange(12.0).reshape(4, 3)[:, [0, 2]].ravel())


# --- axes, flags and counts of the ops ----------------------------------------------------------

@pytest.mark.parametrize("build", [
    lambda x: uf.sum(x, axis=1.0), lambda x: uf.mean(x, axis="0"), lambda x: uf.max(x, axis=(0, 1.5)),
    lambda x: uf.softmax(x, axis=0.5), lambda x: uf.log_softmax(x, axis=None),
    lambda x: uf.concat([x, x], axis=1.0), lambda x: uf.stack([x, x], axis=1.0),
    lambda x: uf.argmax(x, axis=1.0), lambda x: uf.prod(x, axis=[True]),
    lambda x: uf.logsumexp(x, axis=(0.0,)), lambda x: uf.var(x, axis=1.0),
    lambda x: uf.cross_entropy(x, uf.input("t", (2,), dtype="int64"), axis=1.0),
], ids=["sum", "mean", "max", "softmax", "log_softmax", "concat", "stack", "argmax", "prod",
        "logsumexp", "var", "cross_entropy"])
def test_non_integer_axes_are_refused(build):
    with raises(TypeError, "axis", "int"):
        build(uf.input("x", (2, 3)))


def test_axes_out_of_range_are_index_errors_and_flags_are_booleans():
    x = uf.input("x", (2, 3))
    for build in (lambda: uf.sum(x, axis=2), lambda: uf.min(x, axis=-3),
                  lambda: uf.stack([x, x], axis=3), lambda: uf.softmax(x, axis=2)):
        with raises(IndexError, "out of range"):
            build()
    with raises(TypeError, "keepdims must be True or False", "'yes'"):
        uf.sum(x, keepdims="yes")
    with raises(ValueError, "repeated axis"):
        uf.prod(x, axis=(1, -1))


@pytest.mark.parametrize("make", [
    lambda d: uf.input("x", (2,), dtype=d), lambda d: uf.param("x", (2,), dtype=d),
    lambda d: uf.constant([1.0], dtype=d), lambda d: uf.cast(uf.input("x", (2,)), d),
    lambda d: uf.one_hot(uf.input("y", (), dtype="int64"), 3, dtype=d),
    lambda d: uf.Recurrence("r").sequence("x", (2,), dtype=d),
], ids=["input", "param", "constant", "cast", "one_hot", "sequence"])
@pytest.mark.parametrize("dtype,fragment", [("flaot32", "'flaot32' is not a dtype"),
                                            ("complex128", "complex128 is not supported"),
                                            (object, "object is not supported"),
                                            (3, "3 is not a dtype"), ("U4", "<U4 is not")])
def test_unknown_or_unsupported_dtypes(make, dtype, fragment):
    with raises(TypeError, fragment, "float64"):
        make(dtype)


@pytest.mark.parametrize("build,fragment", [
    (lambda: uf.add_n([]), "add_n needs at least one"), (lambda: uf.concat([]), "concat needs"),
    (lambda: uf.stack([]), "stack needs"), (lambda: uf.einsum("i"), "at least one operand"),
])
def test_empty_sequences_of_operands(build, fragment):
    with raises(ValueError, fragment):
        build()
    with raises(TypeError, "takes a list of nodes"):
        uf.add_n(uf.input("x", (2,)))


@pytest.mark.parametrize("classes,builtin", [(-1, ValueError), (0, ValueError), (2.5, TypeError),
                                             (True, TypeError), ("3", TypeError)])
def test_one_hot_with_a_bad_number_of_classes_is_refused_when_built(classes, builtin):
    y = uf.input("y", (4,), dtype="int64")
    with raises(builtin, "one_hot", "number of classes", repr(classes)):
        uf.one_hot(y, classes)


def test_other_op_arguments_are_checked_when_the_node_is_built():
    x = uf.input("x", (2, 3))
    t = uf.input("t", (2,), dtype="int64")
    with raises(ValueError, "reduction must be one of", "'avg'"):
        uf.cross_entropy(x, t, reduction="avg")
    with raises(ValueError, "reduction must be one of"):
        uf.mse(x, x, reduction=None)
    with raises(ValueError, "mean", "empty axis", "'e'"):
        uf.mean(uf.input("e", (0, 3)), axis=0)
    with raises(ValueError, "cannot reduce the empty axis"):
        uf.max(uf.input("e", (0, 3)), axis=0)
    with raises(TypeError, "non-empty string name"):
        uf.named(x, "")
    with raises(TypeError, "already a node"):
        uf.constant(x)


# --- the graph layer and the executor -----------------------------------------------------------

def test_nodes_refuse_misuse_with_library_errors():
    x = uf.input("x", (2,))
    with raises(AttributeError, "immutable", "'x'"):
        x.name = "y"
    with raises(AttributeError, "immutable"):
        del x.shape
    with raises(TypeError, "len() of a scalar node"):
        len(uf.sum(x))
    with raises(TypeError, "cannot be iterated"):
        list(x)


def test_evaluate_and_grad_argument_checks():
    x = uf.input("x", (2,))
    with raises(TypeError, "outputs must be nodes", "int"):
        uf.evaluate([3])
    with raises(ValueError, "checkpoint must be a positive number", "-1"):
        uf.evaluate([x], {x: np.zeros(2)}, checkpoint=-1)
    with raises(TypeError, "wrt must be a node or a list of nodes", "'x'"):
        uf.grad(uf.sum(x), "x")
    with raises(TypeError, "wrt must hold nodes"):
        uf.grad(uf.sum(x), [np.zeros(2)])
    with raises(TypeError, "y must be a node", "2.0"):
        uf.grad(2.0, x)


@pytest.mark.parametrize("exc", [FloatingPointError("overflow"), MemoryError("no memory"),
                                 ZeroDivisionError("boom"), KeyError("k")])
def test_a_numpy_failure_inside_an_op_is_a_library_error_of_the_same_kind(exc):
    from unfold.graph import apply

    class Failing(uf.Op):
        name = "failing"

        def infer(self, inputs, attrs):
            return inputs[0].shape, inputs[0].dtype

        def forward(self, node, x):
            raise exc

    x = uf.input("x", (2,))
    with raises(type(exc), "evaluating 'failing#", type(exc).__name__):
        uf.evaluate(apply(Failing(), x), {x: np.zeros(2)})


def test_an_op_without_a_rule_says_which_rule():
    from unfold.graph import apply

    class NoRules(uf.Op):
        name = "no_rules"

        def infer(self, inputs, attrs):
            return inputs[0].shape, inputs[0].dtype

        def forward(self, node, x):
            return x

    x = uf.input("x", (2,))
    y = apply(NoRules(), x)
    with raises(NotImplementedError, "no_rules has no derivative", "define vjp"):
        uf.grad(uf.sum(y), x)
    with raises(NotImplementedError, "no batching rule"):
        uf.evaluate(y, {x: np.zeros((3, 2))})


# --- gradcheck's own arguments ------------------------------------------------------------------

@pytest.mark.parametrize("check", ["gradcheck", "gradgradcheck", "numeric_grad"])
@pytest.mark.parametrize("eps,builtin", [(0, ValueError), (0.0, ValueError), (-1e-6, ValueError),
                                         (float("nan"), ValueError), (float("inf"), ValueError),
                                         ("1e-6", TypeError), (True, TypeError),
                                         (None, TypeError)])
def test_gradcheck_refuses_a_step_that_makes_no_finite_difference(check, eps, builtin):
    import unfold.testing as T
    x = uf.input("x", (2,))
    with raises(builtin, check, "eps (the finite-difference step) must be", repr(eps)):
        getattr(T, check)(uf.sum(x * x), [x], {x: np.ones(2)}, eps=eps)


def test_gradcheck_refuses_tolerances_seeds_and_arguments_that_check_nothing():
    from unfold.testing import gradcheck
    x = uf.input("x", (2,))
    y, feed = uf.sum(x * x), {x: np.ones(2)}
    with raises(ValueError, "atol must be a finite number in [0, inf]", "-1"):
        gradcheck(y, [x], feed, atol=-1)
    with raises(ValueError, "rtol must be a finite number", "nan"):
        gradcheck(y, [x], feed, rtol=float("nan"))
    with raises(ValueError, "seed must be an integer ≥ 0"):
        gradcheck(y, [x], feed, seed=-1)
    with raises(ValueError, "wrt is empty"):
        gradcheck(y, [], feed)
    with raises(TypeError, "feed must be a mapping"):
        gradcheck(y, [x], [np.ones(2)])
    with raises(TypeError, "y must be a node"):
        gradcheck(3.0, [x], feed)
    with raises(ValueError, "missing feed", "'x'"):
        gradcheck(y, [x], {})
    with raises(TypeError, "must be an input or param"):
        gradcheck(y, [uf.tanh(x)], feed)


# --- numpy and Python asking a symbolic node for a value ---------------------------------------

def test_numpy_ufuncs_unfold_has_build_nodes_and_other_numpy_calls_say_what_to_use():
    x = uf.input("x", (3,))
    for y, op in [(np.exp(x), "exp"), (np.ones(3) * x, "mul"), (np.maximum(x, 0.0), "maximum"),
                  (np.array(2.0) ** x, "pow"), (np.zeros(3) == x, "equal")]:
        assert isinstance(y, uf.Node) and y.op.name == op
    with raises(TypeError, "numpy.sum", "'x'", "use unfold.sum"):
        np.sum(x)
    with raises(TypeError, "numpy.concatenate", "'x'"):
        np.concatenate([x, x])
    with raises(TypeError, "add with out", "'x'"):
        np.add(x, 1.0, out=np.zeros(3))
    with raises(TypeError, "arctan", "unfold's ops"):
        np.arctan(x)


@pytest.mark.parametrize("use", [float, int, complex, round, np.asarray, lambda n: 1.0 in n,
                                 lambda n: [0, 1][n]])
def test_a_symbolic_node_has_no_value_until_evaluated(use):
    x = uf.sum(uf.input("x", (3,)))
    with raises(TypeError, "symbolic", "unfold.evaluate"):
        use(x)


@pytest.mark.parametrize("outputs", [3, None, np.array(3), "x", {1.0}])
def test_evaluate_takes_a_node_or_a_list_of_nodes(outputs):
    with raises(TypeError, "evaluate", "node"):
        uf.evaluate(outputs, {})
    with raises(ValueError, "checkpoint must be", "[1]"):
        uf.evaluate([uf.input("x")], {"x": 1.0}, checkpoint=[1])


def test_complex_values_are_never_cast_to_real():
    with raises(TypeError, "complex128"):
        uf.constant(np.array([1 + 0j]), dtype="float64")
    with raises(TypeError, "<U3"):
        uf.constant(["1.5"], dtype="float64")
    rec = uf.Recurrence("r")
    with raises(TypeError, "state 'h'", "init must be a node (or an array of numbers)"):
        rec.state("h", (2,), init=[1j, 2.0])
    with raises(TypeError, "state 'g'", "'flaot' is not a dtype"):
        rec.state("g", (2,), dtype="flaot")


def test_python_number_objects_keep_their_value_or_are_refused():
    from decimal import Decimal
    from fractions import Fraction
    x = uf.input("x", ())
    with raises(ValueError, "Decimal('1E+400')", "float64"):
        x + Decimal("1e400")
    with raises(ValueError, "Fraction(3, 2)", "int64"):
        uf.constant([Fraction(3, 2)], dtype="int64")
    (v,) = uf.evaluate(x * Fraction(1, 4) + Decimal("0.5"), {x: 2.0})
    assert v == 1.0
