"""Bind: fed arrays read where the caller keeps them, instead of copied into the plan.

A plan's calls read fed values — parameters, whole sequences — through views of one buffer per
placeholder (``Uᵀ``, the steps of ``x`` stacked as ``(τ·B, m)``). When every such view is a
name of the generated function (not a row of a step loop, nor inside an argument), the buffer
need not exist: each call makes the views from the caller's array itself when its layout is the
buffer's (C-contiguous, same dtype and shape), and from a copy otherwise. Nothing ever writes
into it (fed values are only read, and memory sharing never ties a buffer over a bound one).
After the call the views of the caller's arrays are dropped (``Bound.release``): a cached plan
never keeps an array alive that the caller has let go, at the price of a few views made again
on the next call — each by the cheapest recipe that makes exactly it (the array itself, a
reshaped slice of it, the transpose of one: ~0.3 µs; a general strided view: ~1.7 µs).
"""
from __future__ import annotations

import numpy as np

#: fed values smaller than this are copied (a copy of a few kilobytes costs less than the views)
BIND_BYTES = 1024


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def _owner(a: np.ndarray) -> np.ndarray:
    return a if a.base is None else a.base


class Bound:
    """The views of one fed buffer in the generated function's namespace ``space``."""

    __slots__ = ("shape", "dtype", "views", "space", "target", "own")

    def __init__(self, buffer: np.ndarray, views: list, space: dict) -> None:
        self.shape, self.dtype, self.space = buffer.shape, buffer.dtype, space
        start = _address(buffer)
        self.views = [(name, _recipe(buffer, v), v.shape, _address(v) - start, v.strides)
                      for name, v in views]
        self.target = self.own = None
        for name, _ in views:
            space[name] = None               # the planning buffer is dropped

    def bind(self, value: np.ndarray) -> None:
        """Make the views read ``value`` (a checked array of the placeholder's shape)."""
        if value.__class__ is np.ndarray and value.dtype == self.dtype and \
                value.shape == self.shape and value.flags.c_contiguous and value.flags.aligned:
            target = value
        else:                                # another layout: read from a copy, every call
            target = self.staging()
            np.copyto(target, value)
        if target is self.target:
            return
        space, dtype, flat = self.space, self.dtype, target.reshape(-1)
        for name, how, shape, offset, strides in self.views:
            if how is None:
                space[name] = np.ndarray(shape, dtype, buffer=target, offset=offset,
                                         strides=strides)
            elif how == "whole":
                space[name] = target
            else:
                view = flat[how[1]:how[2]].reshape(how[3])
                space[name] = view.T if how[0] == "T" else view
        self.target = target

    def release(self) -> None:
        """Drop the views of the caller's array (those of the own staging array stay)."""
        if self.target is not None and self.target is not self.own:
            space = self.space
            for name, *_ in self.views:
                space[name] = None
            self.target = None

    def staging(self) -> np.ndarray:
        """An array of the buffer's layout, to assemble a value fed in pieces (then bound)."""
        if self.own is None:
            self.own = np.empty(self.shape, self.dtype)
        return self.own


def _recipe(buffer: np.ndarray, view: np.ndarray):
    """How ``Bound.bind`` makes ``view`` of a C-contiguous ``buffer`` again, for another array
    of its layout: "whole" (the array itself), ``("C", start, stop, shape)`` (a slice of it
    flat, reshaped), ``("T", start, stop, shape)`` (… the transpose of one), or None (a general
    strided view) — each checked to make exactly ``view``."""
    if view.shape == buffer.shape and view.strides == buffer.strides and \
            _address(view) == _address(buffer):
        return "whole"
    at, rem = divmod(_address(view) - _address(buffer), buffer.itemsize)
    flat = buffer.reshape(-1)
    for kind, shape in (("C", view.shape), ("T", view.shape[::-1])):
        if rem or view.ndim == 0:
            break
        try:
            made = flat[at:at + view.size].reshape(shape)
        except ValueError:
            continue
        made = made.T if kind == "T" else made
        if made.shape == view.shape and made.strides == view.strides and \
                _address(made) == _address(view):
            return (kind, at, at + view.size, shape)
    return None


def arrays_in(obj, out: list) -> None:
    """Append to ``out`` every array in ``obj``, nested in tuples and lists (an instruction's
    arguments)."""
    if isinstance(obj, np.ndarray):
        out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for x in obj:
            arrays_in(x, out)


def bind(space: dict, candidates: dict[int, np.ndarray], outputs: list) -> dict[int, Bound]:
    """The candidate buffers (id → buffer) whose every view in ``space`` (the generated
    function's names) is a name of its own, bound there: id → ``Bound``."""
    views: dict[int, list] = {k: [] for k in candidates}
    loose: set[int] = set()                 # read inside a list or a tuple, or an output
    for name, value in space.items():
        if isinstance(value, np.ndarray):
            k = id(_owner(value))
            if k in views:
                views[k].append((name, value))
        elif isinstance(value, (tuple, list)):
            found: list = []
            arrays_in(value, found)
            loose.update(id(_owner(a)) for a in found)
    found = []
    arrays_in(outputs, found)
    loose.update(id(_owner(a)) for a in found)
    return {k: Bound(candidates[k], views[k], space) for k in candidates
            if k not in loose and views[k]}
