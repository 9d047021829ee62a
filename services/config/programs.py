"""Programs (tenants) from the YAML file, validated at start-up with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from services.domain.program import Program


class ProgramsConfigError(Exception):
    pass


# Secrets never come from the programs file (a ConfigMap in production): refused by name.
_SECRET_KEYS = frozenset({"webhook_secret", "webhook_secrets"})


def parse_programs(raw: Any, source: str = "<programs>") -> dict[str, Program]:
    if not isinstance(raw, dict) or not isinstance(raw.get("programs"), dict) or not raw["programs"]:
        raise ProgramsConfigError(f"{source}: expected a mapping 'programs:' with at least one program")
    programs: dict[str, Program] = {}
    problems: list[str] = []
    for name, body in raw["programs"].items():
        if isinstance(body, dict) and _SECRET_KEYS & body.keys():
            for key in sorted(_SECRET_KEYS & body.keys()):
                problems.append(
                    f"programs.{name}.{key}: webhook secrets are not read from the programs file;"
                    " give them in LOYALTY_WEBHOOK_SECRETS or LOYALTY_WEBHOOK_SECRETS_DIR (README.md)"
                )
            body = {k: v for k, v in body.items() if k not in _SECRET_KEYS}
        try:
            programs[str(name)] = Program.model_validate({**(body or {}), "name": str(name)})
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"])
                problems.append(f"programs.{name}.{where}: {err['msg']}")
        except Exception as exc:  # e.g. an invalid metadata JSON Schema
            problems.append(f"programs.{name}: {exc}")
    problems += _shared_api_keys(programs)
    if problems:
        raise ProgramsConfigError(f"{source} is invalid:\n  " + "\n  ".join(problems))
    return programs


def _shared_api_keys(programs: dict[str, Program]) -> list[str]:
    """A read API key is bound to one program: the same key in two programs is an error."""
    owners: dict[str, str] = {}
    problems = []
    for name, program in programs.items():
        for digest in sorted(program.api_keys_sha256):
            if digest in owners:
                problems.append(
                    f"programs.{name}.api_keys_sha256: {digest[:12]}… is also a key of {owners[digest]}"
                )
            owners.setdefault(digest, name)
    return problems


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
