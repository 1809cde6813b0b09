"""Data shipped with unfold, for the demo and for experiments without downloads.

``coriolanus.txt`` is the opening of Shakespeare's *Coriolanus* (Act I, about 32 KB; public
domain), as plain text with the speakers' names, the usual corpus of character-level language
models.
"""
from __future__ import annotations

from importlib import resources
from typing import Iterable

import numpy as np

from ..errors import UnfoldKeyError, UnfoldValueError

TEXTS = ("coriolanus",)


def load_text(name: str = "coriolanus") -> str:
    """The text of a shipped corpus."""
    if name not in TEXTS:
        raise UnfoldValueError(f"no shipped text {name!r}; available: {TEXTS}")
    return resources.files(__name__).joinpath(f"{name}.txt").read_text(encoding="utf-8")


class Vocabulary:
    """The characters of a text, as integer ids (sorted, so the ids do not depend on order)."""

    def __init__(self, text: Iterable[str]) -> None:
        self.symbols: list[str] = sorted(set(text))
        self.ids = {s: i for i, s in enumerate(self.symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> np.ndarray:
        try:
            return np.array([self.ids[c] for c in text], np.int64)
        except KeyError as exc:
            raise UnfoldKeyError(f"character {exc.args[0]!r} is not in the vocabulary "
                                 f"({len(self)} symbols)") from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.symbols[self._id(i)] for i in ids)

    def _id(self, i) -> int:
        if isinstance(i, (int, np.integer)) and not isinstance(i, bool) and 0 <= i < len(self):
            return int(i)
        raise UnfoldValueError(f"id {i!r} is not one of the vocabulary's 0…{len(self) - 1}")
