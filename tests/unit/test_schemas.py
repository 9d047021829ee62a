from tools.schemas import SCHEMAS_DIR, render


def test_schemas_are_up_to_date() -> None:
    stale = [str(path) for path, text in render().items() if not path.exists() or path.read_text() != text]
    assert stale == [], f"run `make schemas`: stale {stale}"


def test_no_schema_file_is_left_over() -> None:
    """A file under ``schemas/`` that ``make schemas`` no longer writes (a removed message or
    webhook type) is stale too: delete it."""
    written = render()
    left_over = sorted(str(p) for p in SCHEMAS_DIR.rglob("*.json") if p not in written)
    assert left_over == [], f"not generated any more, delete: {left_over}"
