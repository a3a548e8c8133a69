"""Benchmark how soon `invoke up` starts its first container, and what the time before goes to.

    .venv/bin/python benchmarks/up_latency.py [--rounds 5] [--ports-from 29600]
        [--root DIR ...] [--console-script]

Images and engine warm (one warm-up round first, not counted). Each round runs `invoke up`
in a fresh process (Invoke's program, as `python -m invoke up` does; with
`--console-script`, the `envkit` console script's `main`, serving the checkout's directory),
then `invoke down` (untimed). It prints per checkout the median over the rounds of the
seconds from the command starting to the first container being created and started (the
engine's own timestamps), and to the command returning with every service ready, its
CPU-seconds, and the CPU-seconds its process had used when it sent the first container
create (a busy machine disturbs that figure far less than the seconds).

Then one round more under `python -X importtime`: the seconds Python spent importing
modules before the command sent its first container create (the sum of the top-level
imports' cumulative times up to then) next to that round's first-container time, so the
import share of the time before the first container shows (importtime's own bookkeeping
inflates both a little).

`--root` (repeatable) runs another envkit checkout (e.g. an export of main with a `.venv`
symlink to this one's: `git archive main | tar -x -C /tmp/before`) in alternating order
with the others, so a busy machine disturbs them alike: read the medians side by side.
The stack's fixed ports move to `--ports-from` (never the default ports).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cpu import wait_cpu

from compose import first_times, port_env  # run as a script: this directory is on sys.path

ROOT = Path(__file__).resolve().parents[1]
_TOP_IMPORT = re.compile(r"^import time:\s+\d+ \|\s+(\d+) \| (\S.*)$")
_MARK = "up_latency: first create at CPU-s "
# Runs the command in-process and writes _MARK and the process's CPU-seconds to stderr as the
# first container create is sent (requests is the engine client's HTTP library; it imports
# nothing of the engine's).
_DRIVER = f"""
import sys, time, requests
send = requests.Session.send
def marked(self, request, **kw):
    if "/containers/create" in request.url and not getattr(marked, "done", False):
        marked.done = True
        sys.stderr.write(f"{_MARK}{{time.process_time():.3f}}\\n"); sys.stderr.flush()
    return send(self, request, **kw)
requests.Session.send = marked
if sys.argv[1] == "console":
    from envkit.cli import main
    sys.argv = ["envkit", "up"]; main()
else:
    from invoke.main import program
    sys.argv = ["invoke", "up"]; program.run()
"""


@dataclass
class Sample:
    """One timed `up`."""

    root: Path
    created: float
    started: float
    seconds: float
    cpu: float
    cpu_before: float  # the process's CPU-seconds when it sent the first container create
    imports: float | None = None  # seconds of top-level imports (importtime rounds only)


def one_up(root: Path, env: dict[str, str], console: bool, importtime: bool = False) -> Sample:
    """Run `up` once from `root` (a fresh process), take its figures, then `down`."""
    python = [sys.executable, *(["-X", "importtime"] if importtime else [])]
    argv = [*python, "-c", _DRIVER, "console" if console else "invoke"]
    environ = {**env, "PYTHONPATH": str(root)}
    epoch, begun = time.time(), time.perf_counter()
    child = subprocess.Popen(
        argv, cwd=root, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert child.stderr is not None
    err = child.stderr.read().decode(errors="replace")
    code, cpu = wait_cpu(child)
    seconds = time.perf_counter() - begun
    if code != 0:
        sys.exit(f"up failed in {root} ({code}):\n{err[-3000:]}")
    created, started = first_times([f"label=envkit.owner_pid={child.pid}"], epoch)
    subprocess.run(
        [sys.executable, "-m", "invoke", "down"], cwd=root, env=environ, capture_output=True,
        check=True,
    )  # fmt: skip
    before, _, after = err.partition(_MARK)
    imports = None
    if importtime:
        imports = sum(int(m[1]) for m in map(_TOP_IMPORT.match, before.splitlines()) if m) / 1e6
    return Sample(root, created, started, seconds, cpu, float(after.split()[0]), imports)


def main() -> None:
    """Alternate the checkouts and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ports-from", type=int, default=29600)
    parser.add_argument("--root", type=Path, action="append", help="an envkit checkout")
    parser.add_argument("--console-script", action="store_true", help="run `envkit up`")
    args = parser.parse_args()
    roots = [r.resolve() for r in args.root or [ROOT]]
    with tempfile.TemporaryDirectory(prefix="envkit-up-latency-") as tmp:
        env = {
            **os.environ, **port_env(args.ports_from),
            "ENVKIT_CACHE_DIR": str(Path(tmp) / "cache"),
            "ENVKIT_ARTIFACT_ROOT": str(Path(tmp) / "art"),
        }  # fmt: skip
        for root in roots:
            one_up(root, env, args.console_script)  # warm-up: page cache, bytecode, images
        samples: list[Sample] = []
        for i in range(args.rounds):
            for root in roots if i % 2 == 0 else roots[::-1]:
                s = one_up(root, env, args.console_script)
                samples.append(s)
                print(f"round {i + 1}: {root}: first container created {s.created:.2f} s "
                      f"({s.cpu_before:.2f} CPU-s in), started {s.started:.2f} s; ready "
                      f"{s.seconds:.2f} s, {s.cpu:.2f} CPU-s", flush=True)  # fmt: skip
        timed = {root: one_up(root, env, args.console_script, importtime=True) for root in roots}
    load = os.getloadavg()
    how = "`envkit up`" if args.console_script else "`invoke up`"
    print(f"\n{how}, {args.rounds} alternating rounds, {os.cpu_count()} cores, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1, 5, 15 min)")  # fmt: skip
    for root in roots:
        mine = [s for s in samples if s.root == root]
        t = timed[root]
        print(
            f"{root}:\n  first container created {statistics.median(s.created for s in mine):.2f} s"
            f" ({statistics.median(s.cpu_before for s in mine):.2f} CPU-s of the command in)"
            f", started {statistics.median(s.started for s in mine):.2f} s, all ready "
            f"{statistics.median(s.seconds for s in mine):.2f} s, "
            f"{statistics.median(s.cpu for s in mine):.2f} CPU-s (medians)\n"
            f"  under -X importtime: imports {t.imports or 0:.2f} s of the "
            f"{t.created:.2f} s before the first container was created"
        )


if __name__ == "__main__":
    main()
