"""``python -m bench`` (``make bench``): unfold against hand-written numpy and the CPU peers.

For every workload (W1 ``rnn``, W2 ``lstm``) and size of shared/PEERS.md:

1. **Check** every contender against the hand-written per-step numpy BPTT in float64 (loss and
   all five parameter gradients, norm-wise relative error; a contender that disagrees by more
   than 1e-9 stops the run).
2. **Time** them in float32 in interleaved rounds (each round calls every contender once, in
   turn, so load from other processes hits all of them alike), after a warm-up call (plans,
   caches, jit compilation excluded); the median and the minimum over rounds are reported.
3. **Memory**: the numpy data a contender holds while computing one call — arrays it keeps
   between calls (unfold's per-plan buffers, the time-batched numpy's workspace) plus the peak of
   what one call allocates (``tracemalloc``, which sees numpy's allocations; Python objects of the
   graph are not counted). Peers: the peak one call allocates (torch and jax allocate outside
   tracemalloc: reported as "–").

Contenders: ``numpy per-step`` (bench.workloads), ``numpy time-batched`` (bench.numpy_batched),
``unfold`` (the default time-batched evaluation), and the optional peers of bench.peers when
installed (skipped with a note otherwise). Then the checkpointing benchmark: peak memory of
Fig. 10.3's BPTT at τ = 2000 with and without ``checkpoint="sqrt"``.

Results go to ``bench/results.json``; ``--markdown`` also rewrites the tables of bench/README.md.
Single-threaded: the Makefile sets OPENBLAS_NUM_THREADS=1 and pins the process to one core with
taskset when it exists.

    python -m bench [--sizes tiny,small] [--workloads rnn] [--rounds 9] [--no-peers] [--markdown]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import time
import tracemalloc
from pathlib import Path

import numpy as np

import unfold as uf

from . import peers
from .numpy_batched import BATCHED
from .workloads import BY_HAND, SIZES, data, unfold_program

HERE = Path(__file__).parent
PER_STEP, BATCHED_NP, UNFOLD = "numpy per-step", "numpy time-batched", "unfold"


def contenders(workload: str, size: str, dtype, with_peers: bool):
    """name → (callable, bytes it holds between calls)."""
    shape = SIZES[size]
    out = {PER_STEP: (BY_HAND[workload], lambda: 0)}
    nb = BATCHED[workload](*shape, dtype)
    out[BATCHED_NP] = (nb, lambda: sum(a.nbytes for a in vars(nb).values()
                                       if isinstance(a, np.ndarray)))
    program = unfold_program(workload, size, dtype)
    out[UNFOLD] = (program, lambda: sum(p.nbytes for p in program._batched_plans.values()
                                        if p is not None))
    if with_peers:
        for name, missing in peers.available().items():
            if missing is None:
                out[name] = (peers.make(name, workload, shape, dtype), None)
    return out


def max_error(got, want) -> float:
    return max(float(np.max(np.abs(np.asarray(a, np.float64) - b)) / (np.max(np.abs(b)) + 1e-300))
               for a, b in zip(got, want))


def peak_bytes(fn) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def _rounds(fns: dict, d, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each function, in ``rounds`` rounds calling each once in turn. The
    order turns by one each round, so each contender follows each other equally often (a call
    runs slower after one that filled the caches with its own data: torch eager, HIPS)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    gc.disable()
    try:
        for r in range(rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                fn = fns[name]
                start = time.perf_counter()
                fn(d)
                times[name].append(time.perf_counter() - start)
    finally:
        gc.enable()
    return times


def measure(workload: str, size: str, rounds: int, with_peers: bool) -> dict:
    # 1. agreement in float64
    d64 = data(workload, size, np.float64)
    reference = BY_HAND[workload](d64)
    errors = {}
    for name, (fn, _) in contenders(workload, size, np.float64, with_peers).items():
        errors[name] = max_error(fn(d64), reference)
        if errors[name] > 1e-9:
            raise SystemExit(f"{workload} {size}: {name} disagrees with the hand-written numpy "
                             f"BPTT (max relative error {errors[name]:.2e}); not timing")
    # 2. time in float32, interleaved: unfold with the hand-written numpy, then unfold with the
    # peers (their runtimes — thread pools, caches — would otherwise weigh on the numpy
    # contenders' small sizes)
    d32 = data(workload, size, np.float32)
    runs = contenders(workload, size, np.float32, with_peers)
    for fn, _ in runs.values():
        fn(d32)                                              # warm up: plans, caches, jit
    own = [PER_STEP, BATCHED_NP, UNFOLD]
    times = _rounds({k: runs[k][0] for k in own}, d32, rounds)
    others = [k for k in runs if k not in own]
    beside_peers = None
    if others:
        peer_times = _rounds({k: runs[k][0] for k in [UNFOLD] + others}, d32, rounds)
        beside_peers = {k: 1e3 * statistics.median(v) for k, v in peer_times.items()}
        for k in others:
            times[k] = peer_times[k]
    # 3. memory
    memory = {}
    for name, (fn, held) in runs.items():
        memory[name] = None if held is None else held() + peak_bytes(lambda: fn(d32))
    return {"workload": workload, "size": size, "shape": dict(zip("mnkBT", SIZES[size])),
            "max_rel_error_f64": errors,
            "median_ms": {k: 1e3 * statistics.median(v) for k, v in times.items()},
            "min_ms": {k: 1e3 * min(v) for k, v in times.items()},
            "peers_rounds_median_ms": beside_peers,
            "peak_bytes": memory}


def checkpoint_memory(steps: int = 2000, n: int = 32, batch: int = 8) -> dict:
    """Fig. 10.3 at τ = 2000: the memory of computing the loss and all gradients — the plan's
    buffers and what one call allocates (tracemalloc: numpy's data and the run's Python objects)
    — with the default plan ("full"), the per-node schedule without checkpointing ("per-node"),
    and checkpoint="sqrt" (k = 45)."""
    rec = uf.models.rnn(8, n, 8)
    g = rec.unfold(steps)
    outputs = [g.loss] + uf.grad(g.loss, g.params)
    rng = np.random.default_rng(0)
    feed = {name: rng.standard_normal(p.shape) / np.sqrt(p.shape[-1])
            for name, p in rec.params.items()}
    feed.update(x=rng.standard_normal((steps, batch, 8)), y=rng.integers(0, 8, (steps, batch)))
    out = {}
    for label, k, mode in (("full", None, "batched"), ("per-node", None, "reference"),
                           ("checkpoint sqrt", "sqrt", "batched")):
        program = uf.compile(outputs, checkpoint=k, mode=mode)
        program(feed)
        held = sum(p.nbytes for p in program._batched_plans.values() if p is not None)
        out[label] = held + peak_bytes(lambda: program(feed))
    out["ratio"] = out["full"] / out["checkpoint sqrt"]
    out["ratio per-node"] = out["per-node"] / out["checkpoint sqrt"]
    out.update(steps=steps, hidden=n, batch=batch)
    return out


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
            "pinned": os.environ.get("UNFOLD_BENCH_PINNED", "no"), "load_average": load,
            "date": time.strftime("%Y-%m-%d %H:%M")}


def markdown(results: list[dict], check: dict | None, info: dict, notes: list[str]) -> str:
    names = [n for n in [UNFOLD, BATCHED_NP, PER_STEP, *peers.NAMES]
             if any(n in r["median_ms"] for r in results)]
    lines = [f"Machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, numpy "
             f"{info['numpy']}; one thread (OPENBLAS_NUM_THREADS={info['OPENBLAS_NUM_THREADS']},"
             f" pinned: {info['pinned']}); load average {info['load_average']}; {info['date']}.",
             "",
             "Median ms per call (forward, loss and all gradients), float32; in parentheses "
             "unfold's ratio to that contender (below 1: unfold is faster). unfold runs in "
             "interleaved rounds with the two hand-written numpy BPTTs, and again in rounds with "
             "the peers (its ratios to a peer come from those); minima in results.json.", "",
             "| workload | size | " + " | ".join(names) + " |",
             "|---|---|" + "---:|" * len(names)]
    for r in results:
        med = r["median_ms"]
        beside = r.get("peers_rounds_median_ms") or {}
        cells = []
        for n in names:
            if n not in med:
                cells.append("–")
            elif n == UNFOLD:
                cells.append(f"{med[n]:.3g}")
            else:
                ours = beside.get(UNFOLD, med[UNFOLD]) if n in peers.NAMES else med[UNFOLD]
                cells.append(f"{med[n]:.3g} ({ours / med[n]:.2f}×)")
        lines.append(f"| {r['workload']} | {r['size']} | " + " | ".join(cells) + " |")
    lines += ["", "Peak numpy memory of one call (held buffers + what the call allocates), MB; in "
              "parentheses unfold's ratio.", "",
              "| workload | size | " + " | ".join(n for n in names[:3]) + " |",
              "|---|---|" + "---:|" * 3]
    for r in results:
        mem = r["peak_bytes"]
        cells = [f"{mem[n] / 2**20:.3g}" + ("" if n == UNFOLD else
                                             f" ({mem[UNFOLD] / max(mem[n], 1):.2f}×)")
                 for n in names[:3]]
        lines.append(f"| {r['workload']} | {r['size']} | " + " | ".join(cells) + " |")
    if check:
        lines += ["", f"Checkpointing, Fig. 10.3 at τ = {check['steps']} (n = {check['hidden']}, "
                  f"batch {check['batch']}): {check['full'] / 2**20:.3g} MB without, "
                  f"{check['checkpoint sqrt'] / 2**20:.3g} MB with checkpoint=\"sqrt\" "
                  f"({check['ratio']:.1f}× lower; {check['per-node'] / 2**20:.3g} MB on the "
                  f"per-node schedule without it, {check['ratio per-node']:.1f}×)."]
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--sizes", default="tiny,small,medium,large,long")
    parser.add_argument("--workloads", default="rnn,lstm")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--no-checkpoint", action="store_true")
    parser.add_argument("--json", default=str(HERE / "results.json"))
    parser.add_argument("--markdown", action="store_true",
                        help="rewrite the result tables in bench/README.md")
    args = parser.parse_args()
    notes = []
    if not args.no_peers:
        for name, missing in peers.available().items():
            if missing:
                notes.append(f"{name}: skipped, {missing}")
    results = []
    for workload in args.workloads.split(","):
        for size in args.sizes.split(","):
            r = measure(workload, size, args.rounds, not args.no_peers)
            results.append(r)
            med = r["median_ms"]
            beside = r["peers_rounds_median_ms"] or {}
            print(f"{workload:5} {size:6} " + "  ".join(
                f"{k} {v:.3g}ms" + ("" if k == UNFOLD else
                                    f" ({beside.get(UNFOLD, med[UNFOLD]) if k in peers.NAMES else med[UNFOLD]:.3g}/{v:.3g})")
                for k, v in med.items()), flush=True)
    check = None if args.no_checkpoint else checkpoint_memory()
    if check:
        print(f"checkpointing at τ={check['steps']}: {check['full'] / 2**20:.3g} MB → "
              f"{check['checkpoint sqrt'] / 2**20:.3g} MB ({check['ratio']:.1f}× lower)")
    info = machine()
    Path(args.json).write_text(json.dumps({"machine": info, "results": results,
                                           "checkpointing": check, "notes": notes}, indent=1))
    table = markdown(results, check, info, notes)
    print(table)
    if args.markdown:
        readme = HERE / "README.md"
        text = readme.read_text() if readme.exists() else ""
        begin, end = "<!-- results -->", "<!-- /results -->"
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            text = head + begin + "\n" + table + end + rest.split(end, 1)[1]
        else:
            text += f"\n{begin}\n{table}{end}\n"
        readme.write_text(text)


if __name__ == "__main__":
    main()
