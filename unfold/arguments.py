"""The checks of the public API's plain arguments — counts, sizes, rates, choices — written once.

Each raises the library's exception that is also the builtin a caller expects: a value of the
wrong type is an ``UnfoldTypeError`` (a ``TypeError``), a number out of its range an
``UnfoldValueError`` (a ``ValueError``); the message names the argument, what it must be, and
what it got.
"""
from __future__ import annotations

import functools
import inspect
import math
import os
import stat
from numbers import Real
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from .errors import UnfoldError, UnfoldTypeError, UnfoldValueError, as_raised
from .ops.base import is_int

F = TypeVar("F", bound=Callable[..., Any])


def positive_int(what: str, value: Any, minimum: int = 1,
                 error: type[ValueError] = UnfoldValueError) -> int:
    """``value`` as an int ≥ ``minimum`` (booleans are not counts); ``error`` is raised for a
    value out of range (a subclass of ``UnfoldError`` and ``ValueError``)."""
    wanted = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
    if not is_int(value):
        raise UnfoldTypeError(f"{what} must be {wanted}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise error(f"{what} must be {wanted}, got {value!r}")
    return int(value)


def real(what: str, value: Any, *, low: float = -math.inf, high: float = math.inf,
         low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float in the interval from ``low`` to ``high`` (each end closed
    unless ``*_open``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        raise UnfoldTypeError(f"{what} must be a real number, got {type(value).__name__} "
                              f"{value!r}")
    number = float(value)
    inside = math.isfinite(number) and \
        (low < number if low_open else low <= number) and \
        (number < high if high_open else number <= high)
    if not inside:
        raise UnfoldValueError(f"{what} must be a finite number in "
                               f"{'(' if low_open else '['}{low:g}, {high:g}"
                               f"{')' if high_open else ']'}, got {value!r}")
    return number


def positive(what: str, value: Any) -> float:
    """A finite number > 0 (a learning rate, a threshold)."""
    return real(what, value, low=0.0, low_open=True)


def fraction(what: str, value: Any) -> float:
    """A number in [0, 1) (a decay rate, a momentum)."""
    return real(what, value, low=0.0, high=1.0, high_open=True)


def choice(what: str, value: Any, choices: Sequence[str]) -> str:
    """One of a few named options."""
    if not isinstance(value, str) or value not in choices:
        raise UnfoldValueError(f"{what} must be one of {tuple(choices)}, got {value!r}")
    return value


def flag(what: str, value: Any) -> bool:
    """A boolean switch (``True``/``False``, not any truthy object)."""
    if not isinstance(value, (bool, np.bool_)):
        raise UnfoldTypeError(f"{what} must be True or False, got {type(value).__name__} "
                              f"{value!r}")
    return bool(value)


def generator(what: str, seed: Any) -> np.random.Generator:
    """A numpy random generator from a generator, a seed (an integer ≥ 0) or None."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None:
        positive_int(what, seed, minimum=0)
    return np.random.default_rng(seed)


def float_dtype(what: str, dtype: Any) -> np.dtype:
    """A floating-point dtype (what the networks compute in)."""
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise UnfoldTypeError(f"{what}: {dtype!r} is not a dtype; use e.g. numpy.float64 or "
                              f"'float32'") from None
    if dt.kind != "f":
        raise UnfoldTypeError(f"{what} must be a floating-point dtype (float32, float64), got "
                              f"{dt}")
    return dt


def file_path(what: str, path: Any, error: type[Exception] = UnfoldValueError) -> str:
    """``path`` (a string, bytes or os.PathLike) as a string, ``~`` expanded to the home
    folder. Refused: anything else (``UnfoldTypeError``), a null character, and an existing file
    that is neither a regular file nor a folder — a FIFO would block reading or writing forever,
    and a device must not be replaced (``error``, which names the path)."""
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError:
        raise UnfoldTypeError(f"{what}: the path must be a string or os.PathLike, got "
                              f"{type(path).__name__} {path!r}") from None
    if "\0" in text:                   # (a ValueError, as open's)
        raise (error if issubclass(error, ValueError) else UnfoldValueError)(
            f"{what}: the path {text!r} holds a null character, which no file name can")
    text = os.path.expanduser(text)
    try:
        mode = os.stat(text).st_mode
    except (OSError, ValueError):
        return text                     # missing (or a symlink loop): the caller's open says so
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise error(f"{what}: {text!r} is not a regular file (a FIFO, a socket or a device); "
                    f"give the path of an ordinary file")
    return text


def allocates(fn: F) -> F:
    """Mark a public function whose array sizes come from its caller: a ``MemoryError`` it meets
    is the library's (``UnfoldError`` and ``MemoryError``), naming the call and the fix."""
    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        _CALLS[0] += 1
        try:
            return fn(*args, **kwargs)
        except MemoryError as exc:
            if isinstance(exc, UnfoldError) or _CALLS[0] > 1:
                raise                   # (the outermost call, the caller's, is named)
            asked = ", ".join(f"{k}={v!r:.60}" for k, v in _arguments(fn, args, kwargs)
                              if isinstance(v, (int, float, tuple, list)) and
                              not isinstance(v, bool))
            raise as_raised(exc, f"{fn.__qualname__}: the sizes asked for ({asked}) do not fit "
                                 f"in memory ({exc or 'out of memory'}); ask for smaller ones"
                            ) from None
        finally:
            _CALLS[0] -= 1
    return checked  # type: ignore[return-value]


_CALLS = [0]                # how deep calls of functions marked ``allocates`` are nested


def _arguments(fn: Callable[..., Any], args: tuple, kwargs: dict) -> list[tuple[str, Any]]:
    """The arguments of a call of ``fn`` by name (for a message)."""
    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):
        bound = {**{f"#{i}": v for i, v in enumerate(args)}, **kwargs}
    return [(k, v) for k, v in bound.items() if k not in ("self", "cls")]
