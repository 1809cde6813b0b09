"""Shared pytest configuration: hypothesis profiles.

Every property test is derandomized: hypothesis derives its examples from the test's name, so a
run is reproducible and a failure shows the falsifying example — including the integer seeds from
which the arrays of that example are generated (see ``unfold.testing.strategies.array``).

    HYPOTHESIS_PROFILE=heavy pytest      # many more examples per property (``make test-heavy``)
"""
from __future__ import annotations

import gc
import importlib.util
import os

import pytest
from hypothesis import HealthCheck, settings

import unfold as uf
from examples import DEFAULT_EXAMPLES

# Tests against an optional outside oracle are collected only where the oracle is installed
# (`make test-oracles` installs it), so that `make test` never reports skipped cases; the numpy
# references (tests/test_models_reference.py) cover the same models without it.
ORACLES = {"torch": "test_models_torch.py"}
collect_ignore = [test for module, test in ORACLES.items() if importlib.util.find_spec(module) is None]

settings.register_profile(
    "default",
    derandomize=True,
    deadline=None,
    max_examples=DEFAULT_EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile("heavy", parent=settings.get_profile("default"), max_examples=300)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)


def pytest_report_header(config):
    current = settings()
    return (f"hypothesis profile {PROFILE!r}: max_examples={current.max_examples}, "
            f"derandomize={current.derandomize} (examples are fixed by the test name; arrays "
            f"come from integer seeds printed with any falsifying example)")


def _serial() -> int:
    """The serial number the next node will get (this probe takes one)."""
    return uf.input("probe").serial


@pytest.fixture(autouse=True)
def _release_compiled_programs():
    """Each test ends without programs cached by ``evaluate``, and a test that built a large
    graph (a τ = 100 000 test's millions of nodes) without garbage too: otherwise its graph would
    stay alive in the worker, and the cyclic collector would walk it in whichever later test it
    happens to run. (A full collection after every test would cost more than many tests do.)"""
    start = _serial()
    yield
    uf.clear_cache()
    if _serial() - start > LARGE:
        gc.collect()


LARGE = 200_000     # nodes built by one test
