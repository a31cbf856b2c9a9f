"""Opt-out and opt-in of notifications, stored on the customer's ``contacts`` row.

A message that is exactly an opt-out word (``PARLEY_OPT_OUT_WORDS``, compared like
keywords: case, accents and punctuation ignored, so "STOP!" counts but "stop sending
me offers" does not) opts the customer out; an opt-in word opts them back in. Opted out,
they get no notification, by any path; replies to their own messages still go, since
those are not notifications.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from conversation.models import Contact
from templates.normalize import normalize

ConsentChange = Literal["opt_out", "opt_in"]


def consent_change(text: str | None, opt_out_words: Iterable[str], opt_in_words: Iterable[str]) -> ConsentChange | None:
    """What a customer's text message says about notifications, if anything."""
    if not text:
        return None
    said = normalize(text)
    if not said:
        return None
    if said in {normalize(w) for w in opt_out_words}:
        return "opt_out"
    if said in {normalize(w) for w in opt_in_words}:
        return "opt_in"
    return None


def apply_change(session: Session, user_key: str, change: ConsentChange, now: datetime) -> bool:
    """Record the change on the contact (which must exist); False when it changed nothing.

    Opting out again keeps the first time, so the admin API shows since when.
    """
    if change == "opt_out":
        stmt = update(Contact).where(Contact.user_key == user_key, Contact.opted_out_at.is_(None))
        result = session.execute(stmt.values(opted_out_at=now))
    else:
        stmt = update(Contact).where(Contact.user_key == user_key, Contact.opted_out_at.is_not(None))
        result = session.execute(stmt.values(opted_out_at=None))
    return bool(result.rowcount)


def opted_out_since(session: Session, user_key: str) -> datetime | None:
    """When the customer opted out; None when they may be notified (or are unknown)."""
    return session.scalar(select(Contact.opted_out_at).where(Contact.user_key == user_key))
