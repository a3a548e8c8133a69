"""An `ssh://` engine as the `ssh` command sees it: the command line, and why it fails.

The docker SDK reaches an ssh engine by running `ssh [-l user] [-p port] -- host docker
system dial-stdio` (the user's own ssh config, keys and agent apply). When that fails, the
SDK only sees the connection close, and ssh's reason goes to the terminal; so envkit asks
`ssh` once more, with no prompt, and turns its last words into the cause users read.
"""

from __future__ import annotations

import math
import subprocess
from urllib.parse import urlsplit

# What ssh (or the remote shell) says, mapped to words a user acts on (first match wins).
_CAUSES = (
    ("Connection refused", "connection refused: no ssh server listens there"),
    ("Connection timed out", "no answer within {seconds:.0f} s"),
    ("timed out", "no answer within {seconds:.0f} s"),
    ("No route to host", "no route to that host"),
    ("Network is unreachable", "that network is unreachable"),
    ("Could not resolve hostname", "the host name does not resolve"),
    ("Host key verification failed", "its host key is not in known_hosts (or has changed)"),
    ("Permission denied (", "the ssh login was refused: no key the host accepts"),
    (
        "permission denied while trying to connect",
        "the remote user may not use the engine's socket",
    ),
    ("command not found", "the docker CLI is not on the remote PATH"),
    ("Cannot connect to the Docker daemon", "the remote docker CLI reaches no engine there"),
)
_NO_SSH = "the `ssh` command is not installed here (Debian: `apt-get install openssh-client`)"


def ssh_target(url: str) -> list[str]:
    """The arguments that name the host of `url` for `ssh`, as the docker SDK passes them."""
    parts = urlsplit(url)
    args = ["-l", parts.username] if parts.username else []
    if parts.port:
        args += ["-p", str(parts.port)]
    return [*args, str(parts.hostname)]


def ssh_hint(url: str) -> str:
    """The command a user runs to check the engine at `url` by hand."""
    parts = urlsplit(url)
    port = f"-p {parts.port} " if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"ssh {port}{user}{parts.hostname} docker version"


def ssh_cause(url: str, timeout: float) -> str:
    """Why `ssh` cannot reach the engine at `url` (in a user's words), or "" when it can."""
    command = [
        "ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, math.ceil(timeout))}",
        *ssh_target(url), "docker", "version", "--format", "{{.Server.Version}}",
    ]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout + 2, check=False,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except FileNotFoundError:
        return _NO_SSH
    except subprocess.TimeoutExpired:
        return f"no answer within {timeout:.0f} s"
    if done.returncode == 0:
        return ""
    said = (done.stderr.strip().splitlines() or [f"ssh exited with status {done.returncode}"])[-1]
    for needle, words in _CAUSES:
        if needle in said:
            return words.format(seconds=timeout)
    return f"ssh says: {said[:300]}"
