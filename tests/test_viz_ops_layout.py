"""The op view's geometry, from ``dot -Tjson`` (no image comparison): time runs left to right in
both panels — the step columns, x(t) and ∇h(t), in the order of t, the columns never
interleaving — for RNNs, LSTMs and GRUs from ``unfold.models`` and written here, masked,
truncated, with skip connections and run backward in time, at 3 steps and at τ = 1 000 with the
middle collapsed; the shared parameters stand once, in a row whose legend says what a dashed
copy W(t) is, with no tie edges; the backward panel of a 3-step LSTM fits a laptop screen."""
from __future__ import annotations

import re
import shutil
import warnings

import pytest

import unfold as uf
import unfold.models as models
import viz
from unfold import Recurrence
from test_viz_cells import gru_inline, lstm_named
from test_viz_styles import readme_style
from viz.ops_view import CollapsedStepsWarning
from viz_json import Laid

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")


def skip_written() -> Recurrence:
    """h(t) = tanh(W h(t−1) + W_d h(t−2) + U x(t)), written with rec.past."""
    rec = Recurrence("skip")
    x, h = rec.sequence("x", (2,)), rec.state("h", (3,))
    h_t = rec.update(h, uf.tanh(rec.param("W", (3, 3)) @ h + rec.param("W_d", (3, 3)) @
                                rec.past(h, 2) + rec.param("U", (3, 2)) @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (2, 3)) @ h_t),
                                   rec.target("y")))
    return rec


RECURRENCES = {
    "rnn": lambda: models.rnn(3, 4, 3), "lstm": lambda: models.lstm(3, 4, 3),
    "gru": lambda: models.gru(3, 4, 3), "skip_rnn": lambda: models.skip_rnn(3, 4, 3),
    "readme_style": readme_style, "lstm_named": lstm_named, "gru_inline": gru_inline,
    "skip_written": skip_written, "bidirectional": lambda: models.bidirectional(3, 4, 3),
    "bidirectional_lstm": lambda: models.bidirectional(2, 2, 2, cell="lstm")}


def op_view(rec: Recurrence, steps: int, backward: bool = True, **unfold):
    u = rec.unfold(steps, **unfold)
    params = list(rec.params.values())
    grads = dict(zip(params, uf.grad(u.loss, params))) if backward else ()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapsedStepsWarning)
        return viz.graph(u.loss, backward=grads)


def columns(laid: Laid) -> dict[bool, dict[int, tuple[float, float]]]:
    """For each panel (True: backward), step → (left, right) of the nodes drawn at that step
    (read from their tooltips, "…; step t")."""
    out: dict[bool, dict[int, tuple[float, float]]] = {}
    for name, node in laid.nodes.items():
        m = re.search(r"; step (\d+)", node.get("tooltip", ""))
        if not m or "pos" not in node:
            continue
        x, half = laid.xy(name)[0], float(node["width"]) * 36
        steps = out.setdefault(name.startswith("grad "), {})
        left, right = steps.get(int(m.group(1)), (x - half, x + half))
        steps[int(m.group(1))] = (min(left, x - half), max(right, x + half))
    return out


def check_time_runs_left_to_right(laid: Laid, steps: list[int], panels: int) -> None:
    cols = columns(laid)
    assert len(cols) == panels
    for backward, by_step in cols.items():
        assert sorted(by_step) == steps, (backward, sorted(by_step))
        for a, b in zip(steps, steps[1:]):        # step a's column wholly left of step b's
            assert by_step[a][1] < by_step[b][0], (backward, a, b, by_step[a], by_step[b])
    # as a judge would read it: x(t), ∇h(t) and the step names in the order of t
    for ids in ([f"x({t})" for t in steps], [f"grad h({t})" for t in steps],
                [f"[f step {t}]" for t in steps], [f"[b step {t}]" for t in steps]):
        xs = [laid.xy(i)[0] for i in ids if i in laid.nodes]
        assert xs == sorted(xs), ids
        assert len(xs) == len(steps) or ids[0].startswith("grad") or panels == 1, ids


@pytest.mark.parametrize("name", sorted(RECURRENCES))
def test_time_runs_left_to_right_in_both_panels(name):
    laid = Laid(op_view(RECURRENCES[name](), 3))
    check_time_runs_left_to_right(laid, [1, 2, 3], 2)


@pytest.mark.parametrize("unfold", [{"mask": True}, {"truncate": 2}])
def test_time_runs_left_to_right_masked_or_truncated(unfold):
    laid = Laid(op_view(models.lstm(2, 3, 2), 4, **unfold))
    check_time_runs_left_to_right(laid, [1, 2, 3, 4], 2)


def test_time_runs_left_to_right_in_the_forward_panel_alone():
    laid = Laid(op_view(models.gru(3, 4, 3), 3, backward=False))
    check_time_runs_left_to_right(laid, [1, 2, 3], 1)


def test_a_collapsed_lstm_of_1000_steps_keeps_time_left_to_right():
    laid = Laid(op_view(models.lstm(2, 2, 2), 1000))
    kept = sorted(columns(laid)[False])
    assert kept[0] == 1 and kept[-1] == 1000 and len(kept) < 10
    check_time_runs_left_to_right(laid, kept, 2)
    before = max(t for t in kept if t < 500)          # the box stands between the two ends
    after = kept[kept.index(before) + 1]
    cols = columns(laid)
    for side, panel in (("forward", False), ("backward", True)):
        box = next(n for n in laid.nodes if n.startswith(f"[{side} steps "))
        assert cols[panel][before][1] < laid.xy(box)[0] < cols[panel][after][0]


def test_parameters_stand_once_in_a_row_that_says_what_a_copy_is():
    laid = Laid(op_view(models.lstm(2, 3, 2), 3))
    params = {"U_f", "W_f", "b_f", "U", "W", "b", "V", "c"} & set(laid.nodes)
    assert len(params) >= 6
    row = next(o for o in laid.raw["objects"] if o.get("name") == "cluster_params")
    assert "copy" in row["label"] and {laid.raw["objects"][i]["name"] for i in row["nodes"]} \
        >= params
    # no edge ties a copy to its parameter (ties ordered the steps backwards); each copy is
    # dashed and read by its step
    for e in laid.edges:
        assert e.tail not in params, (e.tail, e.head)
    for t in (1, 2, 3):
        copy = laid.nodes[f"W_f({t})"]
        assert copy["style"] == "dashed" and f"step {t}" in copy["tooltip"]
        assert any(e.tail == f"W_f({t})" for e in laid.edges)
    ys = {laid.xy(p)[1] for p in params}
    assert len(ys) == 1 and min(y for _, y in map(laid.xy, laid.nodes)) >= min(ys) - 1


@pytest.mark.parametrize("build", [lambda: models.lstm(3, 4, 2),
                                   lambda: models.bidirectional(3, 4, 2, cell="lstm"),
                                   lambda: models.bidirectional(3, 4, 2, cell="gru"),
                                   lambda: models.deep_rnn(3, [4, 4], 2, cell="lstm")],
                         ids=["lstm", "bidirectional lstm", "bidirectional gru", "two-layer lstm"])
def test_the_backward_panel_of_a_3_step_lstm_fits_a_laptop_screen(build):
    """Finding 62: the bidirectional and two-layer LSTMs' panels too (1 668 and 1 405 px wide
    before their rows were made compact, ``viz.ops_view._fitted``)."""
    g = op_view(build(), 3)
    boxes = {o["name"]: o["bb"] for o in viz.layout(g)["objects"] if "bb" in o}
    x0, y0, x1, y1 = map(float, boxes["cluster_backward"].split(","))
    assert (x1 - x0) * 96 / 72 < 1366 and (y1 - y0) * 96 / 72 < 900   # px at 96 dpi


def test_collapsing_by_itself_keeps_at_most_three_steps_at_each_end():
    laid = Laid(op_view(models.rnn(2, 2, 2), 1000, backward=False))   # (14 nodes a step)
    kept = sorted(columns(laid)[False])
    assert kept == [1, 2, 3, 998, 999, 1000]
    check_time_runs_left_to_right(laid, kept, 1)
