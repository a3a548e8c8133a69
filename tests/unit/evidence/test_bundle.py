"""The replay bundle: what it copies, what it only hashes, and how a checkout's copy differs."""

from __future__ import annotations

import os
from pathlib import Path

from envkit.evidence.bundle import (
    BUNDLE_DIR,
    CONTEXT_COPY_LIMIT,
    BundleRecord,
    link_uncopied,
    role_inputs,
    stack_changes,
    write_bundle,
)
from envkit.evidence.redact import Redactor
from envkit.spec.settings import load_settings

ROOT = Path(__file__).resolve().parents[3]
SECRET = "s3cret-value-never-in-artifacts"

STACK = """[stack]
name = "shop"
scenario = "shop_checks.scenario"
settings = "shop_settings:ShopSettings"

[services.api]
build = { context = "../api" }
port = 8080
log = "api.log"

[services.big]
build = { context = "../big" }
log = "big.log"

[services.db]
image = "postgres:16"
log = "db.log"
"""


def _project(root: Path) -> Path:
    """A project: a stack with a scenario package, a settings module, two build contexts."""
    stacks = root / "stacks"
    (stacks / "shop_checks").mkdir(parents=True)
    (stacks / "shop.toml").write_text(STACK)
    (stacks / "shop_checks" / "__init__.py").write_text("")
    (stacks / "shop_checks" / "scenario.py").write_text("def steps(settings): return []\n")
    (stacks / "shop_checks" / "triage.py").write_text("CLASSES = ()\n")
    (stacks / "shop_checks" / "__pycache__").mkdir()
    (stacks / "shop_checks" / "__pycache__" / "scenario.cpython-311.pyc").write_bytes(b"\0")
    (stacks / "shop_settings.py").write_text(f'DEFAULT_TOKEN = "{SECRET}"\n')
    (stacks / "unrelated.txt").write_text("not named by the stack\n")
    (root / "api").mkdir()
    (root / "api" / "Dockerfile").write_text("FROM scratch\n")
    (root / "api" / "run.sh").write_text("#!/bin/sh\n")
    (root / "api" / "run.sh").chmod(0o755)
    (root / "big").mkdir()
    (root / "big" / "Dockerfile").write_text("FROM scratch\n")
    (root / "big" / "blob.bin").write_bytes(b"x" * (CONTEXT_COPY_LIMIT + 1))
    return stacks / "shop.toml"


def test_the_bundle_copies_the_stacks_own_files_and_hashes_what_it_may_not_copy(
    tmp_path: Path,
) -> None:
    root = tmp_path / "project"
    stack = _project(root)
    run = tmp_path / "run"
    record = write_bundle(run, stack, root, Redactor([SECRET]))
    bundle = run / BUNDLE_DIR
    copied = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert copied == [
        "api/Dockerfile", "api/run.sh",
        "stacks/shop.toml", "stacks/shop_checks/__init__.py", "stacks/shop_checks/scenario.py",
        "stacks/shop_checks/triage.py",
    ]  # fmt: skip
    assert os.access(bundle / "api" / "run.sh", os.X_OK)  # an exec bit is a build input
    assert record.stack == "stacks/shop.toml"
    assert record.not_copied == {
        "stacks/shop_settings.py": "holds a secret value",
        "big": "larger than 4 MiB",
    }
    assert set(record.files) == {*copied, "stacks/shop_settings.py"}
    assert set(record.contexts) == {"api", "big"}
    for path in run.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert BundleRecord.from_data(record.to_data()) == record


def test_a_stack_outside_the_project_is_bundled_from_its_own_directory(tmp_path: Path) -> None:
    stack = _project(tmp_path / "elsewhere")
    record = write_bundle(tmp_path / "run", stack, tmp_path / "project", Redactor([]))
    assert record.stack == "shop.toml"
    assert (tmp_path / "run" / BUNDLE_DIR / "shop_checks" / "scenario.py").is_file()
    outside = str(tmp_path / "elsewhere" / "api")
    assert record.not_copied[outside] == "outside the project"


def test_a_checkout_differs_where_a_file_changed_went_missing_or_is_new(tmp_path: Path) -> None:
    root = tmp_path / "project"
    stack = _project(root)
    record = write_bundle(tmp_path / "run", stack, root, Redactor([SECRET]))
    assert stack_changes(record, root) == []
    assert record.content_hash == BundleRecord.from_data(record.to_data()).content_hash

    stack.write_text(STACK + "# edited\n")
    (root / "stacks" / "shop_checks" / "triage.py").unlink()
    (root / "stacks" / "shop_checks" / "new.py").write_text("")
    (root / "big" / "blob.bin").write_bytes(b"y")
    (root / "api" / "Dockerfile").write_text("FROM busybox\n")
    assert stack_changes(record, root) == [
        ("api/Dockerfile", "api/Dockerfile differs from the recorded copy"),
        ("stacks/shop.toml", "stacks/shop.toml differs from the recorded copy"),
        ("stacks/shop_checks/triage.py", "stacks/shop_checks/triage.py is not in this checkout"),
        ("big", "build context big differs from the recorded one"),
        ("stacks/shop_checks/new.py", "stacks/shop_checks/new.py is new (the recorded run did "
         "not have it)"),
    ]  # fmt: skip


def test_what_the_bundle_lacks_is_linked_from_the_checkout(tmp_path: Path) -> None:
    root = tmp_path / "project"
    record = write_bundle(tmp_path / "run", _project(root), root, Redactor([SECRET]))
    bundle = tmp_path / "run" / BUNDLE_DIR
    assert link_uncopied(record, bundle, root) == []
    assert (bundle / "big").resolve() == (root / "big").resolve()
    settings = bundle / "stacks" / "shop_settings.py"  # not copied: it holds a secret
    assert settings.is_symlink()
    assert settings.read_text() == (root / "stacks" / "shop_settings.py").read_text()
    elsewhere = tmp_path / "clone"
    (elsewhere / "big").mkdir(parents=True)
    (elsewhere / "stacks").mkdir()
    (elsewhere / "stacks" / "shop_settings.py").write_text("")
    assert link_uncopied(record, bundle, elsewhere) == []  # relinked to this checkout
    assert (bundle / "big").resolve() == (elsewhere / "big").resolve()
    assert link_uncopied(record, bundle, tmp_path / "empty") == ["big", "stacks/shop_settings.py"]


def test_role_inputs_follow_the_inputs_not_the_machine() -> None:
    settings = load_settings(None, {}, root=ROOT)
    assert role_inputs("services", settings) == role_inputs("services", settings)
    assert role_inputs("services", settings) != role_inputs("postgres", settings)
    other = load_settings(None, {"ENVKIT_IMAGES__PYTHON_PUBLIC": "python:3.13-slim"}, root=ROOT)
    assert role_inputs("services", other) != role_inputs("services", settings)
    assert role_inputs("postgres", other) == role_inputs("postgres", settings)
