"""The OpenAPI description stays true: every admin route is in it, real answers match it,
and schemathesis fuzzes every operation against the running app (on the real Postgres).
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.specs.openapi import checks
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from conversation import handoff
from conversation.models import utcnow
from tests.webhook.console.test_admin import API, AUTH, PHONE, flow, make_app, seed
from webhook.console.openapi import SPEC

pytestmark = pytest.mark.postgres
SPEC_URI = "urn:parley:admin-openapi"
REGISTRY = Registry().with_resource(SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012))


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def check(response: TestResponse, method: str, path: str) -> None:
    """``response`` is a documented answer of ``method path`` and its body matches the schema."""
    documented = SPEC["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in documented, f"{method.upper()} {path} answered {status}, not described"
    content = documented[status].get("content")
    if content is None:
        assert not response.data, f"{method.upper()} {path} {status} should have no body"
        return
    assert response.mimetype in content, f"{method.upper()} {path} {status}: {response.mimetype}"
    if response.mimetype == "application/json":
        where = _pointer("paths", path, method, "responses", status, "content", "application/json", "schema")
        validator = jsonschema.Draft202012Validator(
            {"$ref": f"{SPEC_URI}#/{where}"}, registry=REGISTRY, format_checker=jsonschema.FormatChecker()
        )
        validator.validate(response.get_json())


# The customer of the seed who finished their order, then asked for a person.
WAITING = "15550004321"


@pytest.fixture
def app(db_session: Session) -> Flask:
    seed(db_session)
    handoff.request(db_session, handoff.Customer(WAITING, WAITING, None, "PNID"), utcnow(), text="anyone there?")
    db_session.commit()
    app = make_app(db_session)
    app.config["HAND_OFF"] = lambda user_key: None  # no broker here: the reply's row is what is checked
    return app


def test_every_admin_route_is_described_and_nothing_else(app: Flask) -> None:
    registered = {
        (method.lower(), rule.rule.replace("<", "{").replace(">", "}"))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith(("admin.", "handoffs."))
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    described = {(m, p) for p, item in SPEC["paths"].items() for m in item if m != "parameters"}
    assert len(registered) == 23 and registered == described


def test_the_description_is_valid(app: Flask) -> None:
    assert SPEC["openapi"].startswith("3.1")
    for schema in SPEC["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    for item in SPEC["paths"].values():
        for method, operation in item.items():
            assert method == "parameters" or operation["responses"]
    # What clients fetch is exactly what these tests check.
    assert app.test_client().get(f"{API}/openapi.json").get_json() == SPEC


CALLS: list[tuple[str, str, str, int, dict[str, Any]]] = [
    ("get", "/templates", "/templates", 200, {}),
    ("get", "/templates", "/templates", 401, {"headers": {}}),
    ("get", "/templates", "/templates", 403, {"headers": {"Authorization": "Bearer wrong"}}),
    ("get", "/templates/new_order", "/templates/{name}", 200, {}),
    ("get", "/templates/nope", "/templates/{name}", 404, {}),
    ("post", "/templates", "/templates", 201, {"json": flow()}),
    ("post", "/templates", "/templates", 409, {"json": flow()}),
    ("post", "/templates", "/templates", 422, {"json": flow("other", next_step="nowhere")}),
    ("post", "/templates", "/templates", 400, {"data": "x"}),
    ("put", "/templates/survey", "/templates/{name}", 200, {"json": flow(error="Use 1 to 5")}),
    ("put", "/templates/survey", "/templates/{name}", 422, {"json": flow("other")}),
    ("post", "/templates/validate", "/templates/validate", 200, {"json": flow(next_step="nowhere")}),
    ("delete", "/templates/survey", "/templates/{name}", 204, {}),
    ("delete", "/templates/new_order", "/templates/{name}", 409, {}),
    ("get", "/conversations?template=new_order", "/conversations", 200, {}),
    ("get", "/conversations?limit=x", "/conversations", 400, {}),
    ("get", f"/conversations/{PHONE}", "/conversations/{user}", 200, {}),
    ("get", "/submissions?reveal_users=true", "/submissions", 200, {}),
    ("get", "/submissions.csv", "/submissions.csv", 200, {}),
    ("get", "/stats/new_order", "/stats/{template}", 200, {}),
    ("get", "/stats/none", "/stats/{template}", 404, {}),
    ("get", f"/outbound?user={PHONE}", "/outbound", 200, {}),
    ("get", "/outbound", "/outbound", 200, {}),
    ("get", "/outbound?limit=0", "/outbound", 400, {}),
    ("post", f"/conversations/{PHONE}/end", "/conversations/{user}/end", 200, {}),
    ("post", f"/conversations/{PHONE}/end", "/conversations/{user}/end", 404, {}),
    ("get", "/message-templates", "/message-templates", 200, {}),
    ("get", "/handoffs", "/handoffs", 200, {}),
    ("get", "/handoffs", "/handoffs", 401, {"headers": {}}),
    ("get", "/handoffs", "/handoffs", 403, {"headers": {"Authorization": "Bearer wrong"}}),
    ("get", f"/handoffs/{WAITING}/messages", "/handoffs/{user}/messages", 200, {}),
    ("get", "/handoffs/15550009999/messages", "/handoffs/{user}/messages", 404, {}),
    ("post", f"/handoffs/{WAITING}/messages", "/handoffs/{user}/messages", 202, {"json": {"text": "Hi, Carla here"}}),
    ("post", f"/handoffs/{WAITING}/messages", "/handoffs/{user}/messages", 422, {"json": {"text": " "}}),
    ("post", f"/handoffs/{WAITING}/messages", "/handoffs/{user}/messages", 400, {"data": "x"}),
    ("post", f"/handoffs/{PHONE}/messages", "/handoffs/{user}/messages", 409, {"json": {"text": "Hello"}}),
    ("post", f"/handoffs/{WAITING}/release", "/handoffs/{user}/release", 200, {}),
    ("post", f"/handoffs/{WAITING}/release", "/handoffs/{user}/release", 404, {}),
    ("get", "/openapi.json", "/openapi.json", 200, {"headers": {}}),
]


def test_real_answers_match_their_schemas(app: Flask) -> None:
    client = app.test_client()
    for method, url, path, status, kwargs in CALLS:
        response = client.open(API + url, method=method.upper(), **{"headers": AUTH, **kwargs})
        assert response.status_code == status, f"{method.upper()} {url}: {response.get_data(as_text=True)}"
        check(response, method, API + path)


@pytest.fixture
def api_schema(app: Flask) -> Any:
    return schemathesis.openapi.from_wsgi(f"{API}/openapi.json", app)


fuzzed = schemathesis.pytest.from_fixture("api_schema")


# A flow can be schema-valid and still break a graph rule (a target that does not exist, a
# keyword clash): 422 is the documented answer, not a wrongly rejected request.
GRAPH_RULES = {("POST", "/admin/api/templates"), ("PUT", "/admin/api/templates/{name}")}
# Likewise a notification can be schema-valid and name a template the deployment's
# catalogue does not declare, or with another parameter count: its documented 422.
GRAPH_RULES |= {("POST", "/admin/api/notifications")}


@fuzzed.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_fuzzed_calls_keep_to_the_description(case: schemathesis.Case) -> None:
    excluded = []
    if (case.method, case.path) in GRAPH_RULES:
        excluded.append(checks.positive_data_acceptance)
    if case.path == "/admin/api/templates/validate":
        # The same URL is also /templates/{name} for a template named "validate", so its
        # Allow header rightly lists GET, PUT and DELETE too.
        excluded.append(checks.allow_header_conformance)
    case.call_and_validate(headers=AUTH, excluded_checks=excluded)
