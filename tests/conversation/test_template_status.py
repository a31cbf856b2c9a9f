"""Meta's template verdicts and the customer's marketing stop, on the real Postgres: what a
notification of a template is refused for (409), and what still goes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from conversation import marketing, template_status
from conversation.account_changes import PreferenceChange, TemplateUpdate
from conversation.events import UserRef
from conversation.models import Contact
from conversation.notifications import NotificationRequest, TemplateNotSendable, TemplateRequest, create_notification
from templates.message_templates import Catalogue, MessageTemplate, load_catalogue

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
ANN = UserRef(user_id=None, phone="15550003333")
SHIPPED = load_catalogue(ROOT / "templates").catalogue
OFFER = MessageTemplate.model_validate(
    {
        "name": "weekly_offer",
        "language": "en_US",
        "category": "MARKETING",
        "body": "This week: {{1}} at half price.",
        "examples": ["x"],
    }
)
CATALOGUE = Catalogue({**SHIPPED.templates, ("weekly_offer", "en_US"): OFFER})


def notify(session: Session, name: str, parameters: list[str], key: str) -> int:
    call = TemplateRequest(name, "en_US", parameters)
    request = NotificationRequest(ANN.phone or "", key, template=call)
    return create_notification(session, request, CATALOGUE, "100000000000001", NOW).id


def test_a_paused_template_is_refused_naming_its_status_until_meta_reinstates_it(db_session: Session) -> None:
    paused = TemplateUpdate("order_ready", "en_US", "1", status="PAUSED", reason="low quality")
    template_status.record(db_session, paused, NOW)
    with pytest.raises(TemplateNotSendable) as refused:
        notify(db_session, "order_ready", ["ORD-1"], "k1")
    assert refused.value.status == 409 and refused.value.field == "template"
    assert refused.value.message == "the message template order_ready (en_US) is PAUSED by Meta: low quality"
    # A quality change alone leaves the status as it was.
    template_status.record(db_session, TemplateUpdate("order_ready", "en_US", None, quality="RED"), NOW)
    assert template_status.blocked(db_session, "order_ready", "en_US") is not None
    template_status.record(db_session, TemplateUpdate("order_ready", "en_US", None, status="REINSTATED"), NOW)
    assert notify(db_session, "order_ready", ["ORD-1"], "k2") > 0
    [row] = template_status.listing(db_session)
    assert (row["status"], row["quality"], row["template_id"], row["sendable"]) == ("REINSTATED", "RED", "1", True)


def test_a_stop_refuses_marketing_templates_only_and_a_resume_lifts_it(db_session: Session) -> None:
    assert marketing.apply_preference(db_session, PreferenceChange(ANN, "stop", NOW))
    assert not marketing.apply_preference(db_session, PreferenceChange(ANN, "stop", NOW + timedelta(1)))  # no change
    with pytest.raises(TemplateNotSendable) as refused:
        notify(db_session, "weekly_offer", ["tea"], "m1")
    assert "stopped marketing messages" in refused.value.message
    assert notify(db_session, "order_ready", ["ORD-1"], "u1") > 0  # utility still goes (Meta's rule)
    # A resume older than the stop (a late redelivery) changes nothing.
    assert not marketing.apply_preference(db_session, PreferenceChange(ANN, "resume", NOW - timedelta(hours=1)))
    assert marketing.apply_preference(db_session, PreferenceChange(ANN, "resume", NOW + timedelta(hours=1)))
    assert notify(db_session, "weekly_offer", ["tea"], "m2") > 0


def test_meta_recategorising_a_utility_template_as_marketing_counts(db_session: Session) -> None:
    marketing.apply_preference(db_session, PreferenceChange(ANN, "stop", NOW))
    update = TemplateUpdate("order_reminder", "en_US", None, category="MARKETING")
    template_status.record(db_session, update, NOW)
    with pytest.raises(TemplateNotSendable):
        notify(db_session, "order_reminder", ["Ann"], "r1")


def test_a_preference_finds_the_customer_by_phone_and_creates_one_never_met(db_session: Session) -> None:
    db_session.add(Contact(user_key="US.55556666777788889999", phone_number="15550004444", pair_limit_hits=0))
    db_session.flush()
    marketing.apply_preference(db_session, PreferenceChange(UserRef(None, "15550004444"), "stop", NOW))
    assert marketing.stopped_since(db_session, "US.55556666777788889999") == NOW
    assert db_session.get(Contact, "15550004444") is None  # no second customer
    marketing.apply_preference(db_session, PreferenceChange(UserRef(None, "15550005555"), "stop", NOW))
    assert marketing.stopped_since(db_session, "15550005555") == NOW


def test_templates_validate_names_what_meta_has_not_approved(db_session: Session) -> None:
    template_status.record(db_session, TemplateUpdate("order_ready", "en_US", None, status="REJECTED"), NOW)
    template_status.record(db_session, TemplateUpdate("order_reminder", "en_US", None, status="APPROVED"), NOW)
    assert template_status.not_approved(db_session, sorted(SHIPPED.templates)) == [
        "order_ready (en_US): Meta's last status is REJECTED"
    ]
