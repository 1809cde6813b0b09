"""The geometry every viz drawing must have, read from ``dot -Tjson`` (no image comparison), and
the models and views it is checked on (tests/test_viz_sweep.py; ``python tests/viz_sweep.py``
prints every defect of every pair).

``defects(g, book=...)`` lists, in words:

* a warning dot printed laying the drawing out (the user sees it in the terminal);
* a label box within 2 points of another label, over a node, or crossed by another edge's line
  (``viz_json.label_collisions``);
* two edge ends at one point of a node (within 3 points) where one of them is an arrowhead —
  arrowheads that meet, or an arrowhead where another edge leaves (fan-out from one point,
  tails only, is how every graph drawing looks);
* an edge that wraps round the figure: a point of its line more than ``WRAP`` points outside
  the box holding every node;
* steps out of order: a variable's copies not left to right in time, or a step's column not
  wholly left of the next step's (by the nodes' centres);
* a cross-step edge that does not leave from a state (or a value carried to a later step:
  Fig. 10.4's o(t−1), Fig. 10.6's y(t−1)), or an ellipsis node of something else.
"""
from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).parent))

import unfold as uf                                           # noqa: E402
import unfold.models as models                                # noqa: E402
import viz                                                    # noqa: E402
from unfold import Recurrence                                 # noqa: E402
from viz_json import Laid, _bezier_points, distance, label_collisions, node_box  # noqa: E402

#: how far (points) a line may run outside the box of all nodes, and how much longer than
#: twice the distance between its ends it may be, before it "wraps round the figure"
WRAP, DETOUR = 20.0, 100.0
#: two edge ends closer than this (points) are at one point
MEET = 8.0


def carried(book) -> set[str]:
    """The variables whose copies may be read by a later step: states, and what a delayed edge
    leaves from (Fig. 10.4's o, teacher forcing's y)."""
    return {v.name for v in book.variables.values() if v.kind == "state"} | \
        {e.src for e in book.edges if e.delay}


_STEPPED = re.compile(r"^(?P<name>[^(\[]+)\((?P<step>[^()]*)\)(?P<suffix>(\[[^\]]*\])*)$")


def _stepped(node: str) -> tuple[str, str, str] | None:
    m = _STEPPED.match(node)
    return (m.group("name"), m.group("step"), m.group("suffix")) if m else None


def defects(g, carried_names: set[str] | None = None, op_view: bool = False,
            only: set[str] | None = None) -> list[str]:
    """Every defect of drawing ``g`` (see the module doc); ``carried_names``: the variables
    that may cross steps (None: not checked); ``op_view``: steps read from the tooltips;
    ``only``: the variables whose steps are time (a tree's leaves x(i): its inner positions are
    not)."""
    laid = Laid(g)
    found = [f"dot: {w}" for w in laid.warnings]
    found += [f"label {a} meets {b}" for a, b in label_collisions(laid)]
    found += _meeting_ends(laid)
    found += _wraps(laid)
    found += _op_columns(laid) if op_view else _columns(laid, only)
    if carried_names is not None:
        found += _cross_step(laid, carried_names)
    return found


def _visible_nodes(laid: Laid) -> list[str]:
    return [n for n, a in laid.nodes.items() if "pos" in a and a.get("style") != "invis"
            and a.get("shape") != "point"]


def _meeting_ends(laid: Laid) -> list[str]:
    ends: dict[str, list[tuple[tuple[float, float], bool, str]]] = {}
    for e in laid.edges:
        arrow = e.attrs.get("arrowhead") != "none"
        ends.setdefault(e.head, []).append((e.head_end, arrow, f"{e.tail}→{e.head}"))
        ends.setdefault(e.tail, []).append((e.tail_end, False, f"{e.tail}→{e.head}"))
    out = []
    for node, here in ends.items():
        attrs = laid.nodes.get(node, {})
        if attrs.get("shape") == "point" or float(attrs.get("width", 1)) < 0.2:
            continue                  # (a point: every edge meets at it by design)
        for i, (p, a, what) in enumerate(here):
            for q, b, other in here[i + 1:]:
                if (a or b) and distance(p, q) < MEET:
                    out.append(f"ends meet at {node}: {what}, {other}")
    return out


def _wraps(laid: Laid) -> list[str]:
    """Edges whose line leaves the box of every node by more than ``WRAP`` points and is more
    than twice as long as it needs to be (plus ``DETOUR``): round the figure, not round a
    neighbouring node (x(t) → h(t) past the gates beside a column is a fine detour)."""
    boxes = [node_box(laid, n) for n in _visible_nodes(laid)]
    if not boxes:
        return []
    x0, y0 = min(b[0] for b in boxes) - WRAP, min(b[1] for b in boxes) - WRAP
    x1, y1 = max(b[2] for b in boxes) + WRAP, max(b[3] for b in boxes) + WRAP
    out = []
    for e in laid.edges:
        if "pos" not in e.attrs:
            continue
        points = _bezier_points(e.attrs["pos"], 8)
        length = sum(distance(p, q) for p, q in zip(points, points[1:]))
        outside = any(not (x0 <= x <= x1 and y0 <= y <= y1) for x, y in points)
        if outside and length > 2 * distance(points[0], points[-1]) + DETOUR:
            out.append(f"edge {e.tail}→{e.head} wraps round the figure")
    return out


def _time(step: str) -> float:
    """Steps in time order, whatever the window: ``1 < 2 < …``, ``t-1 < t < t+1``, an
    ellipsis ``...k`` at its column ``k``, the last step's name (``τ``, ``n_x``) last."""
    if step.startswith("..."):
        return int(step[3:])
    if step.isdigit():
        return int(step) - 1
    m = re.fullmatch(r"t([+-]\d+)?", step)
    if m:
        return 2 + int(m.group(1) or 0)
    return 10.0 ** 9


def _columns(laid: Laid, only: set[str] | None = None) -> list[str]:
    """Book views: per panel (node id suffix), each variable left to right in time, and each
    step's nodes left of the next step's."""
    by_panel: dict[str, dict[str, list[tuple[float, str]]]] = {}
    for node in _visible_nodes(laid):
        s = _stepped(node)
        if s is None or s[1] == "" or (only is not None and s[0] not in only):
            continue
        name, step, suffix = s
        by_panel.setdefault(suffix, {}).setdefault(step, []).append((laid.xy(node)[0], name))
    out = []
    for suffix, steps in by_panel.items():
        order = sorted(steps, key=_time)
        per_var: dict[str, list[float]] = {}
        for step in order:
            for x, name in steps[step]:
                per_var.setdefault(name, []).append(x)
        for name, xs in per_var.items():
            if xs != sorted(xs):
                out.append(f"{name}{suffix} not left to right in time")
        for a, b in zip(order, order[1:]):
            if max(x for x, _ in steps[a]) >= min(x for x, _ in steps[b]):
                out.append(f"step {a}{suffix} not wholly left of step {b}")
    return out


def _op_columns(laid: Laid) -> list[str]:
    """The op view: each step's nodes (tooltip "…; step t") wholly left of the next step's, in
    each panel."""
    cols: dict[bool, dict[int, tuple[float, float]]] = {}
    for name, node in laid.nodes.items():
        m = re.search(r"; step (\d+)", node.get("tooltip", ""))
        if not m or "pos" not in node:
            continue
        x, half = laid.xy(name)[0], float(node["width"]) * 36
        steps = cols.setdefault(name.startswith("grad ") or "[ref]" in name, {})
        lo, hi = steps.get(int(m.group(1)), (x - half, x + half))
        steps[int(m.group(1))] = (min(lo, x - half), max(hi, x + half))
    out = []
    for back, steps in cols.items():
        order = sorted(steps)
        for a, b in zip(order, order[1:]):
            if steps[a][1] >= steps[b][0]:
                out.append(f"op view{' backward' if back else ''}: step {a} not left of {b}")
    return out


def _cross_step(laid: Laid, carried_names: set[str]) -> list[str]:
    out = []
    for node in _visible_nodes(laid):
        s = _stepped(node)
        if s and s[1].startswith("...") and s[0] not in carried_names:
            out.append(f"ellipsis node {node} of {s[0]}, not a state")
    for e in laid.edges:
        a, b = _stepped(e.tail), _stepped(e.head)
        if a and b and a[2] == b[2] and a[1] != b[1] and a[1] and b[1] and \
                a[0] not in carried_names:
            out.append(f"cross-step edge {e.tail}→{e.head} not from a state")
    return out


# --- what is swept ---------------------------------------------------------------------------

NI, NH, NO = 3, 2, 4


def _outsiders() -> dict[str, Callable[[], Recurrence]]:
    import test_viz_outsider as o
    return {"outsider rnn readme order": o.rnn_in_the_readme_order,
            "outsider rnn declared backwards": o.rnn_declared_backwards,
            "outsider lstm per gate inline": lambda: o.lstm(False, False),
            "outsider lstm stacked inline": lambda: o.lstm(True, False),
            "outsider lstm stacked named": lambda: o.lstm(True, True),
            "outsider lstm sigma input": lambda: o.lstm(False, False, uf.sigmoid),
            "outsider lstm sigmoid sliced": o.lstm_sigmoid_then_sliced,
            "outsider gru inline": lambda: o.gru(False),
            "outsider gru named": lambda: o.gru(True),
            "outsider gru one sliced sigmoid": o.gru_gates_from_one_sliced_sigmoid}


def recurrences() -> dict[str, Callable[[], Recurrence]]:
    """Every builder of unfold.models that returns a Recurrence (with its variants), and the
    outsider-written recurrences of tests/test_viz_outsider.py."""
    m = models
    out: dict[str, Callable[[], Recurrence]] = {
        "rnn": lambda: m.rnn(NI, NH, NO),
        "rnn squared error": lambda: m.rnn(NI, NH, NO, loss="squared_error"),
        "rnn_single_output": lambda: m.rnn_single_output(NI, NH, NO),
        "output_to_hidden": lambda: m.output_to_hidden(NI, NH, NO),
        "context_rnn": lambda: m.context_rnn(NI, NH, NO),
        "conditional_rnn": lambda: m.conditional_rnn(NI, NH, NO),
        "lstm book": lambda: m.lstm(NI, NH, NO),
        "lstm common": lambda: m.lstm(NI, NH, NO, variant="common"),
        "gru book": lambda: m.gru(NI, NH, NO),
        "gru common": lambda: m.gru(NI, NH, NO, variant="common"),
        "gru reset_after": lambda: m.gru(NI, NH, NO, variant="reset_after"),
        "leaky_rnn": lambda: m.leaky_rnn(NI, NH, NO),
        "skip_rnn": lambda: m.skip_rnn(NI, NH, NO),
        "skip_rnn no length one": lambda: m.skip_rnn(NI, NH, NO, length_one=False),
        "language_model": lambda: m.language_model(5, NH),
        "language_model stop": lambda: m.language_model(5, NH, stop=True),
        "bidirectional": lambda: m.bidirectional(NI, NH, NO),
        "bidirectional lstm": lambda: m.bidirectional(NI, NH, NO, cell="lstm"),
        "bidirectional gru": lambda: m.bidirectional(NI, NH, NO, cell="gru"),
        "deep_rnn stacked": lambda: m.deep_rnn(NI, [NH, NH], NO),
        "deep_rnn deep": lambda: m.deep_rnn(NI, [NH, NH], NO, transition="deep"),
        "deep_rnn deep skip": lambda: m.deep_rnn(NI, [NH, NH], NO, transition="deep",
                                                 skip=True),
        "deep_rnn lstm": lambda: m.deep_rnn(NI, [NH, NH], NO, cell="lstm"),
        "echo_state": lambda: m.echo_state(NI, NH, NO),
        "memory_network": lambda: m.memory_network(NI, NH, NO, cells=3, width=2),
        "memory_network lstm": lambda: m.memory_network(NI, NH, NO, cells=3, width=2,
                                                        controller="lstm"),
    }
    for mode in m.MODES:
        out[f"teacher_forcing {mode}"] = lambda mode=mode: m.teacher_forcing(NI, NH, NO,
                                                                            mode=mode)
    out.update(_outsiders())
    return out


def _book(rec, cells="auto"):
    from viz.layout import axis
    from viz.views import prepare
    return prepare(rec, axis(3), cells=cells)[0]


def _op(rec: Recurrence, backward: bool):
    u = rec.unfold(2)
    loss = u.loss
    if not backward:
        return viz.graph(loss)
    params = list(u.params)
    return viz.graph(loss, backward=dict(zip(params, uf.grad(loss, params))))


#: view name → (draw(rec), the book whose carried variables may cross steps, or None;
#: whether it is an op view)
VIEWS: dict[str, tuple[Callable, Callable | None, bool]] = {
    "folded": (viz.folded, None, False),
    "unfolded steps=3": (lambda r: viz.unfolded(r, steps=3), _book, False),
    "unfolded window": (viz.unfolded, _book, False),
    "unfolded open": (lambda r: viz.unfolded(r, steps=3, cells="open"),
                      lambda r: _book(r, "open"), False),
    "unfolding": (viz.unfolding, _book, False),
    "unfolding steps=3 open": (lambda r: viz.unfolding(r, steps=3, cells="open"),
                               lambda r: _book(r, "open"), False),
    "cell": (viz.cell, None, False),
    "graph": (lambda r: _op(r, False), None, True),
    "graph backward": (lambda r: _op(r, True), None, True),
}


def check(rec_name: str, view: str) -> list[str]:
    rec = recurrences()[rec_name]()
    draw, book, op_view = VIEWS[view]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = draw(rec)
    names = None
    if book is not None:
        b = book(rec)
        names = carried(b) | {v.name for v in b.variables.values() if v.kind == "context"}
    return defects(g, names, op_view)


def others() -> dict[str, Callable]:
    """The structured views: graphical models, encoder–decoders, trees, memory."""
    from viz.figures import fig_10_7
    m = models
    out: dict[str, Callable] = {
           "graphical_model": lambda: viz.graphical_model(fig_10_7(), 4),
           "graphical_model states": lambda: viz.graphical_model(fig_10_7(), 4, states=True),
           "graphical_model rnn": lambda: viz.graphical_model(m.rnn(NI, NH, NO), 3),
           "tree 4": lambda: viz.tree(m.recursive_net(NI, NH, NO), 4),
           "tree 5": lambda: viz.tree(m.recursive_net(NI, NH, NO), 5),
           "memory": lambda: viz.memory(m.memory_network(NI, NH, NO, cells=3, width=2)),
           "memory hide a": lambda: viz.memory(m.memory_network(NI, NH, NO, cells=3, width=2),
                                               hide=["a"])}
    for enc in ("rnn", "gru", "lstm"):
        def ed(enc=enc):
            net = m.encoder_decoder(NI, NH, NO, encoder_cell=enc, decoder_cell=enc)
            state = None if enc != "lstm" else "h"
            return viz.encoder_decoder(net.encoder, net.decoder, state=state)
        out[f"encoder_decoder {enc}"] = ed
    return out


def check_other(name: str) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = others()[name]()
    return defects(g, only={"x"} if name.startswith("tree") else None)


if __name__ == "__main__":
    total = 0
    wanted = sys.argv[1:]
    for r in recurrences():
        for v in VIEWS:
            if wanted and not any(w in f"{r} | {v}" for w in wanted):
                continue
            try:
                found = check(r, v)
            except Exception as err:             # noqa: BLE001 - a report
                found = [f"RAISES {type(err).__name__}: {err}"[:200]]
            total += len(found)
            for f in found:
                print(f"{r} | {v} | {f}")
    for o in others():
        if wanted and not any(w in o for w in wanted):
            continue
        try:
            found = check_other(o)
        except Exception as err:                 # noqa: BLE001
            found = [f"RAISES {type(err).__name__}: {err}"[:200]]
        total += len(found)
        for f in found:
            print(f"{o} | {f}")
    print("total", total)
