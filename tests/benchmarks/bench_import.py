"""``import smclient`` against ``import boto3``: each in a fresh interpreter, interleaved,
median of N runs (wall time of the import statement alone).
Run: ``nox -s bench`` (or ``python tests/benchmarks/bench_import.py [--runs N]``)."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CODE = "import time; t = time.perf_counter(); import {m}; print(time.perf_counter() - t)"


def once(module: str) -> float:
    out = subprocess.run(
        [sys.executable, "-c", CODE.format(m=module)], capture_output=True, text=True, check=True
    )
    return float(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    modules = ["boto3", "smclient", "smclient, boto3"]
    times: dict[str, list[float]] = {m: [] for m in modules}
    for _ in range(args.runs):
        for module in modules:
            times[module].append(once(module))
    medians = {m: statistics.median(t) * 1000 for m, t in times.items()}
    print(f"runs={args.runs} (fresh interpreter each, interleaved)")
    for module in modules:
        print(f"import {module:<16}: {medians[module]:7.1f} ms (median)")
    print(f"smclient - boto3        : {medians['smclient'] - medians['boto3']:+7.1f} ms")
    print(f"(smclient + boto3) - boto3: {medians['smclient, boto3'] - medians['boto3']:+7.1f} ms")


if __name__ == "__main__":
    main()
