"""The gallery: every figure of ``viz.figures`` as SVG, PNG and DOT, with an index page.

    python -m viz.gallery DIR        # (``make figures`` writes into ./figures)

Figures are drawn from live models each time; a figure whose model does not exist yet is listed
on the index page as absent, never drawn by hand.
"""
from __future__ import annotations

import html
import sys
from pathlib import Path

from .figures import ABSENT, FIGURES
from .output import save


def write(folder: str | Path) -> list[Path]:
    """Write every figure into ``folder`` (SVG, PNG and DOT) and ``index.html``; returns the
    files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written, rows = [], []
    for fig in FIGURES.values():
        g = fig.draw()
        stem = f"fig-{fig.id}"
        for suffix in (".svg", ".png", ".dot"):
            written.append(save(g, folder / f"{stem}{suffix}"))
        rows.append(f'<figure id="{html.escape(stem)}"><img src="{html.escape(stem)}.svg" '
                    f'alt="Figure {html.escape(fig.id)}"><figcaption><b>Figure '
                    f"{html.escape(fig.id)}.</b> {html.escape(fig.caption)} "
                    f'(<a href="{html.escape(stem)}.png">PNG</a>, '
                    f'<a href="{html.escape(stem)}.dot">DOT</a>)</figcaption></figure>')
    absent = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                     for k, v in ABSENT.items())
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>unfold: chapter 10's figures, drawn from live models</title>"
        "<style>body{font-family:serif;max-width:70em;margin:2em auto;padding:0 1em}"
        "figure{margin:2em 0;border-bottom:1px solid #ddd;padding-bottom:1em}"
        "img{max-width:100%}</style></head><body>"
        "<h1>Chapter 10's figures, drawn from live models</h1>"
        "<p>Each drawing is <code>viz</code>'s book view of an <code>unfold.Recurrence</code> "
        "built in <code>viz/figures.py</code>: the same model can be unfolded, evaluated and "
        "differentiated. Regenerate with <code>make figures</code>.</p>"
        + "".join(rows)
        + (f"<h2>Not in the gallery yet</h2><ul>{absent}</ul>" if absent else "")
        + "</body></html>\n")
    index = folder / "index.html"
    index.write_text(page, encoding="utf-8")
    return written + [index]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m viz.gallery DIR", file=sys.stderr)
        return 2
    files = write(args[0])
    print(f"wrote {len(FIGURES)} figures ({len(files)} files) into {args[0]}/ "
          f"(open {args[0]}/index.html)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
