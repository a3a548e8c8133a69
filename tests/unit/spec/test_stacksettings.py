"""A stack's own settings: the [settings] table and a named model, every refusal, secrets."""
# ruff: noqa: E501  (the expected messages are quoted whole, one per line)

from __future__ import annotations

import base64
import json
import textwrap
from pathlib import Path

import pytest

from envkit.errors import SettingsError, StackError
from envkit.evidence.artifacts import write_artifacts
from envkit.evidence.outcome import RunOutcome, StepResult
from envkit.evidence.redact import Redactor
from envkit.spec.settings import (
    EnvkitSettings,
    describe_sources,
    iter_settings,
    known_env_names,
    load_settings,
    settings_class,
)
from envkit.spec.stack import load_stack, resolve_stack

SERVICES = """
[services.db]
image = "postgres"
port = 5432
fixed_port = "${ports.db}"
log = "db.log"

[services.db.env]
POSTGRES_PASSWORD = "${db.password}"
POSTGRES_USER = "${db.user}"
"""
TABLE = """
[settings.db.user]
default = "shop"
pattern = "[a-z_]+"
description = "the database role"

[settings.db.password]
secret = true
default = "shop-demo-password-7"

[settings.db.pool]
type = "int"
default = 4

[settings.db.ratio]
type = "float"
default = 1

[settings.db.debug]
default = false

[settings.ports.db]
type = "int"
default = 15432
"""
MODEL = """
from pydantic import BaseModel, SecretStr, field_validator


class Db(BaseModel):
    user: str = "shop"
    password: SecretStr = SecretStr("shop-demo-password-7")

    @field_validator("user")
    @classmethod
    def _lower(cls, v: str) -> str:
        if v != v.lower():
            raise ValueError("must be lowercase, e.g. 'shop'")
        return v


class Ports(BaseModel):
    db: int = 15432


class ShopSettings(BaseModel):
    db: Db = Db()
    ports: Ports = Ports()
"""


def stack_file(tmp_path: Path, header: str = "", settings: str = TABLE) -> Path:
    path = tmp_path / "shop.toml"
    path.write_text(f'[stack]\nname = "shop"\n{header}\n{SERVICES}\n{settings}')
    return path


def model_stack(tmp_path: Path, module: str = MODEL, name: str = "shop_settings") -> Path:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(module))
    return stack_file(tmp_path, f'settings = "{name}:ShopSettings"', settings="")


def refused(path: Path) -> list[str]:
    with pytest.raises(StackError) as info:
        load_stack(path)
    return info.value.problems


def refused_settings(path: Path, environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(None, environ, stack=path)
    return str(info.value)


# -- the table form --------------------------------------------------------------------------


def test_a_table_declares_typed_settings_read_from_env_and_dotenv(tmp_path: Path) -> None:
    path = stack_file(tmp_path)
    env_file = tmp_path / ".env"
    env_file.write_text("ENVKIT_DB__USER=fromfile\nENVKIT_DB__POOL=9\n")
    settings = load_settings(
        env_file, {"ENVKIT_DB__POOL": "12", "ENVKIT_DB__DEBUG": "true"}, stack=path
    )
    values = dict(iter_settings(settings))
    assert values["db.user"] == "fromfile"
    assert (values["db.pool"], values["db.debug"], values["db.ratio"]) == (12, True, 1.0)
    assert settings.reference("db.password") == "shop-demo-password-7"
    assert settings.images.source == "auto"  # envkit's own settings are still there
    names = known_env_names(type(settings))
    assert {"ENVKIT_DB__PASSWORD", "ENVKIT_PORTS__DB", "ENVKIT_IMAGES__SOURCE"} <= set(names)


def test_table_settings_fill_the_stack_and_its_fixed_ports(tmp_path: Path) -> None:
    path = stack_file(tmp_path)
    settings = load_settings(None, {"ENVKIT_PORTS__DB": "25432"}, stack=path)
    [db] = resolve_stack(load_stack(path), settings).values()
    assert db.fixed_port == 25432
    assert db.env == {"POSTGRES_PASSWORD": "shop-demo-password-7", "POSTGRES_USER": "shop"}


def test_a_setting_without_default_must_be_given(tmp_path: Path) -> None:
    path = stack_file(tmp_path, settings="[settings.api.token]\nsecret = true\n")
    path.write_text(path.read_text().replace("${ports.db}", "5432").replace("${db.", "${api."))
    path.write_text(
        path.read_text().replace("${api.user}", "u").replace("${api.password}", "${api.token}")
    )
    message = refused_settings(path, {})
    assert "ENVKIT_API__TOKEN: Field required; fix it in .env or the environment" in message
    settings = load_settings(None, {"ENVKIT_API__TOKEN": "tok-1"}, stack=path)
    assert settings.secret_values() == ["tok-1"]


def test_a_value_against_the_pattern_or_type_is_refused_naming_the_variable(
    tmp_path: Path,
) -> None:
    path = stack_file(tmp_path)
    message = refused_settings(path, {"ENVKIT_DB__USER": "Shop-1", "ENVKIT_DB__POOL": "many"})
    assert (
        "ENVKIT_DB__USER='Shop-1': does not match the pattern '[a-z_]+' the stack file sets "
        "(the database role); give a value that matches it"
    ) in message
    assert "ENVKIT_DB__POOL='many': Input should be a valid integer" in message


def test_a_secret_that_breaks_its_pattern_is_not_shown(tmp_path: Path) -> None:
    path = stack_file(
        tmp_path,
        settings=TABLE.replace("secret = true\n", 'secret = true\npattern = "[a-z-]+"\n', 1),
    )
    message = refused_settings(path, {"ENVKIT_DB__PASSWORD": "Hunter2!"})
    assert "ENVKIT_DB__PASSWORD: does not match the pattern" in message
    assert "Hunter2!" not in message


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            '[settings.db.user]\ntype = "text"\n',
            "[settings.db.user], field 'type': 'text' is not a setting type; use one of str, int, bool, float",
        ),
        (
            '[settings.db.user]\ndefualt = "x"\n',
            "[settings.db.user], field 'defualt': unknown key; did you mean 'default'? allowed: type, default, secret, description, pattern",
        ),
        (
            '[settings.db.pool]\ntype = "int"\nsecret = true\n',
            '[settings.db.pool], field \'secret\': only a "str" setting can be secret; this one is "int"',
        ),
        (
            '[settings.db.user]\nsecret = "yes"\n',
            "[settings.db.user], field 'secret': must be true or false, not 'yes'",
        ),
        (
            '[settings.db.pool]\ntype = "int"\npattern = "[0-9]+"\n',
            '[settings.db.pool], field \'pattern\': only a "str" setting can have a pattern; this one is "int"',
        ),
        (
            '[settings.db.user]\npattern = "(["\n',
            "[settings.db.user], field 'pattern': '([' is not a valid regular expression",
        ),
        (
            '[settings.db.pool]\ntype = "int"\ndefault = "four"\n',
            "[settings.db.pool], field 'default': 'four' is not a \"int\"; give a int value or change type",
        ),
        (
            '[settings.db.debug]\ntype = "bool"\ndefault = 1\n',
            "[settings.db.debug], field 'default': 1 is not a \"bool\"",
        ),
        (
            "[settings.db.user]\ndescription = 3\n",
            "[settings.db.user], field 'description': must be a string, not 3",
        ),
        (
            '[settings.Db.user]\ndefault = "x"\n',
            "[settings], field 'Db': a section name must be lowercase letters",
        ),
        (
            '[settings.db.User]\ndefault = "x"\n',
            "[settings.db.User]: a setting name must be lowercase letters",
        ),
        (
            '[settings.db]\nuser = "x"\n',
            '[settings.db.user]: must be a table, e.g. [settings.db.user] with type = "str"',
        ),
        (
            "[settings.timeouts.extra]\ndefault = 1\n",
            "[settings], field 'timeouts': 'timeouts' is one of envkit's own settings",
        ),
        ("[settings]\n", "[settings]: must hold sections of settings"),
    ],
)
def test_every_table_refusal_names_the_file_the_setting_and_the_fix(
    tmp_path: Path, table: str, expected: str
) -> None:
    path = tmp_path / "shop.toml"
    path.write_text(
        f'[stack]\nname = "shop"\n\n[services.api]\nimage = "redis:7"\nlog = "api.log"\n\n{table}'
    )
    problems = refused(path)
    assert any(p.startswith(f"{path}: {expected}") for p in problems), problems


def test_an_unknown_variable_gets_a_suggestion_across_core_and_stack_names(
    tmp_path: Path,
) -> None:
    path = stack_file(tmp_path)
    stack_typo = refused_settings(path, {"ENVKIT_DB__PASSWROD": "x"})
    assert (
        "ENVKIT_DB__PASSWROD (in the environment) is not an envkit setting; did you mean ENVKIT_DB__PASSWORD?"
        in stack_typo
    )
    core_typo = refused_settings(path, {"ENVKIT_TIMEOUT__SERVICE_READY_SECONDS": "5"})
    assert "did you mean ENVKIT_TIMEOUTS__SERVICE_READY_SECONDS?" in core_typo
    # Without the stack, its names are unknown: they belong to the stack.
    with pytest.raises(SettingsError, match=r"ENVKIT_DB__PASSWORD .* is not an envkit setting"):
        load_settings(None, {"ENVKIT_DB__PASSWORD": "x"})


def test_config_rows_show_stack_settings_with_sources_and_hide_secrets(tmp_path: Path) -> None:
    path = stack_file(tmp_path)
    env_file = tmp_path / ".env"
    env_file.write_text("ENVKIT_DB__POOL=9\n")
    environ = {"ENVKIT_DB__PASSWORD": "given-secret-91"}
    settings = load_settings(env_file, environ, stack=path)
    rows = {
        name: (value, source)
        for name, value, source in describe_sources(settings, env_file, environ)
    }
    assert rows["ENVKIT_DB__PASSWORD"] == ("**********", "environment")
    assert rows["ENVKIT_DB__POOL"] == ("9", str(env_file))
    assert rows["ENVKIT_DB__USER"] == ("shop", "default")
    assert rows["ENVKIT_TIMEOUTS__SERVICE_READY_SECONDS"] == ("60.0", "default")


def test_stack_secrets_stay_out_of_repr_and_artifacts(tmp_path: Path) -> None:
    path = stack_file(tmp_path)
    secret = "given-secret-91"
    settings = load_settings(None, {"ENVKIT_DB__PASSWORD": secret}, stack=path)
    assert secret in settings.secret_values()
    assert secret not in repr(settings)
    assert secret not in str(settings.model_dump())
    outcome = RunOutcome("shop-1", "shop", "failed", "t0", "t1")
    outcome.steps = [StepResult("check", "main", "failed", error=f"login with {secret} refused")]
    written = write_artifacts(
        outcome, tmp_path / "run", Redactor(settings.secret_values()), environ={}
    )
    assert len(written) == 5  # summary, junit, report, timeline.md, timeline.jsonl
    for file in written:
        assert secret not in file.read_text()


def test_a_stack_without_settings_uses_envkit_s_alone(tmp_path: Path) -> None:
    path = tmp_path / "plain.toml"
    path.write_text(
        '[stack]\nname = "plain"\n\n[services.api]\nimage = "redis:7"\nlog = "api.log"\nfixed_port = 6380\n'
    )
    settings = load_settings(None, {}, stack=path)
    assert type(settings) is EnvkitSettings
    assert resolve_stack(load_stack(path), settings)["api"].fixed_port == 6380


def test_settings_built_without_the_stack_s_own_are_refused_with_the_fix(tmp_path: Path) -> None:
    path = stack_file(tmp_path)
    with pytest.raises(SettingsError) as info:
        resolve_stack(load_stack(path), load_settings(None, {}))
    assert f"the settings were built without the settings {path} declares" in str(info.value)
    assert f"load_settings(..., stack=Path('{path}'))" in str(info.value)


# -- the model form --------------------------------------------------------------------------


def test_a_named_model_is_imported_from_next_to_the_stack_file(tmp_path: Path) -> None:
    path = model_stack(tmp_path, name="shop_settings_ok")
    settings = load_settings(None, {"ENVKIT_DB__PASSWORD": "pw-77"}, stack=path)
    assert settings.reference("db.password") == "pw-77"
    assert type(settings).__mro__[1] is EnvkitSettings
    assert type(settings).stack_model is not None
    assert isinstance(settings, type(settings).stack_model)  # the stack's code can rely on it
    message = refused_settings(path, {"ENVKIT_DB__USER": "Shop"})
    assert "ENVKIT_DB__USER='Shop': must be lowercase, e.g. 'shop'" in message


def test_both_forms_merge_and_a_section_in_both_is_refused(tmp_path: Path) -> None:
    (tmp_path / "shop_settings_both.py").write_text(MODEL)
    extra = '[settings.api.key]\nsecret = true\ndefault = "k-1"\n'
    path = stack_file(tmp_path, 'settings = "shop_settings_both:ShopSettings"', settings=extra)
    settings = load_settings(None, {}, stack=path)
    assert {"db.password", "api.key"} <= {n for n, _ in iter_settings(settings)}
    path.write_text(path.read_text() + '\n[settings.db.extra]\ndefault = "x"\n')
    assert (
        f"{path}: [settings.db]: the section is also a field of shop_settings_both:ShopSettings; declare it in one place"
        in refused(path)
    )


@pytest.mark.parametrize(
    ("ref", "module", "expected"),
    [
        (
            "shop_settings",
            None,
            "'shop_settings' is not module:Class; write e.g. settings = \"my_stack.settings:MySettings\"",
        ),
        (
            "no_such_mod_81:X",
            None,
            "module 'no_such_mod_81' cannot be imported (No module named 'no_such_mod_81'); put no_such_mod_81.py (or a package no_such_mod_81/) next to the stack file",
        ),
        (
            "shop_broken_1:X",
            "raise RuntimeError('boom')\n",
            "importing module 'shop_broken_1' raised RuntimeError: boom",
        ),
        (
            "shop_missing_1:ShopSetings",
            MODEL,
            "module 'shop_missing_1' has no 'ShopSetings'; did you mean 'ShopSettings'?",
        ),
        (
            "shop_notmodel_1:ShopSettings",
            "ShopSettings = 3\n",
            "'shop_notmodel_1:ShopSettings' is not a pydantic model; derive it from pydantic.BaseModel",
        ),
        (
            "shop_bs_1:ShopSettings",
            "from pydantic_settings import BaseSettings\nclass ShopSettings(BaseSettings):\n    x: int = 1\n",
            "'shop_bs_1:ShopSettings' is not a pydantic model; derive it from pydantic.BaseModel (not BaseSettings",
        ),
        (
            "shop_clash_1:ShopSettings",
            "from pydantic import BaseModel\nclass ShopSettings(BaseModel):\n    images: int = 1\n",
            "'images' is one of envkit's own settings",
        ),
    ],
)
def test_every_model_refusal_names_the_stack_file_and_the_fix(
    tmp_path: Path, ref: str, module: str | None, expected: str
) -> None:
    if module is not None:
        (tmp_path / f"{ref.partition(':')[0]}.py").write_text(module)
    path = tmp_path / "shop.toml"
    path.write_text(
        f'[stack]\nname = "shop"\nsettings = "{ref}"\n\n[services.api]\nimage = "redis:7"\nlog = "api.log"\n'
    )
    problems = refused(path)
    assert any(expected in p and p.startswith(f"{path}: [stack]") for p in problems), problems


def test_settings_class_refuses_a_model_that_reuses_envkit_s_names() -> None:
    from pydantic import BaseModel

    class Clash(BaseModel):
        timeouts: int = 1

    with pytest.raises(SettingsError, match="has 'timeouts', which envkit's own settings use"):
        settings_class(Clash)


def test_the_mgm_stack_names_its_model_and_keeps_its_variable_names() -> None:
    mgm = Path(__file__).resolve().parents[3] / "compose" / "tier-b.toml"
    secret = base64.b64encode(b"k" * 32).decode()
    settings = load_settings(None, {"ENVKIT_TWITCH__EXTENSION_SECRET": secret}, stack=mgm)
    assert settings.reference("twitch.extension_secret") == secret
    assert json.dumps(sorted(known_env_names(type(settings)))).count("ENVKIT_PORTS__") == 6
