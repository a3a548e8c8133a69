"""The `GET /health` body of each service, exactly as the MGM project's verifiers compare it.

The MGM health scripts compare `status` and the identity key (`service` or
`component`) character for character, so those values are the .NET mocks'
own. Each body also carries `name`, envkit's name for the service (extra
fields are allowed by the contract).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

# envkit service name -> the fields MGM's verifiers expect, exactly.
MGM_HEALTH: Final = MappingProxyType(
    {
        "mock-eventsub": {"status": "ok", "service": "MockEventSubWebhook"},
        "mock-jwt": {"status": "ok", "service": "MockExtensionJwt"},
        "mock-helix": {"status": "healthy", "component": "MockHelixApi"},
        "synthetic-desktop": {"status": "healthy", "component": "SyntheticDesktop"},
    }
)


def health_body(name: str) -> dict[str, str]:
    """The health body of service `name`: MGM's fields when MGM has that service, plus `name`."""
    known = MGM_HEALTH.get(name)
    if known is None:
        # The reference backend (a real backend image has no /health at all) and any other
        # service keep envkit's own shape.
        return {"service": name, "status": "ok"}
    return {**known, "name": name}
