from services.contract.schemas import render


def test_schemas_are_up_to_date() -> None:
    stale = [str(path) for path, text in render().items() if not path.exists() or path.read_text() != text]
    assert stale == [], f"run `make schemas`: stale {stale}"
