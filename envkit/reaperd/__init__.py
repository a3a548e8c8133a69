"""envkit's reaper: a small program that speaks Ryuk's protocol, run in its own container.

It is the reaper testcontainers starts for each envkit process (see
`envkit.lifecycle.hold`): testcontainers' Ryuk image cannot be pulled where no registry
is reachable, so envkit builds this one (`invoke images`, role `reaper`). The process
holds a TCP connection to it and registers its session's label; when the connection
drops (the process exited, was killed, or is a zombie) and stays gone for the grace
period, the reaper removes the containers, networks and volumes that carry the label.

The package is self-contained on purpose: the image copies this folder alone and runs
`python -m reaperd`, so it imports only itself (relative imports), the standard
library and the Docker SDK. `protocol` (filters, the grace bookkeeping) and `server`
(the TCP side) need no engine and are unit-tested; `prune` talks to the engine.
"""
