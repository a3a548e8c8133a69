"""A CI script that never ends: it starts a helper process, records both pids, then waits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
pids = Path(os.environ["STACK_ARTIFACT_DIR"]) / "hang.pids"
pids.with_suffix(".tmp").write_text(f"{os.getpid()} {helper.pid}\n")
pids.with_suffix(".tmp").rename(pids)  # whole, or not at all
print(f"waiting forever (pids {os.getpid()} {helper.pid})", flush=True)
time.sleep(3600)
