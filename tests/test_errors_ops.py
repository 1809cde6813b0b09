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
