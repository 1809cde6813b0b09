"""``python -m bench [--sizes tiny,small] [--workloads rnn,lstm] [--repeat 7]``

For each workload and size: checks unfold against the hand-written numpy BPTT in float64, then
times both in float32 (median ms per call: forward, loss and all parameter gradients) and prints
unfold's ratio to the numpy per-step loop, the peers' reference column in shared/PEERS.md.
Run single-threaded for comparable numbers (the Makefile sets OPENBLAS_NUM_THREADS=1).
"""
from __future__ import annotations

import argparse
import gc
import statistics
import time

import numpy as np

from .workloads import BY_HAND, data, unfold_program


def median_ms(fn, repeat: int) -> float:
    fn()                                                    # warm up (plans, caches)
    times = []
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    finally:
        gc.enable()
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--sizes", default="tiny,small,medium,long")
    parser.add_argument("--workloads", default="rnn,lstm")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(f"{'workload':8} {'size':7} {'numpy ms':>9} {'unfold ms':>10} {'ratio':>7} "
          f"{'max rel err (f64)':>18}")
    for workload in args.workloads.split(","):
        for size in args.sizes.split(","):
            d64 = data(workload, size, np.float64)
            ours = unfold_program(workload, size, np.float64)(d64)
            ref = BY_HAND[workload](d64)
            err = max(float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-300))
                      for a, b in zip(ours, ref))
            d32 = data(workload, size, np.float32)
            program = unfold_program(workload, size, np.float32)
            t_np = median_ms(lambda: BY_HAND[workload](d32), args.repeat)
            t_uf = median_ms(lambda: program(d32), args.repeat)
            print(f"{workload:8} {size:7} {t_np:9.2f} {t_uf:10.2f} {t_uf / t_np:6.2f}x "
                  f"{err:18.1e}", flush=True)


if __name__ == "__main__":
    main()
