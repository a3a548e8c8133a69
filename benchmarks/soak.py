"""Soak: many `tier-b` runs one after another, then rounds of three at once; all must pass.

    .venv/bin/python benchmarks/soak.py [--consecutive 50] [--rounds 10] [--at-once 3]

Each run is its own `invoke tier-b` process (artifacts and history in a temporary
directory). Prints every failure with its exit code and the last lines of its output,
then the spread of wall times (min / p50 / p95 / max) for the consecutive runs and for
the runs of the concurrent rounds (each run's own time and each round's). Exits non-zero
when any run failed. The machine is shared: the spread includes others' load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start(work: Path, tag: str) -> tuple[subprocess.Popen[bytes], Path, float]:
    """Start one `tier-b` run; return its process, output file and start time."""
    out = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=work))
    env = {
        **os.environ,
        "ENVKIT_ARTIFACT_ROOT": str(out / "artifacts"),
        "ENVKIT_HISTORY_PATH": str(out / "history.sqlite"),
    }
    log = out / "output.txt"
    child = subprocess.Popen(
        [sys.executable, "-m", "invoke", "tier-b"], cwd=ROOT, env=env,
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    return child, log, time.perf_counter()


def finish(run: tuple[subprocess.Popen[bytes], Path, float], failures: list[str]) -> float:
    """Wait for a run; record it when it failed; return its wall seconds."""
    child, log, started = run
    code = child.wait()
    seconds = time.perf_counter() - started
    if code != 0:
        tail = "\n    ".join(log.read_text(errors="replace").splitlines()[-15:])
        failures.append(f"{log.parent.name}: exit {code} after {seconds:.1f} s\n    {tail}")
    return seconds


def spread(values: list[float]) -> str:
    """min / p50 / p95 / max of `values`."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"min {ordered[0]:.1f}  p50 {statistics.median(ordered):.1f}  p95 {p95:.1f}  "
        f"max {ordered[-1]:.1f} s  (n={len(ordered)})"
    )


def main() -> None:
    """Run the soak and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consecutive", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--at-once", type=int, default=3)
    args = parser.parse_args()
    subprocess.run(  # envkit's bytecode, as ./inv compiles it under PYTHONDONTWRITEBYTECODE
        [sys.executable, "-m", "compileall", "-q", "envkit", "healthchecks", "compose"],
        cwd=ROOT, stdout=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="envkit-soak-") as tmp:
        work = Path(tmp)
        single = []
        for i in range(args.consecutive):
            single.append(finish(start(work, f"single{i}"), failures))
            print(f"run {i + 1}/{args.consecutive}: {single[-1]:.1f} s", flush=True)
        each, rounds = [], []
        for i in range(args.rounds):
            began = time.perf_counter()
            runs = [start(work, f"round{i}-{j}") for j in range(args.at_once)]
            with ThreadPoolExecutor(max_workers=len(runs)) as pool:  # each run's own end
                each += list(pool.map(lambda run: finish(run, failures), runs))
            rounds.append(time.perf_counter() - began)
            print(f"round {i + 1}/{args.rounds}: {rounds[-1]:.1f} s", flush=True)
    total = args.consecutive + args.rounds * args.at_once
    print(f"\n{total - len(failures)}/{total} runs green")
    for failure in failures:
        print(f"FAILED {failure}")
    if single:
        print(f"{args.consecutive} consecutive tier-b: {spread(single)}")
    if rounds:
        print(f"{args.rounds} rounds of {args.at_once} at once, each run: {spread(each)}")
        print(f"{args.rounds} rounds of {args.at_once} at once, each round: {spread(rounds)}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
