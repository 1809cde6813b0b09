"""Reading an edge's line from dot's layout (``dot -Tjson``'s ``pos``): its two ends, points
along its spline, and whether two segments cross — what viz.loops judges a layout by (and the
tests' geometry checks, tests/viz_json.py)."""
from __future__ import annotations

Point = tuple[float, float]


def ends(pos: str) -> tuple[Point, Point]:
    """The two ends of an edge from its ``pos``: arrow tips where there are arrows (``s,x,y``,
    ``e,x,y``), else the spline's first and last points (in the direction the edge is
    written)."""
    start = end = None
    points = []
    for token in pos.replace(";", " ").split():
        kind, *xy = token.split(",")
        if kind in ("e", "s"):
            point = (float(xy[0]), float(xy[1]))
            start, end = (point, end) if kind == "s" else (start, point)
        else:
            points.append((float(kind), float(xy[0])))
    return start or points[0], end or points[-1]


def spline(pos: str, samples: int = 8) -> list[Point]:
    """Points along an edge's spline (``pos``: cubic Bézier control points; the arrow ends
    ``e,``/``s,`` left out), ``samples`` a Bézier piece."""
    ctrl = [tuple(map(float, t.split(","))) for t in pos.replace(";", " ").split()
            if t[:2] not in ("e,", "s,")]
    out = [ctrl[0]]
    for k in range(0, len(ctrl) - 3, 3):
        p0, p1, p2, p3 = ctrl[k:k + 4]
        for i in range(1, samples + 1):
            t = i / samples
            a, b, c, d = (1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t * t * (1 - t), t ** 3
            out.append((a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0],
                        a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1]))
    return out


def cross(p: Point, q: Point, r: Point, s: Point) -> bool:
    """Whether the segments p–q and r–s cross (touching is not crossing)."""
    def turn(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return turn(p, q, r) * turn(p, q, s) < 0 and turn(r, s, p) * turn(r, s, q) < 0


Box = tuple[float, float, float, float]          # x0, y0, x1, y1 in points


def text_box(ops: list[dict]) -> Box | None:
    """The box around the text that one of dot's drawing lists (``_ldraw_``, ``_xldraw_``)
    writes: each ``T`` op's width from its alignment point, its height from the ``F`` (font)
    op before it (the baseline a fifth of the size above the bottom)."""
    size, box = 14.0, None
    for op in ops:
        if op.get("op") == "F":
            size = float(op["size"])
        elif op.get("op") == "T":
            x, y = map(float, op["pt"])
            w = float(op["width"])
            x0 = {"l": x, "r": x - w}.get(op.get("align"), x - w / 2)
            b = (x0, y - 0.2 * size, x0 + w, y + 0.8 * size)
            box = b if box is None else (min(box[0], b[0]), min(box[1], b[1]),
                                         max(box[2], b[2]), max(box[3], b[3]))
    return box


def hits(box: Box, p: Point, q: Point) -> bool:
    """Whether the segment p–q passes through ``box`` (Liang–Barsky clipping)."""
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for d, lo, hi, v in ((dx, box[0], box[2], p[0]), (dy, box[1], box[3], p[1])):
        if d == 0:
            if not lo < v < hi:
                return False
            continue
        a, b = (lo - v) / d, (hi - v) / d
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
        if t0 > t1:
            return False
    return True
