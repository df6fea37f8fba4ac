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


def test_bodies_read_after_the_key_check_are_still_documented():
    spec = create_app(run_worker=False, env={}).openapi()
    routes = {
        ("/v1/contexts/{context_id}/events", "post"): "EventBatch",
        ("/v1/contexts/{context_id}", "put"): "ContextConfig",
        ("/v1/contexts/{context_id}/review", "post"): "ReviewDecision",
    }
    schemas = spec["components"]["schemas"]
    for (path, method), model in routes.items():
        body = spec["paths"][path][method]["requestBody"]
        assert body == {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
        }
        assert model in schemas
    assert {"Event", "ScheduleConfig", "CustomDomain", "PromptSet"} <= set(schemas)  # what they nest
    assert schemas["Event"]["required"] == ["idempotency_key", "impression_id", "item_id"]
    assert list(schemas) == sorted(schemas)
    assert (
        "events.N.item_id"
        in spec["paths"]["/v1/contexts/{context_id}/events"]["post"]["responses"]["422"]["description"]
    )
