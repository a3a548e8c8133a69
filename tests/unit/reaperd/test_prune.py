"""What the reaper removes for a filter, in which order, against a stand-in for the engine."""

from __future__ import annotations

from typing import Any

from docker.errors import APIError, NotFound

from envkit.reaperd.protocol import parse_filter
from envkit.reaperd.prune import prune

SESSION = "org.testcontainers.session-id=3f2a"


class Engine:
    """Remembers every removal; a network refuses while any container is left on it."""

    def __init__(self, containers: int, *, gone: bool = False) -> None:
        self.order: list[str] = []
        self.filters: list[dict[str, Any]] = []
        self.left = {f"c{i}" for i in range(containers)}
        self.networks_left = {"n0"}
        self.refusals = 1  # the network is still "in use" once, as right after its containers go
        engine = self

        class Resource:
            def __init__(self, kind: str, name: str) -> None:
                self.kind, self.id = kind, name

            def remove(self, **options: Any) -> None:
                if self.kind == "container":
                    engine.left.discard(self.id)
                    if gone:
                        raise NotFound("already removed")
                elif engine.refusals:
                    engine.refusals -= 1
                    raise APIError("network has active endpoints")
                else:
                    engine.networks_left.discard(self.id)
                engine.order.append(f"{self.kind} {self.id} {sorted(options)}")

        def lister(kind: str, pool: set[str]) -> Any:
            def listing(**kwargs: Any) -> list[Any]:
                engine.filters.append(kwargs["filters"])
                return [Resource(kind, name) for name in sorted(pool)]

            return type(kind, (), {"list": staticmethod(listing)})()

        self.containers = lister("container", self.left)
        self.networks = lister("network", self.networks_left)
        self.volumes = lister("volume", set())


def test_containers_go_first_then_the_network_once_it_is_free() -> None:
    engine = Engine(containers=3)
    assert prune(engine, parse_filter(f"label={SESSION}"), delay=0) == 4
    assert sorted(engine.order[:3]) == [f"container c{i} ['force', 'v']" for i in range(3)]
    assert engine.order[3:] == ["network n0 []"]  # after one refusal and a retry
    assert all(f == {"label": [SESSION]} for f in engine.filters)
    assert engine.left == set()
    assert engine.networks_left == set()


def test_something_someone_else_removed_meanwhile_counts_as_gone() -> None:
    engine = Engine(containers=2, gone=True)
    assert prune(engine, parse_filter(f"label={SESSION}"), delay=0) == 3
    assert engine.networks_left == set()


def test_a_network_that_never_frees_is_given_up_after_the_last_attempt() -> None:
    engine = Engine(containers=0)
    engine.refusals = 100
    assert prune(engine, parse_filter(f"label={SESSION}"), attempts=3, delay=0) == 0
    assert engine.networks_left == {"n0"}
