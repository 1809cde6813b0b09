"""Issue 9's independent check ("vizjudge"): recurrences written by hand in many styles
(tests/viz_judge_models.py, never unfold.models), every view laid out by ``dot -Tjson``, and
structure and geometry checked against what the issue promises (items 1-5). No image comparison,
no timed test; the PNGs a person looked at are in /work/wt/vizjudge/FINDINGS.md."""
from __future__ import annotations

import re
import shutil
import warnings

import pytest

import unfold as uf
import viz
import viz_judge_models as M
from viz_json import Laid, distance, label_collisions, node_box, text

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")

# Cases that fail today, by the number of their finding in /work/wt/vizjudge/FINDINGS.md: they are
# left out here (a failing test may not be committed) and come back when viz fixes the finding.
OPEN = {
    "unfolding-lstm_stacked_preact": 15,       # gates' order in a row follows the writing order
}


def cases(builders, *more):
    """``builders`` (× the lists in ``more``) without the open findings' cases."""
    import itertools
    out = []
    for combo in itertools.product(builders, *more):
        ids = [c.__name__ if callable(c) else str(c) for c in combo]
        if any(i in OPEN for i in ids) or {"-".join(ids), "-".join(reversed(ids))} & set(OPEN):
            continue
        out.append(combo if more else combo[0])
    return out

# the states each builder declares (what may cross from one step to the next)
STATES = {"lstm": {"s", "h"}, "gru": {"h"}, "deep": {"h"}, "deep3": {"h"}}


def quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


def visible(laid):
    return {n: laid.xy(n) for n, a in laid.nodes.items()
            if "pos" in a and a.get("style") != "invis"}


def geometry(g, by_label=False):
    """Rows bottom to top (nodes left to right in each) and the labelled edges; unnamed inner
    nodes (ids ``s·3``, numbered in whatever order they were met) — or, ``by_label``, all
    nodes — go by their label."""
    laid = Laid(g)
    at = visible(laid)

    def name(n):
        return f"<{text(laid.nodes[n].get('label', ''))}>" if by_label or "%C2%B7" in n else n
    ys = sorted({round(y) for _, y in at.values()})
    rows = [tuple(name(n) for _, n in sorted((x, n) for n, (x, y) in at.items()
                                             if round(y) == r)) for r in ys]
    edges = sorted((name(e.tail), name(e.head), e.label) for e in laid.edges)
    return rows, edges


def split(node):
    """``h(3)`` → (``h``, ``3``); a node without a step → (node, None)."""
    m = re.fullmatch(r"(.+)\(([^()]*)\)", node)
    return (m.group(1), m.group(2)) if m else (node, None)


# ---------------------------------------------------------------- item 1: one model, one drawing

VIEWS = {
    "folded": viz.folded,
    "unfolded3": lambda r: viz.unfolded(r, steps=3),
    "window": viz.unfolded,
    "unfolding": lambda r: viz.unfolding(r, steps=3),
    "open": lambda r: viz.unfolded(r, steps=3, cells="open"),
    "cell": viz.cell,
}


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("style", M.RNN_STYLES[1:], ids=lambda b: b.__name__)
def test_rnn_styles_draw_the_same(style, view):
    draw = VIEWS[view]
    assert geometry(draw(style())) == geometry(draw(M.rnn_readme()))


def test_a_sequence_only_a_loss_reads_is_a_target_above_its_loss():
    for build in (M.rnn_expression, M.rnn_reordered, M.gru_reset_after):
        laid = Laid(viz.unfolded(build(), steps=3))
        for t in "123":
            (yx, yy), (lx, ly) = laid.xy(f"y({t})"), laid.xy(f"L({t})")
            assert yy > ly and abs(yx - lx) < 20, (build.__name__, t)
        laid = Laid(viz.folded(build()))
        (yx, yy), (lx, ly) = laid.xy("y"), laid.xy("L")
        assert yy > ly


def test_a_path_through_two_parameters_keeps_its_order():
    for g in (viz.folded(M.rnn_two_param_path()), viz.unfolded(M.rnn_two_param_path(), steps=2)):
        laid = Laid(g)
        labels = [set(e.label.split(", ")) for e in laid.edges]
        assert not any({"V", "V2"} <= lab for lab in labels)
        into_o = [e for e in laid.edges if split(e.head)[0] == "o" and e.label == "V"]
        assert into_o and all(split(e.tail)[0] not in ("h",) for e in into_o)
        mid = {e.tail for e in into_o}
        assert all(any(f.head == m and f.label == "V2" and split(f.tail)[0] == "h"
                       for f in laid.edges) for m in mid)


def test_parallel_parameters_may_share_an_edge():
    laid = Laid(viz.folded(M.rnn_parallel_params()))
    labels = [e.label for e in laid.edges]
    assert any("W" in lab and "S" in lab for lab in labels)


# ---------------------------------------------------------------- item 2: gated cells, one per step

def step_nodes(laid):
    by_step = {}
    for n in visible(laid):
        var, step = split(n)
        if step is not None:
            by_step.setdefault(step, []).append(n)
    return by_step


@pytest.mark.parametrize("build, cells", cases(M.GATED, ["auto", "compact", "open"]),
                         ids=lambda v: getattr(v, "__name__", v))
def test_gated_recurrences_unfold_one_cell_per_step(build, cells):
    rec = build()
    states = STATES[rec.name]
    laid = Laid(viz.unfolded(rec, steps=3, cells=cells))
    for e in laid.edges:
        (a, ta), (b, tb) = split(e.tail), split(e.head)
        if ta is not None and tb is not None and ta != tb:
            assert a in states, (e.tail, e.head)
    by_step = step_nodes(laid)
    assert sorted(by_step) == ["1", "2", "3"]
    boxes = {t: [node_box(laid, n) for n in ns] for t, ns in by_step.items()}
    for t, u in (("1", "2"), ("2", "3")):
        assert max(b[2] for b in boxes[t]) < min(b[0] for b in boxes[u]), (t, u)
    if cells == "compact" or (cells == "auto" and build is not M.deep_transition):
        # (auto draws a single internal value, deep_transition's layer, in its own row)
        cells_at = {t: [n for n in ns if split(n)[0] == "cell"] for t, ns in by_step.items()}
        assert all(len(c) == 1 for c in cells_at.values()), cells_at


@pytest.mark.parametrize("view", ["unfolded", "unfolding"])
@pytest.mark.parametrize("build", cases(M.GATED), ids=lambda b: b.__name__)
def test_gated_window_ellipses_are_states_only(build, view):
    rec = build()
    laid = Laid(getattr(viz, view)(rec))
    for n in visible(laid):
        var, step = split(n)
        if step is not None and step.startswith("..."):
            assert var in STATES[rec.name], n


@pytest.mark.parametrize("view, build", cases(sorted(VIEWS), M.LSTM_SAME[1:]),
                         ids=lambda v: getattr(v, "__name__", v))
def test_lstm_styles_draw_the_same(build, view):
    draw = VIEWS[view]
    cell = view == "cell"                 # the cell view writes every unit's role in words
    assert geometry(draw(build()), cell) == geometry(draw(M.lstm_named()), cell)


@pytest.mark.parametrize("build", [M.lstm_reordered, M.lstm_stacked, M.lstm_stacked_preact],
                         ids=lambda b: b.__name__)
def test_unnamed_lstm_styles_give_the_same_cell(build):
    assert geometry(viz.cell(build()))[0] == geometry(viz.cell(M.lstm_inline()))[0]


def cell_words(g):
    laid = Laid(g)
    return laid, {n: text(a.get("label", "")) for n, a in laid.nodes.items()}


@pytest.mark.parametrize("build", cases(M.LSTM_ALL), ids=lambda b: b.__name__)
def test_lstm_cell_view_is_figure_10_16(build):
    laid, words = cell_words(viz.cell(build()))
    joined = " | ".join(words.values())
    for gate in ("input gate", "forget gate", "output gate"):
        if build is M.lstm_coupled and gate != "output gate":
            continue
        assert gate in joined, (gate, joined)
    assert sum(1 for w in words.values() if w == "×") >= 3
    assert "h" in laid.nodes and "x" in laid.nodes
    if build is M.lstm_peephole:            # gates read s(t-1): drawn as an input, as h(t-1)
        assert "s(t-1)" in laid.nodes
        return
    squares = [n for n, a in laid.nodes.items() if a.get("shape") == "square"]
    assert len(squares) == 1
    # the state s loops through the square, into the forget gate's ×, back into s
    loop = [e for e in laid.edges if squares[0] in (e.tail, e.head)]
    assert {e.tail for e in loop} == {"s", squares[0]}
    times = [e.head for e in loop if e.tail == squares[0]]
    assert times and all(words[t] == "×" for t in times)
    assert all(any(e.tail == t and e.head == "s" for e in laid.edges) for t in times)


# ---------------------------------------------------------------- item 3: folded views that read

def loop_end_clashes(laid, gap=8.0):
    """Ends of edges into or out of a delay square that lie within ``gap`` points of another
    edge's end on the same node."""
    found = []
    squares = [n for n in laid.nodes if "[delay" in n]
    big = {n for n, a in laid.nodes.items() if float(a.get("width", 0)) >= 0.3}  # not points
    for sq in squares:
        for e in laid.edges:
            if sq not in (e.tail, e.head):
                continue
            node, pt = (e.head, e.head_end) if e.tail == sq else (e.tail, e.tail_end)
            if node not in big:
                continue
            for f in laid.edges:
                if f is e or sq in (f.tail, f.head):
                    continue
                for other, q in ((f.tail, f.tail_end), (f.head, f.head_end)):
                    if other == node and distance(pt, q) < gap:
                        found.append((f"{e.tail}→{e.head}", f"{f.tail}→{f.head}"))
    return found


# models whose folded loops clash today (finding 3) are left out
LOOPS_OPEN = {M.gru_reset_after, M.lstm_stacked_preact, M.lstm_peephole}


@pytest.mark.parametrize("build", [b for b in M.ALL if b not in LOOPS_OPEN],
                         ids=lambda b: b.__name__)
def test_folded_loops_have_ends_of_their_own(build):
    laid = Laid(viz.folded(build()))
    assert loop_end_clashes(laid) == []
    assert label_collisions(laid) == []


@pytest.mark.parametrize("build", cases(M.ALL), ids=lambda b: b.__name__)
def test_unfolding_keeps_its_folded_loops_in_the_folded_panel(build):
    from viz_json import _bezier_points
    laid = Laid(quiet(viz.unfolding, build(), steps=3))
    bb = next([float(v) for v in o["bb"].split(",")] for o in laid.raw["objects"]
              if o.get("name") == "cluster_folded")
    inside = lambda p: bb[0] - 1 <= p[0] <= bb[2] + 1 and bb[1] - 1 <= p[1] <= bb[3] + 1
    for e in laid.edges:
        if "[folded]" in e.tail and "[folded]" in e.head:
            assert all(inside(p) for p in _bezier_points(e.attrs["pos"])), (e.tail, e.head)
    for n, (x, y) in visible(laid).items():
        if "[folded]" not in n and split(n)[1] is not None:
            assert x > bb[2], n                        # the unfolded half stands right of it


# ---------------------------------------------------------------- item 4: op views at any τ

def op_view(build, steps, backward=True, **kw):
    net = build().unfold(steps)
    ps = list(net.params)
    back = dict(zip(ps, uf.grad(net.loss, ps))) if backward else ()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = viz.graph([net.loss], backward=back, **kw)
    return g, [w for w in caught if issubclass(w.category, viz.CollapsedStepsWarning)]


@pytest.mark.parametrize("build", [M.rnn_readme, M.lstm_stacked, M.gru_book, M.skip_rnn],
                         ids=lambda b: b.__name__)
def test_a_long_op_view_collapses_says_so_and_names_the_parameter(build):
    g, caught = op_view(build, 200)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "collapse=" in message and "budget=" in message
    assert re.search(r"steps \d+–\d+", message)
    labels = " ".join(text(a.get("label", "")) for a in Laid(g).nodes.values())
    assert re.search(r"steps \d+…\d+", labels) and "×" in labels
    assert re.search(r"collapsed", g.source)


# the LSTMs written with the expressions downstream lose ∇h(t), ∇s(t) (finding 6+7)
MEANINGS_OPEN: set = set()


def test_a_bidirectional_op_view_at_1000_steps_collapses_too():      # finding 5
    g, caught = op_view(M.bidirectional, 1000, backward=False)
    assert len(caught) == 1 and "collapse=" in str(caught[0].message)
    assert re.search(r"steps \d+…\d+", " ".join(text(a.get("label", ""))
                                                 for a in Laid(g).nodes.values()))


@pytest.mark.parametrize("build", [b for b in M.LSTM_SAME if b not in MEANINGS_OPEN],
                         ids=lambda b: b.__name__)
def test_op_view_gradient_nodes_carry_their_meaning(build):
    g, _ = op_view(build, 3)
    labels = {text(a.get("label", "")) for a in Laid(g).nodes.values()}
    flat = " | ".join(labels)
    for t in (1, 2, 3):
        for v in ("h", "s", "o") + (("f", "g", "q") if build is M.lstm_named else ()):
            assert f"∇{v}({t})" in labels, (v, t)
        assert f"∇W({t})" in flat and f"∇Wf({t})" in flat
    assert "∇W = Σ_t ∇W(t)" in flat and "∇L = 1" in labels
    assert not re.search(r"\w+#\d+", flat)                # no batch_outer#123 names


def test_the_3_step_lstm_backward_panel_fits_a_laptop_screen():
    g, _ = op_view(M.lstm_named, 3)
    laid = Laid(g)
    bb = next([float(v) for v in o["bb"].split(",")] for o in laid.raw["objects"]
              if o.get("name") == "cluster_backward")
    width, height = (bb[2] - bb[0]) * 96 / 72, (bb[3] - bb[1]) * 96 / 72
    assert width <= 1366 and height <= 900, (width, height)


# ---------------------------------------------------------------- item 5: honest overlays

def test_compared_overlays_share_one_colour_scale():
    vanishing = {("h", t): 10.0 ** -t for t in range(1, 5)}
    steady = {("h", t): 10.0 ** -1 for t in range(1, 5)}
    g = viz.side_by_side("cmp", [("RNN", M.rnn_readme(), dict(steps=4, gradients=vanishing)),
                                 ("GRU", M.gru_book(), dict(steps=4, gradients=steady))])
    laid = Laid(g)
    fill = {n: a.get("fillcolor") for n, a in laid.nodes.items() if a.get("fillcolor")}
    same = {fill[n] for n in fill if n.startswith("h(1)")} | \
        {fill[n] for n in fill if "[1]" in n}             # h(1) of the RNN, every h of the GRU
    assert len(same) == 1, fill
    assert len({fill[n] for n in fill if "[0]" in n}) == 4
    assert g.source.count("log<SUB>10</SUB>") == 1        # one legend


def test_a_long_overlay_says_which_steps_it_shows():
    norms = {("h", t): 0.9 ** t for t in range(1, 101)}
    g = quiet(viz.unfolded, M.rnn_readme(), steps=100, gradients=norms)
    assert "steps 1–6 and 95–100 shown, 7–94 elided" in g.source
    low = float(re.findall(r'POINT-SIZE="10">(-?[\d.]+)<', g.source)[0])
    assert low == pytest.approx(100 * __import__("math").log10(0.9), abs=0.06)  # elided too


# ---------------------------------------------------------------- 10.7 / 10.8 from hand-written models

def edges_of(g):
    return {(e.tail, e.head) for e in Laid(g).edges}


def test_graphical_model_of_fed_back_targets_is_fully_connected():
    for build in (M.context_rnn, M.conditional_rnn):
        e = edges_of(viz.graphical_model(build(), 4))
        assert {(f"y({a})", f"y({b})") for a in range(1, 5) for b in range(a + 1, 5)} <= e


def test_graphical_model_without_feedback_has_independent_targets():
    for build in (M.rnn_readme, M.lstm_named, M.bidirectional):
        assert edges_of(viz.graphical_model(build(), 4)) == set()
        with_states = edges_of(viz.graphical_model(build(), 4, states=True))
        assert {("h(2)", "y(2)"), ("h(1)", "h(2)")} <= with_states


@pytest.mark.parametrize("view, build", cases(sorted(VIEWS), [M.lstm_stacked, M.lstm_stacked_preact]),
                         ids=lambda v: getattr(v, "__name__", v))
def test_lstm_from_one_stacked_matrix_draws_as_the_one_with_a_matrix_per_gate(build, view):
    """The same named values in the same rows, joined alike; the labels name the stacked matrix
    (M) instead of Wf, Uf, …, and a pre-activation read in slices may be drawn as a point."""
    draw = VIEWS[view]
    assert named_structure(draw(build())) == named_structure(draw(M.lstm_inline()))


def named_structure(g):
    """Rows of the named nodes (unnamed points left out) and the edges between named nodes,
    paths through points contracted, labels left out. In the cell view (where every unit is
    unnamed) the units go by their labels."""
    laid = Laid(g)
    at = visible(laid)
    point = {n for n in at if "%C2%B7" in n and float(laid.nodes[n].get("width", 1)) < 0.3}

    def name(n):
        return f"<{text(laid.nodes[n].get('label', ''))}>" if "%C2%B7" in n else n
    ys = sorted({round(y) for n, (_, y) in at.items() if n not in point})
    rows = [tuple(name(n) for _, n in sorted((x, n) for n, (x, y) in at.items()
                                             if round(y) == r and n not in point)) for r in ys]
    out = {}
    for e in laid.edges:
        out.setdefault(e.tail, set()).add(e.head)
    edges = set()
    for a in at:
        if a in point:
            continue
        stack, seen = list(out.get(a, ())), set()
        while stack:
            b = stack.pop()
            if b in seen:
                continue
            seen.add(b)
            if b in point:
                stack.extend(out.get(b, ()))
            else:
                edges.add((name(a), name(b)))
    return rows, sorted(edges)


@pytest.mark.parametrize("build", cases([M.rnn_readme, M.lstm_named, M.lstm_stacked_preact,
                                         M.gru_book, M.skip_rnn, M.bidirectional]),
                         ids=lambda b: b.__name__)
def test_op_view_time_runs_left_to_right_in_both_panels(build):
    g, _ = op_view(build, 3)
    laid = Laid(g)
    bb = next([float(v) for v in o["bb"].split(",")] for o in laid.raw["objects"]
              if o.get("name") == "cluster_backward")
    names = [(laid.xy(n)[0], text(a["label"])) for n, a in laid.nodes.items()
             if text(a.get("label", "")).startswith("step ")]
    forward = [t for x, t in sorted(names) if x < bb[0]]
    backward = [t for x, t in sorted(names) if x >= bb[0]]
    assert forward == backward == ["step 1", "step 2", "step 3"]


# ---------------------------------------------------------------- items 6-7: gallery CLI, saving

def test_gallery_help_prints_help_and_writes_nothing(tmp_path):
    import subprocess
    import sys
    run = subprocess.run([sys.executable, "-m", "viz.gallery", "--help"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "usage" in run.stdout.lower() and "DIR" in run.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_drawing_saves_as_svg_png_pdf_json_and_dot(tmp_path):
    g = viz.folded(M.lstm_named())
    magic = {"svg": b"<?xml", "png": b"\x89PNG", "pdf": b"%PDF", "json": b"{", "dot": b"digraph"}
    for ext, start in magic.items():
        path = viz.save(g, tmp_path / f"f.{ext}")
        assert path.read_bytes().lstrip().startswith(start), ext
    assert "image/svg+xml" in g._repr_mimebundle_()


def test_a_given_scale_is_used_as_is():
    norms = {("h", t): 10.0 ** -t for t in range(1, 4)}
    wide = viz.unfolded(M.rnn_readme(), steps=3, gradients=norms, scale=(-9.0, 0.0))
    own = viz.unfolded(M.rnn_readme(), steps=3, gradients=norms)
    fill = lambda g: [a.get("fillcolor") for n, a in sorted(Laid(g).nodes.items())
                      if a.get("fillcolor")]
    assert fill(wide) != fill(own)
    assert "-9.0" in wide.source and "0.0" in wide.source


# ---------------------------------------------------------------- findings fixed by viz, kept fixed

@pytest.mark.parametrize("build, options", [(M.rnn_parallel_params, {}),
                                            (M.rnn_readme, {"biases": True}),
                                            (M.gru_reset_after, {})],
                         ids=["W-S", "biases", "gru-window"])
def test_long_edge_labels_stay_clear_of_the_nodes(build, options):        # finding 4
    steps = {} if build is M.gru_reset_after else {"steps": 3}
    assert label_collisions(Laid(viz.unfolded(build(), **steps, **options))) == []


def test_a_loss_at_the_last_step_ends_the_window_at_tau():                   # finding 11
    laid = Laid(viz.unfolded(M.single_output()))
    steps = {split(n)[1] for n in laid.nodes if split(n)[0] in ("o", "L", "y")}
    assert steps == {"τ"} or steps == {"%CF%84"}
    assert not any(split(e.tail)[1] in ("τ", "%CF%84") and split(e.head)[1] not in ("τ", "%CF%84")
                   and split(e.head)[0] == "h" for e in laid.edges)   # nothing after τ


def bidirectional_written(g_first):
    rec = uf.Recurrence("birnn")
    x, y = rec.sequence("x", (3,)), rec.target("y", ())
    h, g = rec.state("h", (2,)), rec.state("g", (2,), backward=True)
    W, U, Wg, Ug = (rec.param(n, (2, 2 if n[0] == "W" else 3)) for n in ("W", "U", "Wg", "Ug"))
    V, Vg = rec.param("V", (4, 2)), rec.param("Vg", (4, 2))
    if g_first:
        gn = uf.tanh(Ug @ x + Wg @ g)
        hn = uf.tanh(U @ x + W @ h)
    else:
        hn = uf.tanh(U @ x + W @ h)
        gn = uf.tanh(Ug @ x + Wg @ g)
    rec.update(h, hn)
    rec.update(g, gn)
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ hn + Vg @ gn), y))
    return rec


@pytest.mark.parametrize("view", ["folded", "unfolded3", "window"])
def test_bidirectional_rows_do_not_follow_the_writing_order(view):           # finding 15
    draw = VIEWS[view]
    rows = geometry(draw(bidirectional_written(True)))[0]
    assert rows == geometry(draw(bidirectional_written(False)))[0]
    order = [r[0].split("(")[0].split("[")[0] for r in rows]
    assert order.index("h") < order.index("g")               # forward under backward (10.11)


def test_overlay_legend_cells_keep_their_width():                           # finding 18
    g = quiet(viz.unfolded, M.rnn_readme(), steps=100,
              gradients={("h", t): 0.9 ** t for t in range(1, 101)})
    cells = re.findall(r'<TD BGCOLOR="[^"]*"[^>]*>', g.source)
    assert len(cells) >= 5 and all('FIXEDSIZE="TRUE"' in c for c in cells)


def test_an_op_view_with_an_unread_output_has_one_legend_per_panel():       # finding 17
    import subprocess
    g, _ = op_view(M.rnn_output_unused, 3)
    names = re.findall(r"subgraph (cluster\w*)", g.source)
    assert len(names) == len(set(names))
    said = subprocess.run(["dot", "-Tjson"], input=g.source.encode(), capture_output=True)
    assert said.returncode == 0 and b"Warning" not in said.stderr


SIGMOIDS = {
    "uf.sigmoid": uf.sigmoid,
    "1/(1+exp(-a))": M.my_sigmoid,
    "1/(1+np.exp(-a))": lambda a: 1 / (1 + __import__("numpy").exp(-a)),
    "(1+exp(-a))**-1": lambda a: (1 + uf.exp(-a)) ** -1,
    "0.5*(tanh(a/2)+1)": lambda a: 0.5 * (uf.tanh(a / 2) + 1),
}


def lstm_with(sigma):
    rec = uf.Recurrence("lstm")
    x, y, s, h = M._lstm_decl(rec)
    P = {k: M._gate_params(rec, k) for k in ("f", "g", "q", "")}
    V = M._p(rec, "V", M.NO, M.NH)
    G = {k: sigma(b + U @ x + W @ h) for k, (U, W, b) in P.items()}
    s_t = rec.update(s, G["f"] * s + G["g"] * G[""])
    h_t = rec.update(h, uf.tanh(s_t) * G["q"])
    rec.loss("L", uf.cross_entropy(rec.output("o", V @ h_t), y))
    return rec


@pytest.mark.parametrize("spelling", list(SIGMOIDS)[1:])
def test_a_written_out_sigmoid_is_a_gate_like_uf_sigmoid(spelling):        # finding 1
    mine, ref = lstm_with(SIGMOIDS[spelling]), lstm_with(uf.sigmoid)
    for view in ("folded", "unfolded3", "cell"):
        assert geometry(VIEWS[view](mine), view == "cell") == \
            geometry(VIEWS[view](ref), view == "cell"), view


def test_four_states_enter_the_next_cell_at_four_points():                 # finding 14
    laid = Laid(viz.unfolded(M.stacked_lstm(), steps=3))
    ends = [e.head_end for e in laid.edges if e.head == "cell(2)"]
    assert len(ends) == 5                                   # s1, h1, s2, h2 of step 1, and x(2)
    assert all(distance(p, q) >= 4 for i, p in enumerate(ends) for q in ends[i + 1:])
    cross = [e for e in laid.edges if split(e.tail)[1] == "1" and split(e.head)[1] == "2"]
    assert {split(e.tail)[0] for e in cross} == {"s1", "h1", "s2", "h2"}
