"""How many hypothesis examples a property runs, relative to the loaded profile.

A property that costs more than most runs fewer examples than the profile's ``max_examples`` (25
by default); ``scaled(n)`` keeps that ratio under every profile, so ``HYPOTHESIS_PROFILE=heavy``
(300) runs 12× more of each instead of leaving a literal ``max_examples=n`` at n.
"""
from __future__ import annotations

from hypothesis import settings

DEFAULT_EXAMPLES = 25                       # the default profile's max_examples (tests/conftest.py)


def scaled(n: int) -> int:
    """``n`` examples under the default profile, proportionally more or fewer under another."""
    return max(1, n * settings().max_examples // DEFAULT_EXAMPLES)
