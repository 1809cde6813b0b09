"""viz's side of issue 11: a missing ``dot`` raises viz's DotNotFoundError on every rendering path
(an UnfoldError, a RuntimeError and graphviz's own ExecutableNotFound); a failing ``dot`` says
what it said; SVG tooltips show names exactly as given; every bad input is an UnfoldError of the
builtin a caller expects."""
from __future__ import annotations

import os
import shutil
import stat
import xml.etree.ElementTree as ET

import graphviz
import numpy as np
import pytest

import unfold as uf
import viz
from test_viz_book import rnn
from unfold import UnfoldError

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="the dot program is absent")


@pytest.fixture
def no_dot(monkeypatch, tmp_path):
    """A PATH on which no Graphviz program can be found."""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert shutil.which("dot") is None


def drawings():
    rec = rnn()
    u = rec.unfold(2)
    return [viz.folded(rec), viz.unfolded(rec, steps=2), viz.unfolding(rec), viz.cell(rec),
            viz.graph(u.loss), viz.side_by_side("both", [("a", rec, {"steps": 2})])]


RENDER = {
    "viz.svg": lambda g, p: viz.svg(g), "viz.png": lambda g, p: viz.png(g),
    "viz.pdf": lambda g, p: viz.pdf(g), "viz.layout": lambda g, p: viz.layout(g),
    "viz.positions": lambda g, p: viz.positions(g),
    "viz.save png": lambda g, p: viz.save(g, p / "f.png"),
    "g.pipe": lambda g, p: g.pipe(format="svg"), "g.render": lambda g, p: g.render(p / "f"),
    "jupyter": lambda g, p: g._repr_mimebundle_(), "g.unflatten": lambda g, p: g.unflatten(),
    "plain Digraph": lambda g, p: viz.svg(graphviz.Digraph(body=["a -> b"])),
}


@pytest.mark.parametrize("path", sorted(RENDER))
def test_missing_dot_is_one_clear_error_on_every_path(no_dot, tmp_path, path):
    for g in drawings()[:2] if path != "plain Digraph" else [None]:
        with pytest.raises(viz.DotNotFoundError, match="Graphviz") as info:
            RENDER[path](g, tmp_path)
        err = info.value
        assert isinstance(err, UnfoldError) and isinstance(err, RuntimeError)
        assert isinstance(err, graphviz.ExecutableNotFound)
        assert "apt-get install graphviz" in str(err) or "unflatten" in str(err)


def test_the_dot_source_and_dot_files_need_no_program(no_dot, tmp_path):
    for g in drawings():
        assert viz.source(g).startswith("digraph")
        assert viz.save(g, tmp_path / "g.dot").read_text() == g.source


def test_a_failing_dot_says_what_it_said(monkeypatch, tmp_path):
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'Error: something broke' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ.get("PATH", ""))
    for call in (lambda g: viz.svg(g), lambda g: g.pipe(format="svg")):
        with pytest.raises(viz.DotFailedError, match="something broke") as info:
            call(viz.folded(rnn()))
        assert isinstance(info.value, UnfoldError) and isinstance(info.value, RuntimeError)


NAMES = ['a&b', 'x\\N', 'q"uote', "it's", "<tag>", "back\\slash", "&amp;", "\\G", "end\\",
         "h(3)", "]; evil ["]


@needs_dot
@pytest.mark.parametrize("name", NAMES)
def test_svg_tooltips_show_names_exactly_as_given(name):
    rec = rnn(out=name)
    xlink = "{http://www.w3.org/1999/xlink}title"
    for g, want in ((viz.folded(rec), name), (viz.unfolded(rec, steps=2), f"{name}(1)"),
                    (viz.unfolding(rec, steps=2), f"{name}(2)"),
                    (viz.unfolded(rec, steps=2), f"{name}(2) → L(2)")):
        root = ET.fromstring(viz.svg(g).encode())
        titles = {a.get(xlink) for a in root.iter("{http://www.w3.org/2000/svg}a")}
        assert want in titles, sorted(t for t in titles if t)[:8]


def _bad_inputs():
    rec = rnn()
    u = rec.unfold(3)
    return {
        "folded(non-recurrence)": (lambda: viz.folded("rnn"), TypeError),
        "folded(hide=str)": (lambda: viz.folded(rec, hide="a"), TypeError),
        "folded(hide unknown)": (lambda: viz.folded(rec, hide=["zz"]), ValueError),
        "folded(params=1)": (lambda: viz.folded(rec, params=1), TypeError),
        "unfolded(steps=0)": (lambda: viz.unfolded(rec, steps=0), ValueError),
        "unfolded(steps=2.5)": (lambda: viz.unfolded(rec, steps=2.5), TypeError),
        "unfolded(steps, window)": (lambda: viz.unfolded(rec, 3, ("t",)), ValueError),
        "unfolded(window=str)": (lambda: viz.unfolded(rec, window="t"), TypeError),
        "unfolded(window empty)": (lambda: viz.unfolded(rec, window=()), ValueError),
        "unfolded(cells=x)": (lambda: viz.unfolded(rec, cells="x"), ValueError),
        "unfolded(max_steps=1)": (lambda: viz.unfolded(rec, steps=3, max_steps=1), ValueError),
        "gradients not a mapping": (lambda: viz.unfolded(rec, steps=2, gradients=[1]), TypeError),
        "gradients bad key": (lambda: viz.unfolded(rec, steps=2, gradients={3.5: 1}), ValueError),
        "gradients bad value": (lambda: viz.unfolded(rec, steps=2, gradients={("h", 1): "x"}),
                                TypeError),
        "gradients negative": (lambda: viz.unfolded(rec, steps=2, gradients={("h", 1): -1.0}),
                               ValueError),
        "gradients node value": (lambda: viz.unfolded(rec, steps=2, gradients={
            ("h", 1): u.at("h", 1)}), TypeError),
        "gradients not drawn": (lambda: viz.unfolded(rec, steps=2, gradients={("h", 5): 1.0}),
                                ValueError),
        "gradients window": (lambda: viz.unfolded(rec, gradients={("h", 1): 1.0}), ValueError),
        "scale": (lambda: viz.unfolded(rec, steps=2, gradients={("h", 1): 1.0},
                                       scale=(1, float("inf"))), ValueError),
        "gradient_norms(rec)": (lambda: viz.gradient_norms(rec, {}), TypeError),
        "side_by_side([])": (lambda: viz.side_by_side("x", []), TypeError),
        "side_by_side option": (lambda: viz.side_by_side("x", [("a", rec, {"zoom": 1})]),
                                TypeError),
        "graph([])": (lambda: viz.graph([]), TypeError),
        "graph(budget=0)": (lambda: viz.graph(u.loss, budget=0), ValueError),
        "figure(3)": (lambda: viz.figure(3), KeyError),
        "figure(unknown)": (lambda: viz.figure("10.99"), KeyError),
        "save(suffix)": (lambda: viz.save(viz.folded(rec), "f.unknown"), ValueError),
        "save(path=3)": (lambda: viz.save(viz.folded(rec), 3), TypeError),
        "save(not a drawing)": (lambda: viz.save("digraph {}", "f.dot"), TypeError),
        "svg(format)": (lambda: viz.output.pipe(viz.folded(rec), "nope"), ValueError),
        "cell(names)": (lambda: viz.cell(rec, names={"zz": "x"}), ValueError),
        "cell(names type)": (lambda: viz.cell(rec, names=["f"]), TypeError),
        "graphical_model(no target)": (lambda: viz.graphical_model(_no_target()), ValueError),
        "encoder_decoder(no context)": (lambda: viz.encoder_decoder(rec, rec), ValueError),
    }


def _no_target():
    rec = uf.Recurrence("no target")
    h = rec.state("h", (2,))
    rec.update(h, uf.tanh(h))
    return rec


@pytest.mark.parametrize("case", sorted(_bad_inputs()))
def test_every_bad_input_is_a_library_error_of_the_expected_builtin(case):
    call, builtin = _bad_inputs()[case]
    with pytest.raises(UnfoldError) as info:
        call()
    assert isinstance(info.value, builtin), type(info.value).__mro__


def test_save_to_a_directory_is_a_library_os_error(tmp_path):
    with pytest.raises(viz.SaveError, match="is a directory") as info:
        viz.save(viz.folded(rnn()), tmp_path)
    assert isinstance(info.value, OSError)
    (tmp_path / "d.dot").mkdir()
    with pytest.raises(viz.SaveError):
        viz.save(viz.folded(rnn()), tmp_path / "d.dot")


def test_infinite_and_nan_norms_get_their_own_colours_never_a_crash():
    from viz.overlay import INFINITE, NAN
    norms = {("h", 1): 1e-3, ("h", 2): float("inf"), ("h", 3): float("nan"), ("h", 4): 0.0}
    src = viz.unfolded(rnn(), steps=4, gradients=norms).source
    assert INFINITE in src and NAN in src and "overflow" in src and "NaN" in src
    arrays = {("h", 1): np.array([np.inf, 1.0]), ("h", 2): np.array([np.nan, 1.0]),
              ("h", 3): np.array([1e308, 1e308])}            # its norm overflows to inf
    src = viz.unfolded(rnn(), steps=3, gradients=arrays).source
    assert src.count(f'fillcolor="{INFINITE}"') == 2 and NAN in src
