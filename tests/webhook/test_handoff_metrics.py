"""Customers waiting for a person on ``/metrics``, read from the real Postgres on each scrape."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from conversation import handoff
from conversation.models import utcnow
from settings import load_settings
from tests.webhook.console.test_admin import PRODUCTION, make_app, scope_of
from webhook import create_app
from webhook.metrics import exposition

pytestmark = pytest.mark.postgres


def samples(page: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(page.decode())
        for s in family.samples
        if s.name.startswith("parley_handoffs")
    }


def test_waiting_customers_the_oldest_wait_and_handoffs_per_flow(db_session: Session) -> None:
    now = utcnow()
    for n, (template, minutes) in enumerate((("support", 30), ("support", 5), (None, 1))):
        who = handoff.Customer(f"1555000770{n}", f"1555000770{n}", None, "PNID")
        handoff.request(db_session, who, now - timedelta(minutes=minutes), template=template)
    handoff.release(db_session, "15550007701", now)
    db_session.commit()
    got = samples(exposition("memory://", scope_of(db_session)))
    assert got[("parley_handoffs_waiting", ())] == 2
    assert 30 * 60 <= got[("parley_handoffs_oldest_wait_seconds", ())] < 31 * 60
    # Released or not, each handoff asked for in the last day counts for its flow.
    assert got[("parley_handoffs_requested_24h", (("flow", "support"),))] == 2
    assert got[("parley_handoffs_requested_24h", (("flow", "handoff_word"),))] == 1


def test_a_database_that_does_not_answer_leaves_them_out_and_the_scrape_still_answers() -> None:
    @contextmanager
    def down() -> Iterator[Session]:
        raise ConnectionRefusedError("database down")
        yield  # pragma: no cover

    page = exposition("memory://", down)
    assert samples(page) == {} and b"parley_" in page


def test_served_on_the_receivers_metrics_with_the_agents_api_and_not_without_it(db_session: Session) -> None:
    handoff.request(db_session, handoff.Customer("15550007710", "15550007710", None, "PNID"), utcnow())
    db_session.commit()
    with_api = make_app(db_session).test_client().get("/metrics")
    assert samples(with_api.data)[("parley_handoffs_waiting", ())] == 1
    receiver_only = create_app({"SETTINGS": load_settings(PRODUCTION), "ENQUEUE": lambda body: None})
    assert samples(receiver_only.test_client().get("/metrics").data) == {}
