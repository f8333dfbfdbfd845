"""Timing helpers: interleaved rounds so that contenders share the machine's load, min and median per call."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def compare(fns: dict[str, Callable[[], object]], rounds: int = 7, min_round_s: float = 0.05,
            max_calls: int = 2000) -> dict[str, dict]:
    """Time each function in ``rounds`` interleaved rounds (A, B, C, A, B, C, ...), each round calling it until
    ``min_round_s`` has passed.  Returns per function: ``min_ms`` (the least-disturbed call, timeit's convention),
    ``median_ms`` and ``calls``.  Every function is called once first (warm-up, not timed)."""
    for fn in fns.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            n = 0
            while n < max_calls:
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
                n += 1
                if time.perf_counter() - start >= min_round_s:
                    break
    return {name: {"min_ms": round(1000 * min(s), 5), "median_ms": round(1000 * statistics.median(s), 5),
                   "calls": len(s)} for name, s in samples.items()}


def ratio(a: dict, b: dict, key: str = "min_ms") -> float:
    """How many times faster b is than a: a[key] / b[key]."""
    return round(a[key] / b[key], 3) if b[key] > 0 else float("inf")
