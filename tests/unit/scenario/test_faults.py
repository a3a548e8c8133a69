"""Runtime faults: the `--fault` syntax, what is refused before a run, and what is recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from envkit.errors import FaultError
from envkit.evidence.redact import Redactor
from envkit.scenario.faults import (
    BUILT_IN,
    Fault,
    FaultInjector,
    FaultTarget,
    check_faults,
    fault_kinds,
    parse_fault,
)
from envkit.scenario.orchestrator import OrchestratorLog, Step

MGM_STACK = Path(__file__).resolve().parents[3] / "compose" / "tier-b.toml"
STEPS = ["reset", "checkout", "pay"]
SERVICES = ["api", "db", "mock-helix"]


def test_a_fault_flag_reads_step_kind_and_typed_arguments() -> None:
    assert parse_fault("pay:helix-status:status=500,rate=0.5,service=mock-helix") == Fault(
        "pay", "helix-status", {"status": 500, "rate": 0.5, "service": "mock-helix"}
    )
    assert parse_fault(" checkout : stop-service : service=db ") == Fault(
        "checkout", "stop-service", {"service": "db"}
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pay", "--fault 'pay' is not STEP:KIND[:NAME=VALUE,...] (e.g. --fault "
                "STEP:stop-service:service=db)."),
        (":stop-service", "--fault ':stop-service' is not STEP:KIND"),
        ("pay:stop-service:db", "--fault 'pay:stop-service:db': 'db' is not NAME=VALUE;"),
    ],
)  # fmt: skip
def test_a_malformed_fault_flag_says_how_to_write_one(text: str, message: str) -> None:
    with pytest.raises(FaultError) as info:
        parse_fault(text)
    assert str(info.value).startswith(message)
    assert info.value.option == "--fault"


def _refusal(fault: Fault) -> str:
    kinds = fault_kinds("mgm_stack.scenario", MGM_STACK)
    with pytest.raises(FaultError) as info:
        check_faults([fault], kinds, STEPS, SERVICES)
    return str(info.value)


def test_a_fault_is_checked_against_its_kind_the_steps_and_the_services() -> None:
    kinds = fault_kinds("mgm_stack.scenario", MGM_STACK)
    assert {"stop-service", "http-post", "helix-status", "helix-latency"} <= set(kinds)
    check_faults([Fault("pay", "helix-status", {"status": 500})], kinds, STEPS, SERVICES)
    assert _refusal(Fault("pay", "explode")).startswith(
        "The fault explode before step 'pay' is of an unknown kind; kinds: helix-latency, "
        "helix-status, http-post, stop-service."
    )
    assert _refusal(Fault("pay", "helix-status", {"code": 1, "status": 500})) == (
        "The fault helix-status code=1 status=500 before step 'pay' takes no code "
        "(helix-status takes count=, rate=, service=, status=)."
    )
    assert _refusal(Fault("pay", "stop-service")) == (
        "The fault stop-service before step 'pay' needs service= (stop-service takes service=)."
    )
    assert _refusal(Fault("ship", "stop-service", {"service": "db"})) == (
        "The fault stop-service service=db before step 'ship' names a step this run does not "
        "have; its steps are: reset, checkout, pay."
    )
    assert _refusal(Fault("pay", "stop-service", {"service": "cache"})) == (
        "The fault stop-service service=cache before step 'pay' names service 'cache', which "
        "the stack does not have; it has: api, db, mock-helix."
    )
    assert set(fault_kinds("steps.toml")) == set(BUILT_IN)  # a scenario file adds none


def test_a_fault_needs_a_step_and_a_kind() -> None:
    with pytest.raises(FaultError, match=r"A fault needs a step and a kind \(got step ''"):
        Fault("", "stop-service")


def test_a_fault_gets_a_seed_once_and_round_trips_through_the_options() -> None:
    seeded = Fault("pay", "helix-status", {"status": 500}).seeded()
    assert isinstance(seeded.seed, int)
    assert seeded.seeded() == seeded
    assert Fault.from_data(seeded.to_data()) == seeded
    with pytest.raises(FaultError, match="A recorded fault is not a table with args"):
        Fault.from_data({"at_step": "pay", "kind": "x", "args": []})


def test_the_injector_injects_before_the_named_step_and_records_the_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    posted: list[tuple[str, str, dict[str, Any]]] = []

    def post_json(self: FaultTarget, service: str, path: str, body: Any) -> None:
        posted.append((service, path, dict(body)))

    monkeypatch.setattr(FaultTarget, "post_json", post_json)
    kinds = fault_kinds("mgm_stack.scenario", MGM_STACK)
    fault = Fault("pay", "helix-status", {"status": 500, "count": 2}, seed=7)
    log = OrchestratorLog(tmp_path / "o.log", Redactor([]))
    injector = FaultInjector([fault], kinds, log)
    env: Any = object()
    injector.before_step(Step("checkout", "t", lambda ctx: ""), env)
    assert posted == []
    injector.before_step(Step("pay", "t", lambda ctx: ""), env)
    assert posted == [
        ("mock-helix", "/admin/faults",
         {"failureRate": 1.0, "seed": 7, "count": 2, "status": 500}),
    ]  # fmt: skip
    (event,) = injector.events
    assert {k: v for k, v in event.items() if k != "at"} == {"event": "fault", **fault.to_data()}
    assert (
        "fault injected: helix-status count=2 status=500 before step 'pay' (seed 7)"
        in (tmp_path / "o.log").read_text()
    )


def test_a_fault_that_cannot_be_injected_says_which_and_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kinds = fault_kinds("mgm_stack.scenario", MGM_STACK)
    log = OrchestratorLog(tmp_path / "o.log", Redactor([]))
    bad = FaultInjector([Fault("pay", "helix-status", {"status": 200}, seed=1)], kinds, log)
    env: Any = object()
    with pytest.raises(FaultError) as info:
        bad.before_step(Step("pay", "t", lambda ctx: ""), env)
    assert str(info.value) == (
        "The fault helix-status status=200 before step 'pay' was not injected: status=200 is "
        "not an HTTP error status from 400 to 599."
    )
    assert bad.events == []
