"""``python -m bench.scale [--steps 100000] [--cases rnn,scalar] [--repeat 3] [--peaks STAGES]
[--passes]``

What building and running a long unfolded graph costs, stage by stage, through the public API:
``Recurrence`` → ``unfold`` → ``grad`` → ``compile`` → evaluate three times (the first run, the
second — where a planning executor may plan — and a later one),
beside the hand-written numpy per-step BPTT of the same recurrence (checked against it first).

Cases: ``tanh`` — the test suite's recurrence with a 4-unit state, ``h(t) = tanh(W h(t−1) +
U x(t))``, ``L = Σ_t ‖h(t)‖²`` (the issue's τ = 100 000 case); ``rnn`` — Fig. 10.3
(eqs. 10.8–10.11) with a 4-unit state and a softmax output, unbatched; ``scalar`` — the scalar
recurrence ``h(t) = tanh(w h(t−1) + u x(t))``, ``L = Σ_t h(t)²`` of tests/test_stability_and_scale.py;
``lstm`` — an LSTM written by hand with a gate per parameter set (``σ(b_f + U_f x(t) + W_f h(t−1))``
…, eqs. 10.40–10.44 with a tanh cell input, as in ``models.lstm(variant="common")``), a 4-unit
state and Fig. 10.3's softmax output, unbatched, checked against bench.workloads' stacked numpy
LSTM.

Every measurement runs in a fresh Python process, so that each peak resident set size
(``ru_maxrss``) is the peak of that measurement alone: ``--repeat`` processes run all stages (the
table shows the minimum time of each stage over them, and their peak as the last stage's), and
one more process per stage of ``--peaks`` stops after it (the peak RSS up to and including that
stage; ``--peaks none`` skips them). Bytes per node are the growth of the
current RSS over a stage divided by the nodes the stage built. The machine is shared: read
minima, and rerun before believing a difference of less than ~20 %; the CPU seconds (the
process's own, ``time.process_time``) move less with the load than the wall-clock ones.
``--passes`` adds a line of CPU seconds per pass of the pipeline (``PASSES``: timers around
the main functions, through the first run) — where the time goes.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

STAGES = ("unfold", "grad", "compile", "run1", "run2", "run3")


# --- the recurrences ----------------------------------------------------------------------------

def fig_10_3(uf, m: int, n: int, k: int):
    """Fig. 10.3: ``h(t) = tanh(b + W h(t−1) + U x(t))``, ``o(t) = c + V h(t)``,
    ``L = Σ_t −log softmax(o(t))_{y(t)}``."""
    rec = uf.Recurrence("rnn")
    x, y = rec.sequence("x", (m,)), rec.target("y", ())
    h = rec.state("h", (n,))
    W, U, b = rec.param("W", (n, n)), rec.param("U", (n, m)), rec.param("b", (n,))
    V, c = rec.param("V", (k, n)), rec.param("c", (k,))
    h_t = rec.update(h, uf.tanh(b + W @ h + U @ x))
    rec.loss("L", uf.cross_entropy(rec.output("o", c + V @ h_t), y))
    return rec, ["U", "W", "b", "V", "c"]


def scalar(uf):
    """``h(t) = tanh(w h(t−1) + u x(t))``, ``L = Σ_t h(t)²``."""
    rec = uf.Recurrence("scalar")
    x, h = rec.sequence("x", ()), rec.state("h", ())
    w, u = rec.param("w", ()), rec.param("u", ())
    rec.loss("L", rec.update(h, uf.tanh(w * h + u * x)) ** 2)
    return rec, ["w", "u"]


def tanh_vector(uf, m: int, n: int):
    """The test suite's recurrence with an n-unit state: ``h(t) = tanh(W h(t−1) + U x(t))``,
    ``L = Σ_t ‖h(t)‖²``."""
    rec = uf.Recurrence("tanh")
    x, h = rec.sequence("x", (m,)), rec.state("h", (n,))
    W, U = rec.param("W", (n, n)), rec.param("U", (n, m))
    h_t = rec.update(h, uf.tanh(W @ h + U @ x))
    rec.loss("L", uf.sum(h_t * h_t))
    return rec, ["W", "U"]


#: the LSTM's gates, in the order of bench.workloads' stacked rows
GATES = ("i", "f", "o", "c")


def lstm(uf, m: int, n: int, k: int):
    """An LSTM with one parameter set per gate: ``i, f, o = σ(b_· + U_· x(t) + W_· h(t−1))``,
    ``s(t) = f s(t−1) + i tanh(b_c + U_c x(t) + W_c h(t−1))``, ``h(t) = o tanh(s(t))``, and
    Fig. 10.3's output ``o(t) = c + V h(t)`` with ``L = Σ_t −log softmax(o(t))_{y(t)}``."""
    rec = uf.Recurrence("lstm")
    x, y = rec.sequence("x", (m,)), rec.target("y", ())
    h, s = rec.state("h", (n,)), rec.state("s", (n,))

    def pre(gate):
        W, U = rec.param(f"W_{gate}", (n, n)), rec.param(f"U_{gate}", (n, m))
        return rec.param(f"b_{gate}", (n,)) + U @ x + W @ h
    i, f, o = (uf.sigmoid(pre(gate)) for gate in GATES[:3])
    s_t = rec.update(s, f * s + i * uf.tanh(pre("c")))
    h_t = rec.update(h, o * uf.tanh(s_t))
    V, c = rec.param("V", (k, n)), rec.param("c", (k,))
    rec.loss("L", uf.cross_entropy(rec.output("o", c + V @ h_t), y))
    return rec, [f"{p}_{gate}" for p in ("U", "W", "b") for gate in GATES] + ["V", "c"]


def _recurrence(uf, case: str, m: int, n: int, k: int):
    if case == "lstm":
        return lstm(uf, m, n, k)
    if case == "scalar":
        return scalar(uf)
    if case == "tanh":
        return tanh_vector(uf, m, n)
    return fig_10_3(uf, m, n, k)


def feed_and_reference(case: str, steps: int, m: int, n: int, k: int):
    """A feed, and the hand-written numpy BPTT computing [L, ∂L/∂params…] from it."""
    rng = np.random.default_rng(0)
    if case == "tanh":
        feed = {"W": rng.standard_normal((n, n)) / np.sqrt(n),
                "U": rng.standard_normal((n, m)) / np.sqrt(m),
                "x": rng.standard_normal((steps, m))}

        def by_hand():
            W, U, xs = feed["W"], feed["U"], feed["x"]
            hs = np.zeros((steps + 1, n))
            for t in range(steps):
                hs[t + 1] = np.tanh(W @ hs[t] + U @ xs[t])
            gh, gW, gU = np.zeros(n), np.zeros((n, n)), np.zeros((n, m))
            for t in range(steps, 0, -1):
                da = (gh + 2 * hs[t]) * (1 - hs[t] * hs[t])
                gW += np.outer(da, hs[t - 1])
                gU += np.outer(da, xs[t - 1])
                gh = W.T @ da
            return [np.sum(hs[1:] ** 2), gW, gU]
        return feed, by_hand
    if case == "scalar":
        feed = {"w": np.array(0.5), "u": np.array(1.0), "x": rng.standard_normal(steps)}

        def by_hand():
            w, u, xs = feed["w"], feed["u"], feed["x"]
            hs = np.zeros(steps + 1)
            for t in range(steps):
                hs[t + 1] = np.tanh(w * hs[t] + u * xs[t])
            gh, gw, gu = 0.0, 0.0, 0.0
            for t in range(steps, 0, -1):
                da = (gh + 2 * hs[t]) * (1 - hs[t] * hs[t])
                gw += da * hs[t - 1]
                gu += da * xs[t - 1]
                gh = w * da
            return [np.sum(hs[1:] ** 2), gw, gu]
        return feed, by_hand
    if case == "lstm":
        from .workloads import numpy_lstm
        stacked = {"U": rng.standard_normal((4 * n, m)) / np.sqrt(m),
                   "W": rng.standard_normal((4 * n, n)) / np.sqrt(n),
                   "b": 0.1 * rng.standard_normal(4 * n), "V": rng.standard_normal((k, n)) /
                   np.sqrt(n), "c": 0.1 * rng.standard_normal(k),
                   "x": rng.standard_normal((steps, m)), "y": rng.integers(0, k, size=steps)}
        feed = {f"{p}_{gate}": stacked[p][j * n:(j + 1) * n] for p in ("U", "W", "b")
                for j, gate in enumerate(GATES)}
        feed.update({key: stacked[key] for key in ("V", "c", "x", "y")})
        batch_of_one = {**stacked, "x": stacked["x"][:, None, :], "y": stacked["y"][:, None]}

        def by_hand():     # [L, ∂L/∂U_i … ∂L/∂b_c, ∂L/∂V, ∂L/∂c]: the stacked rows, split
            loss, dU, dW, db, dV, dc = numpy_lstm(batch_of_one)
            return [loss] + [d[j * n:(j + 1) * n] for d in (dU, dW, db)
                             for j in range(len(GATES))] + [dV, dc]
        return feed, by_hand
    from .workloads import numpy_rnn
    feed = {"U": rng.standard_normal((n, m)) / np.sqrt(m), "W": rng.standard_normal((n, n)) /
            np.sqrt(n), "b": 0.1 * rng.standard_normal(n), "V": rng.standard_normal((k, n)) /
            np.sqrt(n), "c": 0.1 * rng.standard_normal(k), "x": rng.standard_normal((steps, m)),
            "y": rng.integers(0, k, size=steps)}
    batch_of_one = {**feed, "x": feed["x"][:, None, :], "y": feed["y"][:, None]}
    return feed, lambda: numpy_rnn(batch_of_one)     # the same arithmetic, with a batch of 1


# --- one measurement (a child process) ----------------------------------------------------------

def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024     # kB on Linux


#: the passes ``--passes`` times (CPU seconds, through the first run): (label, module, name)
PASSES = (("grad's walk", "unfold.grad", "walk"), ("grad", "unfold.grad", "_backward"),
          ("program's walk", "unfold.evaluate", "walk"), ("Feeds", "unfold.evaluate", "Feeds"),
          ("flat", "unfold.timebatch", "Flat"), ("grouping", "unfold.timebatch", "Grouping"),
          ("strip", "unfold.timebatch", "strip_mine"),
          ("distribute", "unfold.timebatch", "distribute"),
          ("reassociate", "unfold.timebatch", "reassociate"),
          ("lower", "unfold.timebatch.lower", "lower"),
          ("memory", "unfold.timebatch", "Sharing"), ("run", "unfold.timebatch.Plan", "run"))


def _time_passes() -> tuple[dict, list]:
    """Timers around the main functions of the pipeline (no profiler: cProfile triples the
    cost of per-node Python code): the CPU seconds of each, and a switch that stops them."""
    import importlib
    spent: dict[str, float] = {}
    on = [True]

    def timed(label, fn):
        def wrapper(*args, **kwargs):
            if not on[0]:
                return fn(*args, **kwargs)
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0.0) + time.process_time() - start
        return wrapper

    for label, module, name in PASSES:
        if module.endswith(".Plan"):
            owner = importlib.import_module(module[:-len(".Plan")]).Plan
        else:
            owner = importlib.import_module(module)
        setattr(owner, name, timed(label, getattr(owner, name)))
    return spent, on


def child(case: str, steps: int, until: str, m: int, n: int, k: int,
          passes: bool = False) -> dict:
    import unfold as uf
    from unfold.graph import topological
    spent, timing = _time_passes() if passes else ({}, [False])

    feed, by_hand = feed_and_reference(case, steps, m, n, k)
    rec, names = _recurrence(uf, case, m, n, k)
    seconds, cpu, rss = {}, {}, {"start": _rss_now()}
    clock, cpu_clock = time.perf_counter, time.process_time

    def stage(name, run):
        start, start_cpu = clock(), cpu_clock()
        out = run()
        seconds[name], cpu[name], rss[name] = clock() - start, cpu_clock() - start_cpu, _rss_now()
        return out

    graph = stage("unfold", lambda: rec.unfold(steps))
    outputs = [graph.loss]
    if until != "unfold":
        outputs += stage("grad", lambda: uf.grad(graph.loss, [rec.params[p] for p in names]))
    if until not in ("unfold", "grad"):
        program = stage("compile", lambda: uf.compile(outputs))
    if until in ("run1", "run2", "run3"):
        values = stage("run1", lambda: program(feed))
    timing[0] = False
    for name in ("run2", "run3"):
        if until in STAGES[STAGES.index(name):]:
            stage(name, lambda: program(feed))
    if passes:      # (grad's own time: its loop, without the walk it starts with)
        spent["grad"] = spent.get("grad", 0.0) - spent.get("grad's walk", 0.0)
        spent = {"unfold": cpu["unfold"], **spent}
    result = {"case": case, "steps": steps, "until": until, "seconds": seconds, "cpu": cpu,
              "rss": rss, "peak": _peak(), "passes": spent}
    if until == "run3":
        # after every peak is read: the reference, and the graph's size
        reference = by_hand()
        result["max_rel_err"] = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-300))
                                    for a, b in zip(values, reference))
        result["numpy"] = min(_timed(by_hand) for _ in range(3))
        forward = len(topological([graph.loss]))
        result["nodes"] = {"unfold": forward, "grad": len(topological(outputs)) - forward}
    return result


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# --- the table (the parent process) -------------------------------------------------------------

def _spawn(case: str, steps: int, until: str, sizes: tuple[int, int, int],
           passes: bool = False) -> dict:
    command = [sys.executable, "-m", "bench.scale", "--child", case, "--steps", str(steps),
               "--until", until, "--sizes", ",".join(map(str, sizes))] + \
        (["--passes"] if passes else [])
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(case: str, steps: int, repeat: int, peaks: list[str], sizes,
           passes: bool = False) -> None:
    full = [_spawn(case, steps, "run3", sizes, passes) for _ in range(repeat)]
    best = {s: min(r["seconds"][s] for r in full) for s in STAGES}
    best_cpu = {s: min(r["cpu"][s] for r in full) for s in STAGES}
    nodes = full[0]["nodes"]
    total = nodes["unfold"] + nodes["grad"]
    per_stage_nodes = {"unfold": nodes["unfold"], "grad": nodes["grad"]}
    peak = {s: _spawn(case, steps, s, sizes)["peak"] for s in STAGES[:-1] if s in peaks}
    peak["run3"] = min(r["peak"] for r in full)
    rss = full[0]["rss"]
    grown = {s: rss[s] - rss[p] for p, s in zip(("start",) + STAGES, STAGES) if s in rss}
    label = {"rnn": "Fig. 10.3 RNN, m n k = " + " ".join(map(str, sizes)),
             "tanh": f"tanh, ‖h‖² loss, m n = {sizes[0]} {sizes[1]}",
             "lstm": "LSTM (a parameter set per gate), m n k = " + " ".join(map(str, sizes))
             }.get(case, "scalar")
    print(f"\n{label}, τ = {steps}: {nodes['unfold']} forward + {nodes['grad']} gradient nodes "
          f"= {total}; min of {repeat} runs; max rel err vs numpy {full[0]['max_rel_err']:.1e}")
    print(f"{'stage':8} {'seconds':>8} {'CPU s':>7} {'µs/node':>8} {'peak RSS MB':>12} "
          f"{'RSS growth MB':>14} {'bytes/node':>11}")
    for s in STAGES:
        n = per_stage_nodes.get(s, total)
        per_node = f"{grown[s] / n:11.0f}" if s in per_stage_nodes else f"{'':>11}"
        growth = f"{grown[s] / 2**20:14.0f}" if s in grown else f"{'':>14}"
        peak_mb = f"{peak[s] / 2**20:12.0f}" if s in peak else f"{'':>12}"
        print(f"{s:8} {best[s]:8.2f} {best_cpu[s]:7.2f} {1e6 * best[s] / n:8.2f} {peak_mb} "
              f"{growth} {per_node}")
    first = best["unfold"] + best["grad"] + best["compile"] + best["run1"]
    first_cpu = best_cpu["unfold"] + best_cpu["grad"] + best_cpu["compile"] + best_cpu["run1"]
    print(f"unfold + grad + compile + first run: {first:.2f} s ({first_cpu:.2f} s of CPU); "
          f"a later run {best['run3']:.3f} s = "
          f"{best['run3'] / min(r['numpy'] for r in full):.1f}× the numpy BPTT "
          f"({min(r['numpy'] for r in full):.3f} s)", flush=True)
    if passes:
        spent = {p: min(r["passes"].get(p, 0.0) for r in full) for p in full[0]["passes"]}
        print("passes through the first run, CPU s (min of the runs): " +
              " · ".join(f"{p} {v:.2f}" for p, v in spent.items() if v >= 0.005), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--cases", default="tanh,rnn,scalar,lstm")
    parser.add_argument("--sizes", default="4,4,4", help="m,n,k of the tanh, rnn and lstm cases")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peaks", default="unfold,grad,compile,run1",
                        help="stages measured alone for their peak RSS, or 'none'")
    parser.add_argument("--passes", action="store_true",
                        help="also time the main passes (CPU seconds through the first run)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--until", default="run3", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.until, *sizes, passes=args.passes)))
        return
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")
    for case in args.cases.split(","):
        report(case, args.steps, args.repeat, args.peaks.split(","), sizes, args.passes)


if __name__ == "__main__":
    main()
