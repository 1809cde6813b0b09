"""viz.cell: one step as Fig. 10.16 draws the LSTM cell — sigmoid units named in words, the gating
× nodes, the state's self-loop through the delay square and the forget gate's ×, h(t−1) entering
as an input — derived from the graph, whatever the writing style."""
from __future__ import annotations

import shutil

import pytest

import unfold as uf
import unfold.models as models
import viz
from viz_json import Laid, text

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")
WORDS = {"f": "forget gate", "g": "input gate", "q": "output gate", "s": "state",
         "h": "output"}


def lstm_cell() -> uf.Recurrence:
    rec = uf.Recurrence("cell")
    models.lstm_cell(rec, rec.sequence("x", (3,)), 4)
    return rec


def kinds(laid: Laid) -> dict[str, list[str]]:
    """Node ids by what they draw: products (×), σ units, squares, the rest."""
    out: dict[str, list[str]] = {"×": [], "σ": [], "square": [], "other": []}
    for name, node in laid.nodes.items():
        label = text(node.get("label", ""))
        if node.get("shape") == "square":
            out["square"].append(name)
        elif label == "×":
            out["×"].append(name)
        elif label.endswith("σ"):
            out["σ"].append(name)
        else:
            out["other"].append(name)
    return out


def test_the_lstm_cell_is_drawn_as_fig_10_16():
    laid = Laid(viz.cell(lstm_cell(), names=WORDS))
    k = kinds(laid)
    assert len(k["×"]) == 3 and len(k["σ"]) == 4 and len(k["square"]) == 1
    labels = {text(laid.nodes[n]["label"]) for n in laid.nodes}
    for words in ("forget gate σ", "input gate σ", "output gate σ", "input σ", "state",
                  "output"):
        assert words in labels, labels
    # the state's self-loop: s → square → the forget gate's × → s
    square = k["square"][0]
    assert square.startswith("s[")
    into = [e.head for e in laid.edges if e.tail == square and
            e.attrs.get("arrowhead") != "none"]          # (not the line from s to it)
    assert len(into) == 1 and into[0] in k["×"]
    assert any(e.tail == into[0] and e.head == "s" for e in laid.edges)
    assert {e.tail for e in laid.edges if e.head == into[0]} == {square, "f"}
    # h(t−1) is an input of the cell, read by the four units, beside x
    assert "h(t-1)" in laid.nodes
    assert {e.head for e in laid.edges if e.tail == "h(t-1)"} == set(k["σ"])
    assert abs(laid.xy("h(t-1)")[1] - laid.xy("x")[1]) < 1
    # the output is the × of the output gate and the state
    out = [e.tail for e in laid.edges if e.head == "h"]
    assert len(out) == 1 and out[0] in k["×"]
    assert {e.tail for e in laid.edges if e.head == out[0]} == {"s", "q"}


def _gru(named: bool) -> uf.Recurrence:
    rec = uf.Recurrence("gru")
    x, h = rec.sequence("x", (2,)), rec.state("h", (3,))

    def gate(k):
        value = uf.sigmoid(rec.param(f"W{k}", (3, 3)) @ h + rec.param(f"U{k}", (3, 2)) @ x)
        return rec.name_node(k, value) if named else value
    z, r = gate("z"), gate("r")
    cand = uf.tanh(rec.param("W", (3, 3)) @ (r * h) + rec.param("U", (3, 2)) @ x)
    rec.update(h, (1.0 - z) * h + z * cand)
    return rec


def shape_of(laid: Laid) -> tuple:
    k = kinds(laid)
    role = {n: kind for kind, names in k.items() for n in names}
    return (len(k["×"]), len(k["σ"]), len(k["square"]),
            sorted((role[e.tail], role[e.head]) for e in laid.edges))


def test_gates_inline_or_named_draw_the_same_cell():
    named, inline = Laid(viz.cell(_gru(True))), Laid(viz.cell(_gru(False)))
    assert shape_of(named) == shape_of(inline)
    assert shape_of(named)[:2] == (3, 2)
    assert "h(t-1)" in named.nodes                    # read by the gates: an input
    cand = [n for n in named.nodes if "input" in text(named.nodes[n].get("label", ""))]
    assert len(cand) == 1                             # the candidate state, a gate multiplies it


def test_a_plain_rnn_keeps_its_loop():
    laid = Laid(viz.cell(models.rnn(3, 4, 2), hide=["a"]))
    assert any(n.startswith("h[delay") for n in laid.nodes) and "h(t-1)" not in laid.nodes


def _lstm_stacked() -> uf.Recurrence:
    rec = uf.Recurrence("stacked")
    x, h, c = rec.sequence("x", (2,)), rec.state("h", (3,)), rec.state("c", (3,))
    z = rec.param("W", (12, 3)) @ h + rec.param("U", (12, 2)) @ x
    i, f, o = uf.sigmoid(z[:3]), uf.sigmoid(z[3:6]), uf.sigmoid(z[6:9])
    c_t = rec.update(c, f * c + i * uf.tanh(z[9:]))
    rec.update(h, o * uf.tanh(c_t))
    return rec


def test_unnamed_gates_are_named_by_what_they_gate():
    laid = Laid(viz.cell(_lstm_stacked()))
    words = sorted(text(o.get("label", "")) for o in laid.nodes.values())
    for role in ("forget gate σ", "input gate σ", "output gate σ", "input tanh"):
        assert role in words, words
    # the forget gate's product stands under the state, on its loop, as in Fig. 10.16
    forget = next(n for n, o in laid.nodes.items() if text(o.get("label", "")) == "forget gate σ")
    assert abs(laid.xy(forget)[0] - laid.xy("c")[0]) < 1
    gru = uf.Recurrence("gru")
    x, h = gru.sequence("x", (2,)), gru.state("h", (3,))
    u = uf.sigmoid(gru.param("Wu", (3, 3)) @ h + gru.param("Uu", (3, 2)) @ x)
    r = uf.sigmoid(gru.param("Wr", (3, 3)) @ h + gru.param("Ur", (3, 2)) @ x)
    gru.update(h, u * h + (1.0 - u) * uf.tanh(gru.param("W", (3, 3)) @ (r * h) +
                                             gru.param("U", (3, 2)) @ x))
    words = {text(o.get("label", "")) for o in Laid(viz.cell(gru)).nodes.values()}
    assert {"update gate σ", "reset gate σ", "input tanh"} <= words


@pytest.mark.parametrize("variant", ["book", "common"])
def test_the_gru_cell_shows_the_one_minus_u(variant):
    """h = u ⊙ h(t−1) + (1 − u) ⊙ h̃ (eq. 10.45): the update gate feeds one × directly and the
    other through a "1 −" node (drawn alike, the cell read h = u·h(t−1) + u·h̃); the coupled
    LSTM's s = f ⊙ s(t−1) + (1 − f) ⊙ g the same; and the cell's words stay."""
    for rec in (models.gru(3, 4, 2, variant=variant), _coupled()):
        laid = Laid(viz.cell(rec))
        label = {n: text(o.get("label", "")) for n, o in laid.nodes.items()}
        minus = [n for n in label if label[n] == "1 −"]
        assert len(minus) == 1, sorted(label.values())
        gate = {e.tail for e in laid.edges if e.head == minus[0]}
        assert [label[n] for n in gate] in (["update gate σ"], ["forget gate σ"])
        into = {e.head for e in laid.edges if e.tail == minus[0]}
        assert [label[n] for n in into] == ["×"]
        # the gate's other product, the one with the state's past, reads it plainly
        assert len({e.head for e in laid.edges if e.tail in gate} - set(minus)) == 1


def test_an_interpolating_gru_cell_shows_the_difference_it_gates():
    """h = h(t−1) + u ⊙ (h̃ − h(t−1)) — the GRU written as an interpolation: the update gate's ×
    takes the gate and a "−" node of h̃ (the cell's input) and h(t−1), and h adds h(t−1) to that
    (drawn as one × of three, it read u ⊙ h̃ ⊙ h(t−1)); the gates keep their words."""
    gru = uf.Recurrence("gru")
    x, h = gru.sequence("x", (2,)), gru.state("h", (3,))
    gate = lambda k, a: uf.sigmoid(gru.param(f"W{k}", (3, 3)) @ a + gru.param(f"U{k}", (3, 2)) @ x)
    u, r = gate("u", h), gate("r", h)
    h_tilde = uf.tanh(gru.param("W", (3, 3)) @ (r * h) + gru.param("U", (3, 2)) @ x)
    gru.update(h, h + u * (h_tilde - h))
    laid = Laid(viz.cell(gru))
    label = {n: text(o.get("label", "")) for n, o in laid.nodes.items()}
    into = lambda n: sorted(label[e.tail] for e in laid.edges if e.head == n)
    minus, = [n for n in label if label[n] == "−"]
    assert into(minus) == ["h(t−1)", "input tanh"]
    product, = {e.head for e in laid.edges if e.tail == minus}
    assert into(product) == ["update gate σ", "−"]
    assert {"update gate σ", "reset gate σ", "input tanh"} <= set(label.values())


def _coupled() -> uf.Recurrence:
    rec = uf.Recurrence("coupled")
    x, h, s = rec.sequence("x", (2,)), rec.state("h", (3,)), rec.state("s", (3,))
    gate = lambda k: uf.sigmoid(rec.param(f"W{k}", (3, 3)) @ h + rec.param(f"U{k}", (3, 2)) @ x)
    f, q = gate("f"), gate("q")
    s_t = rec.update(s, f * s + (1.0 - f) * uf.tanh(rec.param("W", (3, 3)) @ h))
    rec.update(h, uf.tanh(s_t) * q)
    return rec


def _pytorch_lstm() -> uf.Recurrence:
    """PyTorch's LSTM: h declared before c, the gates i, f, g, o made in a loop (finding 48)."""
    rec = uf.Recurrence("lstm")
    x, h, c = rec.sequence("x", (3,)), rec.state("h", (4,)), rec.state("c", (4,))
    gate = {k: rec.name_node(k, squash(rec.param(f"W_i{k}", (4, 3)) @ x +
                                       rec.param(f"W_h{k}", (4, 4)) @ h))
            for k, squash in [("i", uf.sigmoid), ("f", uf.sigmoid), ("g", uf.tanh),
                              ("o", uf.sigmoid)]}
    c_t = rec.update(c, gate["f"] * c + gate["i"] * gate["g"])
    rec.update(h, gate["o"] * uf.tanh(c_t))
    return rec


@pytest.mark.parametrize("name", ["pytorch lstm", "lstm", "gru", "gru reset_after"])
def test_inputs_from_below_enter_a_unit_at_points_of_their_own(name):
    """Finding 48: x and h(t−1) into each gate end at points at least 6 pt apart, whichever
    of them stands on the drawing's column (h(t−1) under PyTorch's forget gate, x right of
    it: both arrowheads met at the gate's lowest point, 0.3 pt apart). (A memory network's
    addressing units still have such ends: the sweep's LEFT counts them.)"""
    from viz_json import distance
    rec = {"pytorch lstm": _pytorch_lstm, "lstm": lambda: models.lstm(3, 4, 2),
           "gru": lambda: models.gru(3, 4, 2),
           "gru reset_after": lambda: models.gru(3, 4, 2, variant="reset_after")}[name]()
    laid = Laid(viz.cell(rec))
    heads = [(e.head, e.head_end, e.tail) for e in laid.edges
             if e.attrs.get("arrowhead") != "none"]
    met = [(h, a, b) for i, (h, p, a) in enumerate(heads) for g, q, b in heads[i + 1:]
           if h == g and distance(p, q) < 6]
    assert met == []


def test_a_product_of_many_inputs_is_wider():
    """memory_network's addressing × nodes take four inputs (k, β, M and the × below): at the
    0.32-inch circle of a two-input ×, their arrowheads met in pairs (the sweep: 6 meetings);
    an arithmetic node grows ``WIDER_PER_INPUT`` per input beyond two."""
    from viz.cell_view import PRODUCT, WIDER_PER_INPUT
    laid = Laid(viz.cell(models.memory_network(3, 2, 4, cells=3, width=2)))
    inputs: dict[str, int] = {}
    for e in laid.edges:
        inputs[e.head] = inputs.get(e.head, 0) + 1
    times = kinds(laid)["×"]
    assert max(inputs[n] for n in times) == 4
    for n in times:
        wanted = float(PRODUCT["width"]) + WIDER_PER_INPUT * max(inputs[n] - 2, 0)
        assert float(laid.nodes[n]["width"]) == pytest.approx(wanted, abs=0.01), n


@pytest.mark.parametrize("name", ["lstm", "gru", "memory_network", "stacked"])
def test_tooltips_name_no_value_by_its_internal_id(name):
    """A tooltip says ``f → × inside s``, ``h(t−1) → input``: never the id ``contract`` gave a
    value the user did not name (``s·1``, ``z·1``) — in the cell, folded and unfolded views."""
    import re

    from viz.book import UNNAMED
    import test_viz_outsider as outsider
    rec = {"lstm": lambda: models.lstm(3, 4, 2), "gru": lambda: models.gru(3, 4, 2),
           "memory_network": lambda: models.memory_network(3, 2, 4, cells=3, width=2),
           "stacked": lambda: outsider.lstm(True, False)}[name]()
    for g in (viz.cell(rec), viz.folded(rec), viz.unfolded(rec, steps=2),
              viz.unfolded(rec, steps=2, cells="open")):
        tips = re.findall(r'tooltip="([^"]*)"', g.source)
        assert tips and [t for t in tips if UNNAMED in t] == [], g.name
