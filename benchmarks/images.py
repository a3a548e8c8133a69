"""Benchmark `invoke images`: a warm run (nothing changed) against a cold one, in one process.

    .venv/bin/python benchmarks/images.py           # warm runs only
    .venv/bin/python benchmarks/images.py --cold    # first removes envkit's images and wheel
                                                    # cache, so the cold build is measured too

Prints each figure and the ratio warm/cold. Target: a warm run under 5 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

from envkit.engines.engine import docker_client, ensure_engine
from envkit.engines.images import LABEL, ensure_images
from envkit.spec.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def _remove_envkit_images() -> int:
    client = docker_client()
    removed = 0
    for image in client.images.list(filters={"label": LABEL}):
        client.images.remove(image.id, force=True)
        removed += 1
    client.close()
    return removed


def _timed_run() -> tuple[float, dict[str, str]]:
    settings = load_settings(ROOT / ".env")
    client = docker_client()
    started = time.perf_counter()
    results = ensure_images(settings, client)
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed, {role: r.action for role, r in results.items()}


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="measure a cold build first")
    parser.add_argument("--warm-runs", type=int, default=5)
    args = parser.parse_args()
    ensure_engine()
    cold = None
    if args.cold:
        settings = load_settings(ROOT / ".env")
        print(f"removed {_remove_envkit_images()} envkit images")
        shutil.rmtree(ROOT / settings.cache_dir, ignore_errors=True)
        cold, actions = _timed_run()
        print(f"cold run:  {cold:7.2f} s  {actions}")
    else:
        _timed_run()  # make sure everything exists before timing warm runs
    warm = []
    for _ in range(args.warm_runs):
        seconds, actions = _timed_run()
        warm.append(seconds)
        assert set(actions.values()) == {"present"}, f"a warm run rebuilt something: {actions}"
    median = statistics.median(warm)
    print(f"warm runs: median {median:.3f} s, max {max(warm):.3f} s over {len(warm)} runs")
    print(f"target warm < 5 s: {'met' if max(warm) < 5 else 'MISSED'}")
    if cold:
        print(f"ratio warm/cold: {median / cold:.4f}")


if __name__ == "__main__":
    main()
