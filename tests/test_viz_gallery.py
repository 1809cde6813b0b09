"""The gallery: every figure is built from a live model, renders with ``dot`` without a warning,
the plots are computed by unfold, and ``python -m viz.gallery DIR`` writes SVG, PNG, DOT and an
index page that shows each figure with its caption and names what is absent."""
from __future__ import annotations

import html
import shutil
import subprocess
import sys

import numpy as np
import pytest

import viz
from unfold import UnfoldError
from viz.figures import ABSENT, FIGURES

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")
DRAWINGS = sorted(k for k, f in FIGURES.items() if f.kind == "drawing")


@needs_dot
@pytest.mark.parametrize("fid", DRAWINGS)
def test_every_gallery_drawing_renders_cleanly(fid):
    src = viz.figure(fid).source
    done = subprocess.run(["dot", "-Tsvg"], input=src.encode(), capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith(b"<?xml")
    assert done.stderr == b"", done.stderr.decode()        # no dot warning either


def test_figures_are_drawn_from_live_models():
    from unfold import Recurrence
    from viz import figures
    for name in dir(figures):
        if name.startswith("fig_") and name not in ("fig_10_12", "fig_10_14"):
            rec = getattr(figures, name)()
            assert isinstance(rec, Recurrence) and rec.unfold(3).steps == 3
    model, joined = figures.fig_10_12(n_x=4, n_y=2)          # the encoder–decoder runs joined
    assert joined.steps == 2 and set(model.encoder.params.values()) <= set(joined.params)
    assert figures.fig_10_14().unfold(4).n_leaves == 4        # the recursive net unfolds a tree


def test_the_book_figures_are_there_and_absent_ones_are_explained():
    assert {"10.1", "10.2", "10.3", "10.4", "10.5", "10.6", "10.7", "10.8", "10.9", "10.10",
            "10.11", "10.12", "10.13a", "10.13b", "10.13c", "10.14", "10.15", "10.16",
            "10.17", "10.18"} <= set(FIGURES)
    assert not set(ABSENT) & set(FIGURES)
    assert all(FIGURES[k].caption for k in FIGURES)
    with pytest.raises(KeyError, match="available") as info:
        viz.figure("10.19")
    assert isinstance(info.value, UnfoldError)


def test_the_plots_are_computed_by_unfold():
    from viz import plots
    x, curves = plots.composition_values(n=20, steps=3, points=50)
    assert len(curves) == 4 and np.allclose(curves[0], np.linspace(-1, 1, 50) * curves[0][-1])
    assert np.std(np.diff(curves[3], 2)) > np.std(np.diff(curves[0], 2))   # more nonlinear
    v = plots.cliff_values(grid=12)
    free, clipped = v["runs"]["without clipping"], v["runs"]["with clipping"]
    cliff = max(v["paths"]["without clipping"][1])
    # both descents meet the cliff's face: a gradient far above the clipping threshold …
    assert cliff > 1000 * v["clip"] and max(v["paths"]["with clipping"][1]) > 1000 * v["clip"]
    # … which throws the unclipped one off the plot in one step, at that very gradient,
    assert free["thrown"] and free["steps"][-1] == pytest.approx(v["lr"] * cliff)
    assert max(free["steps"][:-1]) <= v["lr"] * v["clip"]     # (moderate until then)
    # while the clipped one stays on it, its steps bounded, and goes on down to the valley
    assert not clipped["thrown"] and max(clipped["steps"]) <= v["lr"] * v["clip"] + 1e-12
    assert clipped["losses"][-1] < 1e-3 * clipped["losses"][0]


@needs_dot
def test_gallery_writes_every_figure_and_an_index(tmp_path):
    from viz.gallery import main
    assert main([str(tmp_path), "--only", "10.3", "10.7", "10.15"]) == 0
    for fid, kinds in (("10.3", ("svg", "png", "dot")), ("10.7", ("svg", "png", "dot")),
                       ("10.15", ("svg", "png"))):
        for suffix in kinds:
            assert (tmp_path / f"fig-{fid}.{suffix}").stat().st_size > 0
    index = (tmp_path / "index.html").read_text()
    assert 'src="fig-10.15.svg"' in index and "Repeated composition" in index
    assert all(f"Figure {k}" in index for k in ABSENT)
    assert "<h2>Not in the gallery</h2>" not in index or ABSENT
    with pytest.raises(KeyError, match="no figure"):
        main([str(tmp_path), "--only", "10.99"])


def test_gallery_help_prints_help_and_writes_nothing(tmp_path):
    done = subprocess.run([sys.executable, "-m", "viz.gallery", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "usage: python -m viz.gallery" in done.stdout
    assert list(tmp_path.iterdir()) == []


@needs_dot
def test_the_index_says_how_each_figure_differs_from_the_book(tmp_path):
    """A reader holding the book is told, on the index page and under the figure, what is
    drawn otherwise than the book draws it, and which drawings the book does not have."""
    from viz.gallery import main
    plain = [k for k, f in FIGURES.items() if f.kind == "drawing"]
    differs = next(k for k in plain if FIGURES[k].differs)
    extra = next(k for k in plain if not FIGURES[k].in_book)
    assert main([str(tmp_path), "--only", differs, extra]) == 0
    index = (tmp_path / "index.html").read_text()
    assert "<h2>Where the drawings differ from the book</h2>" in index
    assert index.count(html.escape(FIGURES[differs].differs)) == 2       # the list, the caption
    assert f'<a href="#fig-{extra}">{extra}</a>' in index.split("<h2>The figures</h2>")[0]


def test_the_compared_overlay_is_drawn_on_one_scale_and_its_caption_holds():
    """Fig. gradients-compared: one legend for both panels, each saying which steps it shows,
    and the ratios its caption gives (10⁸ for the RNN, 4 × 10⁴ for the GRU) as computed."""
    import unfold.models as models
    from unfold.train import init_params
    from viz.figures import K, M, N
    src = viz.figure("gradients-compared").source
    assert src.count("log<SUB>10</SUB>") == 1 and src.count("steps 1–3 and 48–50 shown") == 2
    rng = np.random.default_rng(0)
    feed = {"x": rng.standard_normal((50, M)), "y": rng.integers(0, K, 50)}
    for rec, ratio in ((models.rnn_single_output(M, N, K), 1e8),
                       (models.gru(M, N, K, outputs="last"), 4e4)):
        norms = viz.gradient_norms(rec.unfold(50), {**init_params(rec, seed=0), **feed})
        assert norms[("h", 50)] / norms[("h", 1)] == pytest.approx(ratio, rel=0.5)
