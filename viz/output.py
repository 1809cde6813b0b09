"""Getting drawings out: DOT source (no ``dot`` needed), SVG, PNG, PDF, files, and the layout.

Every drawing of viz is a ``graphviz.Digraph``: ``g.source`` is its DOT text, and Jupyter shows it
inline through the Digraph's own ``_repr_mimebundle_``. The helpers here render through the
``dot`` program and, when it is missing, raise ``DotNotFoundError`` saying how to install it.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import graphviz

INSTALL = ("rendering needs the `dot` program of Graphviz, which is not on PATH. Install it: "
           "`apt-get install graphviz` (Debian, Ubuntu), `dnf install graphviz` (Fedora), "
           "`brew install graphviz` (macOS), `conda install -c conda-forge graphviz`, or see "
           "https://graphviz.org/download/. The DOT source needs no program: viz.source(g) "
           "or g.source.")

#: file suffixes and the formats they are written in
FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot",
           ".json": "json"}


class DotNotFoundError(RuntimeError):
    """The Graphviz ``dot`` program is needed and missing."""

    def __init__(self, message: str = INSTALL) -> None:
        super().__init__(message)


def have_dot() -> bool:
    """Whether the ``dot`` program is available."""
    return shutil.which("dot") is not None


def source(g: graphviz.Digraph) -> str:
    """The DOT text of ``g`` (deterministic: the same graph gives the same text)."""
    return g.source


def pipe(g: graphviz.Digraph, format: str) -> bytes:  # noqa: A002 - graphviz's own name
    """``g`` laid out and rendered by ``dot`` in ``format`` (``svg``, ``png``, ``pdf``,
    ``json``…)."""
    if not have_dot():
        raise DotNotFoundError()
    try:
        return g.pipe(format=format)
    except graphviz.ExecutableNotFound as e:
        raise DotNotFoundError() from e


def svg(g: graphviz.Digraph) -> str:
    """``g`` as SVG text."""
    return pipe(g, "svg").decode("utf-8")


def png(g: graphviz.Digraph) -> bytes:
    """``g`` as PNG bytes."""
    return pipe(g, "png")


def pdf(g: graphviz.Digraph) -> bytes:
    """``g`` as PDF bytes."""
    return pipe(g, "pdf")


def layout(g: graphviz.Digraph) -> dict[str, Any]:
    """``g`` laid out by ``dot``, as graphviz's JSON (node positions in ``objects``, edges)."""
    return json.loads(pipe(g, "json"))


def positions(g: graphviz.Digraph) -> dict[str, tuple[float, float]]:
    """Where ``dot`` puts each node of ``g``: node id → (x, y) in points, y growing upwards."""
    out = {}
    for obj in layout(g).get("objects", []):
        if "pos" in obj and "nodes" not in obj:
            x, y = obj["pos"].split(",")
            out[obj["name"]] = (float(x), float(y))
    return out


def save(g: graphviz.Digraph, path: str | Path, format: str | None = None) -> Path:  # noqa: A002
    """Write ``g`` to ``path`` in ``format`` (by default from the suffix: .svg, .png, .pdf,
    .json, or .dot/.gv for the DOT source, which needs no ``dot`` program)."""
    path = Path(path)
    fmt = format or FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot tell the format of {path.name!r}: use a suffix among "
                         f"{sorted(FORMATS)} or pass format=")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "dot":
        path.write_text(g.source, encoding="utf-8")
    else:
        path.write_bytes(pipe(g, fmt))
    return path
