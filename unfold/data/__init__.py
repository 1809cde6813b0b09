"""Data shipped with unfold, for the demo and for experiments without downloads.

``coriolanus.txt`` is the opening of Shakespeare's *Coriolanus* (Act I, about 32 KB; public
domain), as plain text with the speakers' names, the usual corpus of character-level language
models.
"""
from __future__ import annotations

from importlib import resources
from typing import Any, Iterable

import numpy as np

from ..errors import UnfoldKeyError, UnfoldTypeError, UnfoldValueError

TEXTS = ("coriolanus",)


def load_text(name: str = "coriolanus") -> str:
    """The text of a shipped corpus."""
    if name not in TEXTS:
        raise UnfoldValueError(f"no shipped text {name!r}; available: {TEXTS}")
    return resources.files(__name__).joinpath(f"{name}.txt").read_text(encoding="utf-8")


def _characters(what: str, text: Any) -> list[str]:
    """``text`` as its symbols: a string's characters, or a sequence of strings."""
    if isinstance(text, str):
        return list(text)
    if not isinstance(text, Iterable) or isinstance(text, bytes):
        raise UnfoldTypeError(f"{what} must be a string (or a sequence of strings), got "
                              f"{type(text).__name__} {text!r:.60}")
    symbols = list(text)
    bad = next((s for s in symbols if not isinstance(s, str)), None)
    if bad is not None:
        raise UnfoldTypeError(f"{what} must be a string (or a sequence of strings), but it "
                              f"holds {type(bad).__name__} {bad!r:.60}")
    return symbols


class Vocabulary:
    """The characters of a text, as integer ids (sorted, so the ids do not depend on order)."""

    def __init__(self, text: Iterable[str]) -> None:
        symbols = set(_characters("Vocabulary: the text", text))
        self.symbols: list[str] = sorted(symbols)
        self.ids = {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> np.ndarray:
        text = _characters("encode: the text", text)
        try:
            return np.array([self.ids[c] for c in text], np.int64)
        except KeyError as exc:
            raise UnfoldKeyError(f"character {exc.args[0]!r} is not in the vocabulary "
                                 f"({len(self)} symbols)") from None

    def decode(self, ids: Iterable[int]) -> str:
        if isinstance(ids, (str, bytes)) or not isinstance(ids, (Iterable, np.ndarray)) or \
                isinstance(ids, np.ndarray) and ids.ndim != 1:
            raise UnfoldTypeError(f"decode: the ids must be a sequence of integers, got "
                                  f"{type(ids).__name__} {ids!r:.60}")
        return "".join(self.symbols[self._id(i)] for i in ids)

    def _id(self, i) -> int:
        if isinstance(i, (int, np.integer)) and not isinstance(i, bool) and 0 <= i < len(self):
            return int(i)
        raise UnfoldValueError(f"id {i!r} is not one of the vocabulary's 0…{len(self) - 1}")
