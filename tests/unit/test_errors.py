"""The error hierarchy: one specific type per failure, drawn truly in envkit.errors' docstring."""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import envkit.errors
from envkit.errors import EnvkitError
from envkit.healthchecks import HealthcheckError

ROOT = Path(__file__).resolve().parents[2]
GENERIC = {"EnvkitError", "Exception", "BaseException", "RuntimeError"}


def _sources() -> list[Path]:
    return [*sorted((ROOT / "envkit").rglob("*.py")), ROOT / "tasks.py"]


def _raises(tree: ast.AST) -> Iterator[tuple[ast.Raise, bool]]:
    """Every `raise` in the tree, with whether it sits inside an `except` handler."""

    def walk(node: ast.AST, in_handler: bool) -> Iterator[tuple[ast.Raise, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Raise):
                yield child, in_handler
            # A function defined in a handler runs later, outside it.
            nested = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            inside = (in_handler or isinstance(child, ast.ExceptHandler)) and not nested
            yield from walk(child, inside)

    return walk(tree, False)


def _raised_name(node: ast.Raise) -> str | None:
    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    if isinstance(exc, ast.Name):
        return exc.id
    if isinstance(exc, ast.Attribute):
        return exc.attr
    return None


def test_the_walk_finds_what_it_looks_for() -> None:
    # The two checks below pass vacuously if the walk finds nothing: prove it finds both kinds.
    tree = ast.parse(
        "try:\n    pass\nexcept OSError as exc:\n    raise EnvkitError('x')\n"
        "def f():\n    raise RuntimeError('y')\n"
    )
    found = [(_raised_name(node), in_handler, node.cause) for node, in_handler in _raises(tree)]
    assert found == [("EnvkitError", True, None), ("RuntimeError", False, None)]


def test_no_code_raises_the_root_or_a_generic_exception() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}: raise {name}"
        for path in _sources()
        for node, _ in _raises(ast.parse(path.read_text(encoding="utf-8")))
        if (name := _raised_name(node)) in GENERIC
    ]
    assert offenders == [], "raise a specific type from envkit.errors instead"


def test_an_error_raised_while_handling_another_keeps_it_as_the_cause() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in _sources()
        for node, in_handler in _raises(ast.parse(path.read_text(encoding="utf-8")))
        if in_handler and isinstance(node.exc, ast.Call) and node.cause is None
    ]
    assert offenders == [], "raise ... from exc (or from None when the cause is noise)"


# envkit's own tree, and the probe library's, which envkit.errors re-exports and draws too.
ROOTS = (EnvkitError, HealthcheckError)


def _public_errors() -> dict[str, type[Exception]]:
    return {
        name: cls
        for name, cls in inspect.getmembers(envkit.errors, inspect.isclass)
        if issubclass(cls, ROOTS) and not name.startswith("_")
    }


def _public_parent(cls: type[Exception]) -> str | None:
    """The nearest public error of the same tree above `cls` (private bases skipped)."""
    root = next(r for r in ROOTS if issubclass(cls, r))
    for base in cls.__mro__[1:]:
        if issubclass(base, root) and not base.__name__.startswith("_"):
            return base.__name__
    return None


def _docstring_tree() -> dict[str, str | None]:
    """{error name: its parent in the module docstring's tree}."""
    doc = envkit.errors.__doc__ or ""
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        match = re.match(r"^(\s*(?:[│ ]   )*(?:[├└]── )?)([A-Z]\w+)\s{2,}", line)
        if not match:
            continue
        depth, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        assert name not in parents, f"{name} is drawn twice"
        parents[name] = stack[-1][1] if stack else None
        stack.append((depth, name))
    return parents


def test_the_docstring_tree_is_the_real_hierarchy() -> None:
    drawn = _docstring_tree()
    real = {name: _public_parent(cls) for name, cls in _public_errors().items()}
    assert len(real) > 10
    assert drawn == real


def test_every_error_type_says_what_it_is() -> None:
    for name, cls in _public_errors().items():
        assert (cls.__doc__ or "").strip(), f"{name} needs a one-line docstring"


@pytest.mark.parametrize(
    ("error", "attribute", "value"),
    [
        (envkit.errors.OptionError("m", option="--days"), "option", "--days"),
        (envkit.errors.OverrideError("m"), "option", "--override"),
        (envkit.errors.ScenarioLoadError("m", ref="pkg.mod"), "ref", "pkg.mod"),
        (envkit.errors.RunStateError("m", run_id="mgm-1"), "run_id", "mgm-1"),
        (envkit.errors.ReplayError("m", path=Path("a")), "path", Path("a")),
        (envkit.errors.HistoryError("m", path=Path("h")), "path", Path("h")),
        (envkit.errors.FileAccessError("m", path=Path("f")), "path", Path("f")),
        (envkit.errors.DocsError("m", path=Path("d")), "path", Path("d")),
    ],
)
def test_errors_carry_their_context(error: EnvkitError, attribute: str, value: object) -> None:
    assert getattr(error, attribute) == value
    assert str(error) == "m"
