"""Notifications on the real Postgres: queued as outbox rows, refused with a reason, idempotent.

Most tests run in the rolled-back ``db_session``; the concurrency tests need commits seen
by other connections, so they run on a fresh database with one session per thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from conversation import window
from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.consent import apply_change
from conversation.events import UserRef
from conversation.models import Contact, Order, OutboundMessage
from conversation.notification_requests import parse_request
from conversation.notifications import (
    Invalid,
    NotificationRequest,
    OptedOut,
    TemplateRequest,
    WindowClosed,
    create_notification,
    get_notification,
    resolve,
)
from conversation.order_notices import OrderNotFound, order_ready
from conversation.service import ConversationService
from conversation.state import EngineConfig
from conversation.turn import process_event
from templates.loader import load_directory
from templates.message_templates import load_catalogue
from tests.conftest import engine_with_shipped_flows
from tests.conversation.transcript import Customer

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = load_catalogue(ROOT / "templates").catalogue
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
PHONE = "15550002222"
NUMBER = "100000000000001"


def ready(to: str = PHONE, key: str = "k1", **kw: object) -> NotificationRequest:
    return NotificationRequest(to, key, template=TemplateRequest("order_ready", "en_US", ["ORD-000002"]), **kw)  # type: ignore[arg-type]


def create(session: Session, request: NotificationRequest, default: str | None = NUMBER, now: datetime = NOW):
    return create_notification(session, request, CATALOGUE, default, now)


def outbox_rows(session: Session) -> list[OutboundMessage]:
    return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def test_a_template_to_a_customer_who_never_wrote_is_one_outbox_row(db_session: Session) -> None:
    created = create(db_session, ready("+1 (555) 000-2222"))
    assert created.created and created.status == "pending" and created.user_key == PHONE
    [row] = outbox_rows(db_session)
    assert (row.id, row.origin, row.kind, row.status, row.idempotency_key) == (
        created.id,
        "notification",
        "message",
        "pending",
        "k1",
    )
    assert (row.to_phone, row.to_user_id, row.phone_number_id) == (PHONE, None, NUMBER)
    assert row.content["template"]["components"][0]["parameters"] == [{"type": "text", "text": "ORD-000002"}]
    assert db_session.get(Contact, PHONE) is not None  # the customer now has a contact row: their lock
    shown = get_notification(db_session, created.id)
    assert shown is not None and shown["status"] == "pending" and shown["error"] is None


def test_the_same_key_again_names_the_same_notification(db_session: Session) -> None:
    first = create(db_session, ready())
    again = create(db_session, ready(), now=NOW + timedelta(days=6))
    assert (again.id, again.created) == (first.id, False)
    assert len(outbox_rows(db_session)) == 1


def test_a_text_needs_the_window_open_on_that_number(db_session: Session) -> None:
    request = NotificationRequest(PHONE, "t1", text="Your table is ready")
    with pytest.raises(WindowClosed, match="never wrote"):
        create(db_session, request)
    window.record_inbound(db_session, PHONE, NUMBER, NOW - timedelta(hours=25))
    with pytest.raises(WindowClosed, match="last wrote at") as closed:
        create(db_session, request)
    assert (closed.value.status, closed.value.field) == (409, "text")
    assert outbox_rows(db_session) == [] and db_session.get(Contact, PHONE) is None  # nothing queued, nothing kept
    window.record_inbound(db_session, PHONE, NUMBER, NOW - timedelta(hours=23))
    created = create(db_session, request)
    assert created.created and outbox_rows(db_session)[0].content["text"]["body"] == "Your table is ready"
    other = NotificationRequest(PHONE, "t2", text="hi", phone_number_id="999")
    with pytest.raises(WindowClosed):  # the window is per business number
        create(db_session, other)


def test_the_number_defaults_to_the_one_the_customer_last_wrote_to(db_session: Session) -> None:
    window.record_inbound(db_session, PHONE, "111", NOW - timedelta(days=3))
    window.record_inbound(db_session, PHONE, "222", NOW - timedelta(days=2))
    create(db_session, ready(), default=None)
    assert outbox_rows(db_session)[0].phone_number_id == "222"
    with pytest.raises(Invalid) as missing:
        create(db_session, ready("15550003333", "k2"), default=None)
    assert missing.value.field == "phone_number_id"


def test_an_opted_out_customer_gets_no_notification(db_session: Session) -> None:
    db_session.add(Contact(user_key=PHONE, phone_number=PHONE, pair_limit_hits=0))
    db_session.flush()
    apply_change(db_session, PHONE, "opt_out", NOW - timedelta(hours=1))
    with pytest.raises(OptedOut) as refused:
        create(db_session, ready())
    assert refused.value.status == 409 and outbox_rows(db_session) == []
    apply_change(db_session, PHONE, "opt_in", NOW)
    assert create(db_session, ready()).created


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (NotificationRequest(PHONE, "x", template=TemplateRequest("nope", "en_US", [])), "template.name"),
        (NotificationRequest(PHONE, "x", template=TemplateRequest("order_ready", "es", ["1"])), "template.language"),
        (NotificationRequest(PHONE, "x", template=TemplateRequest("order_ready", "en_US", [])), "template.parameters"),
        (NotificationRequest("12", "x", template=TemplateRequest("order_ready", "en_US", ["1"])), "to"),
    ],
)
def test_what_cannot_be_sent_is_refused_naming_the_field(
    db_session: Session, request_: NotificationRequest, field: str
) -> None:
    with pytest.raises(Invalid) as refused:
        create(db_session, request_)
    assert (refused.value.status, refused.value.field) == (422, field)
    assert outbox_rows(db_session) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"idempotency_key": "k", "text": "hi"}, "to"),
        ({"to": PHONE, "text": "hi"}, "idempotency_key"),
        ({"to": PHONE, "idempotency_key": "k"}, "template"),
        ({"to": PHONE, "idempotency_key": "k", "text": "hi", "template": {}}, "template"),
        ({"to": PHONE, "idempotency_key": "k", "text": ""}, "text"),
        ({"to": PHONE, "idempotency_key": "k", "text": "x" * 4097}, "text"),
        ({"to": PHONE, "idempotency_key": "k" * 201, "text": "hi"}, "idempotency_key"),
        ({"to": PHONE, "idempotency_key": "k", "template": {"name": "a", "lang": "en"}}, "template.lang"),
        ({"to": PHONE, "idempotency_key": "k", "text": "hi", "cc": 1}, "cc"),
        ({"to": PHONE, "idempotency_key": "k", "text": "hi", "phone_number_id": 5}, "phone_number_id"),
    ],
)
def test_a_request_body_missing_or_misspelling_a_field_names_it(body: dict, field: str) -> None:
    with pytest.raises(Invalid) as refused:
        parse_request(body)
    assert refused.value.field == field


def test_a_known_customer_keeps_the_identity_of_their_conversations(db_session: Session) -> None:
    db_session.add(Contact(user_key="US.1349120865530274191", phone_number=PHONE, user_id="US.1349120865530274191"))
    db_session.flush()
    assert resolve(db_session, "+" + PHONE).user_key == "US.1349120865530274191"
    assert resolve(db_session, "US.1349120865530274191").phone == PHONE  # replies go to the phone when known
    assert resolve(db_session, "US.999").user_key == "US.999"


def test_after_a_reply_a_notification_goes_later(db_session: Session) -> None:
    flows = ConversationService(db_session)
    flows.upsert_templates(load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS).templates.values())
    who = Customer(UserRef(user_id=None, phone=PHONE, profile_name="Ana"), start=NOW)
    process_event(db_session, who.event({"send": "hi"}), EngineConfig(), mark_as_read=False, now=NOW)
    created = create(db_session, ready())
    ids = [row.id for row in outbox_rows(db_session) if row.origin == "reply"]
    assert ids and max(ids) < created.id


def test_order_ready_is_the_notice_to_whoever_placed_the_order(db_session: Session) -> None:
    order = Order(user_key="US.77", items={"product": "coffee"})
    db_session.add(order)
    db_session.flush()
    request = order_ready(db_session, order.number, CATALOGUE)
    assert (request.to, request.idempotency_key) == ("US.77", f"order_ready:{order.number}")
    assert request.template == TemplateRequest("order_ready", "en_US", [order.number])
    assert order_ready(db_session, str(order.id), CATALOGUE).idempotency_key == request.idempotency_key
    with pytest.raises(OrderNotFound):
        order_ready(db_session, "ORD-999999999", CATALOGUE)
    with pytest.raises(OrderNotFound):
        order_ready(db_session, "coffee", CATALOGUE)


def test_a_portuguese_customer_is_told_in_portuguese(db_session: Session) -> None:
    db_session.add(Contact(user_key=PHONE, phone_number=PHONE, pair_limit_hits=0, language="pt_BR"))
    order = Order(user_key=PHONE, items={"product": "coffee"})
    db_session.add(order)
    db_session.flush()
    request = order_ready(db_session, order.number, CATALOGUE)
    assert request.template == TemplateRequest("order_ready", "pt_BR", [order.number])


def test_the_key_is_unique_in_the_database_for_notifications_only(pg_engine: Engine) -> None:
    [index] = [
        i for i in inspect(pg_engine).get_indexes("outbound_messages") if i["column_names"] == ["idempotency_key"]
    ]
    assert index["unique"]
    with pg_engine.connect() as conn:
        definition = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": index["name"]})
        assert "WHERE (idempotency_key IS NOT NULL)" in definition.scalar_one()


# --- concurrency: real commits, one session per thread ------------------------------------


@pytest.fixture(scope="module")
def shared_engine() -> Iterator[Engine]:
    with engine_with_shipped_flows() as engine:
        yield engine


@pytest.mark.parametrize("same_customer", [True, False])
def test_the_same_key_three_times_at_once_queues_one_row(shared_engine: Engine, same_customer: bool) -> None:
    key = f"parallel-{same_customer}"
    barrier = threading.Barrier(3)
    results: list[object] = []

    def attempt(i: int) -> None:
        to = PHONE if same_customer else f"1555000{i:04d}"
        with Session(shared_engine) as session:
            barrier.wait()
            with session.begin():
                results.append(create(session, ready(to, key)))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3, results  # no thread failed
    assert sorted(r.created for r in results) == [False, False, True]  # type: ignore[attr-defined]
    assert len({r.id for r in results}) == 1  # type: ignore[attr-defined]
    with Session(shared_engine) as session:
        count = session.scalar(select(func.count()).where(OutboundMessage.idempotency_key == key))
    assert count == 1


def test_a_notification_waits_for_the_customer_s_transaction_in_flight(shared_engine: Engine) -> None:
    """A reply being written holds the contact row; the notification queues behind it."""
    user = "15550009999"
    with Session(shared_engine) as writer:
        writer.begin()
        writer.execute(
            text("INSERT INTO contacts (user_key, phone_number, pair_limit_hits) VALUES (:k, :k, 0)"), {"k": user}
        )
        writer.flush()
        done: list[int] = []

        def notify() -> None:
            with Session(shared_engine) as session, session.begin():
                done.append(create(session, ready(user, "in-flight")).id)

        thread = threading.Thread(target=notify)
        thread.start()
        with shared_engine.connect() as probe:  # until the notification waits on the contact's lock
            waiting = 0
            while thread.is_alive() and not waiting:
                waiting = probe.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )
                ).scalar_one()
        assert waiting and not done
        reply = OutboundMessage(user_key=user, phone_number_id=NUMBER, to_phone=user, content={"type": "text"})
        writer.add(reply)
        writer.flush()
        reply_id = reply.id
        writer.commit()
        thread.join()
    assert done and done[0] > reply_id
