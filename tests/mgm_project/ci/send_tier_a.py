"""Stand-in for the MGM Tier A sender: a minimal signed chat message through the relay."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import time
import uuid

from mgmci import VIEWER_ID, VIEWER_LOGIN, call, expect, verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--relay", required=True, help="mock-eventsub's base URL")
    parser.add_argument("--secret", required=True, help="the EventSub secret")
    parser.add_argument("--name", required=True, help="the character name to enroll")
    parser.add_argument("--user-id", default=VIEWER_ID)
    parser.add_argument("--login", default=VIEWER_LOGIN)
    args = parser.parse_args()

    def check() -> None:
        # Only the fields the MGM sender fills in; everything else Twitch sends is absent.
        body = json.dumps(
            {
                "subscription": {"type": "channel.chat.message"},
                "event": {
                    "message_id": str(uuid.uuid4()),
                    "chatter_user_id": args.user_id,
                    "chatter_user_login": args.login,
                    "message": {"text": f"!twgold {args.name}"},
                    "badges": [{"set_id": "subscriber"}],
                },
            }
        ).encode()
        message_id = str(uuid.uuid4())
        timestamp = str(int(time.time()))  # Unix seconds, as the MGM scripts send
        mac = hmac.new(
            args.secret.encode(), message_id.encode() + timestamp.encode() + body, hashlib.sha256
        )
        headers = {
            "Twitch-Eventsub-Message-Id": message_id,
            "Twitch-Eventsub-Message-Timestamp": timestamp,
            "Twitch-Eventsub-Message-Signature": "sha256=" + mac.hexdigest(),
        }  # no Twitch-Eventsub-Message-Type: the MGM relay path does not send one
        status, _ = call(
            "POST", args.relay.rstrip("/") + "/api/twitch/eventsub", raw=body, headers=headers
        )
        expect(200 <= status < 300, f"the relay answered {status}")

    verdict(check)


if __name__ == "__main__":
    main()
