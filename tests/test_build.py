"""What building a graph promises beyond its values: nodes are immutable snapshots of their
attributes even when those are shared between nodes, the static batch flag follows each op's
run-time rule, a vjp learns which of its terms will be kept, and pausing the collector for a
build leaves the caller's own use of ``gc.freeze`` alone. (Speed is measured by
``python -m bench.scale``, never here.)"""
from __future__ import annotations

import gc
from unittest import mock

import importlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import unfold as uf
from unfold import graph, models, train
from unfold.testing.recurrences import recurrences
from unfold.graph import Node, apply, needs_gradient
from unfold.ops.base import ALIAS, sum_like
from examples import scaled


class _Same(uf.Op):
    """The identity, with whatever attributes it is given."""

    name = "same"

    def infer(self, inputs, attrs):
        return inputs[0].shape, inputs[0].dtype

    def forward(self, node, x):
        return x

    def vjp(self, node, g):
        return (g,)


SAME = _Same()
grad_module = importlib.import_module("unfold.grad")
flat_module = importlib.import_module("unfold.timebatch.flat")


def test_equal_attributes_of_different_types_are_not_merged():
    x = uf.input("x", (3,))
    pairs = [({"k": 0}, {"k": False}), ({"k": 1}, {"k": 1.0}),
             ({"k": (0, 1)}, {"k": (False, True)}), ({"k": (1, (2,))}, {"k": (1, (2.0,))}),
             ({"k": "float64"}, {"k": np.dtype("float64")})]
    for a, b in pairs:
        na, nb = apply(SAME, x, **a), apply(SAME, x, **b)
        assert type(na.attrs["k"]) is type(a["k"]) and type(nb.attrs["k"]) is type(b["k"])
        if isinstance(a["k"], tuple):
            assert [type(v) for v in na.attrs["k"]] == [type(v) for v in a["k"]]
            assert [type(v) for v in nb.attrs["k"]] == [type(v) for v in b["k"]]


def test_shared_attributes_stay_read_only_and_independent_of_the_callers_dict():
    x = uf.input("x", (3,))
    a, b = uf.sum(x, axis=0), uf.sum(x, axis=0)
    assert a.attrs is b.attrs                               # one mapping for equal attributes
    with pytest.raises(TypeError):
        a.attrs["axes"] = (1,)
    for value in ((0,), np.arange(3)):                      # interned, and not interned
        mine = {"k": value}
        node = Node(SAME, (x,), (3,), np.float64, attrs=mine)
        mine["k"] = "changed"
        assert node.attrs["k"] is value


def test_shapes_are_stored_as_tuples_of_python_ints():
    x = uf.input("x", [np.int64(2), 3])
    y = Node(SAME, (x,), np.array([2, 3]), "float64")
    for node in (x, y):
        assert node.shape == (2, 3) and type(node.shape) is tuple
        assert all(type(d) is int for d in node.shape)
        assert node.dtype == np.float64


def test_the_batch_flag_follows_the_ops_run_time_rule():
    x, w = uf.input("x", (3,)), uf.param("w", (3,))
    g = x * w
    assert g.may_batch and not w.may_batch
    assert not sum_like(g, w).may_batch                     # summed to w's batchedness
    assert sum_like(w, x).may_batch
    assert not uf.batch_sum(g).may_batch
    assert not Node(uf.batch_sum(g).op, (g,), (3,), np.float64).may_batch   # built directly
    # a batch_sum inside a recurrence's step: its copies are not batched either
    rec = uf.Recurrence("r")
    s = rec.sequence("s", (3,))
    h = rec.state("h", (3,))
    rec.update(h, uf.tanh(h + rec.param("b", (3,)) * uf.batch_sum(s)))
    unfolded = rec.unfold(3)
    copy = next(n for n in unfolded.nodes() if n.op.name == "batch_sum")
    assert copy.step is not None and not copy.may_batch


def test_a_parameters_gradient_term_is_summed_over_the_batch_once():
    x, b = uf.input("x", (3,)), uf.param("b", (3,))
    y = uf.sum(uf.tanh(x + b))
    (gb,) = uf.grad(y, [b])
    chain = [n for n in graph.topological([gb]) if n.op.name == "sum_like"]
    assert len(chain) == 1
    xs = np.random.default_rng(0).standard_normal((5, 3))
    (value,) = uf.evaluate([gb], {x: xs, b: np.zeros(3)})
    np.testing.assert_allclose(value, (1 - np.tanh(xs) ** 2).sum(axis=0), rtol=1e-12)


class _Asks(_Same):
    """Records, while grad builds its vjp, whether each input's term is wanted."""

    name = "asks"
    seen: list = []

    def vjp(self, node, g):
        _Asks.seen.append(tuple(needs_gradient(i) for i in node.inputs))
        return (g, g)


def test_a_vjp_learns_which_terms_grad_keeps():
    x, w, c = uf.input("x", (2,)), uf.param("w", (2,)), uf.constant(np.ones(2))
    y = uf.sum(apply(_Asks(), w, x * c))
    _Asks.seen.clear()
    uf.grad(y, [w])
    assert _Asks.seen == [(True, False)]                   # x · c does not depend on w
    uf.grad(y, [w, x])
    assert _Asks.seen[-1] == (True, True)
    assert needs_gradient(x)                                 # outside grad: always
    W = uf.param("W", (2, 2))
    v = uf.sum(W @ x)
    (gW,) = uf.grad(v, [W])                                   # Wᵀ g for x is not built
    assert not any(n.op.name == "transpose" for n in graph.topological([gW]))


def test_a_build_leaves_the_callers_frozen_objects_frozen():
    x = uf.input("x", (2,))
    with mock.patch.object(graph, "_LARGE_BUILD", 0):     # every build counts as large
        gc.freeze()
        try:
            frozen = gc.get_freeze_count()
            assert frozen > 0
            uf.grad(uf.sum(uf.tanh(x)), x)
            # neither unfrozen (0) nor joined by the new nodes (more); a frozen object may
            # have been freed by reference counting meanwhile
            assert 0 < gc.get_freeze_count() <= frozen
        finally:
            gc.unfreeze()
        with graph.gc_paused():
            h = uf.tanh(uf.tanh(x))
        assert gc.get_freeze_count() == 0 and gc.isenabled()
        assert gc.is_tracked(h) and h.op.name == "tanh"


def test_parameter_copies_share_their_inputs_and_stay_distinct_nodes():
    rec = uf.Recurrence("r")
    x, h, W = rec.sequence("x", (2,)), rec.state("h", (2,)), rec.param("W", (2, 2))
    rec.update(h, uf.tanh(W @ h + x))
    g = rec.unfold(4)
    copies = g.copies("W")
    assert len({id(c) for c in copies}) == 4
    assert all(c.op is ALIAS and c.inputs[0] is W and c.step == t + 1 and c.source is W
               for t, c in enumerate(copies))
    assert [n.serial for n in copies] == sorted(n.serial for n in copies)


def test_name_attributes_and_source_read_back_from_one_shared_slot():
    """A node keeps name, attributes, source and dtype in one slot: one record shared by the
    nodes with the same attributes and dtype and neither name nor source, and by the copies of
    a folded node; step and adjoint share another."""
    x = uf.input("x", (3,))
    s = uf.sum(x, axis=0)                                   # attributes, no name, no source
    assert (s.name, dict(s.attrs), s.source) == (None, {"axes": (0,), "keepdims": False}, None)
    assert uf.sum(x * 2, axis=0)._meta is s._meta
    assert uf.sum(uf.cast(x, "float32"), axis=0)._meta is not s._meta
    assert (s.dtype, uf.sum(uf.cast(x, "float32"), axis=0).dtype) == (np.float64, np.float32)
    y = uf.tanh(x)
    gx = uf.grad(uf.sum(y), x)
    inner = gx.inputs[0] if gx.op.name == "sum_like" else gx
    assert inner.adjoint is y and inner.step is None
    tagged = Node(SAME, (x,), (3,), np.float64, step=7)
    assert (tagged.step, tagged.adjoint) == (7, None)
    with graph.adjoint_of(y):
        inside = Node(SAME, (x,), (3,), np.float64, step=5)
        same = uf.tanh(x)
    assert (inside.step, inside.adjoint, same.step, same.adjoint) == (5, y, None, y)
    named = apply(SAME, x, name="y", k=1)                   # a name and attributes
    assert (named.name, dict(named.attrs), named.source) == ("y", {"k": 1}, None)
    made = Node(SAME, (x,), (3,), np.float64, name="z", attrs={"k": 2}, step=4, source=x)
    assert (made.name, dict(made.attrs), made.step, made.source) == ("z", {"k": 2}, 4, x)
    rec = uf.Recurrence("r")
    xs, h = rec.sequence("x", (2,)), rec.state("h", (2,))
    a = rec.param("W", (2, 2)) @ h + xs
    rec.update(h, uf.tanh(a))
    g = rec.unfold(3)
    for folded in (a, xs):
        copies = [g.at(folded, t) for t in (1, 2, 3)]
        assert all(c.source is folded and c.name == folded.name for c in copies)
        assert len({id(c._meta) for c in copies}) == 1       # one record for all the copies
    assert dict(g.at(xs, 2).attrs)["steps"] == 3
    assert len(graph._Fields.__slots__) == 6


@pytest.mark.parametrize("scaled", [False, True])
def test_a_graph_is_planned_whatever_its_nodes_per_step(scaled):
    """Whether a large graph is worth time-batching is decided on a sample of its nodes; an
    unfolded graph is periodic, and a sample at a regular stride (a thousandth of the graph:
    at τ = 1000, the period) saw one untagged node of each step (the loss sum) — the
    τ = 100 000 tanh recurrence then ran node by node (1.5 GB)."""
    from unfold.evaluate import UNTIMED_NODES
    rec = uf.Recurrence("tanh")
    x, h = rec.sequence("x", (4,)), rec.state("h", (4,))
    W, U = rec.param("W", (4, 4)), rec.param("U", (4, 4))
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    rec.loss("L", uf.sum(h_t * h_t) * 2.0 if scaled else uf.sum(h_t * h_t))
    g = rec.unfold(1000)
    program = uf.compile([g.loss] + uf.grad(g.loss, [W, U]))
    assert program.n_nodes > UNTIMED_NODES and program._has_time()


@pytest.mark.parametrize("axis, with_loss", [(-1, False), (0, True)])
def test_cross_entropy_s_one_node_gradient_is_time_batched_without_its_fusion(monkeypatch, axis,
                                                                          with_loss):
    """``cross_entropy_grad`` runs by its own batching rule over all steps where the fused
    kernel does not apply (the loss not computed, or classes on another axis), and agrees with
    the per-node schedule."""
    from unfold import timebatch
    monkeypatch.setattr(timebatch, "STRICT", True)
    rec = uf.Recurrence("ce")
    x, y = rec.sequence("x", (3,)), rec.target("y", (2,) if axis == 0 else (3,))
    h = rec.state("h", (4,))
    W, U, V = rec.param("W", (4, 4)), rec.param("U", (4, 3)), rec.param("V", (6, 4))
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    logits = uf.reshape(V @ h_t, (3, 2))                 # 3 classes on axis 0, or 2 on axis -1
    rec.loss("L", uf.cross_entropy(logits, y, axis=axis))
    g = rec.unfold(6)
    outputs = ([g.loss] if with_loss else []) + uf.grad(g.loss, [W, U, V])
    rng = np.random.default_rng(3)
    k = 3 if axis == 0 else 2
    feed = {W: rng.standard_normal((4, 4)) * 0.5, U: rng.standard_normal((4, 3)),
            V: rng.standard_normal((6, 4)), "x": rng.standard_normal((6, 5, 3)),
            "y": rng.integers(0, k, size=(6, 5) + y.shape)}
    program = uf.compile(outputs)
    got = program(feed)
    assert [p is not None for p in program._batched_plans.values()] == [True]
    for a, b in zip(got, uf.evaluate(outputs, feed, mode="reference")):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


# --- stamping: a repeated node's processing replayed from a recorded one ---------------------------

def _structure(outputs):
    """A graph as a list of rows — op, shape, dtype, name, attributes, step, adjoint, inputs (by
    position in creation order), batch flag — and the outputs' positions: equal for graphs
    built alike (serial numbers and node identities aside)."""
    order = graph.topological(outputs)
    at = {id(n): i for i, n in enumerate(order)}
    rows = [(n.op, n.shape, n.dtype, n.name, dict(n.attrs).keys(), n.step,
             None if n.adjoint is None else at.get(id(n.adjoint), "outside"),
             tuple(at[id(i)] for i in n.inputs), n.may_batch) for n in order]
    return rows, [at[id(o)] for o in outputs]


def _wrt(g, drawn, choice):
    wrt = list(g.params)
    if choice:                    # intermediate values too: gradients found inside the loop
        wrt += [c for c in g.over_time(next(iter(drawn.recurrence.states)))]
    return wrt


@settings(max_examples=scaled(20), deadline=None)
@given(drawn=recurrences(max_steps=2, loss_steps=True), steps=st.integers(4, 12),
       truncate=st.sampled_from([None, 2]), mask=st.booleans(), states=st.booleans())
def test_stamped_gradients_are_the_graph_the_vjps_build(drawn, steps, truncate, mask, states):
    """grad replays a node's recorded processing for its copies one period later only where
    everything the processing reads is alike: the gradient graph is the one every op's vjp
    builds (grad.STAMP = False), node for node (after a first gradient has made what
    gradients share: a constant made by the first one would sort first in the second)."""
    g = drawn.recurrence.unfold(steps, truncate=truncate, mask=mask)
    wrt = _wrt(g, drawn, states)
    uf.grad(g.loss, wrt)
    built = {}
    for stamp in (False, True):
        with mock.patch.object(grad_module, "STAMP", stamp):
            built[stamp] = _structure([g.loss] + uf.grad(g.loss, wrt))
    assert built[True] == built[False]


@pytest.mark.parametrize("targets", [("h", (30,)), ("h", (2, 31, 57)), ("o", (44,))])
def test_a_target_inside_a_stamped_run_gets_its_gradient(targets):
    """Stamps look a node up among the targets only where a target shares its Meta (the
    copies of one folded node): a copy asked for at any step, among copies that are not,
    still gets its gradient — the graph and values of the vjps."""
    rec = models.rnn(3, 4, 5)
    g = rec.unfold(60)
    name, steps = targets
    wrt = list(g.params) + [g.at(name, t) for t in steps]
    feed = {**train.init_params(rec, seed=2), "x": np.random.default_rng(1).standard_normal(
        (60, 3)), "y": np.arange(60) % 5}
    uf.grad(g.loss, wrt)
    built, values = {}, {}
    for stamp in (False, True):
        with mock.patch.object(grad_module, "STAMP", stamp):
            grads = uf.grad(g.loss, wrt)
        built[stamp] = _structure([g.loss] + grads)
        values[stamp] = uf.evaluate(grads, feed, mode="reference")
    assert built[True] == built[False]
    for a, b in zip(values[True], values[False]):
        np.testing.assert_array_equal(a, b)
    assert all(np.any(v != 0) for v in values[True][-len(steps):])


def test_stamping_replaces_the_vjps_of_a_long_unfolding():
    """Over 40 steps of an LSTM the vjps run for a few steps only (the rest is stamped), and
    the graph and its values are those of the vjps."""
    rec = models.lstm(3, 4, 5)
    g = rec.unfold(40)
    calls = []
    vjp = type(uf.tanh(uf.input("z", (2,))).op).vjp

    def counted(self, node, gr):
        calls.append(node)
        return vjp(self, node, gr)

    built, values = {}, {}
    feed = {**train.init_params(rec, seed=1), "x": np.random.default_rng(0).standard_normal(
        (40, 3)), "y": np.arange(40) % 5}
    for stamp in (False, True):
        calls.clear()
        with mock.patch.object(grad_module, "STAMP", stamp), \
                mock.patch.object(type(uf.tanh(uf.input("z", (2,))).op), "vjp", counted):
            grads = uf.grad(g.loss, list(g.params))
        built[stamp] = (_structure([g.loss] + grads), len(calls))
        values[stamp] = uf.evaluate([g.loss] + grads, feed, mode="reference")
    assert built[True][0] == built[False][0]
    assert built[False][1] >= 40 * 5 and built[True][1] < 8 * 5
    for a, b in zip(values[True], values[False]):
        np.testing.assert_array_equal(a, b)


def _flat(outputs, batched, stamp):
    order, top, placeholders, _, far = graph.walk(outputs)
    fed, sequences = {}, {}
    for p in placeholders:
        if p.step is not None and p.source is not None:
            sequences[p.source] = batched
        else:
            fed[p] = batched and p.op.name == "input"
    with mock.patch.object(flat_module, "STAMP", stamp):
        return flat_module.Flat(order, top, far, outputs, fed, sequences, 2 if batched else None)


def _decided(f):
    """What flat's pass found: its classes (variants: descriptions, indices, first serial
    numbers, representatives), its singles, the outputs' places."""
    classes = [(c.id, c.rank, c.batched, c.rep.serial, c.fed,
                [(d, i.tolist(), first, rep.serial) for d, i, first, rep in c.variants])
               for c in f.classes]
    return classes, [(v.id, v.node.serial, v.batched, v.desc, v.fed) for v in f.singles], \
        f.outputs


@settings(max_examples=scaled(20), deadline=None)
@given(drawn=recurrences(max_steps=2, loss_steps=True), steps=st.integers(4, 12),
       truncate=st.sampled_from([None, 2]), mask=st.booleans(), batched=st.booleans())
def test_flat_s_stamped_pass_decides_as_the_full_pass(drawn, steps, truncate, mask, batched):
    """The planner's pass over the nodes decides a node from the record of its copy one
    period earlier only where all it reads is alike: the same classes, variants and singles
    as deciding every node in full."""
    g = drawn.recurrence.unfold(steps, truncate=truncate, mask=mask)
    outputs = [g.loss] + uf.grad(g.loss, list(g.params))
    assert _decided(_flat(outputs, batched, True)) == _decided(_flat(outputs, batched, False))


def test_flat_stamps_most_of_a_long_unfolding():
    rec = models.rnn(3, 4, 5)
    g = rec.unfold(60)
    outputs = [g.loss] + uf.grad(g.loss, list(g.params))
    full, stamped = _flat(outputs, False, False), _flat(outputs, False, True)
    assert _decided(stamped) == _decided(full)
    assert full.stamped == 0 and stamped.stamped > 0.8 * graph.walk(outputs)[3]


def test_flat_stamps_untagged_running_sums_as_the_full_pass():
    """An untagged node (a running sum over the steps, the total loss's or the user's) takes
    its index from its inputs: stamped too, where its inputs give it the same way — a step, a
    member's index, a single's none — and decided in full where they do not (the sum's
    pattern changes half-way)."""
    rec = models.rnn(3, 4, 5)
    g = rec.unfold(200)
    hs, w = g.over_time("h"), uf.constant(np.full(4, 0.5))
    extra = hs[0]
    for t, h in enumerate(hs[1:], 2):
        extra = extra + (h * w if t < 100 else h) + (w if t % 50 else hs[t // 2])
    loss = g.loss + uf.sum(extra)
    outputs = [loss] + uf.grad(loss, list(g.params))
    full, stamped = _flat(outputs, False, False), _flat(outputs, False, True)
    assert _decided(stamped) == _decided(full)
    assert stamped.stamped > 0.85 * graph.walk(outputs)[3]


@pytest.mark.parametrize("model", [models.rnn, models.lstm])
def test_flat_decides_a_bounded_number_of_positions_in_full_per_doubling_of_the_steps(model):
    """Once a period is recorded, every copy is stamped — the total loss's running sum too —
    but for a few periods each time a count by index grows (it doubles): the positions
    decided in full grow with log τ, not with τ."""
    in_full = []
    for steps in (50, 100, 200):
        g = model(3, 4, 5).unfold(steps)
        outputs = [g.loss] + uf.grad(g.loss, list(g.params))
        in_full.append(graph.walk(outputs)[3] - _flat(outputs, False, True).stamped)
    assert in_full[2] - in_full[1] <= in_full[1] - in_full[0], in_full


recurrence_module = importlib.import_module("unfold.recurrence")


def _unfolded(g):
    """An unfolded graph's rows (``_structure``, with each node's folded source: the same
    folded node, or — a mask, made by each unfolding — one alike)."""
    nodes = g.nodes() + [g.loss]
    rows, outputs = _structure(nodes)
    sources = [None if n.source is None else n.source.label if n.source.name == "mask" else
               id(n.source) for n in graph.topological(nodes)]
    return rows, outputs, sources


@settings(max_examples=scaled(20), deadline=None)
@given(drawn=recurrences(max_steps=2, loss_steps=True), steps=st.integers(2, 9),
       truncate=st.sampled_from([None, 2]), mask=st.booleans())
def test_generated_steps_unfold_the_graph_the_loop_builds(drawn, steps, truncate, mask):
    """Unfolding makes a step's copies with one generated function of the step's recipes: the
    graph is the one the loop over the recipes builds (recurrence.GENERATED = False), node for
    node, sources included (after a first unfolding has made what unfoldings share)."""
    drawn.recurrence.unfold(steps, truncate=truncate, mask=mask)
    built = {}
    for generated in (False, True):
        with mock.patch.object(recurrence_module, "GENERATED", generated):
            built[generated] = _unfolded(drawn.recurrence.unfold(steps, truncate=truncate,
                                                                 mask=mask))
    assert built[True] == built[False]


def test_generated_steps_unfold_every_model_as_the_loop():
    """The same, for the chapter's gated cells, masked, and a bidirectional recurrence (a state
    read backward in time: the second group of recipes)."""
    for rec in (models.lstm(3, 4, 5), models.gru(2, 3, 2),
                models.bidirectional(2, 3, 2), models.skip_rnn(2, 3, 2, delay=2)):
        rec.unfold(5, mask=True)
        built = {}
        for generated in (False, True):
            with mock.patch.object(recurrence_module, "GENERATED", generated):
                built[generated] = _unfolded(rec.unfold(5, mask=True))
        assert built[True] == built[False]
