"""Programs (tenants) from the YAML file, validated at start-up with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from services.domain.program import Program


class ProgramsConfigError(Exception):
    pass


def parse_programs(raw: Any, source: str = "<programs>") -> dict[str, Program]:
    if not isinstance(raw, dict) or not isinstance(raw.get("programs"), dict) or not raw["programs"]:
        raise ProgramsConfigError(f"{source}: expected a mapping 'programs:' with at least one program")
    programs: dict[str, Program] = {}
    problems: list[str] = []
    for name, body in raw["programs"].items():
        try:
            programs[str(name)] = Program.model_validate({**(body or {}), "name": str(name)})
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"])
                problems.append(f"programs.{name}.{where}: {err['msg']}")
        except Exception as exc:  # e.g. an invalid metadata JSON Schema
            problems.append(f"programs.{name}: {exc}")
    if problems:
        raise ProgramsConfigError(f"{source} is invalid:\n  " + "\n  ".join(problems))
    return programs


def load_programs(path: Path) -> dict[str, Program]:
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ProgramsConfigError(f"cannot read programs file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ProgramsConfigError(f"{path} is not valid YAML: {exc}") from exc
    return parse_programs(raw, str(path))


def dump_programs(programs: dict[str, Program]) -> str:
    """The YAML form that :func:`load_programs` reads back."""
    return yaml.safe_dump(
        {"programs": {name: p.model_dump(mode="json", exclude={"name"}) for name, p in programs.items()}}
    )
