"""Safe text for DOT: node ids, plain attribute strings and the book's HTML-like labels.

Every user-supplied name passes through one of these functions, so a name can never inject DOT or
markup: ids are percent-encoded, plain strings have their backslashes doubled (DOT's escString
would otherwise expand ``\\N``, ``\\G``…) and are marked as non-HTML, and HTML labels escape
``& < > " '`` and double backslashes too.
"""
from __future__ import annotations

import html
import re
import unicodedata

from graphviz import nohtml

#: the serif face of the book's figures (fontconfig maps it to Times or a metric clone)
FONT = "Times-Roman"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+\-]")

#: the ops the op view draws as their symbol (``viz.graph``; unnamed values' gradients too)
OPS = {"matmul": "@", "add": "+", "add_n": "+", "sub": "−", "mul": "×", "div": "÷",
       "neg": "−", "sigmoid": "σ", "tanh_deriv": "tanh′", "sigmoid_deriv": "σ′",
       "cross_entropy_grad": "ŷ − 1_y"}


def _encode(text: str) -> str:
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), text)


def node_id(name: str, step: str | int | None = None) -> str:
    """A DOT node id derived from a variable's name and step: ``h``, ``h(3)``, ``h(t-1)``.
    Other characters than ``[A-Za-z0-9_.+-]`` are percent-encoded: ids are plain and injective."""
    base = _encode(name)
    return base if step is None else f"{base}({_encode(str(step))})"


def plain(text: str) -> str:
    """``text`` as a literal plain label (a cluster's title, a caption): graphviz reads
    entities and escapes in it, so ``&`` is written ``&amp;`` and a backslash doubled."""
    return nohtml(str(text).replace("&", "&amp;").replace("\\", "\\\\"))


def tooltip(text: str) -> str:
    """``text`` as a literal tooltip: shown exactly as given in SVG (``&``, ``\\N``, quotes).
    Graphviz reads entities in it and expands ``\\N``, ``\\G``… twice over, so ``&`` is
    written ``&amp;`` and a backslash four times."""
    return nohtml(str(text).replace("&", "&amp;").replace("\\", "\\\\\\\\"))


def esc(text: str) -> str:
    """``text`` escaped for use inside an HTML-like label: ``& < > " '`` as entities, and
    backslashes doubled (graphviz expands ``\\N`` and friends even in HTML labels)."""
    return html.escape(str(text), quote=True).replace("\\", "\\\\")


def step_text(step: str | int) -> str:
    """How a step is written in a superscript: ``3``, ``t−1`` (a true minus), ``…``."""
    return str(step).replace("...", "…").replace("-", "−")


def _italic_letters(text: str) -> str:
    """Escaped ``text`` with its letters in italics, as the book writes ``t−1`` and ``τ``, and
    what follows a ``_`` as a subscript (``n_x``)."""
    base, _, sub = text.partition("_")
    parts = re.split(r"([^\W\d_]+)", base)
    out = "".join(f"<I>{esc(p)}</I>" if i % 2 else esc(p) for i, p in enumerate(parts))
    return out + (f"<SUB>{_italic_letters(sub)}</SUB>" if sub else "")


def _small(markup: str, size: float, tag: str) -> str:
    return f'<FONT FACE="{FONT}" POINT-SIZE="{size:g}"><{tag}>{markup}</{tag}></FONT>'


#: Greek letters spelled out in names (``beta``, ``w_beta``), drawn as the book writes them
GREEK = dict(zip(
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon phi chi psi omega".split(), "αβγδεζηθικλμνξοπρστυφχψω"))


def symbol(name: str, size: float = 14) -> str:
    """A variable or parameter name in the book's style, as HTML-label markup: bold italic, and
    what follows the first ``_`` as a subscript (``W_f`` → 𝑾_f); a Greek letter spelled out
    as the whole base or subscript is drawn as the letter (``beta`` → β, ``w_beta`` → w_β); a
    letter with ``hat`` is hatted (``yhat``, ``y_hat`` → ŷ, eq. 10.11's)."""
    base, _, sub = name.partition("_")
    if not base:                              # "_x": no base letter to hang a subscript on
        base, sub = name, ""
    base, sub = GREEK.get(base, base), GREEK.get(sub, sub)
    if sub == "hat":                                             # y_hat → ŷ
        base, sub = unicodedata.normalize("NFC", base + "\u0302"), ""
    elif len(base) == 4 and base.endswith("hat"):                # yhat → ŷ
        base = unicodedata.normalize("NFC", base[0] + "\u0302")
    out = f"<B><I>{esc(base)}</I></B>"
    if sub:
        out += _small(f"<I>{esc(sub)}</I>", round(0.7 * size, 1), "SUB")
    return out


def variable(name: str, step: str | int | None = None, size: float = 14) -> str:
    """The HTML label of a variable: ``h`` folded, ``h`` with superscript ``(t)`` unfolded."""
    out = symbol(name, size)
    if step is not None:
        out += _small(f"({_italic_letters(step_text(step))})", round(0.7 * size, 1), "SUP")
    return f"<{out}>"


def params(names: tuple[str, ...] | list[str], size: float = 14) -> str:
    """The HTML label of an edge: its parameters, comma-separated (``U``, ``W``, ``U, W``)."""
    return "<" + ", ".join(symbol(n, size) for n in names) + ">"


def cell(name: str, members: tuple[str, ...] | list[str], step: str | int | None = None,
         size: float = 14, ports: int = 0) -> str:
    """The HTML label of a cell: ``cell`` with its superscript, and the internal values it holds
    in small letters underneath (``f, g, q``); with ``ports`` > 3, ports ``w0…``, ``e0…`` down
    its sides."""
    head = variable(name, step, size)[1:-1]
    if members:                          # (an empty <FONT></FONT> is a syntax error to dot)
        inner = ", ".join(symbol(m, round(0.75 * size, 1)) for m in members)
        head += f'<BR/><FONT POINT-SIZE="{round(0.75 * size, 1):g}">{inner}</FONT>'
    if ports <= 3:
        return f"<{head}>"
    # more states enter from one side than a box has compass points there: a column of ports
    # ``w0 … w{k−1}`` down the left side (``e…`` the right), one per state
    rows = "".join(f'<TR><TD PORT="w{k}" WIDTH="2" HEIGHT="7"></TD>' +
                   (f'<TD ROWSPAN="{ports}" CELLPADDING="5">{head}</TD>' if k == 0 else "") +
                   f'<TD PORT="e{k}" WIDTH="2" HEIGHT="7"></TD></TR>' for k in range(ports))
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0">{rows}</TABLE>>'


def ported(label: str, ports: int, prefix: str) -> str:
    """The HTML ``label`` (``<…>``) over a row of ``ports`` ports ``<prefix>0 …`` along the
    node's lower side, one per edge entering from below."""
    cells = "".join(f'<TD PORT="{prefix}{k}" WIDTH="9" HEIGHT="3"></TD>' for k in range(ports))
    return f'<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="0"><TR>' \
           f'<TD COLSPAN="{ports}" CELLPADDING="3">{label[1:-1]}</TD></TR><TR>{cells}</TR>' \
           f'</TABLE>>'


def unit(name: str, op: str | None = None, word: str = "", size: float = 14) -> str:
    """A unit's label: its words (``forget gate``, one word a line) or its name, and the symbol
    of its nonlinearity (``σ``) as a small line under them; an unnamed unit shows its symbol
    alone."""
    lines = [f'<FONT POINT-SIZE="{size - 1:g}">{esc(w)}</FONT>' for w in word.split()] if word \
        else [symbol(name, size) if op is not None else
              f'<FONT POINT-SIZE="{size + 2:g}">{esc(name)}</FONT>']
    if op is not None:
        lines.append(f'<FONT POINT-SIZE="{round(0.8 * size, 1):g}">{esc(op)}</FONT>')
    return "<" + "<BR/>".join(lines) + ">"
