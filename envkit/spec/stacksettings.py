"""A stack's own settings: the pydantic model its stack file names, or its `[settings]` table.

A stack declares its values and secrets in one of two ways, or both:

    [stack]
    settings = "my_stack.settings:MySettings"   # module:Class, importable from the
                                                # stack file's directory: a pydantic
                                                # BaseModel whose fields are sections

    [settings.db.password]                      # a table, for teams without Python
    type = "str"                                # "str" | "int" | "bool" | "float"
    secret = true                               # a SecretStr: redacted everywhere
    default = "demo-password"                   # none: the setting must be given
    description = "the database password"
    pattern = "[^;]+"                           # str only: the value must match it

`declared_settings` returns the stack's model (the table compiled with
`pydantic.create_model`; both forms merged); `envkit.spec.settings` adds its sections
to envkit's own, read as `ENVKIT_<SECTION>__<FIELD>`. Every problem in the
declaration is reported at once, naming the stack file, the setting and the fix.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, SecretStr, create_model
from pydantic_settings import BaseSettings

from envkit.errors import StackError
from envkit.spec.settings import CORE_NAMES
from envkit.spec.stackfile import located, read_toml, suggest

FIELD_TYPES: dict[str, type] = {"str": str, "int": int, "bool": bool, "float": float}
FIELD_KEYS = ("type", "default", "secret", "description", "pattern")
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_MODEL_REF = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
_MODEL_EXAMPLE = 'settings = "my_stack.settings:MySettings"'
# Compiled tables by (stack file, table): loading one stack twice gives the same class.
_COMPILED: dict[tuple[str, str], type[BaseModel]] = {}


def declared_settings(path: Path, data: Mapping[str, Any] | None = None) -> type[BaseModel] | None:
    """The settings model the stack file at `path` declares (None when it declares none).

    `data` is the file's parsed content when the caller has already read it. Raises
    `StackError` listing every problem of the declaration.
    """
    data = read_toml(path) if data is None else data
    problems: list[str] = []
    header = data.get("stack")
    ref = header.get("settings") if isinstance(header, dict) else None
    named = (
        import_stack_model(path, ref, problems) if isinstance(ref, str) and ref else None
    )  # a ref of the wrong type is the [stack] table's own problem
    table = data.get("settings")
    compiled = _compile(path, table, problems) if table is not None else None
    if named is not None and compiled is not None:
        for section in sorted(set(named.model_fields) & set(compiled.model_fields)):
            problems.append(
                located(
                    path,
                    f"[settings.{section}]",
                    None,
                    f"the section is also a field of {ref}; declare it in one place",
                )
            )
    if problems:
        raise StackError(problems)
    if named is not None and compiled is not None:
        merged: type[BaseModel] = create_model(named.__name__, __base__=(named, compiled))
        return merged
    return named or compiled


def stack_import_path(path: Path) -> None:
    """Put the stack file's directory on `sys.path`, so the stack's own modules import."""
    directory = str(path.resolve().parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)


def import_stack_model(path: Path, ref: str, problems: list[str]) -> type[BaseModel] | None:
    """Import `module:Class` (from the stack file's directory); add a problem if it fails."""

    def problem(text: str) -> None:
        problems.append(located(path, "[stack]", "settings", text))

    if not _MODEL_REF.fullmatch(ref):
        problem(f"{ref!r} is not module:Class; write e.g. {_MODEL_EXAMPLE}")
        return None
    module_name, _, class_name = ref.partition(":")
    stack_import_path(path)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        problem(
            f"module '{module_name}' cannot be imported ({exc}); put {module_name}.py (or a "
            f"package {module_name.split('.')[0]}/) next to the stack file, in "
            f"{path.resolve().parent}, or name an installed module"
        )
        return None
    except Exception as exc:  # the stack's own module is broken: say so, with its error
        problem(f"importing module '{module_name}' raised {type(exc).__name__}: {exc}")
        return None
    model = getattr(module, class_name, None)
    if model is None:
        models = [n for n, v in vars(module).items() if _is_model(v)]
        problem(
            f"module '{module_name}' has no '{class_name}'; {suggest(class_name, models)}"
            f"its pydantic models: {', '.join(sorted(models)) or 'none'}"
        )
        return None
    if (
        not isinstance(model, type)
        or not issubclass(model, BaseModel)
        or issubclass(model, BaseSettings)
    ):
        problem(
            f"'{ref}' is not a pydantic model; derive it from pydantic.BaseModel (not "
            "BaseSettings: envkit reads its values itself, as ENVKIT_<SECTION>__<FIELD>)"
        )
        return None
    for name in model.model_fields:
        problems += _name_problems(path, f"[stack] settings {ref}", name)
    return model


def _is_model(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _name_problems(path: Path, where: str, section: str) -> list[str]:
    if not _NAME.fullmatch(section):
        return [
            located(
                path,
                where,
                section,
                "a section name must be lowercase letters, digits and '_', starting with a "
                "letter (it becomes ENVKIT_<SECTION>__… and ${section.field})",
            )
        ]
    if section in CORE_NAMES:
        return [
            located(
                path,
                where,
                section,
                f"'{section}' is one of envkit's own settings ({', '.join(sorted(CORE_NAMES))}); "
                "give the stack's section another name",
            )
        ]
    return []


def _compile(path: Path, table: Any, problems: list[str]) -> type[BaseModel] | None:
    """The `[settings]` table as a model of section models (None, with problems, if invalid)."""
    if not isinstance(table, dict) or not table:
        problems.append(
            located(
                path,
                "[settings]",
                None,
                "must hold sections of settings, e.g. [settings.db.password] with "
                'type = "str" and secret = true',
            )
        )
        return None
    key = (str(path.resolve()), json.dumps(table, sort_keys=True, default=str))
    if key in _COMPILED:
        return _COMPILED[key]
    before = len(problems)
    sections: dict[str, Any] = {}
    for section, fields in table.items():
        where = f"[settings.{section}]"
        found = _name_problems(path, "[settings]", section)
        if not isinstance(fields, dict) or not fields:
            found.append(
                located(
                    path,
                    where,
                    None,
                    f"must hold settings as tables, e.g. [settings.{section}.name] with "
                    'type = "str"',
                )
            )
            problems += found
            continue
        problems += found
        sections[section] = _section(path, section, fields, problems)
    if len(problems) > before:
        return None
    model = create_model("StackSettings", **sections)
    _COMPILED[key] = model
    return model


def _section(path: Path, section: str, fields: Mapping[str, Any], problems: list[str]) -> Any:
    """One section's model as a field definition: (model, default)."""
    definitions: dict[str, Any] = {}
    required = False
    for name, spec in fields.items():
        where = f"[settings.{section}.{name}]"
        if not _NAME.fullmatch(name):
            problems.append(
                located(
                    path,
                    where,
                    None,
                    "a setting name must be lowercase letters, digits and '_', starting with "
                    "a letter",
                )
            )
            continue
        if not isinstance(spec, dict):
            problems.append(
                located(
                    path,
                    where,
                    None,
                    f'must be a table, e.g. [settings.{section}.{name}] with type = "str" and '
                    "default = ...",
                )
            )
            continue
        definition = _field(path, where, spec, problems)
        if definition is not None:
            definitions[name] = definition
            required = required or definition[1].is_required()
    model = create_model(f"{section.title().replace('_', '')}Section", **definitions)
    # A section with a required setting validates from {}: each missing setting is named.
    return (model, Field(default_factory=dict) if required else model())


def _field(path: Path, where: str, spec: Mapping[str, Any], problems: list[str]) -> Any:
    """One setting's (annotation, FieldInfo), or None with its problems added."""
    found: list[str] = []

    def problem(key: str | None, text: str) -> None:
        found.append(located(path, where, key, text))

    for key in sorted(set(spec) - set(FIELD_KEYS)):
        problem(key, f"unknown key; {suggest(key, FIELD_KEYS)}allowed: {', '.join(FIELD_KEYS)}")
    has_default = "default" in spec
    default = spec.get("default")
    kind = spec.get("type", _toml_type(default) if has_default else "str")
    if kind not in FIELD_TYPES:
        problem("type", f"{kind!r} is not a setting type; use one of {', '.join(FIELD_TYPES)}")
        kind = None
    secret = spec.get("secret", False)
    if not isinstance(secret, bool):
        problem("secret", f"must be true or false, not {secret!r}")
        secret = False
    if secret and kind not in (None, "str"):
        problem("secret", f'only a "str" setting can be secret; this one is "{kind}"')
    description = spec.get("description", "")
    if not isinstance(description, str):
        problem("description", f"must be a string, not {description!r}")
        description = ""
    pattern = spec.get("pattern")
    if pattern is not None:
        problem_text = _pattern_problem(pattern, kind)
        if problem_text:
            problem("pattern", problem_text)
            pattern = None
    if has_default and kind is not None and not _fits(default, kind):
        problem("default", f'{default!r} is not a "{kind}"; give a {kind} value or change type')
    if found or kind is None:
        problems += found
        return None
    annotation: Any = SecretStr if secret else FIELD_TYPES[kind]
    if pattern is not None:
        annotation = Annotated[annotation, AfterValidator(_matcher(pattern, description))]
    if not has_default:
        return (annotation, Field(description=description))
    value = SecretStr(str(default)) if secret else default
    return (annotation, Field(default=value, description=description))


def _toml_type(value: object) -> str:
    for name, kind in reversed(FIELD_TYPES.items()):  # bool before int: True is an int too
        if type(value) is kind:
            return name
    return type(value).__name__


def _fits(value: object, kind: str) -> bool:
    if kind == "float":
        return type(value) in (int, float)
    return type(value) is FIELD_TYPES[kind]


def _pattern_problem(pattern: object, kind: str | None) -> str:
    if kind not in (None, "str"):
        return f'only a "str" setting can have a pattern; this one is "{kind}"'
    if not isinstance(pattern, str):
        return f"must be a regular expression in quotes, not {pattern!r}"
    try:
        re.compile(pattern)
    except re.error as exc:
        return (
            f"{pattern!r} is not a valid regular expression ({exc}); escape special "
            "characters such as ( [ . with a backslash"
        )
    return ""


def _matcher(pattern: str, description: str) -> Callable[[Any], Any]:
    compiled = re.compile(pattern)
    what = f" ({description})" if description else ""

    def check(value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not compiled.fullmatch(raw):
            raise ValueError(
                f"does not match the pattern {pattern!r} the stack file sets{what}; "
                "give a value that matches it"
            )
        return value

    return check
