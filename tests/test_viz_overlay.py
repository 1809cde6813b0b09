"""The gradient overlay: circles coloured (and thickened) by log10 ‖∇‖, the values in tooltips,
a legend; and gradient norms computed by back-propagation through time."""
from __future__ import annotations

import re

import numpy as np
import pytest

import viz
from test_viz_book import rnn
from viz.overlay import colour


def attrs_of(src: str, node: str) -> str:
    return re.search(rf'^\s*"{re.escape(node)}" \[(.*)\]$', src, re.M).group(1)


def test_colours_follow_log_norm_and_a_legend_is_drawn():
    norms = {("h", t): 10.0 ** (-t) for t in range(1, 5)}          # vanishing backwards
    src = viz.unfolded(rnn(), steps=4, gradients=norms).source
    fills = [re.search(r"fillcolor=\"(#[0-9a-f]{6})\"", attrs_of(src, f"h({t})")).group(1)
             for t in range(1, 5)]
    assert fills[0] == colour(1.0) and fills[-1] == colour(0.0)     # largest is brightest
    assert len(set(fills)) == 4
    widths = [float(re.search(r"penwidth=([\d.]+)", attrs_of(src, f"h({t})")).group(1))
              for t in range(1, 5)]
    assert widths == sorted(widths, reverse=True)
    assert "‖∇h(2)‖ = 0.01" in src
    assert "[legend]" in src and "log<SUB>10</SUB>" in src
    assert "fillcolor" not in attrs_of(src, "x(1)")                  # no gradient given


def test_keys_may_be_nodes_pairs_or_labels_and_arrays_give_their_norm():
    rec = rnn()
    u = rec.unfold(3)
    a = viz.unfolded(rec, steps=3, gradients={u.at("h", 1): np.array([3.0, 4.0]),
                                              ("h", 2): 1.0, "h(3)": 2.0}).source
    assert "‖∇h(1)‖ = 5" in a and "‖∇h(3)‖ = 2" in a


def test_overlay_refuses_what_it_cannot_show():
    with pytest.raises(ValueError, match="concrete steps"):
        viz.unfolded(rnn(), gradients={("h", 1): 1.0})
    with pytest.raises(ValueError, match="does not show"):
        viz.unfolded(rnn(), steps=2, gradients={("h", 5): 1.0})


def test_gradient_norms_by_bptt_vanish_backwards_with_a_small_W():
    rec = rnn()
    tau = 6
    rng = np.random.default_rng(0)
    feed = {"x": rng.standard_normal((tau, 3)), "y": rng.integers(0, 2, tau)}
    for name, p in rec.params.items():
        feed[name] = rng.standard_normal(p.shape) * (0.05 if name == "W" else 1.0)
    rec_last = rnn()
    rec_last.losses["L"] = (rec_last.losses["L"][0], "last")
    feed_last = {rec_last.params[k] if k in rec_last.params else k: v for k, v in feed.items()}
    norms = viz.gradient_norms(rec_last.unfold(tau), feed_last)
    values = [norms[("h", t)] for t in range(1, tau + 1)]
    assert values == sorted(values) and values[0] < 1e-3 * values[-1]
    viz.unfolded(rec_last, steps=tau, gradients=norms)             # draws
