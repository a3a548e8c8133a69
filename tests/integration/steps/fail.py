"""A failing CI script: some output (with the API key it was given), then exit code 3."""

from __future__ import annotations

import sys

print("checking the payout queue")
print(f"using key {sys.argv[2]}", file=sys.stderr)
print("FAIL: expected 1 pending payout, found 0")
sys.exit(3)
