"""``/openapi.json`` is a valid OpenAPI document that says what the events API sends, checked by
schemathesis against the running server on the demo store; ``/docs`` works from the package alone."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from exchange.operators import add_operator
from exchange.server import create_app
from exchange.store import STATUSES
from tests.support.serving import serving
from tests.support.webdata import demo_site

# FastAPI writes OpenAPI 3.1; schemathesis 3.x reads it behind this switch
schemathesis.experimental.OPEN_API_3_1.enable()

#: the properties the operator map reads of every feature (tests/test_api_events.py checks their values)
MAP_PROPERTIES = {
    "id", "source", "kind", "origin", "category", "type", "subtype", "street", "city", "direction", "status",
    "start", "end", "updated", "level", "delay_s", "speed_kmh", "length_m", "reliability", "confidence",
    "cluster_id", "matched", "match_reason", "waze_status", "held_back", "published", "lint_problems",
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The server on the demo store: (base URL, an operator token)."""
    with demo_site(tmp_path_factory.mktemp("openapi")) as site:
        token = add_operator(site.engine, "schemathesis")
        with serving(create_app(site.engine, require_token=False, config=site.config)) as url:
            yield url, token


@pytest.fixture(scope="module")
def document(live: tuple[str, str]) -> dict[str, Any]:
    url, _token = live
    response = httpx.get(f"{url}/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)
    assert {"/api/events", "/api/events/{event_id}", "/api/stats"} <= document["paths"].keys()
    assert not any(path.startswith("/feeds") for path in document["paths"])  # the feeds have formats of their own
    schemas = document["components"]["schemas"]
    assert set(schemas["EventProperties"]["required"]) >= MAP_PROPERTIES
    assert tuple(schemas["EventProperties"]["properties"]["status"]["enum"]) == STATUSES
    events = document["paths"]["/api/events"]["get"]
    assert {"401", "422", "503"} <= events["responses"].keys()
    assert events["security"], "Swagger UI offers Authorize only for a documented scheme"
    assert {p["name"] for p in events["parameters"]} == {
        "bbox", "category", "origin", "status", "since", "until", "limit", "cursor"}


@pytest.fixture(scope="module")
def api_schema(live: tuple[str, str], document: dict[str, Any]) -> Any:
    url, _token = live
    return schemathesis.from_dict(document, base_url=url)


# schemathesis 3.x resolves references with jsonschema's deprecated RefResolver (4.x does not)
@pytest.mark.filterwarnings("ignore:jsonschema.RefResolver is deprecated:DeprecationWarning")
@pytest.mark.parametrize("path", ["/api/events", "/api/events/{event_id}", "/api/stats"])
def test_every_answer_conforms_to_the_document(api_schema: Any, live: tuple[str, str], path: str) -> None:
    """Examples schemathesis draws from the document (the same ones every run), sent with an operator
    token: no 5xx, and every answer has a documented status, content type and shape."""
    _url, token = live
    operation = api_schema[path]["GET"]

    @given(case=operation.as_strategy())
    @settings(max_examples=40, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def answers(case: Any) -> None:
        response = case.call(headers={"Authorization": f"Bearer {token}"}, timeout=30)
        case.validate_response(response, checks=(not_a_server_error, status_code_conformance,
                                                 content_type_conformance, response_schema_conformance))

    answers()
    if path == "/api/events/{event_id}":  # drawn ids are unknown (404): one the store holds, in full
        case = operation.make_case(path_parameters={"event_id": "city:city:demo-1"})
        response = case.call(headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert response.status_code == 200
        case.validate_response(response, checks=(content_type_conformance, response_schema_conformance))


def test_docs_are_served_from_the_package(live: tuple[str, str]) -> None:
    url, _token = live
    page = httpx.get(f"{url}/docs")
    assert page.status_code == 200
    assert "/docs/swagger-ui-bundle.js" in page.text and "/docs/swagger-ui.css" in page.text
    assert "cdn." not in page.text and "https://" not in page.text  # nothing fetched from elsewhere
    vendored = Path(str(resources.files("exchange") / "static" / "vendor" / "swagger-ui"))
    for name, kind in (("swagger-ui-bundle.js", "text/javascript"), ("swagger-ui.css", "text/css")):
        served = httpx.get(f"{url}/docs/{name}")
        assert served.status_code == 200
        assert served.headers["content-type"].startswith(kind)
        assert served.content == (vendored / name).read_bytes()
    assert (vendored / "LICENSE").is_file() and (vendored / "VERSION").read_text().startswith("swagger-ui-dist 5.")
    assert httpx.get(f"{url}/docs/LICENSE").status_code == 404  # the two files the page loads, nothing else
