"""Getting drawings out: DOT source (no ``dot`` needed), SVG, PNG, PDF, files, and the layout.

Every drawing of viz is a ``Drawing``, a ``graphviz.Digraph``: ``g.source`` is its DOT text, and
Jupyter shows it inline through the Digraph's own ``_repr_mimebundle_``. Whatever path renders it
— ``viz.svg``/``png``/``pdf``/``save``/``layout``, or the Digraph's own ``pipe``, ``render``,
``view``, ``unflatten`` and Jupyter display — a missing ``dot`` program raises
``DotNotFoundError`` (an ``unfold.UnfoldError`` and a ``RuntimeError``, like graphviz's
``ExecutableNotFound``, which it also is) saying how to install it, and a ``dot`` that fails
raises ``DotFailedError`` with dot's own message.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import graphviz

from unfold import arguments
from unfold.errors import UnfoldError, UnfoldTypeError, UnfoldValueError

INSTALL = ("rendering needs the `dot` program of Graphviz, which is not on PATH. Install it: "
           "`apt-get install graphviz` (Debian, Ubuntu), `dnf install graphviz` (Fedora), "
           "`brew install graphviz` (macOS), `conda install -c conda-forge graphviz`, or see "
           "https://graphviz.org/download/. The DOT source needs no program: viz.source(g) "
           "or g.source.")

#: file suffixes and the formats they are written in
FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot",
           ".json": "json"}


class DotNotFoundError(UnfoldError, graphviz.ExecutableNotFound):
    """The Graphviz ``dot`` program is needed and missing (a ``RuntimeError``)."""

    def __init__(self, message: str = INSTALL) -> None:
        RuntimeError.__init__(self, message)


class DotFailedError(UnfoldError, RuntimeError):
    """The ``dot`` program ran and failed; the message carries what it said."""


class SaveError(UnfoldError, OSError):
    """A drawing cannot be written where it was asked to be (a directory, no permission)."""


def have_dot() -> bool:
    """Whether the ``dot`` program is available."""
    return shutil.which("dot") is not None


#: the most DOT statements (nodes, edges, attributes) a drawing may have for ``dot`` to lay it
#: out: its time grows faster than linearly (Fig. 10.3 unfolded over 300 steps, ~9 300
#: statements, takes ~10 s; over 1 000 steps ~3 min). Raise it to render larger drawings.
MAX_STATEMENTS = 12_000


def _rendering(g: graphviz.Digraph, call):
    """Run ``call()`` (which runs ``dot`` on ``g``), turning graphviz's errors into viz's; a
    drawing too large for ``dot`` to lay out in reasonable time is refused first."""
    if len(g.body) > MAX_STATEMENTS:
        raise UnfoldValueError(
            f"viz: this drawing has {len(g.body):,} DOT statements, more than "
            f"viz.output.MAX_STATEMENTS = {MAX_STATEMENTS:,}: dot would take minutes to hours "
            f"to lay it out. Draw fewer steps (viz.unfolded(…, max_steps=12) elides the middle "
            f"ones), collapse them (viz.graph(…, collapse=3) or a budget), or raise "
            f"viz.output.MAX_STATEMENTS; the DOT text itself is g.source")
    if not have_dot():
        raise DotNotFoundError()
    try:
        return call()
    except graphviz.ExecutableNotFound as e:
        if isinstance(e, DotNotFoundError):
            raise
        raise DotNotFoundError() from e
    except (subprocess.CalledProcessError, OSError) as e:
        said = getattr(e, "stderr", None) or b""
        said = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
        raise DotFailedError(f"dot failed ({e}): {said.strip()}") from e


class Drawing(graphviz.Digraph):
    """A ``graphviz.Digraph`` whose every rendering path raises viz's errors (see the module
    doc)."""

    def pipe(self, *args: Any, **kwargs: Any):
        return _rendering(self, lambda: super(Drawing, self).pipe(*args, **kwargs))

    def render(self, *args: Any, **kwargs: Any):
        return _rendering(self, lambda: super(Drawing, self).render(*args, **kwargs))

    def view(self, *args: Any, **kwargs: Any):
        return _rendering(self, lambda: super(Drawing, self).view(*args, **kwargs))

    def unflatten(self, *args: Any, **kwargs: Any):
        if shutil.which("unflatten") is None:
            raise DotNotFoundError(INSTALL.replace("`dot` program", "`unflatten` program"))
        return _rendering(self, lambda: super(Drawing, self).unflatten(*args, **kwargs))


def _check_drawing(g: Any) -> None:
    if not isinstance(g, graphviz.Graph | graphviz.Digraph):
        raise UnfoldTypeError(f"expected a drawing (a graphviz.Digraph from viz), got "
                              f"{type(g).__name__}")


def source(g: graphviz.Digraph) -> str:
    """The DOT text of ``g`` (deterministic: the same graph gives the same text)."""
    _check_drawing(g)
    return g.source


def pipe(g: graphviz.Digraph, format: str, quiet: bool = False  # noqa: A002 - graphviz's
           ) -> bytes:
    """``g`` laid out and rendered by ``dot`` in ``format`` (``svg``, ``png``, ``pdf``,
    ``json``…); ``quiet``: what dot says on stderr is not shown (a trial layout's)."""
    _check_drawing(g)
    if not isinstance(format, str) or format not in graphviz.FORMATS:
        raise UnfoldValueError(f"unknown output format {format!r}; e.g. 'svg', 'png', 'pdf', "
                               f"'json'")
    return _rendering(g, lambda: graphviz.Digraph.pipe(g, format=format, quiet=quiet))


def svg(g: graphviz.Digraph) -> str:
    """``g`` as SVG text."""
    return pipe(g, "svg").decode("utf-8")


def png(g: graphviz.Digraph) -> bytes:
    """``g`` as PNG bytes."""
    return pipe(g, "png")


def pdf(g: graphviz.Digraph) -> bytes:
    """``g`` as PDF bytes."""
    return pipe(g, "pdf")


def layout(g: graphviz.Digraph, quiet: bool = False) -> dict[str, Any]:
    """``g`` laid out by ``dot``, as graphviz's JSON (node positions in ``objects``, edges);
    ``quiet`` as for ``pipe``."""
    return json.loads(pipe(g, "json", quiet))


def positions(g: graphviz.Digraph) -> dict[str, tuple[float, float]]:
    """Where ``dot`` puts each node of ``g``: node id → (x, y) in points, y growing upwards."""
    out = {}
    for obj in layout(g).get("objects", []):
        if "pos" in obj and "nodes" not in obj:
            x, y = obj["pos"].split(",")
            out[obj["name"]] = (float(x), float(y))
    return out


def save(g: graphviz.Digraph, path: str | os.PathLike, format: str | None = None  # noqa: A002
         ) -> Path:
    """Write ``g`` to ``path`` in ``format`` (by default from the suffix: .svg, .png, .pdf,
    .json, or .dot/.gv for the DOT source, which needs no ``dot`` program)."""
    _check_drawing(g)
    if not isinstance(path, (str, os.PathLike)):
        raise UnfoldTypeError(f"save: path must be a file name, got {type(path).__name__}")
    path = Path(arguments.file_path("save", path, SaveError))
    if path.is_dir():
        raise SaveError(f"save: {str(path)!r} is a directory; give a file name")
    fmt = format or FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UnfoldValueError(f"cannot tell the format of {path.name!r}: use a suffix among "
                               f"{sorted(FORMATS)} or pass format=")
    data = g.source.encode("utf-8") if fmt == "dot" else pipe(g, fmt)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as e:
        raise SaveError(f"save: cannot write {str(path)!r}: {e.strerror or e}") from e
    return path
