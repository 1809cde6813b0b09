"""Indexing with integer and boolean arrays (numpy's advanced indexing), per example and on a
batch; repeated indices accumulate their gradients."""
import numpy as np
import pytest

import unfold as uf
from unfold.testing import gradcheck

KEYS = [[0, 2, 2], (slice(None), [1, 1, 3]), (np.array([[0, 1], [3, 3]]),),
        np.array([True, False, True, True]), (1, [0, 4]), (Ellipsis, [2, 0]), ([-1, 0], 1),
        (None, [3, 0])]


@pytest.mark.parametrize("key", KEYS, ids=[repr(k).replace(" ", "") for k in KEYS])
@pytest.mark.parametrize("batch", [None, 3])
def test_array_indices_agree_with_numpy_and_gradcheck(key, batch):
    rng = np.random.default_rng(7)
    x = uf.input("x", (4, 5))
    y = x[key]
    value = rng.standard_normal((4, 5) if batch is None else (batch, 4, 5))
    got, = uf.evaluate([y], {x: value})
    expected = value[key] if batch is None else np.stack([v[key] for v in value])
    np.testing.assert_array_equal(got, expected)
    gradcheck(uf.sum(uf.tanh(y) * y), x, {x: value})


def test_a_repeated_index_receives_every_contribution():
    x = uf.input("x", (3,))
    g, = uf.evaluate([uf.grad(uf.sum(x[[0, 0, 2, 0]]), x)], {x: np.zeros(3)})
    np.testing.assert_array_equal(g, [3.0, 0.0, 1.0])


def test_separated_array_indices_are_refused_with_the_fix():
    z = uf.input("z", (3, 4, 5))
    with pytest.raises(uf.ShapeError, match="must be adjacent.*index in two steps"):
        z[[0, 1], :, [1, 2]]
    with pytest.raises(uf.ShapeError, match="out of bounds"):
        z[[0, 3]]
    with pytest.raises(TypeError, match="bool True"):
        z[True]
