"""The gallery: every figure of ``viz.figures`` as SVG, PNG (and DOT for drawings), with an
index page showing each figure with its caption, saying plainly what is not there, and, for
each figure drawn otherwise than the book draws it, how (``Figure.differs``).

    python -m viz.gallery DIR            # (``make figures`` writes into ./figures)
    python -m viz.gallery DIR --only 10.3 10.16

Figures are drawn from live models each time; a figure whose model does not exist yet is listed
on the index page as absent, never drawn by hand. The two plots (10.15, 10.17) need matplotlib
(the ``plot`` extra); without it they are listed as absent too.
"""
from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path

from unfold.errors import UnfoldKeyError

from .figures import ABSENT, FIGURES
from .output import save


def _missing_plots() -> dict[str, str]:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return {f.id: "needs matplotlib (pip install 'unfold[plot]')"
                for f in FIGURES.values() if f.kind == "plot"}
    return {}


def write(folder: str | Path, only: list[str] | None = None) -> list[Path]:
    """Write every figure (or those of ``only``) into ``folder`` and ``index.html``; returns
    the files written."""
    folder = Path(folder)
    unknown = sorted(set(only or ()) - set(FIGURES))
    if unknown:
        raise UnfoldKeyError(f"no figure {unknown} in the gallery; available: {sorted(FIGURES)}")
    folder.mkdir(parents=True, exist_ok=True)
    absent = {**ABSENT, **_missing_plots()}
    written, rows, notes, extra, contents = [], [], [], [], []
    for fig in FIGURES.values():
        if (only and fig.id not in only) or fig.id in absent:
            continue
        stem = f"fig-{fig.id}"
        drawn = fig.draw()
        if fig.kind == "plot":
            for suffix in (".svg", ".png"):
                drawn.savefig(folder / f"{stem}{suffix}", dpi=110)
                written.append(folder / f"{stem}{suffix}")
            import matplotlib.pyplot as plt
            plt.close(drawn)
            links = f'<a href="{html.escape(stem)}.png">PNG</a>'
        else:
            for suffix in (".svg", ".png", ".dot"):
                written.append(save(drawn, folder / f"{stem}{suffix}"))
            links = (f'<a href="{html.escape(stem)}.png">PNG</a>, '
                     f'<a href="{html.escape(stem)}.dot">DOT</a>')
        differs = (f'<br><span class="differs"><b>Unlike the book:</b> '
                   f"{html.escape(fig.differs)}.</span>" if fig.differs else "")
        rows.append(f'<figure id="{html.escape(stem)}"><img src="{html.escape(stem)}.svg" '
                    f'alt="Figure {html.escape(fig.id)}"><figcaption><b>Figure '
                    f"{html.escape(fig.id)}.</b> {html.escape(fig.caption)} ({links}){differs}"
                    f"</figcaption></figure>")
        contents.append(f'<a href="#{html.escape(stem)}">{html.escape(fig.id)}</a>')
        if not fig.in_book:
            extra.append(f'<a href="#{html.escape(stem)}">{html.escape(fig.id)}</a>')
        if fig.differs:
            notes.append(f'<li><a href="#{html.escape(stem)}">Figure {html.escape(fig.id)}</a>: '
                         f"{html.escape(fig.differs)}</li>")
    missing = "".join(f"<li><b>Figure {html.escape(k)}</b>: {html.escape(v)}</li>"
                      for k, v in absent.items())
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>unfold: chapter 10's figures, drawn from live models</title>"
        "<style>body{font-family:serif;max-width:70em;margin:2em auto;padding:0 1em}"
        "figure{margin:2em 0;border-bottom:1px solid #ddd;padding-bottom:1em}"
        "img{max-width:100%}.differs{color:#7a4a00}</style></head><body>"
        "<h1>Chapter 10's figures, drawn from live models</h1>"
        "<p>Each drawing is a <code>viz</code> view of an <code>unfold.Recurrence</code> "
        "built in <code>viz/figures.py</code> (most from <code>unfold.models</code>): the same "
        "model can be unfolded, evaluated and differentiated. The plots are computed by unfold "
        "and drawn with matplotlib. Regenerate with <code>make figures</code>.</p>"
        + (f"<h2>Not in the gallery</h2><ul>{missing}</ul>" if missing else
           "<p>Every figure of chapter 10, 10.1–10.18, is drawn here; none is missing.</p>")
        + (f"<h2>Where the drawings differ from the book</h2><ul>{''.join(notes)}</ul>"
           "<p>The others follow the book's figures as its captions and text describe them "
           "(the figure files themselves are not public).</p>" if notes else "")
        + (f"<p>Not in the book, drawn beside its figures: {', '.join(extra)}.</p>"
           if extra else "")
        + "<h2>The figures</h2><p>" + " · ".join(contents) + "</p>"
        + "".join(rows)
        + "</body></html>\n")
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return written + [index]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m viz.gallery",
        description="Write chapter 10's figures, drawn from live unfold models, as SVG, PNG "
                    "and DOT files with an index.html.")
    parser.add_argument("folder", metavar="DIR", help="where to write the figures")
    parser.add_argument("--only", nargs="+", metavar="ID",
                        help=f"only these figures (of {', '.join(FIGURES)})")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    files = write(args.folder, args.only)
    drawn = sum(1 for f in files if f.suffix == ".svg")
    print(f"wrote {drawn} figures ({len(files)} files) into {args.folder}/ "
          f"(open {args.folder}/index.html)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
