"""viz's book view, on the DOT text: the contraction to named variables and parameter-labelled
edges, τ nodes per row, the delay mark, ellipses, escaping, determinism and output helpers.
(Geometry, which needs the ``dot`` program, is in test_viz_layout.py.)"""
from __future__ import annotations

import re

import pytest

import unfold as uf
import viz
from unfold import Recurrence
from viz import labels as L, output
from viz.book import contract
from viz.layout import rows


def rnn(name: str = "rnn", out: str = "o") -> Recurrence:
    """The RNN of Fig. 10.3, written here independently of viz.figures."""
    rec = Recurrence(name)
    x = rec.sequence("x", (3,))
    h = rec.state("h", (4,))
    W, U, b = rec.param("W", (4, 4)), rec.param("U", (4, 3)), rec.param("b", (4,))
    h_t = rec.update(h, uf.tanh(b + W @ h + U @ x))
    y = rec.target("y", (), dtype="int64")
    o = rec.output(out, rec.param("c", (2,)) + rec.param("V", (2, 4)) @ h_t)
    rec.loss("L", uf.cross_entropy(o, y))
    return rec


def edges(dot_source: str) -> list[tuple[str, str, str]]:
    """(tail, head, attributes) of every visible edge statement of a DOT text."""
    found = []
    for line in dot_source.splitlines():
        m = re.match(r'\s*("(?:[^"\\]|\\.)*"|[\w.]+)(?::\w+)? -> ("(?:[^"\\]|\\.)*"|[\w.]+)'
                     r'(?::\w+)?(?: \[(.*)\])?$', line)
        if m and "invis" not in (m.group(3) or ""):
            found.append((m.group(1).strip('"'), m.group(2).strip('"'), m.group(3) or ""))
    return found


def nodes(dot_source: str) -> list[str]:
    """Node ids declared with a label (the visible nodes)."""
    return [m.group(1).strip('"') for m in re.finditer(
        r'^\s*("(?:[^"\\]|\\.)*"|[\w.]+) \[label=', dot_source, re.M)]


def labelled(attrs: str) -> str:
    """The plain text of an edge's (x)label."""
    m = re.search(r"label=<(.*?)>(?: |$)", attrs)
    return re.sub(r"<[^>]*>", "", m.group(1)) if m else ""


# --- the contraction ------------------------------------------------------------------------------

def test_contraction_names_parameters_on_edges_and_hides_biases():
    book = contract(rnn())
    assert list(book.variables) == ["x", "h", "y", "o", "L"]
    got = {(e.src, e.dst, e.delay): (e.labels, e.biases) for e in book.edges}
    assert got == {("x", "h", 0): (("U",), ()), ("h", "h", 1): (("W",), ("b",)),
                   ("h", "o", 0): (("V",), ("c",)), ("o", "L", 0): ((), ()),
                   ("y", "L", 0): ((), ())}


def test_rows_run_x_h_o_L_and_targets_above_losses():
    assert rows(contract(rnn())) == {"x": 0, "h": 1, "o": 2, "L": 3, "y": 4}


def test_named_inner_values_become_variables():
    rec = Recurrence("gated")
    x = rec.sequence("x", (2,))
    h = rec.state("h", (2,))
    f = rec.name_node("f", uf.sigmoid(rec.param("W_f", (2, 2)) @ h + x))
    rec.update(h, f * h + (1 - f) * uf.tanh(x))
    book = contract(rec)
    assert list(book.variables) == ["x", "f", "h"]        # in the order they are computed
    got = {(e.src, e.dst, e.delay): e.labels for e in book.edges}
    assert got == {("x", "f", 0): (), ("h", "f", 1): ("W_f",), ("f", "h", 0): (),
                   ("h", "h", 1): (), ("x", "h", 0): ()}


def test_a_state_that_remembers_a_sequence_is_drawn_as_that_sequence_one_step_back():
    rec = Recurrence("teacher forcing")
    x = rec.sequence("x", (2,))
    y = rec.target("y", (2,), dtype="float64")
    y_prev = rec.state("y_prev", (2,))
    rec.update(y_prev, y)
    h = rec.name_node("h", uf.tanh(rec.param("W", (2, 2)) @ y_prev + x))
    rec.loss("L", uf.mse(h, y))
    book = contract(rec)
    assert "y_prev" not in book.variables
    assert ("y", "h", 1, ("W",)) in {(e.src, e.dst, e.delay, e.labels) for e in book.edges}


# --- unfolded: nodes and edges ------------------------------------------------------------------

@pytest.mark.parametrize("tau", [1, 3, 7])
def test_tau_steps_give_tau_nodes_per_row_and_W_edges_labelled_W(tau):
    src = viz.unfolded(rnn(), steps=tau).source
    ids = nodes(src)
    for var in "xhoLy":
        assert [n for n in ids if n.startswith(f"{var}(")] == \
            [f"{var}({t})" for t in range(1, tau + 1)]
    w = [(a, b) for a, b, attrs in edges(src) if labelled(attrs) == "W"]
    assert w == [(f"h({t})", f"h({t + 1})") for t in range(1, tau)]
    assert [(a, b) for a, b, attrs in edges(src) if labelled(attrs) == "U"] == \
        [(f"x({t})", f"h({t})") for t in range(1, tau + 1)]


def test_generic_window_has_ellipses_at_both_ends_with_W_edges():
    src = viz.unfolded(rnn()).source
    w = [(a, b) for a, b, attrs in edges(src) if labelled(attrs) == "W"]
    assert w == [("h(...0)", "h(t-1)"), ("h(t-1)", "h(t)"), ("h(t)", "h(t+1)"),
                 ("h(t+1)", "h(...4)")]
    assert "(…)" in src and "<I>t</I>−1" in src        # superscripts h⁽…⁾, h⁽ᵗ⁻¹⁾


def test_a_single_final_loss_draws_o_L_y_at_the_last_step_only():
    rec = Recurrence("one output")
    x = rec.sequence("x", (2,))
    h = rec.state("h", (2,))
    h_t = rec.update(h, uf.tanh(rec.param("W", (2, 2)) @ h + x))
    o = rec.output("o", rec.param("V", (2, 2)) @ h_t)
    rec.loss("L", uf.cross_entropy(o, rec.target("y")), steps="last")
    ids = nodes(viz.unfolded(rec, steps=4).source)
    assert sorted(n for n in ids if n[0] in "oLy") == ["L(4)", "o(4)", "y(4)"]
    assert [n for n in ids if n[0] == "h"] == [f"h({t})" for t in range(1, 5)]


@pytest.mark.parametrize("view", [viz.unfolded, viz.unfolding])
def test_losses_at_some_steps_are_drawn_at_those_steps_and_said(view):
    """A symbolic window has no step 2: losses taken at steps [2, 3] (and a second loss at
    step 5) are drawn on the concrete steps 1 … 5, each at its own steps, and the caption
    says so."""
    rec = Recurrence("two losses")
    x, h = rec.sequence("x", (3,)), rec.state("h", (4,))
    h_t = rec.update(h, uf.tanh(rec.param("W", (4, 4)) @ h + rec.param("U", (4, 3)) @ x))
    o = rec.output("o", rec.param("V", (2, 4)) @ h_t)
    rec.loss("L", uf.cross_entropy(o, rec.target("y", (), dtype="int64")), steps=[3, 2])
    rec.loss("M", uf.sum(h_t * h_t), steps=[5])
    src = view(rec).source
    ids = [n.replace("[folded]", "") for n in nodes(src)]
    assert sorted(n for n in ids if n[:2] in ("L(", "M(")) == ["L(2)", "L(3)", "M(5)"]
    assert [n for n in ids if n.startswith("h(")] == [f"h({t})" for t in range(1, 6)]
    assert 'label="L at steps 2 and 3; M at step 5 only"' in src


def test_delay_mark_only_in_folded_views():
    def squares(src):
        return [line for line in src.splitlines() if "shape=square" in line
                and "fillcolor=black" in line]
    rec = rnn()
    assert len(squares(viz.folded(rec).source)) == 1
    assert len(squares(viz.unfolding(rec).source)) == 1      # the folded half
    assert squares(viz.unfolded(rec, steps=3).source) == []
    assert squares(viz.unfolded(rec).source) == []


def test_the_folded_loop_goes_through_the_square_and_a_longer_delay_is_labelled():
    rec = Recurrence("skip through time")
    x = rec.sequence("x", (2,))
    h = rec.state("h", (2,))
    rec.update(h, uf.tanh(rec.param("W", (2, 2)) @ h + rec.param("S", (2, 2)) @ rec.past(h, 3)
                          + x))
    src = viz.folded(rec).source
    path = [(a, b, labelled(attrs)) for a, b, attrs in edges(src) if "delay" in a + b]
    # the loop beside h: out of h with its parameter (upper arc), back from the square
    assert ("h", "h[delay 1]", "W") in path and ("h[delay 1]", "h", "") in path
    # the second loop of h, in the row above, left (the right holds both arcs of the first):
    # its parameter on the edge up to the square
    assert ("h", "h[delay 3]", "S") in path and ("h[delay 3]", "h", "") in path
    assert re.search(r'"h\[delay 3\]" \[.*xlabel=3', src)


def test_unfolding_has_folded_graph_unfold_arrow_and_unfolded_graph():
    src = viz.unfolding(rnn(), steps=2).source
    ids = nodes(src)
    assert "h[folded]" in ids and "h(1)" in ids and "h(2)" in ids
    assert any(labelled(attrs) == "Unfold" or "label=Unfold" in attrs
               for _, _, attrs in edges(src))


def test_params_false_leaves_edges_unlabelled_and_biases_true_adds_b():
    rec = rnn()
    assert all(labelled(a) == "" for _, _, a in edges(viz.folded(rec, params=False).source))
    labels = {labelled(a) for _, _, a in edges(viz.unfolded(rec, steps=2, biases=True).source)}
    assert {"W, b", "V, c", "U"} <= labels


# --- safety and determinism ----------------------------------------------------------------------

NASTY = ['a<b>', 'x&y', 'q"uote', "back\\", "<script>", "h(3)", "]; evil [", "%2F", "a\\N"]


@pytest.mark.parametrize("name", NASTY)
def test_names_are_escaped_in_labels_and_ids(name):
    rec = rnn(out=name)
    for g in (viz.folded(rec), viz.unfolded(rec, steps=2), viz.unfolding(rec)):
        src = g.source
        assert f"<B><I>{L.esc(name)}</I></B>" in src           # HTML labels escape the name
        for node in nodes(src):                                 # ids are percent-encoded
            assert re.fullmatch(r"[A-Za-z0-9_.+\-%()\[\] ]+", node), node
        if output.have_dot():                                   # dot reads exactly what we mean
            benign = {"folded": viz.folded, "unfolded": lambda r: viz.unfolded(r, steps=2),
                      "unfolding": viz.unfolding}[g.name.split("(")[-1].rstrip(")")]
            drawn = viz.layout(g)
            assert len(drawn["objects"]) == len(viz.layout(benign(rnn()))["objects"])
            texts = {op["text"] for obj in drawn["objects"] for op in obj.get("_ldraw_", [])
                     if op.get("op") == "T"}
            assert name in texts


def test_same_graph_twice_gives_identical_source():
    for draw in (lambda r: viz.folded(r), lambda r: viz.unfolded(r, steps=3),
                 lambda r: viz.unfolded(r), lambda r: viz.unfolding(r)):
        rec = rnn()
        assert draw(rec).source == draw(rec).source
        assert draw(rec).source == draw(rnn()).source        # and a rebuilt model


def test_dot_source_without_dot_and_a_clear_error_when_rendering_needs_it(monkeypatch):
    monkeypatch.setattr(output.shutil, "which", lambda name: None)
    g = viz.unfolded(rnn(), steps=2)
    assert viz.source(g).startswith("digraph")
    with pytest.raises(viz.DotNotFoundError, match="apt-get install graphviz"):
        viz.svg(g)
    with pytest.raises(viz.DotNotFoundError):
        viz.save(g, "unused.png")


def test_save_writes_dot_source_without_dot(tmp_path, monkeypatch):
    monkeypatch.setattr(output.shutil, "which", lambda name: None)
    g = viz.folded(rnn())
    assert viz.save(g, tmp_path / "g.dot").read_text() == g.source
    with pytest.raises(ValueError, match="suffix"):
        viz.save(g, tmp_path / "g.unknown")


def test_jupyter_display_is_graphvizs_own():
    g = viz.folded(rnn())
    assert hasattr(g, "_repr_mimebundle_")


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="either steps"):
        viz.unfolded(rnn(), steps=3, window=("t",))
    with pytest.raises(TypeError, match="Recurrence"):
        viz.folded("not a recurrence")
    with pytest.raises(KeyError, match="available"):
        viz.figure("10.99")


def test_hide_contracts_inner_values_and_drops_a_hidden_loss():
    import unfold.models as m
    book = contract(m.rnn(3, 4, 2), hide=("a",))
    assert "a" not in book.variables
    assert ("h", "h", 1, ("W",)) in {(e.src, e.dst, e.delay, e.labels) for e in book.edges}
    test_time = contract(m.teacher_forcing(3, 4, 2, mode="free"), hide=("L",))
    assert set(test_time.variables) == {"x", "h", "o"}
    assert ("o", "h", 1, ("W",)) in {(e.src, e.dst, e.delay, e.labels) for e in test_time.edges}
    with pytest.raises(ValueError, match="cannot hide 'h'"):
        contract(m.rnn(3, 4, 2), hide=("h",))


def test_named_constants_label_their_edges_like_parameters():
    """Finding 37: an echo state network's fixed reservoir (``constant(W, name="W")``, section
    10.8) labels x –U→ h and the W loop as Fig. 10.3 does; unnamed constants label nothing."""
    import unfold.models as models
    labels = {(e.src, e.dst): e.labels for e in contract(models.echo_state(2, 5, 1)).edges}
    assert labels[("x", "h")] == ("U",) and labels[("h", "h")] == ("W",)
    assert labels[("h", "o")] == ("V",)


@pytest.mark.parametrize("name", ["yhat", "y_hat"])
def test_a_hatted_name_is_drawn_with_its_hat(name):
    """Finding 38: eq. 10.11's ŷ, named yhat or y_hat, is drawn ŷ (as beta is drawn β)."""
    assert L.symbol(name) == "<B><I>ŷ</I></B>"


def _state_is_the_output(style: str) -> Recurrence:
    """A regression RNN whose new state is its prediction: o(t) = h(t), L(t) = mse(o(t), y(t)),
    written with the expression, with each returned node, or with the loss on the state's."""
    rec = Recurrence("rnn")
    x, y, h = rec.sequence("x", (3,)), rec.sequence("y", (2,)), rec.state("h", (2,))
    new = uf.tanh(rec.param("W", (2, 2)) @ h + rec.param("U", (2, 3)) @ x)
    h_t = rec.update(h, new)
    o = rec.output("o", {"expression": new, "returned": h_t, "loss on h": new}[style])
    rec.loss("L", uf.mse({"expression": new, "returned": o, "loss on h": h_t}[style], y))
    return rec


@pytest.mark.parametrize("style", ["expression", "returned", "loss on h"])
def test_an_output_that_is_the_state_is_what_its_loss_reads(style):        # vizjudge 44
    """h(t) given to rec.output too: h → o → L in every view (Fig. 10.3's o → L), whichever
    node the user went on with — never o a dead end beside an h → L edge."""
    book = contract(_state_is_the_output(style))
    assert {(e.src, e.dst, e.delay, e.labels) for e in book.edges} == {
        ("x", "h", 0, ("U",)), ("h", "h", 1, ("W",)), ("h", "o", 0, ()), ("o", "L", 0, ()),
        ("y", "L", 0, ())}
    for view in (viz.folded, viz.cell, lambda r: viz.unfolded(r, steps=2)):
        drawn = {(a.split("(")[0], b.split("(")[0]) for a, b, _ in edges(view(
            _state_is_the_output(style)).source)}
        assert {a for a, b in drawn if b == "L"} == {"o", "y"}
        assert {b for a, b in drawn if a == "o"} == {"L"}


def test_both_ends_of_an_output_to_hidden_recurrence_say_w():                 # vizjudge 24
    """Fig. 10.4: o(…) –W→ h(t−1) at the left end, and at the right o(t+1) –W→ into the
    ellipsis (an unlabelled o(t+1) → o(…) read as an identity), as h(t+1) –W→ h(…) in 10.3."""
    from unfold import models
    for rec, carrier in ((models.output_to_hidden(3, 4, 2), "o"), (rnn(), "h")):
        found = {(a, b): attrs for a, b, attrs in edges(viz.unfolded(rec).source)}
        into_end = [attrs for (a, b), attrs in found.items()
                    if a == f"{carrier}(t+1)" and b.endswith("(...4)")]
        out_of_start = [attrs for (a, b), attrs in found.items() if a == f"{carrier}(...0)"]
        assert len(into_end) == 1 and "<I>W</I>" in into_end[0], found
        assert out_of_start and all("<I>W</I>" in attrs for attrs in out_of_start)


def test_a_loss_at_the_first_step_only_opens_the_window_at_step_1():
    """steps="first": the window 1, 2, 3, h(…) with o, L, y at step 1 only (the book's window
    drew them at t−1, after an h(…) that stood for the steps before the first)."""
    rec = Recurrence("first")
    x, h = rec.sequence("x", (3,)), rec.state("h", (4,))
    h_t = rec.update(h, uf.tanh(rec.param("W", (4, 4)) @ h + rec.param("U", (4, 3)) @ x))
    o = rec.output("o", rec.param("V", (2, 4)) @ h_t)
    rec.loss("L", uf.cross_entropy(o, rec.target("y", (), dtype="int64")), steps="first")
    ids = nodes(viz.unfolded(rec).source)
    assert sorted(n for n in ids if n[0] in "oLy") == ["L(1)", "o(1)", "y(1)"]
    assert [n for n in ids if n.startswith("h(")] == ["h(1)", "h(2)", "h(3)", "h(...3)"]


def test_a_loss_at_a_late_step_elides_the_middle_and_says_both():
    rec = Recurrence("late")
    x, h = rec.sequence("x", (3,)), rec.state("h", (4,))
    h_t = rec.update(h, uf.tanh(rec.param("W", (4, 4)) @ h + rec.param("U", (4, 3)) @ x))
    rec.loss("L", uf.sum(h_t * h_t), steps=[40])
    with pytest.warns(viz.ElidedStepsWarning):
        src = viz.unfolded(rec).source
    assert "L(40)" in src and 'label="L at step 40 only; τ = 40: steps 1–6 and 35–40 shown' in src
