"""``flask --app webhook conversations list|end|cleanup``: live conversations."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from conversation.db import session_scope
from conversation.logs import mask_identity
from conversation.models import ConversationState, utcnow
from conversation.service import ConversationService

conversations_cli = AppGroup("conversations", help="Inspect and end live conversations.")


@conversations_cli.command("list")
@click.option("--template", default=None, help="Only conversations in this template.")
def list_conversations(template: str | None) -> None:
    now = utcnow()
    with session_scope() as session:
        stmt = select(ConversationState).order_by(ConversationState.last_interaction.desc())
        if template:
            stmt = stmt.where(ConversationState.conversation_flow == template)
        for row in session.scalars(stmt):
            live = "live" if row.expires_at > now else "expired"
            click.echo(
                f"{mask_identity(row.user_key)}\t{row.conversation_flow}\t{row.current_step}\t{live}\t"
                f"expires {row.expires_at:%Y-%m-%d %H:%M}Z"
            )


@conversations_cli.command("end")
@click.argument("user")
def end_conversation(user: str) -> None:
    """End the conversation of USER (BSUID or phone digits)."""
    with session_scope() as session:
        ended = ConversationService(session).end_conversation(user)
    click.echo("ended" if ended else "no conversation")


@conversations_cli.command("cleanup")
def cleanup_conversations() -> None:
    """Delete expired conversations now (Beat does this periodically)."""
    with session_scope() as session:
        removed = ConversationService(session).cleanup_expired_conversations()
    click.echo(f"{removed} expired conversation(s) removed")
