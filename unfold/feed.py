"""Feeds: how a compiled graph may be fed, and the check of a feed before any work is done.

A graph is fed by placeholder node, by name, or — for an unfolded recurrence — by the folded
sequence node (or its name), whose array ``(τ, …)`` or ``(τ, batch, …)`` is sliced along time for
the per-step inputs ``x(1) … x(τ)``. Every value is checked for completeness, shape and dtype before
the first op runs: a value is converted to its placeholder's dtype only when nothing is lost (an
integer out of the target's range, or a float that overflows to inf, is refused), a padding mask
holds only 0 and 1, and a batch has at least one example. In a masked unfolding every sequence
reads zeros at padded steps, whatever the feed holds there: NaN or garbage in the padding never
reaches the graph.
"""
from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import FeedError, UnfoldTypeError, describe
from .graph import Meta, Node, _key_of
from .ops.base import PARAM, is_placeholder, unmasked


class Feeds:
    """The feed keys of a graph whose placeholders are ``placeholders`` and whose nodes are
    ``graph`` (a container: a computed node given as a key is refused by name)."""

    def __init__(self, placeholders: Sequence[Node], graph: Container[Node]) -> None:
        self.placeholders = list(placeholders)
        self._graph = graph
        # feed keys: placeholders themselves, and the folded nodes that per-step copies come
        # from. The copies of one folded node share their Meta (name, attributes, source): the
        # work is per Meta, not per placeholder (an unfolding has τ of them per sequence).
        by_meta: dict[Meta, list[Node]] = {}
        for p in self.placeholders:
            found = by_meta.get(p._meta)
            if found is None:
                by_meta[p._meta] = [p]
            else:
                found.append(p)
        self._sliced: dict[Node, list[Node]] = {}
        steps_of: dict[Node, set[int]] = {}
        direct: set[Node] = set()
        self._by_name: dict[str, set[Node]] = {}
        for m, group in by_meta.items():
            if m.source is not None:
                # (a leaf's ``_at`` is its step: a leaf is no gradient node)
                copies = [p for p in group if p._at is not None]
                direct.update(p for p in group if p._at is None)
                if copies:
                    self._sliced.setdefault(m.source, []).extend(copies)
                    steps_of.setdefault(m.source, set()).add(m.attrs.get("steps") or 0)
                    self._name(m.source)
                if len(copies) == len(group):
                    continue
            else:
                direct.update(group)
            for p in group:
                if p in direct:
                    self._name(p)
        for copies in self._sliced.values():
            if copies[-1]._key < copies[0]._key:     # (of several Metas: creation order)
                copies.sort(key=_key_of)
        # a sequence whose copies come from unfoldings of different lengths cannot be fed one array
        self._lengths = {key: sorted(steps) for key, steps in steps_of.items()}
        self._direct = sorted(direct, key=_key_of)            # (in creation order)
        # names of the recurrence an unfolded graph came from: a feed for the whole model may
        # name what these outputs do not need (the targets, when evaluating outputs)
        self._model_names = frozenset().union(*(p.attrs.get("model", ()) for copies in
                                                self._sliced.values() for p in copies[:1]))
        # whether the graph comes from an unfolding without a mask: a mask fed to it would be
        # silently ignored, the padding counted as data
        self._unmasked = any("mask" in copies[0].attrs and copies[0].attrs["mask"] is None
                             for copies in self._sliced.values())
        # (a step of a sequence, the mask copy of that step) in a masked unfolding
        self._padded: list[tuple[Node, Node]] = []
        #: the last feed resolved by ``resolve_sequences``: (its layout, its keys — kept alive so
        #: that their ids stay theirs —, how each value was resolved)
        self._last: tuple | None = None
        for key, copies in self._sliced.items():
            mask = copies[0].attrs.get("mask")
            if mask is None or key is mask or mask not in self._sliced:
                continue
            by_step = {m.step: m for m in self._sliced[mask]}
            self._padded += [(c, by_step[c.step]) for c in copies if c.step in by_step]

    def _name(self, key: Node) -> None:
        """``key`` fed by its name (and qualified, as in a joined graph)."""
        if key.name is not None:
            self._by_name.setdefault(key.name, set()).add(key)
            if "recurrence" in key.attrs:
                self._by_name.setdefault(f"{key.attrs['recurrence']}.{key.name}", set()).add(key)

    def resolve(self, feed: Mapping[Any, Any]) -> dict[Node, np.ndarray]:
        """Placeholder → array, checked for completeness, shape and dtype before any work."""
        if not isinstance(feed, Mapping):
            raise UnfoldTypeError(f"a feed must be a dict mapping nodes or names to arrays, got "
                                  f"{type(feed).__name__}")
        values: dict[Node, Any] = {}
        for key, value in feed.items():
            node = self._key(key)
            if node is None:
                continue
            if node in self._sliced:
                copies = self._sliced[node]
                if len(self._lengths[node]) > 1:
                    raise FeedError(f"sequence {node.name!r} is read by unfoldings of "
                                    f"{self._lengths[node]} steps in these outputs, and one "
                                    f"array cannot feed them all; evaluate each unfolding's "
                                    f"outputs in its own call")
                array = _as_array(f"sequence {node.name!r}", value)
                steps = copies[0].attrs.get("steps") or max(c.step for c in copies)
                if array.ndim == 0 or array.shape[0] != steps:
                    got = "a scalar" if array.ndim == 0 else f"{array.shape[0]} steps"
                    raise FeedError(f"sequence {node.name!r} is fed with {got} (shape "
                                    f"{array.shape}) but the graph is unfolded over {steps} steps;"
                                    f" feed an array of shape ({steps}, …) or ({steps}, batch, …)"
                                    + (f", or unfold the recurrence to {array.shape[0]} steps"
                                       if array.ndim else ""))
                for c in copies:
                    if c in values:
                        raise FeedError(f"{c.label!r} is fed twice (directly and by its sequence)")
                    values[c] = array[c.step - 1]
            else:
                if node in values:
                    raise FeedError(f"{node.label!r} is fed twice (by node and by name)")
                values[node] = value
        missing = [p for p in self.placeholders if p not in values]
        if missing:
            names = list(dict.fromkeys(p.source.name if p.source is not None and p.step else
                                       p.label for p in missing))     # a sequence once
            listed = ", ".join(repr(n) for n in names[:8])
            raise FeedError(f"missing feed for {len(missing)} placeholder(s): {listed}"
                            f"{' …' if len(names) > 8 else ''}; every input and param the "
                            f"outputs depend on must be fed")
        checked = {p: _check_value(p, values[p]) for p in self.placeholders}
        for x, m in self._padded:
            checked[x] = _zero_padding(checked[x], checked[m], x)
        return checked

    def resolve_sequences(self, feed: Mapping[Any, Any]):
        """The same check as ``resolve`` without slicing sequences: ``(values, sequences)`` with
        ``values`` for the placeholders fed one by one and ``sequences`` mapping each folded
        sequence fed whole to its checked array ``(τ, [batch,] …)``. None when the feed is not of
        that simple kind (``resolve`` then does the work, and names any error).

        A feed with the same keys, in the same order, and arrays of the same types, shapes and
        dtypes as the last one that passed is resolved as that one was: what only depends on
        those (names, completeness, shapes, dtype kinds) was checked then. What depends on the
        values is checked again: a conversion of dtype (range, overflow) runs as before."""
        if self._padded or not isinstance(feed, Mapping):
            return None                        # padding zeroed step by step, or an error
        layout = _layout(feed)
        last = self._last
        if layout is not None and last is not None and last[0] == layout:
            return self._as_last(feed, last[2])
        found = self._resolve_sequences(feed)
        if found is not None and layout is not None:
            self._last = (layout, list(feed), self._recipe(feed, *found))
        return found

    def _recipe(self, feed: Mapping[Any, Any], values: dict, sequences: dict) -> list:
        """How each value of ``feed`` was resolved: (node, is a sequence, needs conversion)."""
        out = []
        for key, value in feed.items():
            node = self._key(key)
            if node is None:
                out.append(None)
            elif node in self._sliced:
                out.append((node, True, sequences[node] is not value))
            else:
                out.append((node, False, values[node] is not value))
        return out

    def _as_last(self, feed: Mapping[Any, Any], recipe: list):
        values: dict[Node, Any] = {}
        sequences: dict[Node, np.ndarray] = {}
        for how, value in zip(recipe, feed.values()):
            if how is None:
                continue
            node, whole, convert = how
            if whole:
                if convert:
                    try:
                        value = _convert(self._sliced[node][0], value)
                    except FeedError:
                        return None            # the general path names the step
                sequences[node] = value
            else:
                values[node] = _convert(node, value) if convert else value
        return values, sequences

    def _resolve_sequences(self, feed: Mapping[Any, Any]):
        values: dict[Node, Any] = {}
        sequences: dict[Node, np.ndarray] = {}
        for key, value in feed.items():
            node = self._key(key)
            if node is None:
                continue
            if node in self._sliced:
                if node in sequences or len(self._lengths[node]) > 1:
                    return None
                array = _check_sequence(self._sliced[node], value)
                if array is None:
                    return None
                sequences[node] = array
            else:
                if node in values:
                    return None
                values[node] = value
        if len(sequences) != len(self._sliced) or len(values) != len(self._direct):
            return None
        for p in self._direct:
            if p not in values:
                return None
            values[p] = _check_value(p, values[p])
        return values, sequences

    def _key(self, key: Any) -> Node | None:
        if isinstance(key, str):
            found = self._by_name.get(key)
            if not found and key == "mask" and self._unmasked:
                raise FeedError("the feed has a 'mask' but the graph was unfolded without one, "
                                "so padded steps would count as data: unfold with mask=True "
                                "(Trainer(..., mask=True)), or drop the mask from the feed")
            if not found and key in self._model_names:
                return None
            if not found:
                raise FeedError(f"unknown feed name {key!r}: the graph's placeholders are "
                                f"{sorted(self._by_name)}")
            if len(found) > 1:
                owners = sorted(str(n.attrs.get("recurrence")) for n in found)
                qualified = f" or by qualified name ({', '.join(f'{o}.{key}' for o in owners)})" \
                    if all("recurrence" in n.attrs for n in found) else ""
                raise FeedError(f"the name {key!r} is shared by {len(found)} placeholders "
                                f"({', '.join(describe(n) for n in found)}); feed them by node"
                                f"{qualified}")
            return next(iter(found))
        if isinstance(key, Node):
            if key in self._sliced or (key in self._graph and is_placeholder(key)):
                return key
            if key in self._graph:
                raise FeedError(f"{describe(key)} is computed by the graph, not fed; only inputs "
                                f"and params can be fed")
            return None     # a leaf these outputs do not need: feeds may be shared across calls
        raise FeedError(f"feed keys must be nodes or names, got {type(key).__name__} {key!r}")


def _layout(feed: Mapping[Any, Any]) -> tuple | None:
    """What a feed's checks depend on besides its values: each key (a name, or a node by
    identity) with its array's shape and dtype. None unless every value is an ndarray."""
    out = []
    for key, value in feed.items():
        if value.__class__ is not np.ndarray:
            return None
        out.append(key if key.__class__ is str else id(key))
        out.append(value.shape)
        out.append(value.dtype)
    return tuple(out)


def _check_sequence(copies: Sequence[Node], value: Any) -> np.ndarray | None:
    """A whole sequence for the step copies ``copies``, checked (and converted) as
    ``_check_value`` checks each step; None if any step would fail (``resolve`` then raises the
    error for it)."""
    p = copies[0]
    try:
        array = _as_array(f"sequence {p.name!r}", value)
    except FeedError:
        return None
    steps = p.attrs.get("steps") or max(c.step for c in copies)
    if array.ndim == 0 or array.shape[0] != steps:
        return None
    if not (array.shape[1:] == p.shape or array.shape[2:] == p.shape and
            array.ndim == p.ndim + 2 and array.shape[1] > 0):
        return None
    try:
        return _convert(p, array)
    except FeedError:
        return None


def _as_array(what: str | Node, value: Any) -> np.ndarray:
    """``np.asarray(value)``, with a ragged nest of lists refused by name (``what``, or the
    node described)."""
    if value.__class__ is np.ndarray:
        return value
    if isinstance(value, Node):
        raise FeedError(f"{describe(what) if isinstance(what, Node) else what} is fed a node, "
                        f"{describe(value)}; a feed holds values (arrays): evaluate the node "
                        f"first, or build the graph from it")
    try:
        return np.asarray(unmasked(value, describe(what) if isinstance(what, Node) else what,
                                   FeedError))
    except (ValueError, TypeError) as exc:
        if isinstance(exc, FeedError):
            raise
        if isinstance(what, Node):
            what = describe(what)
        raise FeedError(f"{what} is fed a value numpy cannot make an array of — ragged rows "
                        f"(lists of different lengths)? ({exc}); feed a rectangular array"
                        ) from None


def _check_value(p: Node, value: Any) -> np.ndarray:
    array = _convert(p, _as_array(p, value))
    if array.shape == p.shape:
        return array
    if array.shape[1:] == p.shape and array.ndim == p.ndim + 1:
        if p.op is PARAM:
            raise FeedError(f"param {describe(p)} is fed with shape {array.shape}: parameters "
                            f"are shared by every example and never take a batch axis")
        if array.shape[0] == 0:
            raise FeedError(f"{describe(p)} is fed a batch of 0 examples (shape {array.shape}); "
                            f"a batch needs at least one example")
        return array
    if p.op is PARAM:
        raise FeedError(f"param {describe(p)} is fed with shape {array.shape}; expected "
                        f"{p.shape}")
    if p.step is not None and p.source is not None:      # a step of a sequence fed whole
        tau = p.attrs.get("steps", "τ")
        raise FeedError(f"sequence {p.name!r} is fed with steps of shape {array.shape}; each step "
                        f"is {p.shape}: feed an array of shape ({tau},) + {p.shape} for one "
                        f"sequence, or ({tau}, batch) + {p.shape} for a batch")
    raise FeedError(f"{describe(p)} is fed with shape {array.shape}; expected {p.shape} for one "
                    f"example, or (batch,) + {p.shape} for a batch")


def _convert(p: Node, array: np.ndarray) -> np.ndarray:
    """``array`` in ``p``'s dtype, refusing any conversion that loses what the value says."""
    kind, got = p.dtype.kind, array.dtype.kind
    if p.attrs.get("binary"):
        return _binary(p, array)
    ok = (got in "fiub" if kind == "f" else got in "iub" if kind in "iu" else got == kind)
    if not ok:
        what = {"U": "strings", "S": "bytes", "O": "Python objects: None, integers too large "
                "for int64, mixed types?", "c": "complex numbers"}.get(got)
        raise FeedError(f"{describe(p)} is fed an array of dtype {array.dtype}, which cannot be "
                        f"converted to {p.dtype} without loss{f' ({what})' if what else ''}; "
                        f"convert it before feeding")
    if array.dtype == p.dtype:
        return array
    if kind in "iu" and got in "iu" and array.size:
        info = np.iinfo(p.dtype)
        low, high = int(array.min()), int(array.max())
        if low < info.min or high > info.max:
            bad = low if low < info.min else high
            raise FeedError(f"{describe(p)} is fed the value {bad}, outside the range of "
                            f"{p.dtype} [{info.min}, {info.max}]; converting would wrap it "
                            f"around to another number")
    with np.errstate(over="ignore", invalid="ignore"):      # an overflow is reported below
        converted = array.astype(p.dtype)
    if kind == "f" and got in "fiu":
        overflow = np.isinf(converted) & np.isfinite(array)
        if overflow.any():
            index = tuple(int(i) for i in np.argwhere(overflow)[0])
            raise FeedError(f"{describe(p)} is fed the value {array[index]!r} (at index "
                            f"{index}), which overflows {p.dtype} (largest "
                            f"{np.finfo(p.dtype).max:.4g}) to inf; rescale the data or use a "
                            f"wider dtype")
    return converted


def _binary(p: Node, array: np.ndarray) -> np.ndarray:
    """A padding mask as booleans: numbers 0 and 1 (or booleans) only."""
    if array.dtype.kind not in "biuf":
        raise FeedError(f"{describe(p)} is fed an array of dtype {array.dtype}; a mask holds 0 "
                        f"(padding) or 1 (a real step)")
    if array.dtype.kind != "b":
        wrong = (array != 0) & (array != 1)
        if wrong.any():
            index = tuple(int(i) for i in np.argwhere(wrong)[0]) if array.ndim else ()
            raise FeedError(f"the mask {p.label!r} holds {array[index]!r}"
                            f"{f' at index {index}' if index else ''}; a mask holds only 0 "
                            f"(padding) and 1 (a real step) — to weight steps, multiply the "
                            f"loss instead")
        array = array != 0
    return array


def _zero_padding(value: np.ndarray, mask: np.ndarray, p: Node) -> np.ndarray:
    """A sequence's step with its padded examples replaced by zeros (``mask`` is that step's
    boolean mask, one per example or one for all)."""
    if mask.all():
        return value
    if mask.ndim:                                # per example: the batch axis leads
        mask = mask.reshape(mask.shape + (1,) * p.ndim)
    return np.where(mask, value, np.zeros((), value.dtype))
