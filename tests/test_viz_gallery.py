"""The gallery: every figure is built from a live model, renders with ``dot`` without a warning,
and ``python -m viz.gallery DIR`` writes SVG, PNG, DOT and an index page."""
from __future__ import annotations

import shutil
import subprocess

import pytest

import viz
from viz.figures import ABSENT, FIGURES

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")


@needs_dot
@pytest.mark.parametrize("fid", sorted(FIGURES))
def test_every_gallery_figure_renders_cleanly(fid):
    src = viz.figure(fid).source
    done = subprocess.run(["dot", "-Tsvg"], input=src.encode(), capture_output=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith(b"<?xml")
    assert done.stderr == b"", done.stderr.decode()        # no dot warning either


def test_figures_are_drawn_from_live_models():
    from viz import figures
    for name in dir(figures):
        if name.startswith("fig_"):
            rec = getattr(figures, name)()
            assert rec.unfold(3).steps == 3                  # a model that really unfolds


def test_the_book_figures_are_there_and_absent_ones_are_explained():
    assert {"10.1", "10.2", "10.3", "10.4", "10.5", "10.6", "10.9", "10.10", "10.11",
            "10.13a", "10.13b", "10.13c", "10.16"} <= set(FIGURES)
    assert not set(ABSENT) & set(FIGURES)
    assert all(FIGURES[k].caption for k in FIGURES)


@needs_dot
def test_gallery_writes_svg_png_dot_and_index(tmp_path):
    from viz.gallery import main
    assert main([str(tmp_path)]) == 0
    for fid in FIGURES:
        for suffix in ("svg", "png", "dot"):
            assert (tmp_path / f"fig-{fid}.{suffix}").stat().st_size > 0
    index = (tmp_path / "index.html").read_text()
    assert all(f'src="fig-{fid}.svg"' in index for fid in FIGURES)
    assert all(k in index for k in ABSENT)
