import json
from pathlib import Path

from clickloop.service.app import create_app, openapi_document

SPEC = Path(__file__).parents[2] / "docs" / "openapi.json"


def test_committed_spec_is_current():
    committed = json.loads(SPEC.read_text(encoding="utf-8"))
    assert committed == create_app(run_worker=False, env={}).openapi(), (
        "docs/openapi.json is stale; regenerate it: clickloop openapi > docs/openapi.json"
    )
    assert SPEC.read_text(encoding="utf-8") == openapi_document()


def test_spec_documents_the_error_shape_and_the_key():
    spec = create_app(run_worker=False, env={}).openapi()
    events = spec["paths"]["/v1/contexts/{context_id}/events"]["post"]
    assert events["security"] == [{"ApiKey": []}]
    assert events["responses"]["413"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    assert "security" not in spec["paths"]["/healthz"]["get"]
