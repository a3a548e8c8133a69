"""How envkit uses testcontainers: only its public API, one injected client, no engine here.

The builder tests hand testcontainers a recording stand-in for docker-py's client and
read what it would have sent to the engine.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any, cast

import docker
import pytest
import testcontainers.core.container
import testcontainers.core.docker_client
import testcontainers.core.network
from docker.errors import APIError
from testcontainers.core.labels import LABEL_SESSION_ID, SESSION_ID
from testcontainers.core.network import Network

from envkit.lifecycle.containers import (
    RUN,
    SERVICE,
    EngineClient,
    network_address,
    owner_labels,
    run_network,
)
from envkit.lifecycle.environment import service_container
from envkit.spec.settings import load_settings
from envkit.spec.stack import ResolvedService, load_stack, resolve_stack

ROOT = Path(__file__).resolve().parents[3]
TC_MODULES = (
    testcontainers.core.container,
    testcontainers.core.network,
    testcontainers.core.docker_client,
)
# testcontainers' runtime configuration that envkit may set (documented as settable at run time;
# the two ryuk_ fields point its reaper at envkit's reaper image, see envkit.lifecycle.hold).
CONFIG_FIELDS = {
    "ryuk_disabled",
    "ryuk_image",
    "ryuk_reconnection_timeout",
    "tc_host_override",
    "connection_mode_override",
}


# -- the rules, as a walk over source text ------------------------------------------------------


def _tc_attributes() -> tuple[set[str], set[str]]:
    """testcontainers' core classes: (private names, public state set in their methods)."""
    private: set[str] = set()
    state: set[str] = set()
    for module in TC_MODULES:
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.FunctionDef):
                private.add(node.name)
            elif isinstance(node, ast.Attribute) and ast.unparse(node.value) == "self":
                (state if isinstance(node.ctx, ast.Store) else private).add(node.attr)
    private = {n for n in private | state if n.startswith("_") and not n.startswith("__")}
    return private, {n for n in state if not n.startswith("_")}


def _tc_names(tree: ast.Module) -> set[str]:
    """Names a module imports from testcontainers."""
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("testcontainers")
        for alias in node.names
    }


def violations(source: str, where: str = "<source>") -> list[str]:
    """Private reads and state writes on testcontainers objects in `source`.

    Reads of testcontainers' private names count anywhere; writes of its public state only in
    modules that import testcontainers (elsewhere `x.name = ...` is some other object's)."""
    private, public = _tc_attributes()
    tree = ast.parse(source)
    imported = _tc_names(tree)
    found: list[str] = []
    subclasses = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and {ast.unparse(b) for b in node.bases} & imported
    ]
    for cls in subclasses:
        for method in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
            for node in ast.walk(method):
                if not (isinstance(node, ast.Attribute) and ast.unparse(node.value) == "self"):
                    continue
                if node.attr in private:
                    found.append(f"{where}:{node.lineno}: reads testcontainers' self.{node.attr}")
                written = isinstance(node.ctx, ast.Store) or _subscript_store(method, node)
                if written and node.attr in public and method.name != "__init__":
                    found.append(f"{where}:{node.lineno}: writes testcontainers' self.{node.attr}")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or ast.unparse(node.value) in ("self", "cls"):
            continue
        target = ast.unparse(node)
        if node.attr in private:
            found.append(f"{where}:{node.lineno}: reads {target}")
        elif imported and isinstance(node.ctx, ast.Store):
            config = ast.unparse(node.value) == "testcontainers_config"
            if (config and node.attr not in CONFIG_FIELDS) or (not config and node.attr in public):
                found.append(f"{where}:{node.lineno}: writes {target}")
    return found


def _subscript_store(scope: ast.AST, attribute: ast.Attribute) -> bool:
    return any(
        isinstance(node, ast.Subscript)
        and node.value is attribute
        and isinstance(node.ctx, ast.Store)
        for node in ast.walk(scope)
    )


def test_envkit_uses_only_the_public_api_of_testcontainers() -> None:
    found = [
        v
        for path in sorted((ROOT / "envkit").rglob("*.py"))
        for v in violations(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == []


def test_the_rule_catches_private_reads_and_writes_to_testcontainers_state() -> None:
    bad = (
        "from testcontainers.core.container import DockerContainer\n"
        "class Box(DockerContainer):\n"
        "    def publish(self, port: int) -> None:\n"
        "        self.ports[f'{port}/tcp'] = ('127.0.0.1', None)\n"
        "    def wrapped(self):\n"
        "        return self._container\n"
        "def network(n):\n"
        "    n.name = 'fixed'\n"
        "    return n._docker\n"
        "def configure(testcontainers_config):\n"
        "    testcontainers_config.ryuk_disabled = True\n"
        "    testcontainers_config.max_tries = 3\n"
    )
    assert violations(bad) == [
        "<source>:4: writes testcontainers' self.ports",
        "<source>:6: reads testcontainers' self._container",
        "<source>:8: writes n.name",
        "<source>:9: reads n._docker",
        "<source>:12: writes testcontainers_config.max_tries",
    ]


def test_only_documented_configuration_fields_may_be_set() -> None:
    source = (
        "from testcontainers.core import testcontainers_config\n"
        "testcontainers_config.ryuk_disabled = True\n"
        "testcontainers_config.tc_host_override = '127.0.0.1'\n"
        "testcontainers_config.ryuk_image = 'envkit/reaper:1'\n"
        "testcontainers_config.sleep_time = 0.1\n"
    )
    assert violations(source) == ["<source>:5: writes testcontainers_config.sleep_time"]


# -- the container builder, against a recording docker-py client ---------------------------------


class _Recorded:
    """A docker-py container as the stand-in client returns it."""

    short_id = "0123456789ab"

    def __init__(self, fail_start: bool) -> None:
        self.fail_start = fail_start
        self.removed: dict[str, Any] | None = None

    def start(self) -> None:
        if self.fail_start:
            raise APIError("driver failed programming external connectivity")

    def remove(self, **kwargs: Any) -> None:
        self.removed = kwargs


class _Recorder:
    """Stands in for docker-py's client: remembers every create and whether it was closed."""

    def __init__(self, fail_start: bool = False) -> None:
        self.created: list[dict[str, Any]] = []
        self.containers_made: list[_Recorded] = []
        self.closed = False
        self.fail_start = fail_start
        self.api = type("Api", (), {"api_version": "1.41"})()
        self.images = type("Images", (), {"get": staticmethod(lambda ref: ref)})()
        self.containers = type("Containers", (), {"create": self._create})()
        self.networks_made: list[dict[str, Any]] = []
        self.networks = type("Networks", (), {"create": self._network})()

    def _network(self, name: str, **kwargs: Any) -> Any:
        self.networks_made.append({"name": name, **kwargs})
        # docker-py's create returns the inspected network; an IPv6 config may come first
        ipam = {"Config": [{"Subnet": "fd00::/64", "Gateway": "fd00::1"},
                           {"Subnet": "172.30.0.0/16", "Gateway": "172.30.0.1"}]}  # fmt: skip
        return type("Net", (), {"attrs": {"Name": name, "IPAM": ipam}})()

    def _create(self, image: str, **kwargs: Any) -> _Recorded:
        self.created.append({"image": image, **kwargs})
        self.containers_made.append(_Recorded(self.fail_start))
        return self.containers_made[-1]

    def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def _no_ryuk(monkeypatch: pytest.MonkeyPatch) -> None:
    """As envkit configures testcontainers (else it would start Ryuk on a real engine)."""
    from testcontainers.core import testcontainers_config

    monkeypatch.setattr(testcontainers_config, "ryuk_disabled", True)


@pytest.fixture(scope="module")
def postgres() -> ResolvedService:
    """The MGM stack's postgres service: command, environment, tmpfs and a port."""
    path = ROOT / "compose" / "tier-b.toml"
    settings = load_settings(env_file=None, environ={}, stack=path)
    return resolve_stack(load_stack(path), settings)["postgres"]


def _build(
    recorder: _Recorder,
    service: ResolvedService,
    fixed: int | None = None,
    held: bool = False,
    bind_address: str = "127.0.0.1",
    publish: bool = True,
) -> Any:
    engine = EngineClient(cast(docker.DockerClient, recorder), held=held)
    network = Network(docker_client_kw={"version": "1.41"})  # not created: only its name is used
    labels = owner_labels("run-1", "mgm", "isolated")
    container = service_container(
        "img:1", service, "run-1", network, labels, engine, fixed,
        bind_address=bind_address, publish=publish, cpu_shares=4096,
    )  # fmt: skip
    return container, network


def test_the_builder_sends_the_stack_files_settings_through_the_injected_client(
    postgres: ResolvedService,
) -> None:
    recorder = _Recorder()
    container, network = _build(recorder, postgres)
    container.create_and_start()

    [sent] = recorder.created
    assert sent["image"] == "img:1"
    assert sent["name"] == "envkit-run-1-postgres"
    assert sent["command"] == list(postgres.spec.command)
    assert sent["environment"] == postgres.env
    assert sent["tmpfs"] == {"/run/pgdata": "size=512m"}
    assert sent["ports"] == {"5432/tcp": ("127.0.0.1", None)}  # loopback, a random host port
    assert sent["cpu_shares"] == 4096
    assert sent["labels"][RUN] == "run-1"
    assert sent["labels"][SERVICE] == "postgres"
    assert sent["labels"]["org.testcontainers"] == "true"  # testcontainers adds its own
    assert sent["network"] == network.name
    assert sent["networking_config"][network.name]["Aliases"] == ["postgres"]
    assert container.wrapped is recorder.containers_made[0]
    assert container.get_docker_client().client is recorder


@pytest.mark.parametrize("held", [True, False])
def test_only_a_held_runs_containers_carry_the_session_label_the_reaper_matches(
    postgres: ResolvedService, held: bool
) -> None:
    recorder = _Recorder()
    container, _ = _build(recorder, postgres, held=held)
    container.create_and_start()
    labels = recorder.created[0]["labels"]
    assert (labels.get(LABEL_SESSION_ID) == SESSION_ID) is held
    assert (LABEL_SESSION_ID in labels) is held
    assert labels["org.testcontainers"] == "true"  # testcontainers' other labels stay
    assert labels[RUN] == "run-1"


@pytest.mark.parametrize("held", [True, False])
def test_the_run_network_is_created_through_the_runs_client_and_held_like_its_containers(
    held: bool,
) -> None:
    recorder = _Recorder()
    engine = EngineClient(cast(docker.DockerClient, recorder), held=held)
    network, gateway = run_network(engine, {RUN: "run-1"})
    [made] = recorder.networks_made
    assert made["name"] == network.name
    assert gateway == "172.30.0.1"  # the IPv4 gateway: where the containers' addresses are
    assert made["labels"][RUN] == "run-1"
    assert (made["labels"].get(LABEL_SESSION_ID) == SESSION_ID) is held
    # no network-wide binding option (Docker's alone): each port is published with its address
    assert "options" not in made


def test_a_fixed_port_is_bound_as_given(postgres: ResolvedService) -> None:
    recorder = _Recorder()
    container, _ = _build(recorder, postgres, fixed=29101)
    container.create_and_start()
    assert recorder.created[0]["ports"] == {"5432/tcp": ("127.0.0.1", 29101)}


def test_a_service_reached_at_its_network_address_publishes_no_port(
    postgres: ResolvedService,
) -> None:
    recorder = _Recorder()
    container, network = _build(recorder, postgres, publish=False)
    container.create_and_start()
    [sent] = recorder.created
    assert not sent.get("ports")  # neither a NAT rule nor a proxy process on the engine
    assert sent["network"] == network.name  # still on the run's network, under its alias
    assert sent["networking_config"][network.name]["Aliases"] == ["postgres"]


def test_a_container_address_is_read_from_the_runs_network_only() -> None:
    networks = {"other": {"IPAddress": "10.1.0.5"}, "run-net": {"IPAddress": "172.30.0.3"}}
    running = type("C", (), {"attrs": {"NetworkSettings": {"Networks": networks}}})()
    exited = type("C", (), {"attrs": {"NetworkSettings": {"Networks": {"run-net": {}}}}})()
    assert network_address(cast(Any, running), "run-net") == "172.30.0.3"
    assert network_address(cast(Any, exited), "run-net") == ""
    assert network_address(cast(Any, running), "gone") == ""


def test_a_remote_engines_port_is_published_on_that_engines_address_only(
    postgres: ResolvedService,
) -> None:
    recorder = _Recorder()
    container, _ = _build(recorder, postgres, bind_address="10.99.0.2")
    container.create_and_start()
    assert recorder.created[0]["ports"] == {"5432/tcp": ("10.99.0.2", None)}


def test_a_container_that_cannot_start_is_removed_and_the_shared_client_stays_open(
    postgres: ResolvedService,
) -> None:
    recorder = _Recorder(fail_start=True)
    container, _ = _build(recorder, postgres)
    with pytest.raises(APIError, match="external connectivity"):
        container.create_and_start()
    assert recorder.containers_made[0].removed == {"force": True, "v": True}
    assert recorder.closed is False
