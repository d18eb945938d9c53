"""schema.json: valid JSON Schema, true to the loader's tables, and in agreement with the loader on
every bad input wherever a schema can express the rule."""

from __future__ import annotations

import keyword
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from sagasim.exceptions import SagaDefinitionError
from sagasim.io import format as io
from sagasim.io import yaml as _yaml
from sagasim.model import RESERVED_NAMES

from .bad_inputs import BAD_INPUTS, BEYOND_SCHEMA, GOOD_MODEL, BadInput

MODELS = sorted(Path(__file__).resolve().parent.parent.glob("models/**/*.yaml"))
SCHEMA = io.json_schema()
VALIDATOR = Draft202012Validator(SCHEMA)


def errors(instance: object) -> list[str]:
    return [error.message for error in VALIDATOR.iter_errors(instance)]


def data_of(source: str | bytes, tmp_path: Path) -> Any:
    """The plain data the loader's first stage (file -> text -> YAML) reads from ``source``."""
    path = tmp_path / "model.yaml"
    path.write_bytes(source if isinstance(source, bytes) else source.encode())
    data, _ = io.parse_yaml(_yaml.read_text(path), file=str(path))
    return data


def test_the_schema_is_valid_draft_2020_12_and_ships_in_the_package() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert resources.files("sagasim.io").joinpath("schema.json").is_file()


@pytest.mark.parametrize("path", MODELS, ids=[path.name for path in MODELS])
def test_every_model_file_is_valid_under_the_schema(path: Path, tmp_path: Path) -> None:
    assert errors(data_of(path.read_bytes(), tmp_path)) == []
    assert errors(io.to_dict(io.load(path))) == []


def test_the_good_model_and_its_canonical_form_are_valid(tmp_path: Path) -> None:
    assert errors(data_of(GOOD_MODEL, tmp_path)) == []
    assert errors(io.to_dict(io.loads(GOOD_MODEL))) == []


# --- the schema and the loader agree ------------------------------------------------------------

SCHEMA_CASES = [case for case in BAD_INPUTS if case.schema != "yaml"]
YAML_CASES = [case for case in BAD_INPUTS if case.schema == "yaml"]


@pytest.mark.parametrize("case", SCHEMA_CASES, ids=[case.id for case in SCHEMA_CASES])
def test_schema_and_loader_agree_or_the_rule_is_beyond_the_schema(
    case: BadInput, tmp_path: Path
) -> None:
    data = data_of(case.source, tmp_path)
    with pytest.raises(SagaDefinitionError):
        io.from_dict(data)
    if case.schema == "rejects":
        assert errors(data) != [], "the schema accepts what the loader refuses"
    else:
        assert case.rule in BEYOND_SCHEMA
        assert errors(data) == [], f"the schema now expresses {case.rule!r}: mark it 'rejects'"


@pytest.mark.parametrize("case", YAML_CASES, ids=[case.id for case in YAML_CASES])
def test_yaml_level_cases_never_reach_a_schema(case: BadInput, tmp_path: Path) -> None:
    with pytest.raises(SagaDefinitionError):
        data_of(case.source, tmp_path)


def test_every_rule_beyond_the_schema_has_a_case() -> None:
    covered = {case.rule for case in BAD_INPUTS if case.schema == "beyond"}
    assert covered == set(BEYOND_SCHEMA)
    assert all(not case.rule for case in BAD_INPUTS if case.schema != "beyond")


def test_the_schema_agrees_with_the_loader_on_valid_edge_values() -> None:
    edge = io.to_dict(io.loads(GOOD_MODEL))
    edge["steps"][0]["failure"] = 1
    edge["steps"][1]["retry"]["attempts"] = 2.0  # JSON Schema's integers include 2.0; so does io
    edge["steps"][1]["timeout"] = "0ms"
    edge["arrivals"]["rate"] = "0.5/min"
    assert errors(edge) == []
    io.from_dict(edge)


# --- the schema is true to the loader's tables ------------------------------------------------


def keys_of(table: list[io.Field]) -> set[str]:
    return {key for key, *_ in table}


def test_the_schema_knows_exactly_the_loader_keys() -> None:
    defs = SCHEMA["$defs"]
    assert set(SCHEMA["properties"]) == keys_of(io.SAGA)
    assert set(defs["step"]["properties"]) == keys_of(io.STEP)
    assert set(defs["compensation"]["properties"]) == keys_of(io.COMPENSATION)
    assert set(defs["retry"]["properties"]) == keys_of(io.RETRY)
    assert set(defs["service"]["properties"]) == keys_of(io.SERVICE)
    assert set(defs["service"]["properties"]["outages"]["items"]["properties"]) == keys_of(
        io.OUTAGE
    )
    assert set(SCHEMA["properties"]["arrivals"]["properties"]) == keys_of(io.ARRIVALS)
    by_dist = {d["properties"]["dist"]["const"]: d for d in defs["latency"]["oneOf"]}
    assert set(by_dist) == set(io.DISTRIBUTIONS)
    for dist, (_, table) in io.DISTRIBUTIONS.items():
        assert set(by_dist[dist]["properties"]) == {"dist"} | keys_of(table), dist
    graph = {"choice": io.CHOICE, "map": io.MAP, "saga": io.SUB_SAGA, "fail": io.END}
    for word, table in graph.items():
        assert set(defs[word]["properties"][word]["properties"]) == keys_of(table), word
    assert set(defs["branch"]["properties"]) == keys_of(io.BRANCH)
    for definition in [SCHEMA, *defs.values(), *by_dist.values()]:
        if definition.get("type") == "object" and "properties" in definition:
            assert definition["additionalProperties"] is False


def test_the_schema_forbids_exactly_keywords_and_reserved_names() -> None:
    forbidden = SCHEMA["$defs"]["identifier"]["not"]["enum"]
    assert forbidden == sorted(set(keyword.kwlist) | RESERVED_NAMES)
