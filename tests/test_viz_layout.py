"""viz's book view laid out by ``dot`` (json output): rows are ranks, x grows with t in every row,
columns line up, targets sit above losses, backward states point right to left, and the folded
graph stays left of the "Unfold" arrow. Skipped only when ``dot`` is truly absent."""
from __future__ import annotations

import re
import warnings
import shutil

import pytest

import unfold as uf
import viz
from unfold import Recurrence

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")

TOL = 0.5   # points


def cells(g) -> dict[str, dict[str, tuple[float, float]]]:
    """variable → {step: (x, y)} for the nodes ``v(step)`` of a drawing."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for node, xy in viz.positions(g).items():
        m = re.fullmatch(r"([^(\[]+)\(([^()]*)\)", node)
        if m:
            out.setdefault(m.group(1), {})[m.group(2)] = xy
    return out


def bidirectional() -> Recurrence:
    rec = Recurrence("bidirectional")
    x = rec.sequence("x", (3,))
    h, g = rec.state("h", (2,)), rec.state("g", (2,), backward=True)
    h_t = rec.update(h, uf.tanh(rec.param("W", (2, 2)) @ h + rec.param("U", (2, 3)) @ x))
    g_t = rec.update(g, uf.tanh(rec.param("R", (2, 2)) @ g + rec.param("Q", (2, 3)) @ x))
    o = rec.output("o", rec.param("V", (2, 2)) @ h_t + rec.param("S", (2, 2)) @ g_t)
    rec.loss("L", uf.cross_entropy(o, rec.target("y")))
    return rec


def output_recurrence() -> Recurrence:
    """Fig. 10.4's shape: o(t−1) → h(t), edges across columns and down the rows."""
    rec = Recurrence("output recurrence")
    x = rec.sequence("x", (3,))
    o = rec.state("o", (2,))
    h = rec.name_node("h", uf.tanh(rec.param("W", (4, 2)) @ o + rec.param("U", (4, 3)) @ x))
    o_t = rec.update(o, rec.param("V", (2, 4)) @ h)
    rec.loss("L", uf.cross_entropy(o_t, rec.target("y")))
    return rec


def lstm() -> Recurrence:
    rec = Recurrence("lstm")
    x = rec.sequence("x", (3,))
    h, s = rec.state("h", (2,)), rec.state("s", (2,))
    gate = {k: rec.name_node(k, uf.sigmoid(rec.param(f"U_{k}", (2, 3)) @ x +
                                           rec.param(f"W_{k}", (2, 2)) @ h)) for k in "fgq"}
    s_t = rec.update(s, gate["f"] * s + gate["g"] * uf.tanh(rec.param("U", (2, 3)) @ x))
    rec.update(h, uf.tanh(s_t) * gate["q"])
    return rec


def models():
    from test_viz_book import rnn
    return [rnn(), bidirectional(), output_recurrence(), lstm()]


def step_order(steps: list[str]) -> list[str]:
    """Steps sorted in time: 1 < 2 < …, or …0 < t-1 < t < t+1 < …4."""
    def key(s):
        if s.startswith("..."):
            return (int(s[3:]) - 2) * 10 ** 6
        return int(s) if s.isdigit() else {"t-1": -1, "t": 0, "t+1": 1}[s]
    return sorted(steps, key=key)


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize("window", [None, "concrete"])
def test_rows_are_ranks_x_grows_with_t_and_columns_line_up(index, window):
    rec = models()[index]
    g = viz.unfolded(rec, steps=4) if window else viz.unfolded(rec)
    at = cells(g)
    assert at, "no cells"
    for var, row in at.items():
        ys = {round(y, 1) for _, y in row.values()}
        assert len(ys) == 1, f"row {var} is not one rank: {row}"
        xs = [row[s][0] for s in step_order(list(row))]
        assert xs == sorted(xs) and len(set(xs)) == len(xs), f"{var}: x does not grow with t"
    columns: dict[str, list[float]] = {}
    for row in at.values():
        for step, (x, _) in row.items():
            columns.setdefault(step, []).append(x)
    for step, xs in columns.items():
        assert max(xs) - min(xs) < TOL, f"column {step} is not aligned: {xs}"


def test_rows_stack_x_h_o_L_y_bottom_to_top():
    from test_viz_book import rnn
    at = cells(viz.unfolded(rnn(), steps=3))
    heights = [at[v]["1"][1] for v in "xhoLy"]
    assert heights == sorted(heights) and len(set(heights)) == 5


def test_backward_state_edges_point_right_to_left():
    g = viz.unfolded(bidirectional(), steps=4)
    drawn = viz.layout(g)
    name = {o["_gvid"]: o["name"] for o in drawn["objects"] if "_gvid" in o and "nodes" not in o}
    pos = viz.positions(g)
    seen = {"h": 0, "g": 0}
    for e in drawn["edges"]:
        if e.get("style") == "invis":
            continue
        a, b = name[e["tail"]], name[e["head"]]
        if a[0] == b[0] and a[0] in "hg":
            assert e.get("dir") != "back"                    # written the way the data flows
            tip, other = b, a                                 # the arrowhead is at the head
            seen[a[0]] += 1
            if a[0] == "g":
                assert pos[tip][0] < pos[other][0], f"{a}–{b} does not point left"
            else:
                assert pos[tip][0] > pos[other][0], f"{a}–{b} does not point right"
    assert seen == {"h": 3, "g": 3}


def test_targets_sit_above_their_losses():
    from test_viz_book import rnn
    for g in (viz.unfolded(rnn(), steps=2), viz.folded(rnn())):
        pos = viz.positions(g)
        for node in pos:
            if node.startswith("L"):
                assert pos[node.replace("L", "y", 1)][1] > pos[node][1]


def test_folded_graph_left_of_the_unfold_arrow_and_unfolded_right_of_it():
    from test_viz_book import rnn
    for rec in (rnn(), output_recurrence(), bidirectional()):
        pos = viz.positions(viz.unfolding(rec, steps=2))
        arrow = [xy for n, xy in pos.items() if n.startswith("[unfold")]
        left = [xy[0] for n, xy in pos.items() if n.endswith("[folded]")]
        right = [xy[0] for n, xy in pos.items() if re.fullmatch(r"\w+\(\d+\)", n)]
        assert max(left) < min(x for x, _ in arrow) <= max(x for x, _ in arrow) < min(right)


def test_folded_rows_match_unfolded_rows_in_the_unfolding():
    from test_viz_book import rnn
    pos = viz.positions(viz.unfolding(rnn(), steps=2))
    for var in "xhoLy":
        assert abs(pos[f"{var}[folded]"][1] - pos[f"{var}(1)"][1]) < TOL


def test_generic_window_puts_ellipses_at_both_ends_of_the_h_row():
    from test_viz_book import rnn
    at = cells(viz.unfolded(rnn()))
    xs = [at["h"][s][0] for s in step_order(list(at["h"]))]
    assert step_order(list(at["h"])) == ["...0", "t-1", "t", "t+1", "...4"]
    assert xs == sorted(xs)


def model_builders():
    import unfold.models as m
    return {"rnn": lambda: m.rnn(3, 4, 2), "output_to_hidden": lambda: m.output_to_hidden(3, 4, 2),
            "teacher_forcing": lambda: m.teacher_forcing(3, 4, 2, mode="scheduled"),
            "context_rnn": lambda: m.context_rnn(3, 4, 2), "lstm": lambda: m.lstm(3, 4, 2),
            "gru": lambda: m.gru(3, 4, 2), "skip_rnn": lambda: m.skip_rnn(3, 4, 2),
            "language_model": lambda: m.language_model(5, 4)}


@pytest.mark.parametrize("name", sorted(model_builders()))
def test_every_model_of_unfold_models_draws_cleanly_in_rows_and_columns(name):
    import subprocess
    rec = model_builders()[name]()
    for g in (viz.folded(rec), viz.unfolded(rec, steps=3), viz.unfolding(rec)):
        done = subprocess.run(["dot", "-Tjson"], input=g.source.encode(), capture_output=True)
        assert done.returncode == 0 and done.stderr == b"", done.stderr.decode()
    columns: dict[str, set[float]] = {}
    for row in cells(viz.unfolded(rec, steps=3)).values():
        assert len({round(y, 1) for _, y in row.values()}) == 1
        for step, (x, _) in row.items():
            columns.setdefault(step, set()).add(round(x, 1))
    assert all(len(xs) == 1 for xs in columns.values()), columns


def _two_inputs() -> Recurrence:
    rec = Recurrence("two inputs")
    x, z, h = rec.sequence("x", (3,)), rec.sequence("z", (2,)), rec.state("h", (2,))
    h_t = rec.update(h, uf.tanh(rec.param("W", (2, 2)) @ h + rec.param("U", (2, 3)) @ x +
                                rec.param("Uz", (2, 2)) @ z))
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (4, 2)) @ h_t),
                                   rec.target("y")))
    return rec


@pytest.mark.parametrize("name", ["lstm", "lstm common", "gru", "context_rnn", "conditional_rnn",
                                  "bidirectional", "rnn", "two inputs"])
def test_folded_loops_end_clear_of_every_other_edge_end(name):
    """Issue 9 item 3: a loop through a delay square leaves and re-enters its state at points
    of its own — no other edge's end (an arrowhead above all) within 8 pt of the loop's ends:
    the LSTM's W h(t−1) into s was 5.6 pt from s's loop, Fig. 10.9's U y(t−1) into h 5.6 pt
    from h's, the bidirectional's U_g into g and the GRU's r → h 6 pt."""
    import unfold.models as m
    from viz_json import Laid, distance
    rec = {"lstm": lambda: m.lstm(3, 2, 4), "lstm common": lambda: m.lstm(3, 2, 4, variant="common"),
           "gru": lambda: m.gru(3, 2, 4), "context_rnn": lambda: m.context_rnn(3, 2, 4),
           "conditional_rnn": lambda: m.conditional_rnn(3, 2, 4),
           "bidirectional": bidirectional, "rnn": lambda: m.rnn(3, 2, 4),
           "two inputs": _two_inputs}[name]()
    for g in (viz.folded(rec), viz.unfolding(rec, steps=3)):
        laid = Laid(g)
        squares = {n for n in laid.nodes if "[delay" in n}
        ends = [(node, p, e) for e in laid.edges
                for node, p in ((e.tail, e.tail_end), (e.head, e.head_end))]
        for e in laid.edges:
            if not squares & {e.tail, e.head} or squares >= {e.tail, e.head}:
                continue
            node, p = (e.head, e.head_end) if e.tail in squares else (e.tail, e.tail_end)
            for other, q, f in ends:
                if other == node and f is not e and not squares & {f.tail, f.head}:
                    assert distance(p, q) >= 8, (f"{e.tail}→{e.head}", f"{f.tail}→{f.head}")


def _unfolding_models() -> dict:
    import unfold.models as m
    return {"rnn": lambda: m.rnn(3, 4, 2), "lstm": lambda: m.lstm(3, 2, 4),
            "lstm common": lambda: m.lstm(3, 2, 4, variant="common"),
            "gru": lambda: m.gru(3, 2, 4), "gru reset_after": lambda: m.gru(3, 2, 4,
                                                                           variant="reset_after"),
            "skip_rnn": lambda: m.skip_rnn(3, 4, 2), "bidirectional": bidirectional,
            "deep lstm": lambda: m.deep_rnn(3, [4, 4], 2, cell="lstm"),
            "teacher_forcing": lambda: m.teacher_forcing(3, 4, 2, mode="scheduled")}


@pytest.mark.parametrize("name", sorted(_unfolding_models()))
def test_the_unfolding_s_folded_half_is_the_folded_view(name):
    """Issue 9 item 3: viz.unfolding's folded half is drawn as viz.folded draws the graph —
    the same rows, each in the same order left to right, and the same pairs of edges crossing
    (it once shared the unfolded half's rows: a peephole LSTM had 13 crossings there, 4 alone);
    its states stand level with the unfolded half's (Fig. 10.2); and it stands left of the
    arrow, every folded edge with it."""
    from viz_json import Laid, crossings, _bezier_points
    rec = _unfolding_models()[name]()
    alone, both = Laid(viz.folded(rec)), Laid(viz.unfolding(rec, steps=3))

    def rows(laid, keep):
        at = {n: laid.xy(n) for n, a in laid.nodes.items()
              if keep(n) and "pos" in a and a.get("style") != "invis"}
        ys = sorted({round(y) for _, y in at.values()})
        return [[n.replace("[folded]", "") for _, n in sorted((x, n) for n, (x, y) in at.items()
                                                             if round(y) == r)] for r in ys]
    assert rows(both, lambda n: "[folded]" in n) == rows(alone, lambda n: True)
    strip = lambda pairs: sorted(tuple(sorted(p.replace("[folded]", "") for p in c))
                                 for c in pairs)
    inside = [c for c in crossings(both) if all("[folded]" in p for p in c)]
    assert strip(inside) == strip(crossings(alone))
    cells = {}
    for n in both.nodes:
        m = re.fullmatch(r"([^(\[]+)\((\d+)\)", n)
        if m and "pos" in both.nodes[n]:
            cells.setdefault(m.group(1), both.xy(n)[1])
    from viz import labels as L
    from viz.book import contract
    states = [v.name for v in contract(rec).variables.values() if v.kind == "state"]
    for var in states:            # (two inputs side by side when folded stack when unfolded)
        if var in cells:
            assert abs(both.xy(f"{L.node_id(var, None)}[folded]")[1] - cells[var]) < TOL, var
    wall = min(both.xy(n)[0] for n in both.nodes if n.startswith("[unfold"))
    for e in both.edges:
        if "[folded]" in e.tail and "[folded]" in e.head:
            assert max(p[0] for p in _bezier_points(e.attrs["pos"])) < wall, (e.tail, e.head)


def _lstms() -> dict:
    import unfold.models as m
    from viz_judge_models import lstm_named, lstm_stacked_preact
    return {"lstm": (lambda: m.lstm(3, 4, 5), "q", "s", "h"),
            "language_model lstm": (lambda: m.language_model(8, 4, cell="lstm"), "q", "s", "h"),
            "deep lstm, first layer": (lambda: m.deep_rnn(3, [4, 4], 2, cell="lstm"),
                                       "q_1", "s_1", "h_1"),
            "deep lstm, second layer": (lambda: m.deep_rnn(3, [4, 4], 2, cell="lstm"),
                                        "q_2", "s_2", "h_2"),
            "lstm_named": (lstm_named, "q", "s", "h"),
            "lstm_stacked_preact": (lstm_stacked_preact, "q", "s", "h")}


@pytest.mark.parametrize("name", sorted(_lstms()))
def test_the_output_gate_reaches_h_beside_the_state_not_round_it(name):
    """Issue 9 (Fig. 10.16): in the folded LSTM the gates stand in one row under the state s;
    those that feed s (the input and forget gates) under it, the output gate q, whose edge
    jumps over s's row into h, on the side away from s's loop square, its line up to h clear
    of s (it used to stand under s and curve round it)."""
    from viz_json import Laid, _bezier_points, node_box
    build, gate, state, out = _lstms()[name]
    laid = Laid(viz.folded(build()))
    loop = f"{state}[delay 1]"
    sx, sy = laid.xy(state)
    gates = [n for n in laid.nodes if "[" not in n and abs(laid.xy(n)[1] - laid.xy(gate)[1]) < TOL]
    assert laid.xy(loop)[0] > sx and laid.xy(gate)[0] == min(laid.xy(n)[0] for n in gates)
    x0, y0, _, y1 = node_box(laid, state)
    assert laid.xy(gate)[0] < x0 and any(abs(laid.xy(n)[0] - sx) < TOL for n in gates)
    line = next(e for e in laid.edges if (e.tail, e.head) == (gate, out))
    beside = [p for p in _bezier_points(line.attrs["pos"]) if y0 <= p[1] <= y1]
    assert beside and all(p[0] < x0 for p in beside), (name, beside, x0)


def _read_outs(k: int) -> Recurrence:
    """k outputs of one state, each with its own loss and target (o → L ← y, p → M ← z, …)."""
    rec = Recurrence(f"{k} read-outs")
    x, h = rec.sequence("x", (3,)), rec.state("h", (2,))
    h_t = rec.update(h, uf.tanh(rec.param("W", (2, 2)) @ h + rec.param("U", (2, 3)) @ x))
    for out, loss, target, w in list(zip("opq", "LMN", "yzw", "VPQ"))[:k]:
        rec.loss(loss, uf.mse(rec.output(out, rec.param(w, (2, 2)) @ h_t),
                              rec.sequence(target, (2,))))
    return rec


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("view", ["folded", "steps=3", "window", "unfolding", "gap"])
def test_read_outs_of_one_state_stand_side_by_side_in_every_view(k, view):
    """Finding 46: the outputs of one state share a row in every view, as folded — the first on
    the state's line, the others right of it — each loss straight above its output and each
    target above its loss; a step's nodes stand wholly left of the next step's (the ellipsis
    h(…) after step t+1, the elided gap after step 3, right of the last output); no crossing."""
    from viz_json import Laid, crossings
    rec = _read_outs(k)
    g = {"folded": lambda: viz.folded(rec), "steps=3": lambda: viz.unfolded(rec, steps=3),
         "window": lambda: viz.unfolded(rec), "unfolding": lambda: viz.unfolding(rec),
         "gap": lambda: viz.unfolded(rec, steps=8, max_steps=6)}[view]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", viz.ElidedStepsWarning)
        laid = Laid(g())
    at = laid.cells() if view != "folded" else {n: {"": laid.xy(n)} for n in "xhopqLMNyzw"
                                                 if n in laid.nodes}
    outs, losses, targets = "opq"[:k], "LMN"[:k], "yzw"[:k]
    for step, (hx, _) in at["h"].items():
        if step not in at["o"]:
            continue                                        # (an ellipsis, a gap)
        for chain in (outs, losses, targets):
            assert len({at[n][step][1] for n in chain}) == 1, (step, chain)
            xs = [at[n][step][0] for n in chain]
            assert xs == sorted(xs), (step, chain, xs)
        assert abs(at["o"][step][0] - hx) < TOL, (step, at["o"][step], hx)
        for o, loss, t in zip(outs, losses, targets):
            (ox, oy), (lx, ly), (tx, ty) = at[o][step], at[loss][step], at[t][step]
            assert oy < ly < ty and abs(lx - ox) < 20 and abs(tx - lx) < 20, (step, o, loss, t)
    if view != "folded":
        steps: dict[str, list[float]] = {}
        for row in at.values():
            for step, (x, _) in row.items():
                steps.setdefault(step, []).append(x)
        # (the gap "...k" of a concrete axis is its column k: after step k)
        order = step_order(list(steps)) if view != "gap" else \
            sorted(steps, key=lambda s: int(s) if s.isdigit() else int(s[3:]) + 0.5)
        for a, b in zip(order, order[1:]):
            assert max(steps[a]) < min(steps[b]), (a, b)
    assert crossings(laid) == []
