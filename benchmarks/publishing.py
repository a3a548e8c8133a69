"""What publishing ports costs the engine per run: iptables rules, docker-proxy processes, CPU.

    .venv/bin/python benchmarks/publishing.py [--rounds 3] [--stack compose/tier-b.toml]

Starts the stack isolated (held, as `tier-b` does) with `ENVKIT_ENGINES__PUBLISH_PORTS`
`auto` and `always`, alternating. While it runs it counts the iptables rules (every table,
`iptables-save`) that name the run's bridge or one of its containers' addresses, and the
`docker-proxy` processes serving its containers; over the start and teardown it measures
the CPU of dockerd's reaped children (`iptables`, dockerd's own re-executions,
docker-proxy: the cutime/cstime of dockerd; shared with anything else on the engine) and
the wall time of the start. Needs root (iptables-save) and a local engine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from cpu import process_cpu  # run as a script: this directory is on sys.path

from envkit.lifecycle.commands import running_stack
from envkit.spec.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def dockerd_children_cpu() -> float:
    """CPU-seconds of dockerd's children it has waited for (helpers, iptables, proxies)."""
    return process_cpu(("dockerd",))[1]


def count(addresses: list[str], bridge: str) -> tuple[int, int]:
    """(iptables rules naming `bridge` or an address, docker-proxy processes for an address)."""
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    needles = [bridge, *(f"{a}/32" for a in addresses), *(f"{a}:" for a in addresses)]
    mine = [line for line in rules.splitlines() if any(n in line for n in needles)]
    procs = subprocess.run(["pgrep", "-a", "docker-proxy"], capture_output=True, text=True).stdout
    proxies = [p for p in procs.splitlines() if any(f"-container-ip {a} " in p for a in addresses)]
    return len(mine), len(proxies)


def one(stack: Path, publish: str, tmp: Path) -> tuple[float, float, int, int]:
    """Start and tear down once; return (start s, helper CPU-s, rules, proxies)."""
    environ = {
        "ENVKIT_ARTIFACT_ROOT": str(tmp / "artifacts"),
        "ENVKIT_HISTORY_PATH": str(tmp / "history.sqlite"),
        "ENVKIT_ENGINES__PUBLISH_PORTS": publish,
    }
    settings = load_settings(env_file=None, environ=environ, stack=stack)
    before = dockerd_children_cpu()
    started = time.perf_counter()
    with running_stack(settings, stack) as env:
        start = time.perf_counter() - started
        assert env.network is not None
        network = env.client.networks.get(env.network.name)
        addresses = []
        for run in env.runs.values():
            if run.container is not None:
                run.container.wrapped.reload()
                networks = run.container.wrapped.attrs["NetworkSettings"]["Networks"]
                addresses.append(networks[env.network.name]["IPAddress"])
        rules, proxies = count(addresses, f"br-{network.id[:12]}")
    return start, dockerd_children_cpu() - before, rules, proxies


def main() -> None:
    """Alternate auto and always; print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stack", type=Path, default=ROOT / "compose" / "tier-b.toml")
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float, int, int]]] = {"auto": [], "always": []}
    with tempfile.TemporaryDirectory(prefix="envkit-publishing-") as tmp:
        one(args.stack, "always", Path(tmp))  # warm-up
        for i in range(args.rounds):
            for publish in ("auto", "always") if i % 2 == 0 else ("always", "auto"):
                results[publish].append(one(args.stack, publish, Path(tmp)))
                s, cpu, rules, proxies = results[publish][-1]
                print(
                    f"round {i + 1}: {publish}: start {s:.2f} s, dockerd helpers {cpu:.2f} "
                    f"CPU-s, {rules} iptables rules, {proxies} docker-proxy",
                    flush=True,
                )
    print(f"\nload average {os.getloadavg()[0]:.1f}; medians:")
    for publish, rows in results.items():
        med = [statistics.median(col) for col in zip(*rows, strict=True)]
        print(f"  {publish:>6}: start {med[0]:.2f} s, dockerd helpers {med[1]:.2f} CPU-s, "
              f"{med[2]:.0f} iptables rules, {med[3]:.0f} docker-proxy")  # fmt: skip


if __name__ == "__main__":
    main()
