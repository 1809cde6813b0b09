"""Shrink one failure of cells(**kwargs) batched vs reference; prints the minimal description.
usage: shrink.py '<kwargs as python dict>' [mask] [loops] [seed]"""
import os, sys; sys.path.insert(0, "/work/wt/fuzz/tests"); sys.path.insert(0, os.environ.get("UNFOLD_ROOT", "/work/wt/fuzz"))
import ast, numpy as np
from hypothesis import given, settings, strategies as st, HealthCheck, seed as hseed
import unfold as uf
from unfold import timebatch
from unfold.timebatch import lower
sys.path.insert(1, "/work/wt/fuzz/scratch"); from cellsmod import cells
from timebatch_tolerance import assert_agree
timebatch.STRICT = True
kw = ast.literal_eval(sys.argv[1]) if len(sys.argv) > 1 else {}
if "dtypes" in kw: kw["dtypes"] = tuple(np.dtype(d) for d in kw["dtypes"])
MASK = "mask" in sys.argv[2:]; CRASH = "crash" in sys.argv[2:]; NOACT = "noact" in sys.argv[2:]; LOOPS = "loops" in sys.argv[2:]
SEED = int(sys.argv[-1]) if sys.argv[-1].isdigit() else 0
if LOOPS: lower.LOOP_STEPS = 2

@hseed(SEED)
@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck), database=None, report_multiple_bugs=False)
@given(drawn=cells(**kw))
def run(drawn):
    if NOACT and any(k.endswith("act before slicing") for k in drawn.description):
        return
    g = drawn.unfold(mask=MASK)
    feed = dict(drawn.feed)
    if MASK:
        feed["mask"] = np.ones((drawn.steps,) if drawn.batch is None else (drawn.steps, drawn.batch), drawn.dtype)
    outs = [g.loss] + uf.grad(g.loss, g.params)
    want = uf.evaluate(outs, feed, mode="reference")
    if not all(np.all(np.isfinite(w)) and np.all(np.abs(w) < 1e8) for w in want):
        return
    if CRASH:
        try:
            uf.evaluate(outs, feed)
        except Exception as e:
            raise RuntimeError(f"{drawn.description}\n   crash: {e!r}")
        return
    got = uf.evaluate(outs, feed)
    labels = ["L"] + [p.label for p in g.params]
    bad = {l: float(np.abs(a - b).max()) for l, a, b in zip(labels, got, want)
           if np.abs(a - b).max() > 1e-10 * max(1, np.abs(b).max())}
    assert not bad, f"{drawn.description}\n   wrong: {bad}"
try:
    run()
    print("no failure")
except BaseException as e:
    for x in getattr(e, "exceptions", [e]):
        print(str(x)[:3000])
