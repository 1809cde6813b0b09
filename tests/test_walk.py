"""A walk (``graph.walk``, behind ``grad``, ``evaluate`` and the time-batching planner) costs what
the graph's nodes cost, not what was built between them and the leaves they read: a graph may
read a leaf made long before the rest — a parameter read by graph after graph, a shared constant
such as the 1 of ``1 − u`` — across millions of serial numbers. (A graph reading an old
*intermediate* still walks the serial numbers between: rare, and only slower.)

The gaps are made by drawing serial numbers without making nodes (``graph._keys``): the same
serial numbers a million other nodes would have taken, in microseconds."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import unfold as uf
from unfold import graph
from unfold.testing import gradcheck
from examples import scaled

GAPS = st.sampled_from([0, 1, 3_000, 5_000, 1_000_000])


def _skip(serials: int) -> None:
    """Let ``serials`` serial numbers pass, as if that many nodes of other graphs were built."""
    next(itertools.islice(graph._keys, serials, serials), None)


def _graph(data):
    """An expression whose parts were built in eras separated by drawn gaps: W and b first, then
    an intermediate a = tanh(W x + b), then the output reading W and a."""
    n = data.draw(st.integers(1, 4), label="n")
    W, b = uf.param("W", (n, n)), uf.param("b", (n,))
    gaps = [data.draw(GAPS, label="gap after the parameters")]
    _skip(gaps[0])
    x = uf.input("x", (n,))
    a = uf.tanh(W @ x + b)
    gaps.append(data.draw(GAPS, label="gap after a"))
    _skip(gaps[1])
    v = uf.param("v", (n,))
    one, two = uf.constant(np.ones(n)), uf.constant(np.full(n, 2.0))    # (made here, not shared)
    y = uf.sum((one - a * a) * (W @ a) + two * v * a)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    feed = {W: rng.standard_normal((n, n)), b: rng.standard_normal(n),
            v: rng.standard_normal(n), x: rng.standard_normal(n)}
    return y, (W, b, v, x, a), feed, gaps


def _by_numpy(feed, W, b, v, x):
    a = np.tanh(feed[W] @ feed[x] + feed[b])
    return np.sum((1.0 - a * a) * (feed[W] @ a) + 2.0 * feed[v] * a)


@given(data=st.data())
def test_a_walk_lists_the_graph_and_nothing_between_its_eras(data):
    y, (W, b, v, x, a), feed, gaps = _graph(data)
    order, top, placeholders, count, far = graph.walk([y])
    nodes = graph.ancestors([y])
    assert count == len(nodes)
    assert {n for n in order if n is not None} == nodes
    # the list's length is bounded by the nodes, not by the serial numbers they span: a gap
    # before leaves is bridged only when shorter than max(_GAP, the list so far), so it at most
    # doubles the list (the gap before the old intermediate a is bridged whatever its length)
    assert len(order) <= 2 * (count + graph._GAP + 1024 + gaps[1])
    assert all(n.serial < min(m.serial for m in order[:len(order) - len(far)] if m is not None)
               for n in far)
    if gaps[0] == 1_000_000 and gaps[1] < 3_000:    # the leaves W, b lie beyond a long gap
        assert {W, b} <= set(far)
    # reading it backwards is creation order, and each node's place is found again
    listed = [n for n in reversed(order) if n is not None]
    assert [n.serial for n in listed] == sorted(n.serial for n in nodes)
    for n in nodes:
        assert n in graph.Walked(order, top, far)
    assert set(placeholders) == {W, b, v, x}
    assert [p.serial for p in placeholders] == sorted(p.serial for p in placeholders)


@settings(max_examples=scaled(12))
@given(data=st.data())
def test_graphs_read_across_gaps_evaluate_and_differentiate_as_without_them(data):
    y, (W, b, v, x, a), feed, _ = _graph(data)
    want = _by_numpy(feed, W, b, v, x)
    for mode in ("batched", "reference"):
        (got,) = uf.evaluate([y], feed, mode=mode)
        np.testing.assert_allclose(got, want, rtol=1e-12)
    report = gradcheck(y, [W, b, v], feed)
    assert report.checked == W.size + b.size + v.size
    # a gradient with respect to an intermediate made in another era
    (ga,) = uf.evaluate([uf.grad(y, a)], feed)
    assert ga.shape == a.shape and np.all(np.isfinite(ga))


@pytest.mark.parametrize("gap", [0, 1_000_000])
def test_an_unfolded_graph_whose_parameters_are_old_is_time_batched(monkeypatch, gap):
    from unfold import timebatch
    monkeypatch.setattr(timebatch, "STRICT", True)
    rec = uf.Recurrence("old params")
    x, h = rec.sequence("x", (3,)), rec.state("h", (2,))
    W, U = rec.param("W", (2, 2)), rec.param("U", (2, 3))
    rec.loss("L", uf.sum(rec.update(h, uf.tanh(W @ h + U @ x)) ** 2))
    _skip(gap)
    g = rec.unfold(9)
    outputs = [g.loss] + uf.grad(g.loss, [W, U])
    rng = np.random.default_rng(3)
    feed = {"W": rng.standard_normal((2, 2)), "U": rng.standard_normal((2, 3)),
            "x": rng.standard_normal((9, 3))}
    program = uf.compile(outputs)
    got = program(feed)
    assert [p is not None for p in program._batched_plans.values()] == [True]
    want = uf.evaluate(outputs, feed, mode="reference")
    for p, q in zip(got, want):
        np.testing.assert_allclose(p, q, rtol=1e-12)


def test_a_shared_constant_made_long_ago_is_set_apart():
    """``1 − u`` reads the one constant node of 1.0 every expression shares (ops.base._SCALARS),
    made by whichever graph first needed it."""
    u = uf.input("u", (3,))
    first = 1.0 - u
    one = first.inputs[0]
    _skip(1_000_000)
    z = uf.input("z", (3,))
    y = uf.sum(1.0 - z * z)
    order, top, placeholders, count, far = graph.walk([y])
    assert one in far and len(order) <= 1024
    assert placeholders == [z]
    (got,) = uf.evaluate([y], {z: np.array([1.0, 2.0, 3.0])})
    assert got == 3.0 - 14.0
    (g,) = uf.evaluate([uf.grad(y, z)], {z: np.array([1.0, 2.0, 3.0])})
    np.testing.assert_array_equal(g, [-2.0, -4.0, -6.0])
