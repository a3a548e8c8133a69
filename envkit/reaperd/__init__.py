"""envkit's reaper: a small program that speaks Ryuk's protocol, run in its own container.

It stands in for testcontainers' Ryuk (see `envkit.lifecycle.hold`): Ryuk's image cannot
be pulled where no registry is reachable, so envkit builds this one (`invoke images`, role
`reaper`). One reaper on an engine serves every envkit process there: each holds a TCP
connection to it and registers its own session's label; when a connection drops (its
process exited, was killed, or is a zombie) and stays gone for the grace period, the
reaper removes the containers, networks and volumes that carry that connection's labels,
and nothing else. With no client left for the idle time, it exits (and is auto-removed).

The package is self-contained on purpose: the image copies this folder alone and runs
`python -m reaperd`, so it imports only itself (relative imports), the standard
library and the Docker SDK. `protocol` (filters, the grace bookkeeping) and `server`
(the TCP side) need no engine and are unit-tested; `prune` talks to the engine.
"""
