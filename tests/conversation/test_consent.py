"""Opt-out and opt-in words (pure), and the consent stored on the contact (Postgres)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from conversation.consent import apply_change, consent_change, opted_out_since
from conversation.models import Contact

OUT, IN = ("stop", "unsubscribe"), ("subscribe",)
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["stop", "STOP", " Stop! ", "unsubscribe", "Unsubscribe."])
def test_a_message_that_is_exactly_an_opt_out_word_opts_out(text: str) -> None:
    assert consent_change(text, OUT, IN) == "opt_out"


@pytest.mark.parametrize("text", ["subscribe", "SUBSCRIBE!"])
def test_an_opt_in_word_opts_back_in(text: str) -> None:
    assert consent_change(text, OUT, IN) == "opt_in"


@pytest.mark.parametrize("text", ["stop sending me offers", "don't stop", "start", "", None, "🛑", "stopp"])
def test_anything_else_says_nothing_about_notifications(text: str | None) -> None:
    assert consent_change(text, OUT, IN) is None


def test_the_words_come_from_settings() -> None:
    assert consent_change("parar", ("parar", "sair"), ("voltar",)) == "opt_out"
    assert consent_change("stop", ("parar",), ("voltar",)) is None


@pytest.mark.postgres
def test_opting_out_is_stored_on_the_contact_and_opting_in_clears_it(db_session: Session) -> None:
    db_session.add(Contact(user_key="15550001111", phone_number="15550001111", pair_limit_hits=0))
    db_session.flush()
    assert opted_out_since(db_session, "15550001111") is None
    assert apply_change(db_session, "15550001111", "opt_out", T0)
    assert not apply_change(db_session, "15550001111", "opt_out", T0 + timedelta(hours=1))  # keeps the first
    assert opted_out_since(db_session, "15550001111") == T0
    assert apply_change(db_session, "15550001111", "opt_in", T0 + timedelta(hours=2))
    assert not apply_change(db_session, "15550001111", "opt_in", T0 + timedelta(hours=3))
    assert opted_out_since(db_session, "15550001111") is None
    assert opted_out_since(db_session, "15559999999") is None
