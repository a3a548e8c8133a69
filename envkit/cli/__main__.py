"""`python -m envkit.cli`: the `envkit` console script without its launcher."""

from __future__ import annotations

from envkit.cli import main

main()
