"""Remove what a filter matches on the engine: containers first, then networks and volumes."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from docker.errors import APIError, NotFound

from .protocol import Filter

log = logging.getLogger("reaperd")

ATTEMPTS = 10  # like Ryuk's remove retries: a container may still be detaching from a network
RETRY_DELAY = 0.5
PARALLEL = 8  # containers removed side by side: each removal mostly waits for the engine


def prune(client: Any, flt: Filter, attempts: int = ATTEMPTS, delay: float = RETRY_DELAY) -> int:
    """Remove every container, network and volume `flt` matches; return how many went."""
    filters = flt.docker_filters()
    removed = 0
    for attempt in range(attempts):
        left = 0
        # sparse: the listing alone, no inspect that fails when something vanishes meanwhile
        containers = client.containers.list(all=True, sparse=True, filters=filters)
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            removed += sum(pool.map(_remove_container, containers))
        for network in client.networks.list(filters=filters):
            ok = _remove(network, "network")
            removed += ok
            left += 1 - ok
        for volume in client.volumes.list(filters=filters):
            ok = _remove(volume, "volume", force=True)
            removed += ok
            left += 1 - ok
        left += len(client.containers.list(all=True, sparse=True, filters=filters))
        if not left:
            break
        if attempt + 1 < attempts:
            time.sleep(delay)
    else:
        log.warning("%s: %d resources could not be removed", flt, left)
    log.info("%s: removed %d resources", flt, removed)
    return removed


def _remove_container(container: Any) -> int:
    return _remove(container, "container", force=True, v=True)


def _remove(resource: Any, kind: str, **options: Any) -> int:
    try:
        resource.remove(**options)
    except NotFound:
        return 1  # someone else removed it: gone all the same
    except APIError as exc:
        log.info("%s %s not removed yet: %s", kind, resource.id[:12], exc.explanation)
        return 0
    log.info("removed %s %s", kind, resource.id[:12])
    return 1
