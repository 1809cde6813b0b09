"""Recurrences joined through a context: the encoder–decoder of Fig. 10.12.

``decoder.unfold(n_y, bind={"C": encoder.unfold(n_x).final("h")})`` joins two recurrences:
the decoder's context ``C`` is the encoder's last state. ``encoder_decoder`` draws that
composition the way the book does: the encoder reading ``x(1) … x(n_x)`` in a box on the left,
the context ``C`` between, and the decoder in a box on the right, every step of which reads ``C``
and emits ``y(1) … y(n_y)``. Both halves are the book views of the live recurrences.
"""
from __future__ import annotations

import re
from typing import Sequence

from graphviz import quoting

from unfold.errors import UnfoldValueError
from unfold.recurrence import Recurrence

from . import labels as L
from .book import check_recurrence
from .output import Drawing
from .views import _Drawer, axis, new_graph, prepare

#: the windows of Fig. 10.12: the first steps, an ellipsis, the last
ENCODER = ("1", "2", "...", "n_x")
DECODER = ("1", "2", "...", "n_y")


def encoder_decoder(encoder: Recurrence, decoder: Recurrence, *, context: str = "C",
                    state: str | None = None, encoder_window: Sequence[str] = ENCODER,
                    decoder_window: Sequence[str] = DECODER, params: bool = True,
                    hide: Sequence[str] = ()) -> Drawing:
    """Fig. 10.12: ``encoder`` and ``decoder`` side by side, the decoder's context input
    ``context`` fed by the encoder's final ``state`` (its only state by default), as
    ``decoder.unfold(…, bind={context: encoder_graph.final(state)})`` joins them (or
    ``unfold.models.encoder_decoder`` builds them). ``hide`` names values not to draw in either
    half, where that half has them (e.g. the pre-activation ``a``)."""
    check_recurrence(encoder)
    check_recurrence(decoder)
    if context not in decoder.contexts:
        raise UnfoldValueError(f"the decoder {decoder.name!r} has no context {context!r}; its "
                               f"contexts: {sorted(decoder.contexts)}")
    states = list(encoder.states)
    if state is None:
        if len(states) != 1:
            raise UnfoldValueError(f"the encoder {encoder.name!r} has states {states}: say "
                                   f"which one is the context with state=")
        state = states[0]
    if state not in states:
        raise UnfoldValueError(f"the encoder {encoder.name!r} has no state {state!r}; states: "
                               f"{states}")
    dot = new_graph(f"{encoder.name} → {decoder.name}")
    ids = {}
    for title, rec, window in (("Encoder", encoder, encoder_window),
                               ("Decoder", decoder, decoder_window)):
        columns = axis(window=window)
        own = {n.name for n in rec.body() if n.name is not None}
        book, placement, boxes = prepare(rec, columns, hide=[n for n in hide if n in own])
        with dot.subgraph(name=f"cluster_{title.lower()}") as part:
            part.attr(label=L.plain(title), style="rounded", color="#999999", fontname=L.FONT,
                      fontsize="16", labelloc="t")
            d = _Drawer(part, book, columns, params=params, biases=False, boxes=boxes)
            d.suffix = f"[{title.lower()}]"
            d.context_first = True             # C comes in from the encoder, on the left
            ids[title] = (d.unfolded(placement, boxes=boxes), placement, d)
            d.close()
            if title == "Decoder":
                drawn = ids[title][0]
                under = d.context_column([c.index for c in columns if c.kind == "step"])
                _from_the_left(part, [drawn[(n, None)] for n in placement.contexts],
                               {v for (_, c), v in drawn.items() if c == under})
    enc_ids, enc_place, enc = ids["Encoder"]
    dec_ids, _, dec = ids["Decoder"]
    last = max(c for name, c in enc_place.cells if name == state)
    # the context, out of the decoder's box: the encoder's last state computes it. The two
    # boxes stand side by side on the same rows (their bottom rows as one rank, in order), so
    # the edge runs down from h(n_x) to C, level with the inputs, into C's left side (clear
    # of C's own edges up). It is written plainly, weight 0: dot's cycle breaking turns it
    # round and it runs straight between the boxes (with constraint=false it was routed
    # round the whole decoder box, into C from the right)
    source, target = enc_ids[(state, last)], dec_ids[(context, None)]
    # (from the state's east point: the edge up into it from its cell comes round the right
    # to its lower corner)
    dot.edge(source, target, penwidth="1.4", weight="0", headport="w", tailport="e",
             tooltip=L.tooltip(f"{state}({L.step_text(enc_place.columns[last].step)}) → "
                               f"{context}"))
    bottoms = [enc.ranks[min(enc.ranks)], dec.ranks[min(dec.ranks)]]
    with dot.subgraph() as bottom:
        bottom.attr(rank="same")
        for node in bottoms[0] + bottoms[1]:
            bottom.node(node)
    dot.edge(bottoms[0][-1], bottoms[1][0], style="invis")
    return dot


def _from_the_left(part: Drawing, tails: list[str], above: set[str]) -> None:
    """The edges out of ``tails`` (the context, one node for all steps) into the lower left of
    the states they feed (but those ``above`` it, in its column), their labels (``R``) as
    ``xlabel``s placed after the layout. Entering anywhere, two of them ran through the one gap
    before the ellipsis column, whose width dot then doubled (as true labels they did so too);
    from the left each runs through the gap before its own column."""
    starts = tuple(f"{quoting.quote(t)} -> " for t in tails)
    edge = re.compile(r'^(\s*\S+ -> ("(?:[^"\\]|\\.)*"|[\w.]+)) \[(label=)?')

    def rewrite(m: re.Match) -> str:
        port = "" if m.group(2) in {quoting.quote(a) for a in above} else ":sw"
        return f"{m.group(1)}{port} [{'xlabel=' if m.group(3) else ''}"
    part.body[:] = [edge.sub(rewrite, line, count=1) if line.lstrip().startswith(starts)
                    else line for line in part.body]
