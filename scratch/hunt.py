"""Hunt: cells() drawn recurrences, batched vs reference."""
import os, sys; sys.path.insert(0, os.environ.get("UNFOLD_ROOT", "/work/wt/fuzz"))
import sys, traceback, numpy as np

from hypothesis import given, settings, strategies as st, HealthCheck, Phase
import unfold as uf
from unfold import timebatch
from unfold.timebatch import lower
sys.path.insert(1, "/work/wt/fuzz/scratch"); from cellsmod import cells
sys.path.insert(0, "tests")
from timebatch_tolerance import assert_agree

timebatch.STRICT = True
N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
LOOPS = len(sys.argv) > 2 and sys.argv[2] == "loops"
if LOOPS:
    lower.LOOP_STEPS = 2
fails = []
import ast
KW = ast.literal_eval(os.environ.get("CELLS", "{}"))

@settings(max_examples=N, deadline=None, suppress_health_check=list(HealthCheck), database=None,
          phases=[Phase.generate])
@given(drawn=cells(**KW), mask=st.booleans(), truncate=st.sampled_from([None, None, 2]))
def run(drawn, mask, truncate):
    g = drawn.unfold(mask=mask, truncate=truncate)
    feed = dict(drawn.feed)
    if mask:
        rng = np.random.default_rng(drawn.description["seed"])
        lengths = rng.integers(1, drawn.steps + 1, size=() if drawn.batch is None else (drawn.batch,))
        t = np.arange(drawn.steps).reshape((drawn.steps,) + (1,) * (drawn.batch is not None))
        feed["mask"] = (t < lengths).astype(drawn.dtype)
    outs = [g.loss] + uf.grad(g.loss, g.params)
    for name in drawn.recurrence.states:
        outs.append(g.final(name))
    for name in drawn.recurrence.outputs:
        outs += g.over_time(name)
    try:
        got = uf.evaluate(outs, feed)
        want = uf.evaluate(outs, feed, mode="reference")
        assert_agree(outs, got, want, feed)
    except Exception as e:
        fails.append((drawn, mask, truncate, repr(e)[:300]))

run()
print(f"{len(fails)} failures of {N}")
for d, m, t, e in fails[:40]:
    print("---", d.description, "mask", m, "truncate", t)
    print("   ", e)
