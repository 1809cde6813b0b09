"""Codegen: the instructions of a plan as one function of no argument."""
from __future__ import annotations


def generate(units):
    flat = [(i.fn, i.args) for code in units for i in code]

    def run():
        for fn, args in flat:
            fn(*args)
    return run, len(flat)
