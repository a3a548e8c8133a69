"""The stack file format's helpers on their own: reading TOML, cycles, references, places.

The table models are exercised through `load_stack` in test_stack.py and
test_scenariofile.py; these are the pieces both build on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from envkit.errors import StackError
from envkit.spec.stackfile import (
    find_cycles,
    located,
    malformed_reference,
    place,
    port_number,
    read_toml,
    references,
    suggest,
    variable_names,
)


def test_cycles_are_paths_back_to_their_start_found_in_a_fixed_order() -> None:
    graph = {"web": ["api"], "api": ["db", "web"], "db": ["db"], "q": ["r"], "r": ["q", "x"]}
    assert find_cycles(graph) == [["api", "web", "api"], ["q", "r", "q"]]
    # the same graph given in another order yields the same answer
    assert find_cycles(dict(reversed(list(graph.items())))) == find_cycles(graph)


def test_self_edges_and_unknown_names_are_not_cycles() -> None:
    assert find_cycles({"a": ["a", "ghost"], "b": ["a"]}) == []
    assert find_cycles({}) == []


def test_a_long_cycle_is_one_path() -> None:
    graph = {"a": ["b"], "b": ["c"], "c": ["d"], "d": ["a"]}
    assert find_cycles(graph) == [["a", "b", "c", "d", "a"]]


def test_references_and_malformed_ones() -> None:
    assert references("postgres://${postgres.user}:${postgres.password}@db/x") == [
        "postgres.user",
        "postgres.password",
    ]
    assert references("no references") == []
    assert not malformed_reference("${twitch.helix_base_url}/helix")
    assert malformed_reference("${Twitch.Helix}")
    assert malformed_reference("${twitch.helix_base_url")
    assert not malformed_reference("$HOME and {braces}")


def test_suggestions_only_for_close_words() -> None:
    assert suggest("prot", ["port", "probe"]) == "did you mean 'port'? "
    assert suggest("zzz", ["port", "probe"]) == ""


def test_a_place_names_file_section_and_field() -> None:
    path = Path("compose/x.toml")
    assert place(path, "service 'api'", "port") == "compose/x.toml: service 'api', field 'port'"
    assert place(path, None, None) == "compose/x.toml"
    assert located(path, "[stack]", None, "is required") == "compose/x.toml: [stack]: is required"


def test_port_and_variable_name_checks_say_the_fix() -> None:
    assert port_number(1) == 1
    assert port_number(65535) == 65535
    with pytest.raises(ValueError, match=r"^0 is out of range; use a port number from 1 to 65535$"):
        port_number(0)
    assert variable_names({"A_1": "x"}, "A=1") == {"A_1": "x"}
    with pytest.raises(ValueError) as info:
        variable_names({"1A": "x", "B-C": "y", "ok": "z"}, "LOG_LEVEL", "header name")
    assert str(info.value) == (
        "'1A', 'B-C' is not a valid header name; use letters, digits and '_', not starting "
        "with a digit (e.g. LOG_LEVEL)"
    )


def test_reading_a_missing_file_where_no_others_are(tmp_path: Path) -> None:
    with pytest.raises(StackError) as info:
        read_toml(tmp_path / "nope" / "stack.toml")
    assert info.value.problems == [
        f"{tmp_path / 'nope' / 'stack.toml'}: no such stack file; check the path"
    ]


def test_reading_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_bytes(b'name = "\xff"\n')
    with pytest.raises(StackError) as info:
        read_toml(path, "scenario file")
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}: cannot be read ('utf-8' codec can't decode byte 0xff")
    assert problem.endswith("; check the file and its permissions")


def test_reading_valid_toml(tmp_path: Path) -> None:
    path = tmp_path / "stack.toml"
    path.write_text('[stack]\nname = "demo"\n')
    assert read_toml(path) == {"stack": {"name": "demo"}}
