"""Stand-in for the MGM mock-helix verifier: a chat message without real credentials is captured."""

from __future__ import annotations

import argparse

from mgmci import call, expect, verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--helix", required=True)
    parser.add_argument(
        "--credentials",
        choices=("none", "made-up"),
        default="none",
        help="send no Authorization/Client-Id at all, or made-up ones",
    )
    args = parser.parse_args()
    made_up = {"Authorization": "Bearer anything", "Client-Id": "anything"}
    root = args.helix.rstrip("/")

    def check() -> None:
        message = {"broadcaster_id": "verify-1", "sender_id": "verify-1", "message": "ping"}
        status, body = call(
            "POST",
            root + "/helix/chat/messages",
            body=message,
            headers=made_up if args.credentials == "made-up" else {},
        )
        expect(200 <= status < 300, f"mock-helix refused the chat message with {status}")
        expect(isinstance(body, dict) and "data" in body, f"not a Helix answer: {body!r}")
        status, last = call("GET", root + "/last-request")
        expect(status == 200, f"/last-request answered {status}")
        expect(last.get("captured") is True, f"/last-request did not capture it: {last!r}")
        expect(last.get("body", {}).get("message") == "ping", f"captured {last.get('body')!r}")

    verdict(check)


if __name__ == "__main__":
    main()
