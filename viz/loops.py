"""Folded loops with ends of their own: item 3's "a recurrent loop leaves and re-enters its node
without crossing another edge's end".

The folded views place every delay square by rule (``views._Drawer.delay``), but where dot then
lets a loop leave or re-enter its state depends on the whole drawing: a gated cell's gates, a
second layer's inputs or a peephole's extra square may end beside it, their arrowheads on the
loop's arcs. So the drawing is laid out once, and every edge end that lies within ``GAP`` points
of a loop's end on the same node (a delay square's edge) — then every two ends that meet at an
arrowhead — is moved to a compass point of that node: the nearest one round the node's
boundary that faces the edge's other end and is clear of the loop, as long as that leaves
fewer such clashes and keeps the drawing (the nodes' order in each row, no new crossing, about
as much line). Nothing is moved without ``dot`` (the DOT text is then the rules').

The moves are ``Ports``: ``(tail id, head id) → (tail port, head port)``, ids without a panel's
suffix, so that ``viz.unfolding``'s folded panel takes the ports found for ``viz.folded``.
Dot 2.43 does not always lay out one DOT text the same way, so the ports found may differ from
one session to the next; within a session one drawing keeps the ports first found for it.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple

import graphviz

from . import geometry

#: (tail, head) → (tail port, head port), and ``HEAD`` after them for each move of the edge's
#: label (``label_moved``)
Ports = dict[tuple[str, str], tuple[str, ...]]
#: the mark of a moved label (``Ports``)
HEAD = "label moved"

#: how close (points) an edge end may come to a loop's end on the same node
GAP = 8.0
#: the compass points, counter-clockwise from the east (dot's y grows upwards)
COMPASS = ("e", "ne", "n", "nw", "w", "sw", "s", "se")
#: the most layouts tried per drawing (each a run of dot on a small graph, ~30 ms)
TRIES = 32
#: the most layouts tried for fewer crossings (``untangle``'s ``crossings``; a few of a
#: viz.unfolding, ~50-150 ms each)
UNCROSS = 12
#: the compass points tried for each end when both ends of a clash move at once (``_both_ends``)
BOTH = 3
#: how much more line (all edges together) a move may draw
INK = 1.1
#: how much longer the edge whose end is moved may grow
LONGER = 1.5
#: a compass point this close (degrees) to a loop's end is not tried
CLEAR = 40.0
#: the compass points tried face the edge's other end: this close (degrees) to its direction
FACING = 60.0
#: ... or, on a node wider than ``WIDE`` points round (a word's circle) where no such point is
#: clear of the loop, this close: its corners lie near each other's directions
WIDER, WIDE = 90.0, 40.0


#: the compass point to write on a flat edge (one inside a row) for each point it should end
#: at: dot 2.43 lays such edges out in a graph of its own, rotated, and in a ``rankdir=BT``
#: drawing often mirrors their ports top to bottom (``h[delay 1] -> h:s`` ended at h's north
#: point) — not always: which, depends on the rest of the layout, so both are tried
FLAT = {"n": "s", "ne": "se", "e": "e", "se": "ne", "s": "n", "sw": "nw", "w": "w", "nw": "sw"}

#: the ports found for each drawing (by its DOT text before any move): dot 2.43 does not always
#: lay out one text alike, so without this one model could come out two ways in one session
_FOUND: dict[str, Ports] = {}


def is_square(node: str) -> bool:
    """A delay square's node id (``h[delay 1]``, ``h[delay 1 out]``…)."""
    return "[delay" in node


def untangle(draw: Callable[[Ports], graphviz.Digraph], start: Ports | None = None,
             movable: Callable[[str], bool] = lambda node: True,
             crossings: int | None = None, tries: int = TRIES) -> Ports:
    """The ports for which ``draw(ports)`` has the fewest edge ends on its loops (see the
    module's doc) and then the fewest other ends meeting at an arrowhead, found greedily: clash
    by clash, the other edge's end moved first, else the loop's own; a move is taken when it
    leaves fewer clashes on the loops (or as many and fewer meetings) and no more of both
    together, and keeps the drawing (``_kept``). ``start``: the moves to begin with (unless
    the drawing without them has fewer clashes, or as many and fewer crossings);
    ``movable``: the nodes whose ends may move; ``crossings``: as many pairs of crossing
    edges between those nodes as the drawing may keep — beyond, an end of a crossing edge is
    moved as a clash's is, when that leaves fewer such crossings, no more in all and no more
    clashes (viz.unfolding's folded panel, held to viz.folded's count). Last, labels a line
    runs through or another label meets (``_label_hits``): the label moved on
    (``label_moved``), then an end of either edge, when that leaves fewer such hits and no
    more clashes or crossings; and for a clash on a loop still left, both its ends moved at
    once (``_both_ends``). ``tries``: the most layouts each pass tries (``TRIES``, the
    crossings' and labels' passes at most ``UNCROSS``)."""
    from .output import have_dot, layout
    ports: Ports = dict(start or {})
    if not have_dot():
        return ports
    first = draw(ports)
    if first.source in _FOUND:
        return dict(_FOUND[first.source])
    (loops, meets), kept = _judge(layout(first, quiet=True))
    if ports:               # (the moves to begin with are a hint: without them, better?)
        (bare, near), plain = _judge(layout(draw({}), quiet=True))
        if (len(bare) + len(near), len(plain.crossed)) < (len(loops) + len(meets),
                                                           len(kept.crossed)):
            ports, loops, meets, kept = {}, bare, near, plain
    budget, uncross = tries, min(UNCROSS, tries)
    tries, stuck, strict, last = 0, set(), True, kept
    while loops + meets and tries < budget:
        todo = [end for pair in loops + meets for end in pair if end[:3] not in stuck and
                movable(end[0] if end[2] == "tail" else end[1])]
        if not todo:
            if not strict:
                break
            # (no move that leaves fewer clashes in all: now those that trade a clash on
            # a loop for a meeting elsewhere)
            strict, stuck = False, set()
            continue
        end = todo[0]
        stuck.add(end[:3])
        for port in _candidates(end, loops + meets):
            tries += 1
            trial = _with(ports, end, port)
            (now, near), drawn = _judge(layout(draw(trial), quiet=True))
            total = len(now) + len(near) - len(loops) - len(meets)
            fewer = (len(now), len(near)) < (len(loops), len(meets)) and \
                (total < 0 or (total == 0 and not strict))
            if fewer and _kept(drawn, kept, end[:2]):
                ports, loops, meets, last = trial, now, near, drawn
                break
            if tries >= budget:
                break
    kept = last                 # (the layout now drawn: what the moves below must keep)
    def inside(pairs: list) -> list:          # (the crossings among movable nodes' edges)
        return [p for p in pairs if all(movable(n) for edge in p for n in edge)]

    def lessen(at: str, enough: int, guard: tuple[str, ...], stuck: set, trials) -> None:
        """Moves that leave fewer of the layout's pairs ``at`` (a field of ``Drawn``:
        ``crossed``, ``labelled``) among movable nodes, while more than ``enough`` are left:
        an end of a pair's edge at a time, ``trials(end)`` in turn; taken when no more
        clashes, no more of the pairs ``guard`` and the drawing kept (``_kept``)."""
        nonlocal ports, loops, meets, kept

        def count(d: Drawn, field: str) -> int:
            return len(inside(getattr(d, field)))
        tries = 0
        while count(kept, at) > enough and tries < uncross:
            todo = [end for pair in inside(getattr(kept, at)) for edge in pair
                    for end in _edge_ends(kept.ends, edge) if end[:3] not in stuck]
            if not todo:
                break
            end = todo[0]
            stuck.add(end[:3])
            for trial in trials(end):
                tries += 1
                (now, near), drawn = _judge(layout(draw(trial), quiet=True))
                if count(drawn, at) < count(kept, at) and \
                        all(count(drawn, g) <= count(kept, g) for g in guard) and \
                        len(now) + len(near) <= len(loops) + len(meets) and \
                        _kept(drawn, kept, end[:2]):
                    ports, loops, meets, kept = trial, now, near, drawn
                    break
                if tries >= uncross:
                    break
    if crossings is not None:
        lessen("crossed", crossings, (), stuck, lambda end: [_with(ports, end, port)
                                                       for port in _candidates(end, [])])
    labelled: set = set()

    def label_trials(end: End) -> list[Ports]:
        # (the label beside its arrowhead first, then the end's compass points — either edge's:
        # a label in the middle of a line ranks it, moved it lets the line run elsewhere)
        flip = [edge for pair in inside(kept.labelled) for edge in pair
                if not ports.get(edge, ())[2:] and edge not in labelled][:1]
        labelled.update(flip)
        return [_at_head(ports, edge, k) for edge in flip for k in (1, 2, 3)] + \
            [_with(ports, end, port) for port in _candidates(end, [])]
    lessen("labelled", 0, ("crossed",), labelled, label_trials)
    ports = _both_ends(lambda trial: _judge(layout(draw(trial), quiet=True)), ports,
                       (loops, meets), kept, movable, uncross)
    if len(_FOUND) >= 512:
        _FOUND.clear()
    _FOUND[first.source] = dict(ports)
    return ports


def _both_ends(layout_of: Callable[[Ports], tuple[tuple[list, list], "Drawn"]], ports: Ports,
               clashes: tuple[list, list], kept: "Drawn", movable: Callable[[str], bool],
               tries: int) -> Ports:
    """``ports`` with both ends of a clash on a loop still left moved at once, where no single
    move helped (two squares' edges into one gate: moved alone, either end found the other's
    point) — first as two pasts from one side take a reader's corners (``_corners``), then each
    end to one of its ``BOTH`` best compass points (``_candidates``) — when that leaves fewer
    clashes on the loops, no more ends meeting elsewhere, no more labels hit, and keeps the
    drawing for both edges (``_kept``); ``clashes``: ``_judge``'s (on the loops, elsewhere) for
    ``ports``, ``layout_of(ports)`` for others."""
    loops, meets = clashes
    for pair in sorted(loops, key=lambda pair: not _corners(*pair)):   # (corners first)
        a, b = pair
        if a[:2] == b[:2] or not all(movable(e[0] if e[2] == "tail" else e[1]) for e in pair):
            continue
        moves = _corners(a, b) + [(pa, pb) for pa in _candidates(a, [])[:BOTH]
                                  for pb in _candidates(b, [])[:BOTH]]
        for pa, pb in list(dict.fromkeys(moves))[:max(tries, 0)]:
            tries -= 1
            trial = _with(_with(ports, a, pa), b, pb)
            now, drawn = layout_of(trial)
            if len(now[0]) < len(loops) and len(now[1]) <= len(meets) and \
                    len(drawn.labelled) <= len(kept.labelled) and \
                    _kept(drawn, kept, a[:2]) and _kept(drawn, kept, b[:2]):
                return _both_ends(layout_of, trial, now, drawn, movable, tries)
    return ports


def _corners(a: "End", b: "End") -> list[tuple[str, str]]:
    """Ports for two arrowheads from one side, above, into one node (two states' pasts down
    into a gate: an LSTM's h(t−1) and a fed-back y(t−1)): the one from higher up at the upper
    corner on that side, the other at the lower corner, or the upper one on the far side
    (where a loop holds the near side's lower corner)."""
    if not (a[2] == b[2] == "head" and a[5][1] > a[3][1] and b[5][1] > b[3][1]):
        return []
    side = "e" if a[5][0] + b[5][0] > 2 * a[3][0] else "w"
    far = "w" if side == "e" else "e"
    high, low = ("n" + side, "s" + side), ("n" + side, "n" + far)
    return [high, low] if a[5][1] > b[5][1] else [(high[1], high[0]), (low[1], low[0])]


# an edge end: (tail, head, "tail" | "head", its node's centre, the end point, the centre of
# the node at the edge's other end)
End = tuple[str, str, str, tuple[float, float], tuple[float, float], tuple[float, float]]


def _with(ports: Ports, end: End, port: str) -> Ports:
    tail, head, side = end[:3]
    old = ports.get((tail, head), ("", ""))
    return {**ports, (tail, head): (port, *old[1:]) if side == "tail" else
            (old[0], port, *old[2:])}


def label_moved(attrs: Mapping[str, str]) -> dict[str, str]:
    """An edge's attributes with its label moved one place on, off the lines it stood on: from
    its middle (``label``, ``xlabel``) beside its arrowhead, below the line; from there above
    it; from there beside the tail (a square's loop back into its state: between the arcs,
    where the readers' lines do not run), above, then below."""
    out = dict(attrs)
    middle = next((k for k in ("label", "xlabel") if k in out), None)
    angle = float(out.get("labelangle", "-25"))
    if middle:
        out.update(headlabel=out.pop(middle), labeldistance="2.5", labelangle="-25")
    elif "headlabel" in out and angle < 0:
        out["labelangle"] = str(-angle)
    elif "headlabel" in out:
        out.update(taillabel=out.pop("headlabel"), labeldistance="2.5", labelangle="25")
    elif "taillabel" in out and angle > 0:
        out["labelangle"] = str(-angle)
    return out


def _at_head(ports: Ports, edge: tuple[str, str], times: int = 1) -> Ports:
    """``ports`` with ``edge``'s label moved ``times`` more (``label_moved``)."""
    old = ports.get(edge, ("", ""))
    return {**ports, edge: (*old, *("",) * (2 - len(old)), *(HEAD,) * times)}


def _angle(centre: tuple[float, float], p: tuple[float, float]) -> float:
    return math.degrees(math.atan2(p[1] - centre[1], p[0] - centre[0])) % 360


def _apart(a: float, b: float) -> float:
    d = abs(a - b) % 360
    return min(d, 360 - d)


def _candidates(end: End, found: list[tuple[End, End]]) -> list[str]:
    """Compass points of ``end``'s node, nearest to where it ends now first, clear of the
    loop ends it clashes with, on the side that faces the edge's other end (an edge round the
    back of its node reads worst), within ``FACING`` degrees of its direction (else
    ``WIDER`` on a wide node); on a flat edge each also as dot may mirror it (``FLAT``)."""
    tail, head, side, centre, point, far = end
    node = tail if side == "tail" else head
    mine, ahead = _angle(centre, point), _angle(centre, far)
    loops = [_angle(e[3], e[4]) for pair in found for e in pair
             if (e[0] if e[2] == "tail" else e[1]) == node and e[:3] != end[:3]]
    ranked = sorted(COMPASS, key=lambda c: _apart(COMPASS.index(c) * 45.0, mine))

    def facing(most: float) -> list[str]:
        return [c for c in ranked if _apart(COMPASS.index(c) * 45.0, ahead) <= most and
                all(_apart(COMPASS.index(c) * 45.0, a) >= CLEAR for a in loops)]
    wanted = facing(FACING) or (facing(WIDER) if math.dist(centre, point) > WIDE else [])
    if abs(centre[1] - far[1]) > 1:
        return wanted
    return list(dict.fromkeys(p for c in wanted for p in (c, FLAT[c])))    # (flat: see FLAT)


class Drawn(NamedTuple):
    """What ``untangle`` reads of a layout besides its clashes: what a move must keep (the
    nodes' order, no more crossings, about as much line: ``_kept``) and what its later passes
    lessen."""

    order: tuple                    # the nodes, row by row, left to right
    crossed: list                   # pairs of edges whose lines cross (``_crossing_pairs``)
    ink: float                      # how much line is drawn, in all
    lengths: dict                   # (tail, head) → how long its line is
    ends: dict                      # the edges' ends on each node (``_all_ends``)
    labelled: list                  # (a labelled edge, an edge on its label) (``_label_hits``)


def _judge(laid: Mapping[str, Any]) -> tuple[tuple[list, list], Drawn]:
    """The loop clashes of a layout (``_clashes``), and the rest ``untangle`` reads of it."""
    at = {o["name"]: tuple(map(float, o["pos"].split(","))) for o in laid.get("objects", [])
          if "nodes" not in o and "pos" in o}
    order = tuple(sorted(at, key=lambda n: (round(at[n][1]), at[n][0])))
    drawn = _visible(laid)
    length = {edge: sum(math.dist(p, q) for p, q in zip(line, line[1:]))
              for edge, e in drawn for line in [geometry.spline(e["pos"])]}
    return _clashes(laid), Drawn(order, _crossing_pairs(drawn), sum(length.values()), length,
                                 _all_ends(laid), _label_hits(drawn))


def _visible(laid: Mapping[str, Any]) -> list[tuple[tuple[str, str], dict]]:
    """The visible edges of a layout (``laid``: dot's JSON), each as ((tail, head) names,
    its JSON object)."""
    names = {o["_gvid"]: o["name"] for o in laid.get("objects", []) if "nodes" not in o}
    return [((names[e["tail"]], names[e["head"]]), e) for e in laid.get("edges", [])
            if e.get("style") != "invis" and "pos" in e]


def _edge_ends(ends: dict[str, list[tuple[End, set[str], bool]]], edge: tuple[str, str]
               ) -> list[End]:
    """The ends of ``edge`` (tail, head) on nodes that are not points or squares."""
    return [e for here in ends.values() for e, _, _ in here if e[:2] == edge and
            not is_square(e[0] if e[2] == "tail" else e[1])]


def _kept(now: Drawn, before: Drawn, moved: tuple[str, str]) -> bool:
    """Whether a move of an end of the edge ``moved`` kept the drawing: every node where it
    stood in its row, no more edges crossing, at most ``INK`` times the line, and that edge
    at most ``LONGER`` times as long (not round its node)."""
    return now.order == before.order and len(now.crossed) <= len(before.crossed) and \
        now.ink <= INK * before.ink and \
        now.lengths.get(moved, 0) <= LONGER * before.lengths.get(moved, 0)


def crossings(laid: Mapping[str, Any]) -> int:
    """How many pairs of visible edges cross in a layout (``laid``: dot's JSON)."""
    return len(_crossing_pairs(_visible(laid)))


def _crossing_pairs(drawn: list[tuple[tuple[str, str], dict]]
                    ) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """Pairs of the visible edges ``drawn`` (``_visible``) whose splines cross, leaving out
    pairs that share a node."""
    lines = [(edge, line, _box(line)) for edge, e in drawn
             for line in [geometry.spline(e["pos"])]]
    found = []
    for k, (edge, a, box_a) in enumerate(lines):
        for other, b, box_b in lines[k + 1:]:
            if not set(edge) & set(other) and _meet(box_a, box_b) and any(
                    geometry.cross(p, q, r, s) for p, q in zip(a, a[1:]) for r, s in zip(b, b[1:])):
                found.append((edge, other))
    return found


def _label_hits(drawn: list[tuple[tuple[str, str], dict]]
                ) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """Pairs (a labelled edge, another edge) of the visible edges ``drawn`` (``_visible``)
    where the other edge's line runs through the label's text, or its label overlaps it."""
    boxes = [(edge, box) for edge, e in drawn for key in ("_ldraw_", "_xldraw_", "_hldraw_",
                                                          "_tldraw_")
             for box in [geometry.text_box(e.get(key, []))] if box is not None]
    lines = [(edge, geometry.spline(e["pos"], 16)) for edge, e in drawn]
    found = []
    for k, (edge, box) in enumerate(boxes):
        inner = (box[0] + 1, box[1] + 1, box[2] - 1, box[3] - 1)
        found += [(edge, other) for other, line in lines if other != edge and any(
            geometry.hits(inner, p, q) for p, q in zip(line, line[1:]))]
        found += [(edge, other) for other, b in boxes[k + 1:] if _meet(
            (box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), b)]
    return found


def _box(line: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in line], [p[1] for p in line]
    return min(xs), min(ys), max(xs), max(ys)


def _meet(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _all_ends(laid: Mapping[str, Any]) -> dict[str, list[tuple[End, set[str], bool]]]:
    """The ends of the visible edges on each node that is not a point (``laid``: dot's
    JSON), each with the delay squares its edge joins and whether it is an arrowhead."""
    names, centre, big = {}, {}, set()
    for o in laid.get("objects", []):
        if "nodes" in o or "pos" not in o:
            continue
        names[o["_gvid"]] = o["name"]
        x, y = o["pos"].split(",")
        centre[o["name"]] = (float(x), float(y))
        if float(o.get("width", 0)) >= 0.2:
            big.add(o["name"])
    ends: dict[str, list[tuple[End, set[str], bool]]] = {}
    for e in laid.get("edges", []):
        if e.get("style") == "invis" or "pos" not in e:
            continue
        tail, head = names[e["tail"]], names[e["head"]]
        first, last = geometry.ends(e["pos"])
        squares = {n for n in (tail, head) if is_square(n)}
        arrow = e.get("arrowhead") != "none"
        for side, node, p, other in (("tail", tail, first, head), ("head", head, last, tail)):
            if node in big:
                ends.setdefault(node, []).append(
                    ((tail, head, side, centre[node], p, centre[other]), squares,
                     arrow and side == "head"))
    return ends


def _clashes(laid: Mapping[str, Any]) -> tuple[list[tuple[End, End]], list[tuple[End, End]]]:
    """Pairs of edge ends within ``GAP`` points on one node that is not a point (``laid``:
    dot's JSON): (another edge's end, a loop's end) — the other edge may be another square's —
    and, apart, any other two ends where one is an arrowhead (the other end first)."""
    ends = _all_ends(laid)
    loops, meets = [], []
    for here in ends.values():
        for k, (a, squares_a, arrow_a) in enumerate(here):
            for b, squares_b, arrow_b in here:
                if a is b or math.dist(a[4], b[4]) >= GAP:
                    continue
                if squares_a - squares_b and not (squares_b - squares_a and
                                                  here.index((b, squares_b, arrow_b)) < k):
                    loops.append((b, a))           # (the other edge's end first: moved first;
                    # two squares' edges once)
                elif (arrow_a or arrow_b) and not (squares_a ^ squares_b) and \
                        here.index((b, squares_b, arrow_b)) > k:
                    meets.append((b, a) if arrow_a else (a, b))
    return loops, meets
