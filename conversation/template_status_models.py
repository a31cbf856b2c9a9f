"""What Meta last said about each message template: its review status, category and quality.

It shares ``conversation.models.Base``; the migration that creates it is ``inbound_kinds``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from conversation.models import Base, UTCDateTime, utcnow


class MessageTemplateStatus(Base):
    """One row per template name and language, updated by Meta's template webhooks."""

    __tablename__ = "message_template_statuses"

    name: Mapped[str] = mapped_column(String(512), primary_key=True)
    language: Mapped[str] = mapped_column(String(16), primary_key=True)
    template_id: Mapped[str | None] = mapped_column(String(64))
    # APPROVED, PENDING, REJECTED, PAUSED, DISABLED, ... as Meta sends it (upper case)
    status: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(32))
    quality: Mapped[str | None] = mapped_column(String(16))  # GREEN, YELLOW, RED, UNKNOWN
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
