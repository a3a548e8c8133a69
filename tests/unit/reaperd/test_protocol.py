"""Ryuk's filter lines, durations and the grace bookkeeping of envkit's reaper (no sockets)."""

from __future__ import annotations

import pytest

from envkit.reaperd.protocol import Filter, FilterError, Registry, parse_duration, parse_filter

SESSION = "org.testcontainers.session-id=3f2a"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_label_filter_is_parsed_into_the_engines_filter_form() -> None:
    flt = parse_filter(f"label={SESSION}\r\n")
    assert flt == Filter((SESSION,))
    assert flt.docker_filters() == {"label": [SESSION]}
    assert str(flt) == f"label={SESSION}"


def test_further_labels_narrow_a_session_filter_and_their_order_does_not_matter() -> None:
    one = parse_filter(f"label={SESSION}&label=envkit.run=r1")
    assert one == parse_filter(f"label=envkit.run=r1&label={SESSION}")
    assert one.docker_filters() == {"label": ["envkit.run=r1", SESSION]}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("\r\n", "empty filter; send e.g. label=org.testcontainers.session-id=<id>"),
        ("health=unhealthy", "'health' in 'health=unhealthy' is not supported"),
        ("label=", "label= in 'label=' names no label; send label=key=value"),
        ("label==x", "label==x in 'label==x' names no label"),
        ("nonsense", "'nonsense' is not a query string such as label=key=value"),
    ],
)
def test_a_bad_filter_is_refused_with_what_a_good_one_looks_like(line: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(line)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    "line",
    [
        "label=envkit.run",  # every run's resources
        "label=envkit.run=r1",  # another process's run, by its run label
        "label=org.testcontainers=true",  # everything testcontainers made
        "label=org.testcontainers.session-id",  # the key alone: every session
        "label=org.testcontainers.session-id=",  # an empty session
        "label=org.testcontainers.session-idx=3f2a",  # a look-alike key
    ],
)
def test_the_shared_reaper_refuses_every_filter_that_names_no_session(line: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(line)
    assert str(info.value) == (
        f"{line!r} names no session: this reaper removes a session's resources only; send "
        "label=org.testcontainers.session-id=<id> (further labels narrow it)"
    )


def test_a_filter_naming_two_sessions_is_refused() -> None:
    line = f"label={SESSION}&label=org.testcontainers.session-id=9b1c"
    with pytest.raises(FilterError) as info:
        parse_filter(line)
    assert str(info.value) == f"{line!r} names 2 sessions; send one filter line per session"


def test_any_session_is_taken() -> None:
    for session in ("3f2a", "0c9e4c3e-5a1b-4f7e-9d0c-2b6f1e8a7c44"):
        flt = parse_filter(f"label=org.testcontainers.session-id={session}")
        assert flt.labels == (f"org.testcontainers.session-id={session}",)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("500ms", 0.5), ("1m30s", 90.0), ("1.5s", 1.5), ("2", 2.0), ("1h", 3600.0)],
)
def test_durations_are_read_as_ryuk_writes_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "s", "10s junk", "-5s", "-5", "nan"])
def test_a_bad_duration_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration such as 10s, 500ms or 1m30s"):
        parse_duration(text)


MINE = parse_filter(f"label={SESSION}")
THEIRS = parse_filter("label=org.testcontainers.session-id=9b1c")


def _registry(clock: Clock, grace: float = 5.0, idle: float | None = None) -> Registry:
    return Registry(grace=grace, connect_timeout=60.0, idle=idle, clock=clock)


def test_a_held_filter_is_due_only_a_grace_period_after_its_connection_closed() -> None:
    clock = Clock()
    registry = _registry(clock)
    flt = parse_filter(f"label={SESSION}")
    registry.connected(1)
    registry.hold(1, flt)
    clock.now += 1000
    assert registry.due() == []  # held: never due, however long
    registry.disconnected(1)
    clock.now += 4.9
    assert registry.due() == []
    clock.now += 0.1
    assert registry.due() == [flt]
    assert not registry.finished()
    registry.removed(flt)
    assert registry.due() == []
    assert registry.pending() == []


def test_a_client_that_comes_back_within_the_grace_period_keeps_its_filter() -> None:
    clock = Clock()
    registry = _registry(clock)
    flt = parse_filter(f"label={SESSION}")
    registry.connected(1)
    registry.hold(1, flt)
    registry.disconnected(1)
    clock.now += 3
    registry.connected(2)
    registry.hold(2, flt)
    clock.now += 100
    assert registry.due() == []
    assert registry.pending() == [flt]


def test_a_filter_held_by_two_connections_waits_for_both() -> None:
    clock = Clock()
    registry = _registry(clock)
    flt = parse_filter(f"label={SESSION}")
    for conn in (1, 2):
        registry.connected(conn)
        registry.hold(conn, flt)
    registry.disconnected(1)  # e.g. a stranger's connection, or a lost one of the owner's
    clock.now += 100
    assert registry.due() == []
    registry.disconnected(2)
    clock.now += 5
    assert registry.due() == [flt]


def test_each_filter_has_its_own_holders() -> None:
    clock = Clock()
    registry = _registry(clock)
    registry.connected(1)
    registry.hold(1, MINE)
    registry.connected(2)
    registry.hold(2, THEIRS)
    registry.disconnected(1)
    assert registry.released() == [MINE]
    assert registry.holders(THEIRS) == {2}
    clock.now += 5
    assert registry.due() == [MINE]  # only the dropped connection's filter
    registry.removed(MINE)
    clock.now += 1000
    assert registry.due() == []  # the other process's stays held as long as it is connected
    assert registry.pending() == [THEIRS]
    assert not registry.finished()


def test_the_reaper_is_finished_a_grace_period_after_the_last_client_left() -> None:
    clock = Clock()
    registry = _registry(clock)
    flt = MINE
    registry.connected(1)
    registry.hold(1, flt)
    assert not registry.finished()
    registry.disconnected(1)
    clock.now += 5
    assert not registry.finished()  # its filter is due, not yet removed
    registry.removed(flt)
    assert registry.finished()


def test_a_client_without_filters_keeps_the_reaper_for_a_grace_period() -> None:
    clock = Clock()
    registry = _registry(clock)
    registry.connected(1)
    registry.disconnected(1)
    clock.now += 4
    assert not registry.finished()
    clock.now += 1
    assert registry.finished()


def test_with_no_client_at_all_the_reaper_gives_up_after_the_connection_timeout() -> None:
    clock = Clock()
    registry = _registry(clock)
    clock.now += 59
    assert not registry.finished()
    clock.now += 1
    assert registry.finished()


def test_a_shared_reaper_stays_for_its_idle_time_after_the_last_client_and_its_removals() -> None:
    clock = Clock()
    registry = _registry(clock, grace=5.0, idle=60.0)
    registry.connected(1)
    registry.hold(1, MINE)
    registry.connected(2)
    registry.hold(2, THEIRS)
    registry.disconnected(1)
    clock.now += 5
    registry.removed(MINE)
    clock.now += 100
    assert not registry.finished()  # a client is still connected
    registry.disconnected(2)
    clock.now += 5
    assert registry.due() == [THEIRS]
    registry.removed(THEIRS)
    clock.now += 54.9
    assert not registry.finished()  # a new process may still come and use it
    clock.now += 0.1
    assert registry.finished()


def test_a_client_coming_within_the_idle_time_keeps_the_reaper() -> None:
    clock = Clock()
    registry = _registry(clock, idle=60.0)
    registry.connected(1)
    registry.disconnected(1)
    clock.now += 59
    registry.connected(2)
    clock.now += 1000
    assert not registry.finished()
    registry.disconnected(2)
    clock.now += 59
    assert not registry.finished()
    clock.now += 1
    assert registry.finished()
