"""Stand-in for the MGM Tier A gate: the viewer's token from mock-jwt, then GET /api/pool/me."""

from __future__ import annotations

import argparse
import urllib.parse

from mgmci import VIEWER_ID, VIEWER_LOGIN, call, expect, verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jwt", required=True, help="mock-jwt's base URL")
    parser.add_argument("--backend", required=True)
    parser.add_argument("--name", required=True, help="the character name expected")
    parser.add_argument("--user-id", default=VIEWER_ID)
    args = parser.parse_args()

    def check() -> None:
        query = urllib.parse.urlencode(
            {"userId": args.user_id, "displayName": VIEWER_LOGIN, "role": "viewer"}
        )
        status, token = call("GET", f"{args.jwt.rstrip('/')}/token?{query}")
        expect(status == 200, f"mock-jwt answered {status}")
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        status, me = call("GET", args.backend.rstrip("/") + "/api/pool/me", headers=bearer)
        expect(status == 200, f"GET /api/pool/me answered {status}")
        expect(me.get("isEnrolled") is True, f"the viewer is not enrolled: {me!r}")
        expect(me.get("characterName") == args.name, f"enrolled as {me.get('characterName')!r}")

    verdict(check)


if __name__ == "__main__":
    main()
