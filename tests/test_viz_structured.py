"""Figures of the structured models, derived from their graphs: the recursive net's tree (Fig.
10.14), the memory network's heads (Fig. 10.18), the encoder–decoder (Fig. 10.12) and the
graphical-model views of section 10.2.3 (Figs. 10.7, 10.8)."""
from __future__ import annotations

import shutil

import pytest

import unfold as uf
import unfold.models as models
import viz
from viz.graphical import dependencies
from viz.memory import parts
from viz_json import Laid, distance, text

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")


def test_the_tree_puts_U_on_left_children_and_W_on_right_ones():
    rn = models.recursive_net(3, 3, 2, embed=False)
    laid = Laid(viz.tree(rn, models.Tree.chain(5)))
    inner = [e for e in laid.edges if e.head.startswith("h(")]
    assert len(inner) == 2 * 4
    for e in inner:
        side = "left" if "left" in e.attrs["tooltip"] else "right"
        assert e.label == {"left": "U", "right": "W"}[side]
    xs = [laid.xy(f"x({i})") for i in range(1, 6)]
    assert [x for x, _ in xs] == sorted(x for x, _ in xs) and len({y for _, y in xs}) == 1
    assert laid.xy("o")[1] > laid.xy("h(9)")[1] and laid.xy("y")[1] > laid.xy("L")[1]
    with pytest.raises(TypeError):
        viz.tree(models.rnn(2, 2, 2))


def test_the_memory_network_reads_and_writes_through_its_heads():
    rec = models.memory_network(3, 4, 2, cells=5, width=3)
    _, memories, write, read, controller = parts(rec)
    assert memories == ["M"] and "write.w" in write and "write.e" in write
    assert "read.w" in read and "read.r" in read and "h" in controller
    laid = Laid(viz.memory(rec))
    thick = [(e.tail, e.head) for e in laid.edges if e.attrs.get("penwidth") == "3.2"]
    assert ("h", "[writing]") in thick and ("[writing]", "M[memory]") in thick
    assert ("M[memory]", "[reading]") in thick
    assert laid.xy("M[memory]")[1] > laid.xy("[writing]")[1] > laid.xy("h")[1]
    with pytest.raises(ValueError, match="no memory"):
        viz.memory(models.rnn(2, 2, 2))


def test_the_encoder_decoder_joins_the_encoders_last_state_to_the_context():
    model = models.encoder_decoder(3, 4, 3, encoder_cell="rnn", decoder_cell="rnn")
    laid = Laid(viz.encoder_decoder(model.encoder, model.decoder, hide=["a"]))
    joins = [e for e in laid.edges if e.head == "C[decoder]"]
    assert [e.tail for e in joins] == ["h(n_x)[encoder]"]
    assert sum(e.tail == "C[decoder]" for e in laid.edges) == 4      # C read at every step
    assert max(laid.xy(n)[0] for n in laid.nodes if n.endswith("[encoder]")) < \
        max(laid.xy(n)[0] for n in laid.nodes if n.endswith("[decoder]"))


def _over_y() -> uf.Recurrence:
    rec = uf.Recurrence("over y")
    y = rec.target("y", ())
    fed = rec.state("y_prev", (3,))
    rec.update(fed, uf.one_hot(y, 3))
    h = rec.state("h", (2,))
    h_t = rec.update(h, uf.tanh(rec.param("W", (2, 2)) @ h + rec.param("U", (2, 3)) @ fed))
    rec.loss("L", uf.cross_entropy(rec.output("o", rec.param("V", (3, 2)) @ h_t), y))
    return rec


def test_graphical_models_are_read_off_the_unfolded_graph():
    full, _ = dependencies(_over_y(), 4, states=False)
    assert {(e.src, e.dst, e.delay) for e in full.edges} == \
        {("y", "y", d) for d in (1, 2, 3)}               # every earlier y: fully connected
    chain, _ = dependencies(_over_y(), 4, states=True)
    assert {(e.src, e.dst, e.delay) for e in chain.edges} == \
        {("h", "h", 1), ("y", "h", 1), ("h", "y", 0)}    # the same few parents at every step
    laid = Laid(viz.graphical_model(_over_y(), 3))
    assert {(e.tail, e.head) for e in laid.edges} >= {("y(1)", "y(2)"), ("y(1)", "y(3)"),
                                                       ("y(2)", "y(3)")}


def _fed_back(teacher: bool) -> uf.Recurrence:
    """Fig. 10.6: the previous target (train time) or output (test time) into h — no loop on h,
    and the step reads h's expression, not the node rec.update returned."""
    rec = uf.Recurrence("fed back")
    x, y = rec.sequence("x", (2,)), rec.sequence("y", (3,))
    prev = rec.state("y_prev" if teacher else "o_prev", (3,))
    h_new = uf.tanh(rec.param("W", (2, 3)) @ prev + rec.param("U", (2, 2)) @ x)
    if teacher:
        rec.update(rec.state("h", (2,)), h_new)
    else:
        h_new = rec.name_node("h", h_new)
    o = rec.output("o", rec.param("V", (3, 2)) @ h_new)
    rec.loss("L", uf.mse(o, y))
    rec.update(prev, y if teacher else o)
    return rec


@pytest.mark.parametrize("teacher", [True, False])
def test_fig_10_8_of_a_network_fed_its_targets_or_outputs(teacher):
    """With the hidden units put back, y(t) hangs on h(t), and h(t) on what was fed back:
    y(t−1) (teacher forcing) or h(t−1) through o(t−1) (the output fed back); h, the named
    value, is the hidden unit when no state of the book is left."""
    chain, _ = dependencies(_fed_back(teacher), 4, states=True)
    assert {(e.src, e.dst, e.delay) for e in chain.edges} == \
        {("h", "y", 0), ("y", "h", 1) if teacher else ("h", "h", 1)}


def test_the_memory_networks_controller_loops_beside_h_and_its_read_path_is_labelled():
    rec = models.memory_network(3, 4, 2, cells=5, width=3)
    for hide in ((), ("a",)):
        laid = Laid(viz.memory(rec, hide=hide))
        loop = "h[delay 1]" if hide else "h[delay 1 out]"     # h → h, or h(t−1) → a
        assert abs(laid.xy(loop)[1] - laid.xy("h")[1]) < 1                  # in h's row,
        assert abs(laid.xy(loop)[0] - laid.xy("h")[0]) < 150                # beside it
        edges = {(e.tail, e.head): e.label for e in laid.edges}
        assert edges[("[reading]", "o")] == "Vr"             # o = c + V h + V_r r(t)
        read = next(b for a, b in edges if a == "[reading]" and "[delay" in b)
        reader = "h" if hide else "a"                       # r(t−1) enters with x, through U
        assert edges[(read, reader)] == "U" and edges[("x", reader)] == "U"
        assert abs(laid.xy(read)[1] - laid.xy(reader)[1]) < 1        # in its reader's row
    box = text(Laid(viz.memory(rec)).nodes["[writing]"]["label"])
    assert "β" in box and "beta" not in box


def test_the_fully_connected_graphical_model_is_one_straight_row():
    laid = Laid(viz.graphical_model(_over_y(), 4))
    ys = {round(laid.xy(f"y({t})")[1], 1) for t in range(1, 5)} | {
        round(laid.xy("y(...4)")[1], 1)}
    assert len(ys) == 1
    xs = [laid.xy(f"y({t})")[0] for t in range(1, 5)] + [laid.xy("y(...4)")[0]]
    assert xs == sorted(xs)
    assert len(laid.edges) == 4 + 3 + 2 + 1              # every earlier y(i) into each y(t)


def test_the_encoder_and_decoder_stand_side_by_side_on_the_same_rows():
    model = models.encoder_decoder(3, 4, 3, encoder_cell="rnn", decoder_cell="rnn")
    laid = Laid(viz.encoder_decoder(model.encoder, model.decoder, hide=["a"]))
    assert abs(laid.xy("x(1)[encoder]")[1] - laid.xy("C[decoder]")[1]) < 1
    assert laid.xy("h(n_x)[encoder]")[0] < laid.xy("C[decoder]")[0] < laid.xy("h(2)[decoder]")[0]
    assert max(laid.xy(n)[0] for n in laid.nodes if n.endswith("[encoder]")) < \
        min(laid.xy(n)[0] for n in laid.nodes if n.endswith("[decoder]"))


@pytest.mark.parametrize("hide", [(), ("a",)], ids=["with a", "a hidden"])
def test_the_memory_network_s_delay_squares_stand_beside_their_readers(hide):  # vizjudge 25
    """Fig. 10.18: the square where the controller reads r(t−1) stands in its reader's row, no
    further from it than the controller's own loop square — not in the figure's corner."""
    laid = Laid(viz.memory(models.memory_network(3, 4, 2, cells=4, width=3), hide=hide))
    squares = {n: n.split("[")[0] for n in laid.nodes if "[delay" in n}
    assert len(squares) == 2, sorted(squares)
    far = {n: distance(laid.xy(n), laid.xy(r)) for n, r in squares.items()}
    read = next(n for n in squares if "read" in n)
    assert far[read] <= 1.2 * max(far.values()) and laid.xy(read)[0] < laid.xy(squares[read])[0]


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_the_decoder_s_steps_are_evenly_spaced_whatever_its_cell(cell):       # vizjudge 36
    """Fig. 10.12 from unfold.models.encoder_decoder: C's edges (labelled R/U, or unlabelled
    into compact cells) each run through the gap before their own column, so no gap of the
    decoder is wider than the others (two of them in the gap before s(…) had doubled it)."""
    net = models.encoder_decoder(3, 4, 5, encoder_cell=cell, decoder_cell=cell)
    laid = Laid(viz.encoder_decoder(net.encoder, net.decoder))
    xs = sorted(laid.xy(n)[0] for n in laid.nodes
                if n.startswith("h(") and n.endswith("[decoder]"))
    gaps = [b - a for a, b in zip(xs, xs[1:])]
    assert len(gaps) == 3 and max(gaps) <= 1.1 * min(gaps), gaps
