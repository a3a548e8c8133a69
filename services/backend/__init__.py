"""The MGM reference backend: EventSub enrollment, the viewer pool, payouts, chat announcement.

`services.backend.app.create_app(env)` builds the Starlette application from the
.NET-style environment described in CONTRACT.md.
"""

from __future__ import annotations

SERVICE_NAME = "mgm-reference-backend"
VERSION = "0.1.0"

__all__ = ["SERVICE_NAME", "VERSION"]
