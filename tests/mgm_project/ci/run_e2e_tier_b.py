"""Stand-in for the MGM Tier B orchestrator: harness, desktop sequence, Helix capture, pool."""

from __future__ import annotations

import argparse
import urllib.parse

from mgmci import ANNOUNCEMENT, VIEWER_ID, VIEWER_LOGIN, call, expect, verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("backend", "desktop", "helix", "jwt"):
        parser.add_argument(f"--{name}", required=True, help=f"{name} base URL")
    parser.add_argument("--api-key", required=True, help="the desktop API key")
    parser.add_argument("--name", required=True, help="the enrolled character name")
    parser.add_argument("--user-id", default=VIEWER_ID)
    args = parser.parse_args()
    backend = args.backend.rstrip("/")

    def check() -> None:
        key = {"X-MGM-ApiKey": args.api_key}
        status, payout = call(
            "POST",
            backend + "/api/e2e/prepare-pending-payout",
            body={"twitchUserId": args.user_id},
            headers=key,
        )
        expect(status == 200, f"the harness answered {status}: {payout!r}")
        expect(payout["characterName"] == args.name, f"payout for {payout['characterName']!r}")
        status, run = call(
            "POST",
            args.desktop.rstrip("/") + "/run-sequence",
            body={"payoutId": payout["payoutId"], "characterName": args.name},
        )
        expect(status == 200 and run.get("ok") is True, f"run-sequence failed: {run!r}")
        status, last = call("GET", args.helix.rstrip("/") + "/last-request")
        expect(status == 200 and last.get("captured") is True, f"nothing captured: {last!r}")
        text = last["body"]["message"]
        print(f"announcement captured by mock-helix: {text}", flush=True)
        wanted = ANNOUNCEMENT.format(name=args.name)
        expect(text == wanted, f"announcement {text!r} is not {wanted!r}")
        status, last_run = call("GET", args.desktop.rstrip("/") + "/last-run")
        expect(last_run.get("ok") is True, f"/last-run is not ok: {last_run!r}")
        query = urllib.parse.urlencode({"userId": args.user_id, "displayName": VIEWER_LOGIN})
        _, token = call("GET", f"{args.jwt.rstrip('/')}/token?{query}")
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        status, me = call("GET", backend + "/api/pool/me", headers=bearer)
        expect(me.get("isEnrolled") is False, f"the viewer is still in the pool: {me!r}")

    verdict(check)


if __name__ == "__main__":
    main()
