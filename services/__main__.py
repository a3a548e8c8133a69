"""Start one MGM service: `python -m services <name>`; listens where ASPNETCORE_URLS says."""

from __future__ import annotations

import gc
import importlib
import os
import sys

# service name -> module (relative to this package, `services` in the image and
# `envkit.services` when installed) exposing `create_app(env: Mapping[str, str]) -> Starlette`
SERVICES = {
    "backend": ".backend.app",
    "mock-eventsub": ".mock_eventsub.app",
    "mock-jwt": ".mock_jwt.app",
    "mock-helix": ".mock_helix.app",
    "synthetic-desktop": ".synthetic_desktop.app",
}


def main(argv: list[str]) -> int:
    """Run the named service until stopped."""
    if len(argv) != 1 or argv[0] not in SERVICES:
        names = ", ".join(sorted(SERVICES))
        print(f"usage: python -m services <name>   (name is one of: {names})", file=sys.stderr)
        return 2
    name = argv[0]
    # Start-up creates long-lived objects (modules, classes, routes) and next to no garbage,
    # so collections meanwhile free nothing: without them it takes about a tenth less CPU.
    # `gc.freeze()` then keeps those objects out of every later collection, and collection
    # resumes as usual before the server starts (or the command returns).
    gc.disable()
    try:
        import uvicorn

        from .common import configure_logging, listen_address
        from .common.runner import SERVER_OPTIONS

        configure_logging(name)
        try:
            host, port = listen_address(os.environ)
        except ValueError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return 2
        module = importlib.import_module(SERVICES[name], __package__)
        try:
            app = module.create_app(dict(os.environ))
        except ValueError as exc:  # configuration errors name the variable and the fix
            print(f"{name}: cannot start: {exc}", file=sys.stderr)
            return 2
        gc.freeze()
    finally:
        gc.enable()
    uvicorn.run(app, host=host, port=port, **SERVER_OPTIONS)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
