"""`invoke images` against the real engine: what it produces, reuse, and the PostgreSQL image."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from typing import Any

import docker
import psycopg
import pytest

from envkit.engines.images import ImageResult, clean_images, ensure_images
from envkit.spec.settings import EnvkitSettings


def test_every_role_has_an_image_in_the_engine(
    images: dict[str, ImageResult], engine: docker.DockerClient
) -> None:
    assert set(images) == {"postgres", "services", "reaper"}
    for result in images.values():
        assert engine.images.get(result.ref).id == result.image_id
        assert result.origin in ("public", "local")


def test_a_second_run_with_nothing_changed_rebuilds_nothing(
    images: dict[str, ImageResult], settings: EnvkitSettings, engine: docker.DockerClient
) -> None:
    again = ensure_images(settings, engine)
    for role, result in again.items():
        assert result.action == "present", f"{role} was {result.action} on an unchanged second run"
        assert result.image_id == images[role].image_id


def test_postgres_image_honours_the_official_variables(postgres_server: Any) -> None:
    with psycopg.connect(postgres_server.conninfo("envkit")) as conn:
        user, database = conn.execute("SELECT current_user, current_database()").fetchone() or ()
        assert (user, database) == ("envkit", "envkit")
        conn.execute("CREATE TABLE t (n int)")
        conn.execute("INSERT INTO t VALUES (41), (1)")
        assert conn.execute("SELECT sum(n) FROM t").fetchone() == (42,)


def test_postgres_image_refuses_a_wrong_password(postgres_server: Any) -> None:
    wrong = dataclasses.replace(postgres_server, password="not-it")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong.conninfo("envkit"), connect_timeout=5)


def test_services_image_runs_a_service_command(
    images: dict[str, ImageResult], engine: docker.DockerClient
) -> None:
    # With an unknown name the entry point must refuse and list the services it can run.
    with pytest.raises(docker.errors.ContainerError) as info:
        engine.containers.run(
            images["services"].ref, ["no-such-service"], remove=True,
            labels={"envkit.run": f"pytest-{os.getpid()}"},
        )  # fmt: skip
    stderr = info.value.stderr.decode() if info.value.stderr else ""
    assert info.value.exit_status == 2
    assert "backend" in stderr
    assert "mock-helix" in stderr


def test_clean_images_removes_only_what_current_inputs_no_longer_produce(
    images: dict[str, ImageResult], settings: EnvkitSettings, engine: docker.DockerClient
) -> None:
    stale = "envkit/postgres:0000000000000000"
    engine.images.get(images["postgres"].ref).tag(stale)  # same image, outdated tag
    try:
        # `refused` may hold stale images other envkit processes on this engine still run
        # (a reaper of an older envkit): not this test's to judge, only its own tag's fate.
        would, refused = clean_images(settings, dry_run=True)
        assert stale in would
        assert stale not in [ref for ref, _ in refused]
        assert engine.images.get(stale)  # a dry run removes nothing

        removed, refused = clean_images(settings)
        assert stale in removed
        assert stale not in [ref for ref, _ in refused]
        with pytest.raises(docker.errors.ImageNotFound):
            engine.images.get(stale)
        for result in images.values():
            assert result.ref not in removed
            assert engine.images.get(result.ref).id == result.image_id
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(stale)


@pytest.mark.parametrize(
    ("user", "password", "database"),
    [("o'brien", "p\"w'x;y", "my-db"), ("postgres", "only-a-password", "postgres")],
)
def test_postgres_image_takes_any_user_password_and_database(
    images: dict[str, ImageResult],
    engine: docker.DockerClient,
    user: str,
    password: str,
    database: str,
) -> None:
    container = _run_postgres(
        engine,
        images,
        {"POSTGRES_USER": user, "POSTGRES_PASSWORD": password, "POSTGRES_DB": database},
    )
    try:
        row = _query(container, user, password, database, "SELECT current_user, current_database()")
        assert row == (user, database)
    finally:
        container.remove(force=True)


def test_postgres_image_copies_its_cluster_into_an_empty_pgdata_on_a_tmpfs(
    images: dict[str, ImageResult], engine: docker.DockerClient
) -> None:
    environment = {"POSTGRES_USER": "tmp-user", "POSTGRES_PASSWORD": "tmp-pass"}
    environment |= {"POSTGRES_DB": "tmp-db", "PGDATA": "/run/pgdata/data"}
    container = _run_postgres(engine, images, environment, tmpfs={"/run/pgdata": "size=256m"})
    try:
        row = _query(container, "tmp-user", "tmp-pass", "tmp-db", "SHOW data_directory")
        assert row == ("/run/pgdata/data",)
        probe = "cd /run/pgdata/data && stat -f -c %T . && stat -c %a:%U . && ls -A"
        out = container.exec_run(["sh", "-c", probe]).output.decode().split()
        assert out[:2] == ["tmpfs", "700:postgres"]
        assert "PG_VERSION" in out
        assert ".envkit-template" not in out  # the role and database were set up once
        built = container.exec_run(["ls", "-A", "/var/lib/postgresql/data"]).output.decode()
        assert ".envkit-template" in built.split()  # the image's own cluster stays untouched
        # A copy, not a fresh initdb: the cluster keeps the image's system identifier.
        control = container.exec_run(["pg_controldata", "/var/lib/postgresql/data"]).output
        (built_id,) = [
            line.split(":")[1].strip()
            for line in control.decode().splitlines()
            if line.startswith("Database system identifier")
        ]
        sql = "SELECT system_identifier::text FROM pg_control_system()"
        assert _query(container, "tmp-user", "tmp-pass", "tmp-db", sql) == (built_id,)
    finally:
        container.remove(force=True)


def test_postgres_image_names_a_pgdata_it_cannot_create(
    images: dict[str, ImageResult], engine: docker.DockerClient
) -> None:
    environment = {"POSTGRES_PASSWORD": "pw", "PGDATA": "/run/not-mounted/data"}
    container = _run_postgres(engine, images, environment)
    try:
        assert container.wait(timeout=30)["StatusCode"] == 1
        log = container.logs().decode()
        assert "error: PGDATA=/run/not-mounted/data is not a directory the postgres user" in log
        assert "PGDATA=/run/pgdata/data for a tmpfs on /run/pgdata" in log
    finally:
        container.remove(force=True)


def _run_postgres(
    engine: docker.DockerClient,
    images: dict[str, ImageResult],
    environment: dict[str, str],
    **options: Any,
) -> Any:
    """envkit's PostgreSQL image, detached, published on 127.0.0.1 and labelled for cleanup."""
    return engine.containers.run(
        images["postgres"].ref,
        detach=True,
        environment=environment,
        ports={"5432/tcp": ("127.0.0.1", None)},
        labels={"envkit.run": f"pytest-pg-{os.getpid()}"},
        **options,
    )


def _query(container: Any, user: str, password: str, database: str, sql: str) -> Any:
    """Run one query once the server in `container` accepts this user (30 s at most)."""
    container.reload()
    port = int(container.ports["5432/tcp"][0]["HostPort"])
    conninfo = psycopg.conninfo.make_conninfo(
        host="127.0.0.1", port=port, user=user, password=password, dbname=database
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(conninfo, connect_timeout=2) as conn:
                return conn.execute(sql).fetchone()
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
