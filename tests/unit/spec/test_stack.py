"""Stack model: every rejection (message asserted), dependency waves, resolution."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import envkit.spec.stack
from envkit.errors import StackError
from envkit.spec.settings import load_settings
from envkit.spec.stack import (
    ProbeSpec,
    ServiceSpec,
    StackSpec,
    load_stack,
    resolve_stack,
)

TIER_B = Path(__file__).resolve().parents[3] / "compose" / "tier-b.toml"
FILE = "compose/x.toml"
# The stack's own settings, declared in its file (the table form), for the references below.
SETTINGS = """
[settings.app.environment]
default = "Development"
[settings.app.api_key]
secret = true
default = "demo-key"
[settings.twitch.helix_base_url]
default = "http://mock-helix:8080"
[settings.ports.backend]
default = 8080
[settings.postgres.user]
default = "app"
[settings.postgres.password]
secret = true
default = "demo-password"
[settings.postgres.db]
default = "app"

"""
HEADER = '[stack]\nname = "demo"\n\n'


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "compose").mkdir()
    monkeypatch.chdir(tmp_path)


def write(text: str, header: str = HEADER) -> Path:
    path = Path(FILE)
    settings = SETTINGS if header == HEADER else ""  # after the services: line numbers stay
    path.write_text(header + textwrap.dedent(text) + settings)
    return path


def refused(text: str, header: str = HEADER) -> list[str]:
    with pytest.raises(StackError) as info:
        load_stack(write(text, header))
    assert str(info.value).startswith(f"{len(info.value.problems)} problem")
    return info.value.problems


def service(name: str, extra: str = "", image: str = "services") -> str:
    return f'[services.{name}]\nimage = "{image}"\nlog = "{name}.log"\n{extra}\n'


def only(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


# -- the file as a whole ------------------------------------------------------------------------


def test_missing_file_lists_the_stack_files_next_to_it() -> None:
    write(service("api"))
    with pytest.raises(StackError) as info:
        load_stack(Path("compose/y.toml"))
    assert (
        only(info.value.problems) == "compose/y.toml: no such stack file; stack files there: x.toml"
    )


def test_toml_syntax_error_names_the_line() -> None:
    assert only(refused(service("api") + "port = \n")) == (
        f"{FILE}: is not valid TOML: Invalid value (at line 8, column 8); "
        "fix the syntax there (see https://toml.io)"
    )


def test_missing_stack_table() -> None:
    assert only(refused(service("api"), header="")) == (
        f'{FILE}: the [stack] table is missing; add [stack] with name = "my-stack" '
        "(lowercase letters, digits and '-') at the top"
    )


def test_no_services() -> None:
    assert only(refused("")) == (
        f"{FILE}: no services defined; add at least one [services.<name>] table with "
        'image = "..." and log = "<name>.log"'
    )


def test_bad_stack_name_and_unknown_stack_key() -> None:
    problems = refused(service("api"), header='[stack]\nname = "My Stack"\ndescripton = "x"\n')
    assert problems == [
        f"{FILE}: [stack], field 'name': 'My Stack' must be lowercase letters, digits and '-' "
        '(it goes into container names), e.g. name = "my-stack"',
        f"{FILE}: [stack], field 'descripton': unknown key; did you mean 'description'? "
        "allowed keys here: description, name, orchestrator_log, run_name, scenario, settings",
    ]


def test_unknown_top_level_key() -> None:
    problems = refused(service("api").replace("[services.", "[service."))
    assert problems == [
        f"{FILE}: unknown top-level key 'service'; did you mean 'services'? a stack file has "
        "one [stack] table, [services.<name>] tables and optional [settings.<section>.<name>] "
        "tables",
        f"{FILE}: no services defined; add at least one [services.<name>] table with "
        'image = "..." and log = "<name>.log"',
    ]


def test_every_problem_is_reported_at_once() -> None:
    problems = refused(
        service("api", 'depends_on = { db = "healthy" }\nprobe = { kind = "grpc" }')
        + service("web", image="postgress")
    )
    assert [p.split(": ", 2)[1] for p in problems] == [
        "service 'api', field 'probe.kind'",
        "service 'web', field 'image'",
        "service 'api', field 'depends_on'",
    ]


# -- service fields ------------------------------------------------------------------------------


def test_bad_service_name() -> None:
    assert only(refused(service("Api_1"))) == (
        f"{FILE}: service 'Api_1': the name must be lowercase letters, digits and '-', "
        "starting with a letter (it becomes the in-network host name); rename the table, "
        "e.g. [services.api-1]"
    )


def test_name_key_inside_a_service_table() -> None:
    assert only(refused(service("api", 'name = "other"'))) == (
        f"{FILE}: service 'api', field 'name': unknown key; the table name is the service name"
    )


def test_missing_image() -> None:
    assert only(refused('[services.api]\nlog = "api.log"\n')) == (
        f"{FILE}: service 'api': needs an image or a build; add image = \"services\" "
        '(an image role) or a reference like "redis:7", or build = { context = "../backend" } '
        "(a directory with a Dockerfile)"
    )


def test_unknown_image_role() -> None:
    assert only(refused(service("api", image="postgress"))) == (
        f"{FILE}: service 'api', field 'image': 'postgress' is neither an image role "
        "(postgres, services) nor an image reference; did you mean 'postgres'? use a role, "
        "or a reference with a tag or a registry path such as 'redis:7'"
    )


def test_missing_and_bad_log_names() -> None:
    assert only(refused('[services.api]\nimage = "services"\n')) == (
        f"{FILE}: service 'api', field 'log': is required; add log = \"api.log\""
    )
    assert only(refused(service("api").replace('"api.log"', '"../api.txt"'))) == (
        f"{FILE}: service 'api', field 'log': '../api.txt' must be a plain file name ending in "
        ".log (letters, digits, '.', '_', '-'; no directories), e.g. log = \"api.log\""
    )


def test_duplicate_log_file_name() -> None:
    text = service("api") + service("web").replace('"web.log"', '"api.log"')
    assert only(refused(text)) == (
        f"{FILE}: service 'web', field 'log': 'api.log' is also the log of service 'api'; "
        "give each service its own log file name"
    )


def test_unknown_service_key_suggests_the_right_one() -> None:
    assert only(refused(service("api", "prot = 80"))) == (
        f"{FILE}: service 'api', field 'prot': unknown key; did you mean 'port'? allowed keys "
        "here: build, command, cpus, depends_on, env, fixed_port, image, log, memory, port, "
        "probe, ready_timeout, tmpfs"
    )


def test_type_errors_name_the_field() -> None:
    problems = refused(
        service("api", 'port = "http"\nready_timeout = -1\n[services.api.env]\nN = 5')
    )
    assert problems == [
        f"{FILE}: service 'api', field 'port': input should be a valid integer, unable to parse "
        "string as an integer, not 'http'",
        f"{FILE}: service 'api', field 'ready_timeout': -1.0 must be a positive number of "
        "seconds, e.g. 60",
        f"{FILE}: service 'api', field 'env.N': must be a string; write it in quotes, e.g. \"5\"",
    ]


def test_port_out_of_range() -> None:
    assert only(refused(service("api", "port = 70000"))) == (
        f"{FILE}: service 'api', field 'port': 70000 is out of range; use a port number "
        "from 1 to 65535"
    )


def test_tmpfs_mounts_are_read_with_their_options() -> None:
    path = write(service("db", 'tmpfs = { "/run/pgdata" = "size=512m,mode=1777", "/cache" = "" }'))
    assert load_stack(path).services["db"].tmpfs == {
        "/run/pgdata": "size=512m,mode=1777",
        "/cache": "",
    }


@pytest.mark.parametrize("bad", ["run/data", "/", "/run/../etc", "/run data", "/run//x"])
def test_tmpfs_path_must_be_an_absolute_container_path(bad: str) -> None:
    assert only(refused(service("db", f'tmpfs = {{ "{bad}" = "size=1m" }}'))) == (
        f"{FILE}: service 'db', field 'tmpfs': {bad!r} is not an absolute container path; "
        'use e.g. tmpfs = { "/run/data" = "size=256m" }'
    )


def test_tmpfs_options_are_checked() -> None:
    assert only(refused(service("db", 'tmpfs = { "/run/x" = "size=1m,bogus,mode=99999" }'))) == (
        f"{FILE}: service 'db', field 'tmpfs': 'bogus', 'mode=99999' in the options of "
        "'/run/x' is not a tmpfs option; use comma-separated size=256m, mode=1777, uid=N, "
        'gid=N, noexec, nosuid, nodev (or "" for none)'
    )


def test_mgm_postgres_keeps_its_cluster_on_a_tmpfs() -> None:
    postgres = load_stack(TIER_B).services["postgres"]
    (mount,) = postgres.tmpfs
    assert postgres.env["PGDATA"].startswith(mount + "/")


# -- dependencies -------------------------------------------------------------------------------


def test_unknown_dependency_lists_known_services() -> None:
    text = service("api", 'depends_on = { db = "healthy" }') + service("cache")
    assert only(refused(text)) == (
        f"{FILE}: service 'api', field 'depends_on': unknown service 'db'; "
        "known services: api, cache"
    )


def test_dependency_on_itself() -> None:
    assert only(refused(service("api", 'depends_on = { api = "started" }'))) == (
        f"{FILE}: service 'api', field 'depends_on': 'api' is the service itself; remove it"
    )


def test_bad_condition() -> None:
    text = service("api", 'depends_on = { db = "ready" }') + service("db")
    assert only(refused(text)) == (
        f"{FILE}: service 'api', field 'depends_on.db': must be one of 'started' or "
        "'healthy', not 'ready'"
    )


def test_cycle_names_its_path() -> None:
    text = service("a", 'depends_on = { b = "started" }') + service(
        "b", 'depends_on = { a = "healthy" }'
    )
    assert only(refused(text)) == (
        f"{FILE}: service 'a', field 'depends_on': dependency cycle a -> b -> a; "
        "remove one of these dependencies"
    )


def test_longer_cycle_is_reported_even_when_a_member_has_other_problems() -> None:
    text = (
        service("a", 'depends_on = { b = "started" }')
        + service("b", 'depends_on = { c = "started" }\nprot = 1')
        + service("c", 'depends_on = { a = "started" }')
    )
    problems = refused(text)
    assert problems[-1] == (
        f"{FILE}: service 'a', field 'depends_on': dependency cycle a -> b -> c -> a; "
        "remove one of these dependencies"
    )
    assert len(problems) == 2


# -- probes -------------------------------------------------------------------------------------


def test_unknown_probe_kind() -> None:
    assert only(refused(service("api", 'probe = { kind = "grpc" }'))) == (
        f"{FILE}: service 'api', field 'probe.kind': must be one of 'http', 'tcp', "
        "'postgres' or 'log', not 'grpc'"
    )


def test_http_probe_needs_path_and_port() -> None:
    assert refused(service("api", 'probe = { kind = "http" }')) == [
        f"{FILE}: service 'api', field 'probe.path': a 'http' probe needs it; "
        'add path = "/health"',
        f"{FILE}: service 'api', field 'port': a 'http' probe connects to the service's port, "
        "but no port is set; add port = <the port it listens on in the container>",
    ]


@pytest.mark.parametrize("kind", ["tcp", "postgres"])
def test_port_probes_need_a_port(kind: str) -> None:
    problems = refused(service("db", f'probe = {{ kind = "{kind}" }}'))
    assert problems[-1] == (
        f"{FILE}: service 'db', field 'port': a '{kind}' probe connects to the service's port, "
        "but no port is set; add port = <the port it listens on in the container>"
    )


def test_postgres_probe_needs_credentials() -> None:
    problems = refused(service("db", 'port = 5432\nprobe = { kind = "postgres" }'))
    assert problems == [
        f"{FILE}: service 'db', field 'probe.user': a 'postgres' probe needs it; "
        'add user = "${postgres.user}"',
        f"{FILE}: service 'db', field 'probe.password': a 'postgres' probe needs it; "
        'add password = "${postgres.password}"',
        f"{FILE}: service 'db', field 'probe.database': a 'postgres' probe needs it; "
        'add database = "${postgres.db}"',
    ]


def test_log_probe_needs_pattern_but_no_port() -> None:
    assert only(refused(service("job", 'probe = { kind = "log" }'))) == (
        f"{FILE}: service 'job', field 'probe.pattern': a 'log' probe needs it; "
        'add pattern = "ready to accept connections"'
    )


def test_bad_regex() -> None:
    problem = only(refused(service("job", 'probe = { kind = "log", pattern = "ready (" }')))
    assert problem.startswith(
        f"{FILE}: service 'job', field 'probe.pattern': 'ready (' is not a valid regular "
        "expression (missing ), unterminated subpattern"
    )
    assert problem.endswith("escape special characters such as ( [ . with a backslash")


def test_bad_http_probe_values() -> None:
    probe = 'probe = { kind = "http", path = "health", status = 20 }\nport = 80'
    assert refused(service("api", probe)) == [
        f"{FILE}: service 'api', field 'probe.path': 'health' must start with '/', "
        'e.g. path = "/health"',
        f"{FILE}: service 'api', field 'probe.status': 20 is not an HTTP status; use a code "
        "from 100 to 599, e.g. 200",
    ]


def test_probe_field_that_does_not_apply_to_its_kind() -> None:
    probe = 'probe = { kind = "tcp", path = "/health" }\nport = 80'
    assert only(refused(service("api", probe))) == (
        f"{FILE}: service 'api', field 'probe.path': does not apply to a 'tcp' probe; remove it"
    )


def test_unknown_probe_key() -> None:
    probe = 'probe = { kind = "http", path = "/", statuss = 200 }\nport = 80'
    assert only(refused(service("api", probe))) == (
        f"{FILE}: service 'api', field 'probe.statuss': unknown key; did you mean 'status'? "
        "allowed keys here: body_contains, count, database, kind, password, path, pattern, "
        "status, user"
    )


# -- references and fixed ports -----------------------------------------------------------------


def test_references_are_checked_when_loading() -> None:
    env = (
        "[services.api.env]\n"
        'A = "${twitch.helix_url}"\n'
        'B = "${services.db.url}"\n'
        'C = "${services.worker.url}"\n'
        'D = "${services.worker.address}"\n'
        'E = "${Postgres.user}"\n'
    )
    problems = refused(service("api", env) + service("worker"))
    assert problems == [
        f"{FILE}: service 'api', field 'env.A': '${{twitch.helix_url}}' names no setting; "
        "did you mean 'twitch.helix_base_url'? `./inv config` lists the settings",
        f"{FILE}: service 'api', field 'env.B': '${{services.db.url}}' names unknown service "
        "'db'; known: api, worker",
        f"{FILE}: service 'api', field 'env.C': '${{services.worker.url}}' needs a port, but "
        "service 'worker' sets no port",
        f"{FILE}: service 'api', field 'env.D': '${{services.worker.address}}' must have the "
        "form ${services.<name>.host/port/url}",
        f"{FILE}: service 'api', field 'env.E': '${{Postgres.user}}' holds a malformed "
        "reference; write ${section.field} in lowercase, e.g. ${postgres.user} or "
        "${services.api.url}",
    ]


def test_same_literal_fixed_port_twice() -> None:
    text = service("api", "fixed_port = 8080") + service("web", "fixed_port = 8080")
    assert only(refused(text)) == (
        f"{FILE}: service 'web', field 'fixed_port': 8080 is also the fixed_port of service "
        "'api'; give each service its own host port"
    )


def test_fixed_port_must_be_a_number_or_reference() -> None:
    assert only(refused(service("api", 'fixed_port = "eighty"'))) == (
        f"{FILE}: service 'api', field 'fixed_port': 'eighty' is neither a port number nor a "
        'reference; use e.g. 8080 or a port setting such as "${ports.backend}"'
    )


def test_fixed_ports_that_render_equal_name_both_services() -> None:
    text = service("api", 'fixed_port = "${ports.backend}"') + service("web", "fixed_port = 8081")
    stack = load_stack(write(text))
    settings = load_settings(None, {"ENVKIT_PORTS__BACKEND": "8081"}, stack=Path(FILE))
    with pytest.raises(StackError) as info:
        resolve_stack(stack, settings)
    assert info.value.problems == [
        f"{FILE}: service 'web', field 'fixed_port': host port 8081 is also the fixed_port of "
        "service 'api'; give each service its own host port (change the port setting either "
        "refers to)"
    ]


def test_fixed_port_that_renders_to_no_port() -> None:
    stack = load_stack(write(service("api", 'fixed_port = "${app.environment}"')))
    with pytest.raises(StackError) as info:
        resolve_stack(stack, load_settings(None, {}, stack=Path(FILE)))
    assert info.value.problems == [
        f"{FILE}: service 'api', field 'fixed_port': '${{app.environment}}' renders to "
        "'Development', not a port from 1 to 65535; refer to a port setting such as "
        '"${ports.backend}" or write a number'
    ]


def test_unknown_reference_in_a_hand_built_stack_names_file_service_and_field() -> None:
    api = ServiceSpec(name="api", image="services", log="api.log", env={"X": "${nope.x}"})
    stack = StackSpec(name="demo", services={"api": api}, source=Path(FILE))
    with pytest.raises(StackError) as info:
        resolve_stack(stack, load_settings(None, {}))
    assert info.value.problems[0].startswith(
        f"{FILE}: service 'api', field 'env.X': '${{nope.x}}' names no setting"
    )


# -- waves and chains ---------------------------------------------------------------------------


def graph_stack(deps: dict[str, list[str]]) -> StackSpec:
    services = {
        name: ServiceSpec(
            name=name, image="services", log=f"{name}.log", depends_on=dict.fromkeys(d, "started")
        )
        for name, d in deps.items()
    }
    return StackSpec(name="g", services=services, source=Path(FILE))


def test_waves_of_the_mgm_stack() -> None:
    assert load_stack(TIER_B).waves() == [
        ["mock-eventsub", "mock-helix", "mock-jwt", "postgres", "synthetic-desktop"],
        ["backend"],
    ]


def test_dependency_chains_of_the_mgm_stack() -> None:
    assert load_stack(TIER_B).dependency_chains() == [
        ["mock-eventsub"],
        ["mock-helix"],
        ["mock-jwt"],
        ["postgres", "backend"],
        ["synthetic-desktop"],
    ]


def test_waves_and_chains_of_a_diamond() -> None:
    stack = graph_stack({"d": ["b", "c"], "c": ["a"], "b": ["a"], "a": []})
    assert stack.waves() == [["a"], ["b", "c"], ["d"]]
    assert stack.dependency_chains() == [["a", "b", "d"], ["a", "c", "d"]]


def test_a_service_starts_in_the_first_wave_after_all_its_deps() -> None:
    stack = graph_stack({"a": [], "b": ["a"], "c": ["b"], "x": [], "y": ["x", "c"]})
    assert stack.waves() == [["a", "x"], ["b"], ["c"], ["y"]]
    assert stack.dependency_chains() == [["a", "b", "c", "y"], ["x", "y"]]


def test_waves_of_a_chain() -> None:
    stack = graph_stack({"c": ["b"], "b": ["a"], "a": []})
    assert stack.waves() == [["a"], ["b"], ["c"]]
    assert stack.dependency_chains() == [["a", "b", "c"]]


def test_waves_refuse_a_hand_built_cycle() -> None:
    stack = graph_stack({"a": ["b"], "b": ["a"], "c": []})
    with pytest.raises(StackError) as info:
        stack.dependency_chains()
    assert info.value.problems == [
        f"{FILE}: services a, b can never start: their dependencies form a cycle or name "
        "unknown services; load the file with load_stack to see which"
    ]


# -- resolution ---------------------------------------------------------------------------------


def test_mgm_stack_resolves_every_reference() -> None:
    settings = load_settings(None, {"ENVKIT_POSTGRES__PASSWORD": "pw-9"}, stack=TIER_B)
    resolved = resolve_stack(load_stack(TIER_B), settings)
    assert list(resolved) == [
        "postgres",
        "backend",
        "mock-eventsub",
        "mock-jwt",
        "mock-helix",
        "synthetic-desktop",
    ]
    for name, service in resolved.items():
        assert service.name == name
        assert not any("${" in value for value in service.env.values()), name
        assert service.ready_timeout == 60.0
    assert resolved["mock-eventsub"].env["Backend__BaseUrl"] == "http://backend:8080"
    desktop = resolved["synthetic-desktop"].env
    assert desktop["SyntheticDesktop__BackendBaseUrl"] == "http://backend:8080"
    assert {name: s.fixed_port for name, s in resolved.items()} == {
        "postgres": 5432,
        "backend": 8080,
        "mock-eventsub": 9051,
        "mock-jwt": 9052,
        "mock-helix": 9053,
        "synthetic-desktop": 9054,
    }
    probe = resolved["postgres"].probe
    assert probe is not None
    assert (probe.kind, probe.user, probe.password, probe.database) == (
        "postgres",
        "mgm",
        "pw-9",
        "mgm",
    )
    assert "pw-9" not in repr(resolved["postgres"])
    backend = resolved["backend"]
    assert backend.probe == ProbeSpec(kind="http", path="/api/version", status=200)
    assert backend.spec.command is None  # a real backend image runs its own entrypoint
    assert backend.spec.depends_on == {"postgres": "healthy"}
    assert backend.spec.image_role == "services"


def test_fixed_ports_and_timeouts_follow_the_settings() -> None:
    settings = load_settings(
        None,
        {"ENVKIT_PORTS__BACKEND": "18080", "ENVKIT_TIMEOUTS__SERVICE_READY_SECONDS": "5"},
        stack=TIER_B,
    )
    resolved = resolve_stack(load_stack(TIER_B), settings)
    assert resolved["backend"].fixed_port == 18080
    assert resolved["backend"].ready_timeout == 5.0


def test_a_stack_that_is_not_mgm_loads_and_resolves() -> None:
    path = write(
        """
        [services.cache]
        image = "redis:7"
        command = ["redis-server", "--save", ""]
        port = 6379
        log = "cache.log"
        ready_timeout = 15
        probe = { kind = "log", pattern = "Ready to accept connections", count = 1 }

        [services.api]
        image = "registry.example/shop/api:1.2"
        port = 3000
        fixed_port = 3000
        log = "api.log"
        depends_on = { cache = "healthy" }

        [services.api.env]
        REDIS_URL = "redis://${services.cache.host}:${services.cache.port}/0"

        [services.api.probe]
        kind = "tcp"

        [services.worker]
        image = "services"
        command = ["worker"]
        log = "worker.log"
        depends_on = { api = "started", cache = "started" }

        [services.worker.env]
        API = "${services.api.url}"
        """,
        header='[stack]\nname = "shop"\ndescription = "a shop"\n',
    )
    stack = load_stack(path)
    assert (stack.name, stack.description, stack.source) == ("shop", "a shop", path)
    assert stack.waves() == [["cache"], ["api"], ["worker"]]
    assert stack.dependency_chains() == [["cache", "api", "worker"], ["cache", "worker"]]
    assert [s.image_role for s in stack.services.values()] == [None, None, "services"]
    resolved = resolve_stack(stack, load_settings(None, {}))
    assert resolved["api"].env == {"REDIS_URL": "redis://cache:6379/0"}
    assert resolved["worker"].env == {"API": "http://api:3000"}
    assert resolved["api"].fixed_port == 3000
    assert resolved["cache"].fixed_port is None
    assert resolved["cache"].ready_timeout == 15.0
    assert resolved["worker"].probe is None


def test_public_names() -> None:
    assert envkit.spec.stack.IMAGE_ROLES == ("postgres", "services")
    assert set(envkit.spec.stack.__all__) >= {
        "IMAGE_ROLES",
        "ProbeSpec",
        "ServiceSpec",
        "StackSpec",
        "ResolvedService",
        "load_stack",
        "resolve_stack",
    }


# -- build ----------------------------------------------------------------------------------------


def test_a_build_table_replaces_the_image() -> None:
    text = (
        '[services.api]\nlog = "api.log"\n'
        'build = { context = "../api", dockerfile = "docker/Dockerfile", '
        'args = { BASE = "python:3.12", MODE = "${app.environment}" } }\n'
    )
    spec = load_stack(write(text)).services["api"]
    assert spec.image is None
    assert spec.image_role is None
    assert spec.build is not None
    assert (spec.build.context, spec.build.dockerfile) == ("../api", "docker/Dockerfile")
    assert spec.templates() == {
        "build.args.BASE": "python:3.12",
        "build.args.MODE": "${app.environment}",
    }


def test_build_as_its_own_table_defaults_to_the_dockerfile() -> None:
    text = '[services.api]\nlog = "api.log"\n[services.api.build]\ncontext = "."\n'
    build = load_stack(write(text)).services["api"].build
    assert build is not None
    assert (build.context, build.dockerfile, build.args) == (".", "Dockerfile", {})


def test_image_and_build_together_are_refused() -> None:
    text = service("api", 'build = { context = "." }')
    assert only(refused(text)) == (
        f"{FILE}: service 'api': has both image and build; keep one: image names an image to "
        "run, build a directory whose Dockerfile envkit builds (to try an image instead of a "
        "build without editing the file, use ENVKIT_IMAGES__OVERRIDE)"
    )


def test_build_fields_are_checked() -> None:
    text = (
        '[services.api]\nlog = "api.log"\n'
        'build = { context = "", dockerfile = 3, args = { "BAD-NAME" = "x", N = 1 }, cache = 1 }\n'
    )
    assert refused(text) == [
        f"{FILE}: service 'api', field 'build.context': is empty; name a path, e.g. "
        'context = "../backend"',
        f"{FILE}: service 'api', field 'build.dockerfile': must be a string; write it in "
        'quotes, e.g. "3"',
        f"{FILE}: service 'api', field 'build.args.N': must be a string; write it in quotes, "
        'e.g. "1"',
        f"{FILE}: service 'api', field 'build.cache': unknown key; allowed keys here: args, "
        "context, dockerfile",
    ]


def test_a_build_needs_a_context() -> None:
    text = '[services.api]\nlog = "api.log"\nbuild = { dockerfile = "Dockerfile" }\n'
    assert only(refused(text)) == (
        f"{FILE}: service 'api', field 'build.context': is required; add context = "
        '"../backend" (the directory that holds the Dockerfile)'
    )


def test_build_argument_names_are_checked() -> None:
    text = '[services.api]\nlog = "api.log"\nbuild = { context = ".", args = { "A-B" = "x" } }\n'
    assert only(refused(text)) == (
        f"{FILE}: service 'api', field 'build.args': 'A-B' is not a valid build argument name; "
        "use letters, digits and '_', not starting with a digit (e.g. BASE_IMAGE, as in the "
        "Dockerfile's ARG)"
    )


def test_build_arguments_refer_to_settings_but_not_secrets() -> None:
    text = (
        '[services.api]\nlog = "api.log"\nport = 80\n'
        'build = { context = ".", args = { A = "${services.api.url}", B = "${zzz.q}", '
        'C = "key=${app.api_key}" } }\n'
    )
    assert refused(text) == [
        f"{FILE}: service 'api', field 'build.args.A': build arguments are filled before any "
        "container exists, so they cannot refer to a service; refer to a setting instead "
        "(e.g. ${app.environment})",
        f"{FILE}: service 'api', field 'build.args.B': '${{zzz.q}}' names no setting; "
        "`./inv config` lists the settings",
        f"{FILE}: service 'api', field 'build.args.C': '${{app.api_key}}' is a secret, and "
        "build arguments stay in the image's history for anyone who can pull it; give the "
        "secret to the container as an env value instead",
    ]


# -- memory and CPU limits ----------------------------------------------------------------------


def test_memory_and_cpu_limits_become_the_engines_options() -> None:
    stack = load_stack(write(service("api", 'memory = "256m"\ncpus = 0.5') + service("db")))
    assert stack.services["api"].limits == {
        "mem_limit": 256 * 1024**2,
        "memswap_limit": 256 * 1024**2,
        "nano_cpus": 500_000_000,
    }
    assert stack.services["db"].limits == {}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('memory = "lots"', "'lots' is not a memory size; use a number with b, k, m or g"),
        ('memory = "1m"', "'1m' is below the engine's smallest memory limit (6m)"),
        ("cpus = 0", "0.0 is not a number of CPUs; use e.g. cpus = 0.5"),
    ],
)
def test_a_bad_limit_is_refused_naming_the_field(line: str, expected: str) -> None:
    problem = only(refused(service("api", line)))
    assert problem.startswith(f"{FILE}: service 'api', field '{line.split()[0]}': "), problem
    assert expected in problem
