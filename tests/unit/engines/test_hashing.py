"""Image tags are pure functions of their inputs."""

from __future__ import annotations

from pathlib import Path

from envkit.engines.hashing import digest, tree_digest
from envkit.engines.images import postgres_tag, reaper_tag, services_tag
from envkit.spec.settings import load_settings


def test_digest_is_stable_and_boundary_safe() -> None:
    assert digest("a", "bc") == digest("a", "bc")
    assert digest("a", "bc") != digest("ab", "c")


def test_tree_digest_follows_content_and_ignores_caches(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text("x = 1\n")
    before = tree_digest(tmp_path)
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"junk")
    assert tree_digest(tmp_path) == before
    (tmp_path / "pkg" / "m.py").write_text("x = 2\n")
    assert tree_digest(tmp_path) != before


def test_postgres_tag_changes_only_with_its_inputs() -> None:
    default = postgres_tag(load_settings(None, {}))
    # a setting of the stack (not of the image) changes nothing
    mgm = Path(__file__).resolve().parents[3] / "compose" / "tier-b.toml"
    other_key = load_settings(None, {"ENVKIT_MGM__API_KEY": "other"}, stack=mgm)
    assert default == postgres_tag(other_key)
    other_mirror = load_settings(None, {"ENVKIT_IMAGES__DEBIAN_MIRROR": "http://mirror.local/d"})
    assert postgres_tag(other_mirror) != default
    assert default.startswith("envkit/postgres:")


def test_services_tag_follows_code_base_and_python(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3]
    copy = tmp_path / "root"
    (copy / "services").mkdir(parents=True)
    (copy / "services" / "requirements.txt").write_bytes(
        (root / "services" / "requirements.txt").read_bytes()
    )
    (copy / "constraints.txt").write_bytes((root / "constraints.txt").read_bytes())
    (copy / "services" / "app.py").write_text("print(1)\n")
    tag = services_tag("base:1", "sha256:1", "3.11", copy)
    assert tag == services_tag("base:1", "sha256:1", "3.11", copy)
    assert tag != services_tag("base:1", "sha256:2", "3.11", copy)
    assert tag != services_tag("base:1", "sha256:1", "3.12", copy)
    (copy / "services" / "app.py").write_text("print(2)\n")
    assert tag != services_tag("base:1", "sha256:1", "3.11", copy)


def test_reaper_tag_follows_its_code_and_base_but_not_the_services(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3] / "envkit"
    copy = tmp_path / "root"
    (copy / "reaperd").mkdir(parents=True)
    (copy / "services").mkdir()
    for name in ("requirements.txt", "server.py"):
        (copy / "reaperd" / name).write_bytes((root / "reaperd" / name).read_bytes())
    (copy / "constraints.txt").write_bytes((root / "constraints.txt").read_bytes())
    tag = reaper_tag("base:1", "sha256:1", "3.11", copy)
    assert tag.startswith("envkit/reaper:")
    assert tag != reaper_tag("base:1", "sha256:2", "3.11", copy)
    (copy / "services" / "app.py").write_text("print(1)\n")  # the services' code is not its input
    assert tag == reaper_tag("base:1", "sha256:1", "3.11", copy)
    (copy / "reaperd" / "server.py").write_text("# changed\n")
    assert tag != reaper_tag("base:1", "sha256:1", "3.11", copy)
