"""Edge labels stand clear, read from ``dot -Tjson`` (the boxes dot drew the label texts in, from
``_ldraw_``/``_xldraw_``): no label within 2 points of another, over a node, or crossed by
another edge's line. Skip connections through time (``models.skip_rnn``, with and without the
length-one connections, and ``rec.past(h, 2)`` written here) in every book view — their arcs
run under the state row, where the ``U`` of ``x(t−1) → h(t−1)`` stood — and every gallery
drawing. Labels stay ``label``/``xlabel`` attributes (what a reader of the layout sees)."""
from __future__ import annotations

import shutil
import warnings

import pytest

import unfold.models as models
import viz
from test_viz_ops_layout import skip_written
from viz.figures import FIGURES
from viz_json import Laid, label_boxes, label_collisions

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")

SKIPS = {"skip_rnn": lambda: models.skip_rnn(3, 4, 2),
         "skip_rnn_no_length_one": lambda: models.skip_rnn(3, 4, 2, length_one=False),
         "skip_written": skip_written}
VIEWS = {"steps=3": lambda r: viz.unfolded(r, steps=3),
         "steps=5": lambda r: viz.unfolded(r, steps=5),
         "window": viz.unfolded, "unfolding": viz.unfolding, "folded": viz.folded,
         "open cells": lambda r: viz.unfolded(r, steps=4, cells="open")}


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("name", sorted(SKIPS))
def test_skip_connections_labels_stand_clear(name, view):
    laid = Laid(VIEWS[view](SKIPS[name]()))
    labels = {e.label for e, _ in label_boxes(laid)}
    assert "Wd" in labels and "U" in labels                   # (label texts, as drawn)
    assert label_collisions(laid) == []
    if view.startswith("steps"):                               # every skip keeps its label
        skips = [e for e in laid.edges if e.tail.startswith("h(") and e.head.startswith("h(")
                 and int(e.head[2:-1]) - int(e.tail[2:-1]) == 2]
        assert skips and all(e.label == "Wd" for e in skips)
        assert all("xlabel" in e.attrs or "label" in e.attrs for e in skips)


@pytest.mark.parametrize("delay, length_one", [(3, True), (4, True), (3, False)])
def test_long_skips_across_the_window_s_edges_keep_their_labels_clear(delay, length_one):
    """h(t−3) → h(t) in the book's window (finding 32): h(…) sends two arcs under the row, to
    h(t) and h(t+1), and h(t−1), h(t) send two into the right h(…); the shorter of each pair
    carries its W_d beside the state it reads or feeds (at its middle, the longer arc ran
    through it), each skip keeping its label."""
    laid = Laid(viz.unfolded(models.skip_rnn(3, 4, 2, delay=delay, length_one=length_one)))
    assert label_collisions(laid) == []
    arcs = [e for e in laid.edges if e.tail.startswith("h(") and e.head.startswith("h(")
            and "..." in e.tail + e.head and "t" in e.tail + e.head]
    assert len(arcs) >= 4 and all("Wd" in e.label for e in arcs), [(e.tail, e.head, e.label)
                                                                   for e in arcs]


@pytest.mark.parametrize("fid", sorted(k for k, f in FIGURES.items() if f.kind == "drawing"))
def test_gallery_labels_stand_clear(fid):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        laid = Laid(viz.figure(fid))
    assert label_collisions(laid) == []
