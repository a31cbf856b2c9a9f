"""ConversationService on the real Postgres: templates, conversations, expiry."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from conversation import template_cache as cache_module
from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.events import UserRef
from conversation.models import ConversationState, TemplateRevision, WorkflowTemplate, utcnow
from conversation.service import TEMPLATE_CACHE, ConversationService, TemplateInvalid, TemplateNotFound
from templates.loader import load_directory
from templates.schema import TemplateDef

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.postgres
ANN = UserRef(user_id=None, phone="15550001111", profile_name="Ann")


@pytest.fixture
def service(db_session: Session) -> ConversationService:
    shipped = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    svc = ConversationService(db_session)
    svc.upsert_templates(shipped.templates.values())
    return svc


def test_load_is_an_idempotent_upsert(service: ConversationService) -> None:
    shipped = load_directory(ROOT / "templates", ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    again = service.upsert_templates(shipped.templates.values())
    assert [r.changed for r in again] == [False] * 6
    assert len(service.list_templates()) == 6
    row = service.get_template("new_order")
    assert row.trigger_keywords == ["order", "buy", "purchase"] and row.template_type == "list"


def test_find_template_by_keyword(service: ConversationService) -> None:
    assert service.find_template_by_keyword("Hi there").template_name == "main_menu"
    assert service.find_template_by_keyword("I need HELP").template_name == "support"
    assert service.find_template_by_keyword("this is history") is None


def test_invalid_template_is_refused_with_located_errors(service: ConversationService) -> None:
    data = service.get_template("new_order")
    bad = TemplateDef.model_validate(
        {
            "template_name": "clash",
            "template_type": "text",
            "trigger_keywords": ["hi"],
            "menu_structure": {"type": "text", "body": {"text": "x"}, "steps": {"initial": {"next_step": "nowhere"}}},
        }
    )
    with pytest.raises(TemplateInvalid) as info:
        service.create_template(bad)
    lines = [str(e) for e in info.value.errors]
    assert any("next_step 'nowhere' is not a step of clash nor a template" in line for line in lines)
    assert any("'hi' is also a keyword of main_menu" in line for line in lines)
    assert data is not None and service.get_template("clash") is None


def test_deleting_a_template_others_switch_to_is_refused(service: ConversationService) -> None:
    with pytest.raises(TemplateInvalid):
        service.delete_template("new_order")
    assert service.delete_template("nonexistent") is False


def test_template_cache_refreshes_when_a_template_changes(service: ConversationService, db_session: Session) -> None:
    first = service.template_set()
    assert service.template_set() is first  # unchanged table: no rebuild
    definition = service.template_set().templates["account"].model_copy(update={"trigger_keywords": ["account", "me"]})
    service.update_template("account", definition)
    assert service.template_set() is not first
    assert service.template_set().keywords.search("me") == "account"


def test_template_cache_costs_one_query_when_nothing_changed(service: ConversationService, db_session: Session) -> None:
    service.template_set()
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db_session.get_bind(), "before_cursor_execute", listener)
    try:
        service.template_set()
    finally:
        event.remove(db_session.get_bind(), "before_cursor_execute", listener)
    assert len(statements) == 1 and "template_revision" in statements[0]  # a primary-key read, no table scan


def test_a_write_outside_parley_is_noticed_and_only_changed_rows_are_validated_again(
    service: ConversationService, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert service.template_set().keywords.search("help") == "support"
    validated: list[str] = []
    real = cache_module.to_definition
    monkeypatch.setattr(cache_module, "to_definition", lambda row: validated.append(row.template_name) or real(row))
    # An operator's hand edit, no ORM involved: the trigger still changes the revision.
    db_session.execute(text("UPDATE workflow_templates SET is_active = false WHERE template_name = 'support'"))
    assert service.template_set().keywords.search("help") is None
    assert validated == ["support"]


def test_a_rolled_back_write_never_shares_its_revision_with_a_later_one(
    service: ConversationService, db_session: Session
) -> None:
    before = db_session.scalar(select(TemplateRevision.revision))
    nested = db_session.begin_nested()
    db_session.execute(text("UPDATE workflow_templates SET is_active = false WHERE template_name = 'support'"))
    rolled_back = db_session.scalar(select(TemplateRevision.revision))
    nested.rollback()
    assert db_session.scalar(select(TemplateRevision.revision)) == before
    db_session.execute(text("UPDATE workflow_templates SET is_active = false WHERE template_name = 'account'"))
    assert db_session.scalar(select(TemplateRevision.revision)) not in (before, rolled_back)


def test_update_unknown_template(service: ConversationService) -> None:
    with pytest.raises(TemplateNotFound):
        service.update_template("ghost", service.template_set().templates["account"])


def test_conversation_lifecycle_with_merging_context(service: ConversationService) -> None:
    conv = service.start_conversation(ANN, "new_order")
    assert (conv.conversation_flow, conv.current_step, conv.phone_number) == ("new_order", "initial", "15550001111")
    service.update_conversation(ANN.key, step="quantity", context={"product": "tea"})
    service.update_conversation(ANN.key, context={"quantity": 2})
    row = service.get_conversation(ANN.key)
    assert row.current_step == "quantity" and row.context == {"product": "tea", "quantity": 2}
    menu = service.get_current_menu(ANN.key)
    assert menu == [{"type": "text", "text": {"body": "How many ? (Enter a number)", "preview_url": False}}]
    assert service.end_conversation(ANN.key) is True
    assert service.get_conversation(ANN.key) is None and service.get_current_menu(ANN.key) == []


def test_starting_again_replaces_the_live_conversation(service: ConversationService, db_session: Session) -> None:
    service.start_conversation(ANN, "new_order")
    service.start_conversation(ANN, "support")
    rows = db_session.scalars(select(ConversationState).where(ConversationState.user_key == ANN.key)).all()
    assert [r.conversation_flow for r in rows] == ["support"]


def test_the_database_refuses_a_second_live_conversation(service: ConversationService, db_session: Session) -> None:
    service.start_conversation(ANN, "new_order")
    now = utcnow()
    db_session.add(
        ConversationState(
            user_key=ANN.key, conversation_flow="support", current_step="initial", context={}, expires_at=now
        )
    )
    with pytest.raises(IntegrityError):
        db_session.flush()


def test_bsuid_identifies_the_user_when_present(service: ConversationService) -> None:
    user = UserRef(user_id="US.13491208655302741918", phone="15550002222")
    conv = service.start_conversation(user, "main_menu")
    assert conv.user_key == "US.13491208655302741918" and conv.phone_number == "15550002222"


def test_expired_conversations_are_absent_and_cleaned_up_in_batches(service: ConversationService) -> None:
    now = utcnow()
    for i in range(7):
        service.start_conversation(UserRef(None, f"1555000{i:04d}"), "main_menu", now=now - timedelta(days=2))
    live = service.start_conversation(UserRef(None, "15559999999"), "main_menu", now=now)
    assert service.get_conversation("15550000001", now=now) is None
    assert service.cleanup_expired_conversations(now=now, batch_size=3) == 7
    assert service.get_conversation(live.user_key, now=now) is not None
    assert service.cleanup_expired_conversations(now=now) == 0


def test_unknown_template_cannot_be_started(service: ConversationService) -> None:
    with pytest.raises(TemplateNotFound):
        service.start_conversation(ANN, "nope")


def test_cache_is_per_database(service: ConversationService) -> None:
    assert TEMPLATE_CACHE.get(service.session) is service.template_set()
    assert isinstance(service.get_template("main_menu"), WorkflowTemplate)
