"""viz.graph, the op view: every op node, the dummy copies W(t) dashed and the parameters once
in a row with the legend saying what a copy is, collapsing repeated steps (by hand, and by itself above a node budget, with a warning), depth
limits, and the backward graph beside the forward one, its nodes named by what they compute —
checked by evaluating them against unfold.grad."""
from __future__ import annotations

import re
import subprocess
import shutil

import numpy as np
import pytest

import unfold as uf
import viz
from test_viz_book import edges, nodes, rnn
from unfold.graph import topological
from viz.book import contract
from viz.gradients import meanings
from viz.ops_view import CollapsedStepsWarning


def drawn(src: str) -> list[str]:
    """The ids of the drawn graph nodes (not the step names, walls and boxes, "[…]")."""
    return [n for n in nodes(src) if not n.startswith("[")]


def test_every_op_node_and_the_dummy_copies_explained_by_the_parameter_row():
    u = rnn().unfold(3)
    src = viz.graph(u.loss).source
    ids = drawn(src)
    assert len(ids) == len(topological([u.loss]))
    assert ids.count("W") == 1
    declared = {m.group(1): m.group(2) for m in re.finditer(r'^\s*"?([^"\n]+?)"? \[(.*)\]$',
                                                           src, re.M)}
    for t in (1, 2, 3):
        assert f"W({t})" in ids and "style=dashed" in declared[f"W({t})"]
        assert f"[f step {t}]" in nodes(src)
        # no tie W → W(t): the copy's meaning is in the row of parameters' legend
        assert not [a for a, b, _ in edges(src) if b == f"W({t})"]
    row = src[src.index("subgraph cluster_params"):]
    row = row[:row.index("}")]
    assert "step t's copy of W" in row and re.search(r"^\s*W \[", row, re.M)


def test_collapse_keeps_the_ends_and_one_box_for_the_middle():
    u = rnn().unfold(9)
    src = viz.graph(u.loss, collapse=2).source
    ids = nodes(src)
    assert {"h(1)", "h(2)", "h(8)", "h(9)"} <= set(ids)
    assert not any(re.fullmatch(r"\w+\([3-7]\)", n) for n in ids)
    assert "× 5" in src
    assert ("h(2)", "[forward steps 3-7]") in {(a, b) for a, b, _ in edges(src)}


def test_above_the_budget_the_middle_collapses_by_itself_and_says_so():
    u = rnn().unfold(60)
    with pytest.warns(CollapsedStepsWarning, match="budget=100.*collapse=k"):
        src = viz.graph(u.loss, budget=100).source
    assert len(drawn(src)) <= 100
    assert re.search(r'label="steps \d+–\d+ \(\d+ steps\) collapsed', src)
    assert "h(1)" in nodes(src) and "h(60)" in nodes(src)
    # the running sum L = Σ_t L(t) has no step of its own: it collapses with the steps it adds
    assert len(drawn(src)) < len(topological([u.loss])) / 5
    full = viz.graph(rnn().unfold(5).loss, budget=None).source
    assert len(drawn(full)) == len(topological([rnn().unfold(5).loss]))


def test_depth_limits_what_is_drawn():
    u = rnn().unfold(4)
    shallow = drawn(viz.graph(u.loss, depth=3).source)
    assert len(shallow) < 20 and "L" in shallow
    assert any(n.endswith("[cut]") for n in shallow)


def _lstm():
    rec = uf.Recurrence("lstm")
    x, h, s = rec.sequence("x", (2,)), rec.state("h", (3,)), rec.state("s", (3,))
    gate = {k: rec.name_node(k, uf.sigmoid(rec.param(f"U_{k}", (3, 2)) @ x +
                                           rec.param(f"W_{k}", (3, 3)) @ h)) for k in "fgq"}
    s_t = rec.update(s, gate["f"] * s + gate["g"] * uf.tanh(rec.param("U", (3, 2)) @ x))
    h_t = rec.update(h, uf.tanh(s_t) * gate["q"])
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (2, 3)) @ h_t),
                                   rec.target("y")))
    return rec


@pytest.mark.parametrize("make", [rnn, _lstm])
@pytest.mark.parametrize("batch", [None, 2])
def test_gradient_nodes_are_named_by_what_they_compute(make, batch):
    rec = make()
    u = rec.unfold(3)
    params = list(rec.params.values())
    grads = uf.grad(u.loss, params)
    forward = topological([u.loss])
    fset = set(forward)
    meaning = meanings(forward, [n for n in topological(grads) if n not in fset])
    labels = {m.label for m in meaning.values()}
    assert {"∇h(1)", "∇h(2)", "∇h(3)", "∇o(2)", "∇V(3)", "∇V = Σ_t ∇V(t)"} <= labels
    assert ({"∇W(2)", "∇W = Σ_t ∇W(t)"} if make is rnn else
            {"∇s(2)", "∇f(3)", "∇q(1)", "∇W_f(2)", "∇W_f = Σ_t ∇W_f(t)"}) <= labels
    rng = np.random.default_rng(0)
    feed = {p: rng.standard_normal(p.shape) * 0.5 for p in params}
    lead = (3,) if batch is None else (3, batch)
    feed.update(x=rng.standard_normal(lead + rec.sequences["x"].shape),
                y=rng.integers(0, 2, lead))
    checked = 0
    for node, m in meaning.items():
        if m.kind in ("partial", "seed"):
            continue
        ours, reference = uf.evaluate([node, uf.grad(u.loss, m.of)], feed)
        assert np.allclose(ours, reference), m.label
        checked += 1
    assert checked >= (20 if make is rnn else 60)


def test_backward_panel_shows_the_meaningful_gradients_beside_the_forward_one():
    rec = rnn()
    u = rec.unfold(2)
    W = rec.params["W"]
    src = viz.graph(u.loss, backward={W: uf.grad(u.loss, W)}).source
    assert "cluster_forward" in src and "cluster_backward" in src
    assert "∇W" in src and "Σ_t ∇W(t)" in src and "∇h(1)" in src
    grads = [n for n in nodes(src) if n.startswith("grad ")]
    assert grads and not any("#" in n for n in grads)           # no anonymous op in red
    every = viz.graph(u.loss, backward={W: uf.grad(u.loss, W)}, backward_ops=True).source
    assert len(nodes(every)) > len(nodes(src)) + 10
    assert "∇h(1)" in every


def _lstm_written_out():
    """An LSTM with its σ written out, 1/(1 + exp(−a)), gates unnamed, expressions downstream."""
    rec = uf.Recurrence("lstm")
    x, h, s = rec.sequence("x", (2,)), rec.state("h", (3,)), rec.state("s", (3,))
    sig = lambda a: 1.0 / (1.0 + uf.exp(-a))
    f, g, q, i = (sig(rec.param(f"b{k}", (3,)) + rec.param(f"U{k}", (3, 2)) @ x +
                      rec.param(f"W{k}", (3, 3)) @ h) for k in "fgqi")
    s_new = f * s + g * i
    h_new = uf.tanh(s_new) * q
    rec.update(s, s_new)
    rec.update(h, h_new)
    rec.loss("L", uf.cross_entropy(rec.param("V", (2, 3)) @ h_new, rec.target("y")))
    return rec


def test_constants_are_drawn_at_each_use_and_each_gates_gradients_apart():
    """The 1 of every 1/(1 + exp(−a)) is its reader's own (one node read by every gate of every
    step pulled the graph into a tangle), and the op view's parameter gradients are grouped by
    the gradient they are computed from: one node per gate and step, ∇Wf(t) ∇Uf(t) ∇bf(t)
    (not the f, g and input gates' nine in one node because they all lie behind ∇s(t))."""
    rec = _lstm_written_out()
    u = rec.unfold(3)
    params = list(rec.params.values())
    src = viz.graph(u.loss, backward=dict(zip(params, uf.grad(u.loss, params)))).source
    ones = [(a, b) for a, b, _ in edges(src) if "[use by " in a]
    assert len(ones) >= 2 * 4 * 3                  # (two per σ: 1 + exp(−a), 1 ÷ that)
    assert len({a for a, _ in ones}) == len(ones)     # each copy read once
    per_step = [t for t in re.findall(r'label=<(.*?)> ', src) if re.search(r"∇W\w\(\d\)", t)]
    assert len(per_step) == 4 * 3
    for t in per_step:                                 # one gate's W, U, b
        gates = set(re.findall(r"∇[WUb]([fgqi])\(", t))
        assert len(gates) == 1 and len(re.findall(r"∇[WUb][fgqi]\(", t)) == 3, t


def test_gradients_of_states_given_as_a_mapping_are_one_node_each():
    """``backward={h(t): ∇h(t)}``: uf.grad's ∇h(t) is a copy (summed to h's shape) of the
    panel's own ∇h(t) — drawn once, not as two nodes with one label."""
    for make, names in ((rnn, "h"), (_lstm, "hs")):
        u = make().unfold(3)
        values = [u.at(v, t) for t in (1, 2, 3) for v in names]
        src = viz.graph(u.loss, backward=dict(zip(values, uf.grad(u.loss, values)))).source
        labels = re.findall(r'label=<[^\n]*?<B>(∇[hs]\(\d\))</B>', src)   # (or in a table)
        assert sorted(labels) == sorted(f"∇{v}({t})" for t in (1, 2, 3) for v in names)


@pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")
def test_the_backward_panel_of_a_3_step_lstm_fits_a_laptop_screen():
    import unfold.models as models
    rec = models.lstm(3, 4, 2)
    u = rec.unfold(3)
    params = list(rec.params.values())
    g = viz.graph(u.loss, backward=dict(zip(params, uf.grad(u.loss, params))))
    box = next(o["bb"] for o in viz.layout(g)["objects"] if o["name"] == "cluster_backward")
    x0, y0, x1, y1 = map(float, box.split(","))
    assert x1 - x0 < 1100 and y1 - y0 < 900          # points: ≤ 1470 × 1200 px at 96 dpi


def test_the_backward_panel_alone_is_the_panel_without_the_forward_graph():
    """``forward=False``: the panel's own nodes and edges, framed and named, nothing else (a
    3-step LSTM's panel on its own is a screenful; beside its forward graph, three)."""
    rec = rnn()
    u = rec.unfold(3)
    params = list(rec.params.values())
    backward = dict(zip(params, uf.grad(u.loss, params)))
    both, alone = (viz.graph(u.loss, backward=backward, forward=f).source for f in (True, False))
    panel = {n for n in drawn(both) if n.startswith("grad ")}
    assert panel and set(drawn(alone)) == panel
    assert {(a, b) for a, b, _ in edges(alone)} == {
        (a, b) for a, b, _ in edges(both) if a in panel and b in panel}
    assert "cluster_backward" in alone and "cluster_forward" not in alone
    every = viz.graph(u.loss, backward=backward, backward_ops=True, forward=False).source
    assert "cluster_forward" not in every and "[ref]" in every     # its grey stand-ins stay
    with pytest.raises(ValueError, match="backward="):
        viz.graph(u.loss, forward=False)


def test_backward_inputs_from_the_next_step_enter_on_their_side_in_one_order():
    """∇h(1) reads ∇o(1) (its own column) and ∇h(2) (the next, right): at sw and se — at sw
    the edge from the right hooked round under the node. And the gradients sharing a node list
    their parameters in the order they were made, the sum above them too."""
    rec = rnn()
    u = rec.unfold(3)
    params = list(rec.params.values())
    src = viz.graph(u.loss, backward=dict(zip(params, uf.grad(u.loss, params)))).source
    into = {a: re.search(r"headport=(\w+)", attrs).group(1)
            for a, head, attrs in edges(src) if head == "grad h(1)"}
    assert into == {"grad o(1)": "sw", "grad h(2)": "se"}, into
    made = [p.name for p in sorted(params, key=lambda p: p.serial)]
    shared = [[n for n in re.findall(r"∇(\w+)", t) if n in made]
              for t in re.findall(r"label=<(.*?)> ", src) if t.count("<BR/>") and "∇" in t]
    assert len([names for names in shared if len(set(names)) > 1]) >= 4       # steps, sums
    for names in shared:
        firsts = list(dict.fromkeys(names))
        assert firsts == sorted(firsts, key=made.index), names


def test_constants_read_as_numbers_and_an_initial_state_as_zeros():
    """The 1 of 1 − u is "1" (numpy's "1." read as a typo); h(0), all zeros, "zeros (4,)"."""
    import unfold.models as models
    u = models.gru(2, 4, 2).unfold(2)
    words = re.findall(r"label=<([^<>]*)>", viz.graph(u.loss).source)
    assert "1" in words and "1." not in words and "zeros (4,)" in words, sorted(set(words))


def test_folded_graph_shows_state_reads_with_their_delay():
    src = viz.graph(rnn().roots()).source
    assert "(<I>t</I>−1)" in src


def test_op_view_is_deterministic():
    a = viz.graph(rnn().unfold(3).loss, collapse=1).source
    b = viz.graph(rnn().unfold(3).loss, collapse=1).source
    assert a == b


def test_bad_arguments_are_library_errors():
    u = rnn().unfold(2)
    for bad in (dict(nodes=[]), dict(nodes=3), dict(nodes=u.loss, backward=3),
                dict(nodes=u.loss, collapse=0), dict(nodes=u.loss, budget=-1),
                dict(nodes=u.loss, backward=[1.0])):
        target = bad.pop("nodes")
        with pytest.raises(uf.UnfoldError):
            viz.graph(target, **bad)


@pytest.mark.parametrize("sigma", ["uf.sigmoid", "written out", "stacked and sliced"])
def test_inline_gates_are_named_in_the_op_view_as_in_the_book_view(sigma):
    """Finding 20b: gates left unnamed (σ inline, written out as 1/(1 + exp(−a)), or one σ over
    a stacked matrix, sliced) are f(t), g(t), q(t) in the forward panel and ∇f(t)… in the
    backward one, as viz.folded names them (viz.recovered rebuilds the folded step)."""
    rec = uf.Recurrence("lstm")
    x, y = rec.sequence("x", (2,)), rec.target("y", ())
    h, s = rec.state("h", (3,)), rec.state("s", (3,))
    sig = (lambda a: 1.0 / (1.0 + uf.exp(-a))) if sigma == "written out" else uf.sigmoid
    if sigma == "stacked and sliced":
        z = sig(rec.param("M", (9, 3)) @ h + rec.param("N", (9, 2)) @ x)
        f, g, q = z[0:3], z[3:6], z[6:9]
    else:
        f, g, q = (sig(rec.param(f"W{k}", (3, 3)) @ h + rec.param(f"U{k}", (3, 2)) @ x)
                   for k in "fgq")
    cand = uf.tanh(rec.param("W", (3, 3)) @ h + rec.param("U", (3, 2)) @ x)
    s_t = rec.update(s, f * s + g * cand)
    h_t = rec.update(h, uf.tanh(s_t) * q)
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (4, 3)) @ h_t), y))
    assert {"f", "g", "q"} <= set(contract(rec).variables)
    u = rec.unfold(3)
    params = list(u.params)
    src = viz.graph(u.loss, backward=dict(zip(params, uf.grad(u.loss, params)))).source
    for k in "fgq":
        for t in (1, 2, 3):
            assert f"<B>{k}({t})</B>" in src and f"<B>∇{k}({t})</B>" in src, (k, t)


def test_the_parameters_of_joined_recurrences_are_qualified():
    """Finding 35: an encoder and a decoder joined with bind, each with its own W and U: the op
    view names them as net.param_names does (encoder.W, decoder.W), in the legend, the copies
    and the gradients' sums, and gives each its own columns; a graph of one recurrence keeps
    the plain names and steps."""
    import unfold.models as models
    net = models.encoder_decoder(3, 2, 4)
    joined = net.decoder.unfold(2, bind={"C": net.encoder.unfold(3).final("h")})
    params = list(joined.params)
    src = viz.graph(joined.loss, backward=dict(zip(params, uf.grad(joined.loss, params)))).source
    for name in joined.param_names:
        assert f"<B>{name}</B>" in src, name
    sums = re.findall(r"<B>∇([\w.]+)</B> = Σ_t", src)             # (in the labels)
    assert len(sums) == len(set(sums)) and all(s in joined.param_names for s in sums), sums
    # each recurrence's steps in columns of their own, the encoder's first (both panels)
    assert re.findall(r'label="(\w+ step \d)"', src) == 2 * (
        [f"encoder step {t}" for t in (1, 2, 3)] + [f"decoder step {t}" for t in (1, 2)])
    single = viz.graph(rnn().unfold(2).loss).source
    assert "<B>W</B>" in single and "rnn.W" not in single and "rnn step" not in single


@pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")
@pytest.mark.parametrize("build", [uf.models.rnn, uf.models.lstm, uf.models.gru],
                         ids=["rnn", "lstm", "gru"])
@pytest.mark.parametrize("backward_ops", [False, True], ids=["backward", "backward_ops"])
def test_dot_lays_out_a_collapsed_op_view_without_a_warning(build, backward_ops):
    """Edges into the collapsed steps' box aim at the box, not at ports it does not have (dot
    warned "node [backward steps 2-999], port in17 unrecognized" on the LSTM's op view)."""
    u = build(3, 4, 5).unfold(6)
    grads = uf.grad(u.loss, u.params)
    g = viz.graph(u.loss, backward=dict(zip(u.params, grads)), backward_ops=backward_ops,
                  collapse=2)
    said = subprocess.run(["dot", "-Tjson"], input=g.source.encode(), capture_output=True)
    assert said.returncode == 0 and b"Warning" not in said.stderr, said.stderr.decode()[:500]


@pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")
@pytest.mark.parametrize("trees", [4, [3, 2]], ids=["one tree", "a forest of two"])
def test_a_recursive_net_s_op_view_is_drawn_by_tree_position(trees):        # vizjudge 43
    """Fig. 10.14's copies U(p), W(p) are tree positions: columns "node p", sums Σ_p, and
    each tree's readout (o(k), L(k), y(k)) in the column of its root, not of leaf k."""
    from unfold import models
    from viz_json import Laid, text
    net = models.recursive_net(3, 3, 2).unfold(trees)
    ps = list(net.params)
    laid = Laid(viz.graph([net.loss], backward=dict(zip(ps, uf.grad(net.loss, ps)))))
    words = {n: text(a.get("label", "")) for n, a in laid.nodes.items()}
    every = " | ".join(words.values())
    assert "Σ_t" not in every and "step" not in every and "∇W = Σ_p ∇W(p)" in every
    assert "node 1" in every
    for k, tree in enumerate(net.trees):
        root = net.position(k, tree.n_nodes - 1)
        for name in ("o", "∇o"):
            readout = next(n for n, w in words.items() if w == f"{name}({k + 1})")
            here = next(n for n, w in words.items() if w == f"{name[:-1]}h({root})")
            assert abs(laid.xy(readout)[0] - laid.xy(here)[0]) < 80, (readout, here)
