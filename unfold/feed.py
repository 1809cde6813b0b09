"""Feeds: how a compiled graph may be fed, and the check of a feed before any work is done.

A graph is fed by placeholder node, by name, or — for an unfolded recurrence — by the folded
sequence node (or its name), whose array ``(τ, …)`` or ``(τ, batch, …)`` is sliced along time for
the per-step inputs ``x(1) … x(τ)``. Every value is checked for completeness, shape and dtype before
the first op runs.
"""
from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import FeedError, describe
from .graph import Node
from .ops.base import PARAM, is_placeholder


class Feeds:
    """The feed keys of a graph whose placeholders are ``placeholders`` and whose nodes are
    ``graph`` (a container: a computed node given as a key is refused by name)."""

    def __init__(self, placeholders: Sequence[Node], graph: Container[Node]) -> None:
        self.placeholders = list(placeholders)
        self._graph = graph
        # feed keys: placeholders themselves, and the folded nodes that per-step copies come from
        self._sliced: dict[Node, list[Node]] = {}
        for p in self.placeholders:
            if p.step is not None and p.source is not None:
                self._sliced.setdefault(p.source, []).append(p)
        sliced = {c for copies in self._sliced.values() for c in copies}
        self._direct = [p for p in self.placeholders if p not in sliced]
        self._by_name: dict[str, set[Node]] = {}
        for p in self.placeholders:
            key = p.source if p.step is not None and p.source is not None else p
            if key.name is not None:
                self._by_name.setdefault(key.name, set()).add(key)
        # names of the recurrence an unfolded graph came from: a feed for the whole model may
        # name what these outputs do not need (the targets, when evaluating outputs)
        self._model_names = frozenset().union(*(p.attrs.get("model", ()) for copies in
                                                self._sliced.values() for p in copies[:1]))

    def resolve(self, feed: Mapping[Any, Any]) -> dict[Node, np.ndarray]:
        """Placeholder → array, checked for completeness, shape and dtype before any work."""
        values: dict[Node, Any] = {}
        for key, value in feed.items():
            node = self._key(key)
            if node is None:
                continue
            if node in self._sliced:
                copies = self._sliced[node]
                array = np.asarray(value)
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
            listed = ", ".join(repr(p.source.name if p.source is not None and p.step else p.label)
                               for p in missing[:8])
            raise FeedError(f"missing feed for {len(missing)} placeholder(s): {listed}"
                            f"{' …' if len(missing) > 8 else ''}; every input and param the "
                            f"outputs depend on must be fed")
        return {p: _check_value(p, values[p]) for p in self.placeholders}

    def resolve_sequences(self, feed: Mapping[Any, Any]):
        """The same check as ``resolve`` without slicing sequences: ``(values, sequences)`` with
        ``values`` for the placeholders fed one by one and ``sequences`` mapping each folded
        sequence fed whole to its checked array ``(τ, [batch,] …)``. None when the feed is not of
        that simple kind (``resolve`` then does the work, and names any error)."""
        values: dict[Node, Any] = {}
        sequences: dict[Node, np.ndarray] = {}
        for key, value in feed.items():
            node = self._key(key)
            if node is None:
                continue
            if node in self._sliced:
                if node in sequences:
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
            if not found and key in self._model_names:
                return None
            if not found:
                raise FeedError(f"unknown feed name {key!r}: the graph's placeholders are "
                                f"{sorted(self._by_name)}")
            if len(found) > 1:
                raise FeedError(f"the name {key!r} is shared by {len(found)} placeholders "
                                f"({', '.join(describe(n) for n in found)}); feed them by node")
            return next(iter(found))
        if isinstance(key, Node):
            if key in self._sliced or (key in self._graph and is_placeholder(key)):
                return key
            if key in self._graph:
                raise FeedError(f"{describe(key)} is computed by the graph, not fed; only inputs "
                                f"and params can be fed")
            return None     # a leaf these outputs do not need: feeds may be shared across calls
        raise FeedError(f"feed keys must be nodes or names, got {type(key).__name__} {key!r}")


def _check_sequence(copies: Sequence[Node], value: Any) -> np.ndarray | None:
    """A whole sequence for the step copies ``copies``, checked as ``_check_value`` checks each
    step; None if any step would fail (``resolve`` then raises the error for it)."""
    p = copies[0]
    array = np.asarray(value)
    steps = p.attrs.get("steps") or max(c.step for c in copies)
    if array.ndim == 0 or array.shape[0] != steps:
        return None
    kind = p.dtype.kind
    ok = (array.dtype.kind in "fiub" if kind == "f" else
          array.dtype.kind in "iub" if kind in "iu" else array.dtype.kind == kind)
    if not ok or not (array.shape[1:] == p.shape or array.shape[2:] == p.shape and
                      array.ndim == p.ndim + 2):
        return None
    return array if array.dtype == p.dtype else array.astype(p.dtype)


def _check_value(p: Node, value: Any) -> np.ndarray:
    array = np.asarray(value)
    kind = p.dtype.kind
    ok = (array.dtype.kind in "fiub" if kind == "f" else
          array.dtype.kind in "iub" if kind in "iu" else array.dtype.kind == kind)
    if not ok:
        raise FeedError(f"{describe(p)} is fed an array of dtype {array.dtype}, which cannot be "
                        f"converted to {p.dtype} without loss; convert it before feeding")
    if array.dtype != p.dtype:
        array = array.astype(p.dtype)
    if array.shape == p.shape:
        return array
    if array.shape[1:] == p.shape and array.ndim == p.ndim + 1:
        if p.op is PARAM:
            raise FeedError(f"param {describe(p)} is fed with shape {array.shape}: parameters "
                            f"are shared by every example and never take a batch axis")
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
