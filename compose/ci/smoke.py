"""MGM smoke checks, as a project's own CI script would run them against a running stack.

Standard library only, so any `python3` runs it:

    python3 ci/smoke.py api-key --backend URL --api-key KEY
        GET /api/payouts/pending with X-MGM-ApiKey: the backend must answer 200.
    python3 ci/smoke.py health
        GET /health of every mock whose STACK_<NAME>_URL envkit set: each must answer 200.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request

MOCKS = ("MOCK_EVENTSUB", "MOCK_JWT", "MOCK_HELIX", "SYNTHETIC_DESKTOP")
# The stack listens on this machine: never go through a proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url: str, headers: dict[str, str] | None = None) -> int:
    """GET `url`; print and return the status (0 when it cannot be reached)."""
    if not url.startswith(("http://", "https://")):
        print(f"GET {url} -> not an http(s) URL")
        return 0
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310  # http(s) only
    try:
        with OPENER.open(request, timeout=10) as answer:
            status = int(answer.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        print(f"GET {url} -> unreachable: {exc}")
        return 0
    print(f"GET {url} -> {status}")
    return status


def main() -> int:
    """Run one check; exit 0 when it holds."""
    parser = argparse.ArgumentParser()
    parser.add_argument("check", choices=["api-key", "health"])
    parser.add_argument("--backend", default=os.environ.get("STACK_BACKEND_URL", ""))
    parser.add_argument("--api-key", default="")
    args = parser.parse_args()
    if args.check == "api-key":
        status = get(f"{args.backend}/api/payouts/pending", {"X-MGM-ApiKey": args.api_key})
        return 0 if status == 200 else 1
    missing = [m for m in MOCKS if f"STACK_{m}_URL" not in os.environ]
    if missing:
        print(f"no URL for {', '.join(missing)}: run this through envkit")
        return 2
    statuses = [get(os.environ[f"STACK_{m}_URL"] + "/health") for m in MOCKS]
    return 0 if all(s == 200 for s in statuses) else 1


if __name__ == "__main__":
    sys.exit(main())
