"""``flask --app webhook send-test TEXT``: one signed text message to the running receiver, as Meta sends it."""

from __future__ import annotations

import click
import requests
from flask import current_app
from flask.cli import with_appcontext

from webhook.console.webhooks import DEFAULT_PHONE_NUMBER_ID, inbound_webhook, post_webhook


@click.command("send-test")
@with_appcontext
@click.argument("text")
@click.option("--user", default="15550001111", show_default=True, help="Phone digits, or a BSUID like US.123.")
@click.option("--phone-number-id", default=DEFAULT_PHONE_NUMBER_ID, show_default=True, help="The business number id.")
@click.option("--url", default=None, help="Webhook URL (default: PARLEY_PUBLIC_URL/webhook).")
def send_test(text: str, user: str, phone_number_id: str, url: str | None) -> None:
    """Sign and POST a text message as USER to the running receiver, like Meta would."""
    settings = current_app.config["PARLEY_SETTINGS"]
    target = url or f"{settings.public_url}/webhook"
    try:
        response = post_webhook(inbound_webhook(user, text=text, phone_number_id=phone_number_id), settings, target)
    except requests.ConnectionError:
        raise click.ClickException(f"nothing answers at {target}: is the receiver running (make run)?") from None
    click.echo(f"POST {target} → {response.status_code} {response.text.strip()[:200]}")
    if settings.sandbox:
        click.echo(f"replies appear at {settings.public_url}/sandbox")
