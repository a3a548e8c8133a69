"""Stand-in for the MGM health verifier: every mock's /health body, and the backend's GET /."""

from __future__ import annotations

import argparse

from mgmci import call, expect, verdict

EXPECTED = {
    "eventsub": {"status": "ok", "service": "MockEventSubWebhook"},
    "jwt": {"status": "ok", "service": "MockExtensionJwt"},
    "helix": {"status": "healthy", "component": "MockHelixApi"},
    "desktop": {"status": "healthy", "component": "SyntheticDesktop"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", required=True)
    for name in EXPECTED:
        parser.add_argument(f"--{name}", required=True)
    args = parser.parse_args()

    def check() -> None:
        for name, wanted in EXPECTED.items():
            status, body = call("GET", getattr(args, name).rstrip("/") + "/health")
            expect(status == 200, f"{name} /health answered {status}")
            expect(isinstance(body, dict), f"{name} /health is not a JSON object: {body!r}")
            for key, value in wanted.items():
                expect(body.get(key) == value, f"{name} /health {key}={body.get(key)!r}")
        status, _ = call("GET", args.backend.rstrip("/") + "/")
        expect(100 <= status < 600, "the backend did not answer GET /")

    verdict(check)


if __name__ == "__main__":
    main()
