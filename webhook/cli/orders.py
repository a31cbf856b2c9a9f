"""``flask --app webhook orders ready ORDER_ID``: tell the customer their order is ready."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from conversation.db import session_scope
from conversation.notifications import NotificationRefused
from conversation.order_notices import OrderNotFound, order_ready
from templates.message_templates import load_catalogue
from webhook.cli.notify import refused, report
from worker.notify import submit

orders_cli = AppGroup("orders", help="Orders placed through the flows.")


@orders_cli.command("ready")
@click.argument("order_id")
def ready(order_id: str) -> None:
    """Send ORDER_ID's customer the order_ready template (once per order, however often run)."""
    settings = current_app.config["PARLEY_SETTINGS"]
    try:
        with session_scope() as session:
            request = order_ready(session, order_id, load_catalogue(settings.templates_dir).catalogue)
        created = submit(request, current_app.config.get("HAND_OFF"), settings)
    except OrderNotFound as exc:
        raise click.ClickException(str(exc)) from None
    except NotificationRefused as exc:
        raise refused(exc) from None
    report(created, request.idempotency_key)
