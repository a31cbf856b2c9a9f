"""``flask --app webhook notify USER (--template NAME [--param V]... | --text T)``.

Thin: the notification is committed by ``worker.notify.submit`` (one transaction) and the
customer handed to a sender; this prints what happened.
"""

from __future__ import annotations

import uuid

import click
from flask import current_app
from flask.cli import with_appcontext

from conversation.notifications import Created, NotificationRefused, NotificationRequest, TemplateRequest
from worker.notify import submit


def report(created: Created, key: str) -> None:
    if created.created:
        click.echo(f"notification {created.id} queued ({created.status}); idempotency key {key}")
    else:
        click.echo(f"notification {created.id} was queued before with idempotency key {key} ({created.status})")


def refused(exc: NotificationRefused) -> click.ClickException:
    where = f"{exc.field}: " if exc.field else ""
    return click.ClickException(f"refused ({exc.status}): {where}{exc.message}")


@click.command("notify")
@with_appcontext
@click.argument("user")
@click.option("--template", "template", default=None, help="Message template name (templates/message_templates.yaml).")
@click.option("--language", default="en_US", show_default=True, help="The template's language.")
@click.option("--param", "params", multiple=True, help="The template's next body parameter ({{1}}, {{2}}, ...).")
@click.option("--text", default=None, help="A text instead: only inside the customer's 24-hour window.")
@click.option("--idempotency-key", "key", default=None, help="Default: a new one, so a second run sends again.")
@click.option("--phone-number-id", default=None, help="Default: the number USER last wrote to.")
def notify_command(
    user: str,
    template: str | None,
    language: str,
    params: tuple[str, ...],
    text: str | None,
    key: str | None,
    phone_number_id: str | None,
) -> None:
    """Send USER (phone with country code, or BSUID) a message template, or a text."""
    if (template is None) == (text is None):
        raise click.UsageError("give either --template NAME or --text TEXT")
    if params and template is None:
        raise click.UsageError("--param goes with --template")
    key = key or f"cli:{uuid.uuid4()}"
    call = TemplateRequest(template, language, list(params)) if template is not None else None
    request = NotificationRequest(user, key, template=call, text=text, phone_number_id=phone_number_id)
    try:
        created = submit(request, current_app.config.get("HAND_OFF"), current_app.config["PARLEY_SETTINGS"])
    except NotificationRefused as exc:
        raise refused(exc) from None
    report(created, key)
