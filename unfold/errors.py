"""The library's exceptions.

Each subclasses the builtin a caller would expect (``except ValueError`` keeps working), and each
message names the node (and its time step when it has one), the shapes involved, and the fix.
"""
from __future__ import annotations


class UnfoldError(Exception):
    """Base class of every exception raised by unfold."""


class UnfoldValueError(UnfoldError, ValueError):
    """An argument has a value the library cannot use (a negative chunk, an unknown mode)."""


class UnfoldTypeError(UnfoldError, TypeError):
    """An argument is of a type the library cannot use (a number where a node is needed)."""


class UnfoldKeyError(UnfoldError, KeyError):
    """A name the library was asked for is unknown, or a required one is missing."""

    def __str__(self) -> str:          # KeyError would quote the message
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class UnfoldNotImplementedError(UnfoldError, NotImplementedError):
    """An op lacks a rule it was asked for (a custom op without a batching rule or a vjp)."""


class UnfoldAttributeError(UnfoldError, AttributeError):
    """An attribute cannot be set (nodes are immutable) or does not exist."""


class ShapeError(UnfoldError, ValueError):
    """Operand shapes break an op's shape rule."""


class UnfoldIndexError(ShapeError, IndexError):
    """An index or an axis is out of range (numpy raises IndexError, or AxisError — a ValueError
    and an IndexError — for the same mistakes)."""


class DTypeError(UnfoldError, TypeError):
    """Operand dtypes break an op's dtype rule."""


class FeedError(UnfoldError, ValueError):
    """A feed given to ``evaluate`` is missing, unknown, ambiguous or of the wrong shape."""


class GradError(UnfoldError, ValueError):
    """``grad`` was asked something it cannot answer (e.g. a non-scalar output without a seed)."""


class RecurrenceError(UnfoldError, ValueError):
    """A ``Recurrence`` is not a valid folded graph."""


class GradcheckError(UnfoldError, AssertionError):
    """Reverse-mode gradients disagree with central finite differences."""


_AS_RAISED: dict[type, type] = {}


def as_raised(exc: Exception, message: str) -> UnfoldError:
    """An ``UnfoldError`` with ``message`` that is also of ``exc``'s own class — a numpy failure
    inside an op (``FloatingPointError``, ``MemoryError``…) reported by the library, still caught
    by ``except`` clauses written for the original."""
    if isinstance(exc, UnfoldError):
        return exc
    # the class itself, or else the nearest builtin it derives from (numpy's _ArrayMemoryError
    # takes a shape and a dtype, not a message: it is reported as a MemoryError)
    for cls in [type(exc)] + [c for c in type(exc).__mro__[1:] if c.__module__ == "builtins"]:
        kind = _AS_RAISED.get(cls)
        if kind is None:
            try:
                kind = type(f"Unfold{cls.__name__}", (UnfoldError, cls), {"__module__": __name__})
            except TypeError:               # a class that cannot be subclassed
                continue
            _AS_RAISED[cls] = kind
        try:
            return kind(message)
        except Exception:                   # a constructor that needs more than a message
            continue
    return UnfoldError(message)


def describe(node) -> str:
    """``'h(3)' [tanh, shape (4,), float64]`` — how messages name a node."""
    return f"{node.label!r} [{node.op.name}, shape {node.shape}, {node.dtype}]"
