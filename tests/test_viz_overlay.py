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
    assert "bright, thick: large" in src                           # the outline said too
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


def fill(src: str, node: str) -> str:
    return re.search(r'fillcolor="(#[0-9a-f]{6})"', attrs_of(src, node)).group(1)


def test_compared_panels_share_one_colour_scale():
    vanishing = {("h", t): 10.0 ** (-t) for t in range(1, 5)}      # four decades
    gentle = {("h", t): 0.1 * (1 + 0.1 * t) for t in range(1, 5)}  # a tenth of one
    src = viz.side_by_side("compared", [("RNN", rnn(), {"steps": 4, "gradients": vanishing}),
                                        ("GRU", rnn(), {"steps": 4, "gradients": gentle})]).source
    low, high = -4.0, np.log10(0.14)
    assert fill(src, "h(4)[0]") == colour(0.0) and fill(src, "h(4)[1]") == colour(1.0)
    for t in range(1, 5):              # the gentle panel stays in the top tenth of the scale
        assert fill(src, f"h({t})[1]") == colour((np.log10(gentle[("h", t)]) - low) /
                                                  (high - low))
        assert (np.log10(gentle[("h", t)]) - low) / (high - low) > 0.9
    assert len(re.findall(r'"\[legend\]\[\d\]" \[label=', src)) == 1   # one legend, one scale
    assert viz.shared_scale(vanishing, gentle) == pytest.approx((-4.0, np.log10(0.14)))


def test_a_scale_given_is_used_and_values_beyond_it_say_so():
    src = viz.unfolded(rnn(), steps=2, gradients={("h", 1): 1e-9, ("h", 2): 1.0},
                       scale=(-3, 0)).source
    assert fill(src, "h(1)") == colour(0.0) and fill(src, "h(2)") == colour(1.0)
    assert "beyond the scale" in attrs_of(src, "h(1)")
    alone = viz.unfolded(rnn(), steps=2, gradients={("h", 1): 1e-9, ("h", 2): 1.0}).source
    assert "-9.0" in alone and "-3.0" not in alone


def test_long_sequences_elide_their_middle_and_say_which_steps_are_shown():
    tau = 40
    norms = {("h", t): 0.9 ** (tau - t) for t in range(1, tau + 1)}
    with pytest.warns(viz.ElidedStepsWarning, match="max_steps=12"):
        src = viz.unfolded(rnn(), steps=tau, gradients=norms).source
    shown = [t for t in range(1, tau + 1) if f'"h({t})"' in src]
    assert shown == list(range(1, 7)) + list(range(35, 41))
    assert "τ = 40: steps 1–6 and 35–40 shown, 7–34 elided" in src
    assert "h(...6)" in src                                     # the ellipsis column
    assert fill(src, "h(1)") == colour(0.0)                     # the scale covers all 40
    assert fill(src, "h(40)") == colour(1.0)
    everything = viz.unfolded(rnn(), steps=tau, gradients=norms, max_steps=None).source
    assert all(f'"h({t})"' in everything for t in range(1, tau + 1))


def test_compared_panels_each_say_their_steps_and_the_one_legend_explains_every_panel():
    """One legend for all panels (viz.side_by_side): its swatch for ‖∇‖ = 0 (or ∞, NaN) is
    there when any panel has such a value, not only the panel it stands beside; and every
    panel says which steps it shows, as their τ may differ."""
    dead = {("h", 1): 0.0, ("h", 2): 0.5, ("h", 3): 1.0}
    fine = {("h", t): 0.1 * t for t in range(1, 6)}
    src = viz.side_by_side("compared", [("A", rnn(), {"steps": 3, "gradients": dead}),
                                        ("B", rnn(), {"steps": 5, "gradients": fine})]).source
    assert "‖∇‖ = 0" in src and fill(src, "h(1)[0]") == colour(0.0)
    assert "τ = 3, all steps shown" in src and "τ = 5, all steps shown" in src
    legend = attrs_of(src, "[legend][1]")
    assert "τ =" not in legend                 # (the panels say it, each for itself)
