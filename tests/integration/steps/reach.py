"""Prove a command step sees the stack: its argument and STACK_ variables, and reaches it."""

from __future__ import annotations

import os
import sys
import urllib.request

url = sys.argv[1]
print(f"argv: {sys.argv[1:]}")  # the API key too: envkit must mask it wherever it writes
print(f"STACK_MOCK_API_URL={os.environ['STACK_MOCK_API_URL']}")
print(f"IN_NETWORK_URL={os.environ['IN_NETWORK_URL']}")
if url != os.environ["STACK_MOCK_API_URL"]:
    print("the host_url argument and STACK_MOCK_API_URL differ")
    sys.exit(2)
host, port = os.environ["STACK_MOCK_API_HOST"], os.environ["STACK_MOCK_API_PORT"]
if url != f"http://{host}:{port}":
    print("STACK_MOCK_API_HOST/PORT do not make the URL")
    sys.exit(2)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1: no proxy
with opener.open(f"{url}/health", timeout=10) as answer:
    print(f"GET {url}/health -> {answer.status} {answer.read().decode()[:80]}")
print(f"run {os.environ['STACK_RUN_ID']} in {os.environ['STACK_ARTIFACT_DIR']}")
