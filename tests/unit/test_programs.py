"""parse_programs()/load_programs(): programs YAML validated with errors that name the field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.api.auth import ApiKeys, api_key_digest, new_api_key
from services.config.programs import ProgramsConfigError, load_programs, parse_programs
from services.domain.program import Program, Rounding

REPO = Path(__file__).resolve().parents[2]


def test_minimal_program_loads_with_defaults() -> None:
    programs = parse_programs({"programs": {"acme": {"currency": "EUR"}}})
    assert set(programs) == {"acme"}
    p = programs["acme"]
    assert p.name == "acme"
    assert p.currency == "EUR"
    assert p.earn.level == "item"
    assert p.earn.points_per_unit == Decimal(1)
    assert p.earn.rounding is Rounding.floor
    assert p.earn.campaigns == ()
    assert p.burn.points_per_unit == Decimal(10)
    assert p.pending_period is None
    assert p.metadata_schema is None
    assert p.exchange_rates == {}


def test_empty_program_body_loads_with_defaults() -> None:
    assert parse_programs({"programs": {"x": None}})["x"].currency == "EUR"


def test_currency_is_uppercased() -> None:
    assert parse_programs({"programs": {"a": {"currency": "usd"}}})["a"].currency == "USD"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"currency": "EURO"}, "programs.acme.currency"),
        ({"earn": {"rounding": "sideways"}}, "programs.acme.earn.rounding"),
        ({"earn": {"level": "basket"}}, "programs.acme.earn.level"),
        ({"earn": {"points_per_unit": -1}}, "programs.acme.earn.points_per_unit"),
        ({"burn": {"points_per_unit": 0}}, "programs.acme.burn.points_per_unit"),
        ({"pending_period": {"seconds": 0}}, "programs.acme.pending_period.seconds"),
        ({"pending_period": {"seconds": 5, "on_expiry": "x"}}, "programs.acme.pending_period.on_expiry"),
        ({"colour": "red"}, "programs.acme.colour"),
        ({"earn": {"campaigns": [{"id": "c"}]}}, "programs.acme.earn.campaigns.0"),
    ],
)
def test_bad_field_is_named(body: dict[str, Any], where: str) -> None:
    with pytest.raises(ProgramsConfigError) as exc:
        parse_programs({"programs": {"acme": body}}, "programs.yaml")
    assert where in str(exc.value)
    assert str(exc.value).startswith("programs.yaml is invalid")


def test_all_problems_are_reported_together() -> None:
    raw = {"programs": {"a": {"currency": "EURO"}, "b": {"earn": {"rounding": "x"}}, "c": {}}}
    with pytest.raises(ProgramsConfigError) as exc:
        parse_programs(raw)
    assert "programs.a.currency" in str(exc.value)
    assert "programs.b.earn.rounding" in str(exc.value)
    assert "programs.c" not in str(exc.value)


def test_campaign_giving_nothing_is_reported() -> None:
    with pytest.raises(ProgramsConfigError, match="gives no points"):
        parse_programs({"programs": {"acme": {"earn": {"campaigns": [{"id": "c", "points": 0}]}}}})


def test_invalid_metadata_schema_is_reported() -> None:
    with pytest.raises(ProgramsConfigError) as exc:
        parse_programs({"programs": {"acme": {"metadata_schema": {"type": "no-such-type"}}}})
    assert "programs.acme" in str(exc.value)
    assert "no-such-type" in str(exc.value)


def test_valid_metadata_schema_loads() -> None:
    schema = {"type": "object", "required": ["channel"]}
    assert (
        parse_programs({"programs": {"acme": {"metadata_schema": schema}}})["acme"].metadata_schema == schema
    )


@pytest.mark.parametrize("raw", [None, [], {}, {"programs": {}}, {"programs": []}, {"other": 1}])
def test_missing_programs_mapping_is_reported(raw: Any) -> None:
    with pytest.raises(ProgramsConfigError, match="'programs:'"):
        parse_programs(raw, "f.yaml")


def test_non_mapping_program_body_is_reported() -> None:
    with pytest.raises(ProgramsConfigError, match=r"programs\.acme"):
        parse_programs({"programs": {"acme": ["EUR"]}})


def test_load_programs_reads_yaml(tmp_path: Path) -> None:
    path = tmp_path / "programs.yaml"
    path.write_text("programs:\n  acme:\n    currency: EUR\n    exchange_rates: {USD: '0.92'}\n")
    p = load_programs(path)["acme"]
    assert isinstance(p, Program)
    assert p.rate_from("usd") == Decimal("0.92")
    assert p.rate_from(None) == Decimal(1)
    assert p.rate_from("EUR") == Decimal(1)
    assert p.rate_from("GBP") is None


def test_load_programs_reports_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ProgramsConfigError, match="cannot read"):
        load_programs(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("programs: [unclosed\n")
    with pytest.raises(ProgramsConfigError, match="not valid YAML"):
        load_programs(bad)


def test_shipped_programs_file_is_valid() -> None:
    path = REPO / "config" / "programs.yaml"
    raw = yaml.safe_load(path.read_text())
    programs = load_programs(path)
    assert set(programs) == set(raw["programs"])


def test_exchange_rate_keys_are_case_insensitive() -> None:
    p = parse_programs({"programs": {"acme": {"exchange_rates": {"usd": "0.92"}}}})["acme"]
    assert p.rate_from("USD") == Decimal("0.92")


def test_api_keys_are_stored_as_sha256_digests() -> None:
    digest = api_key_digest("secret-key")
    program = parse_programs({"programs": {"a": {"api_keys_sha256": [digest]}}})["a"]
    assert program.api_keys_sha256 == {digest}
    with pytest.raises(ProgramsConfigError, match=r"programs\.a\.api_keys_sha256"):
        parse_programs({"programs": {"a": {"api_keys_sha256": ["secret-key"]}}})  # a key in clear


def test_a_key_shared_by_two_programs_is_reported() -> None:
    digest = api_key_digest("shared")
    with pytest.raises(ProgramsConfigError, match=r"programs\.b\.api_keys_sha256: .* is also a key of a"):
        parse_programs({"programs": {"a": {"api_keys_sha256": [digest]}, "b": {"api_keys_sha256": [digest]}}})


def test_a_key_belongs_to_its_program_only() -> None:
    keys = ApiKeys(
        parse_programs(
            {
                "programs": {
                    "a": {"api_keys_sha256": [api_key_digest("ka")]},
                    "b": {"api_keys_sha256": [api_key_digest("kb1"), api_key_digest("kb2")]},
                }
            }
        )
    )
    assert [keys.program_of(k) for k in ("ka", "kb1", "kb2", "kc", "")] == ["a", "b", "b", None, None]
    assert new_api_key() != new_api_key() and len(new_api_key()) > 40
