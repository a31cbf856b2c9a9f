"""Flask CLI: ``flask --app webhook templates ...``, ``conversations ...``, ``send-test``.

Commands are thin: they open one session, call the domain, and print.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click
import requests
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select

from conversation import stats
from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.db import session_scope
from conversation.models import ConversationState, utcnow
from conversation.service import ConversationService, TemplateInvalid, to_definition
from templates.loader import load_directory
from webhook.signature import sign

templates_cli = AppGroup("templates", help="Validate, load and inspect flow templates.")
conversations_cli = AppGroup("conversations", help="Inspect and end live conversations.")
submissions_cli = AppGroup("submissions", help="Answers of completed flows.")


def _load(directory: str) -> tuple[dict, list]:
    result = load_directory(Path(directory), actions=ACTION_PROVIDES, globals_=GLOBAL_PLACEHOLDERS)
    return result.templates, result.errors


@templates_cli.command("validate")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def validate_templates(directory: str) -> None:
    """Check every flow in DIRECTORY; exit 1 on any error (one line per error)."""
    templates, errors = _load(directory)
    for error in errors:
        click.echo(str(error), err=True)
    if errors:
        click.echo(f"{len(errors)} error(s); no template in {directory} is valid until they are fixed.", err=True)
        sys.exit(1)
    click.echo(f"{len(templates)} template(s) OK: {', '.join(sorted(templates))}")


@templates_cli.command("load")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
def load_templates(directory: str) -> None:
    """Create or update every flow in DIRECTORY (idempotent); nothing loads if any has errors."""
    templates, errors = _load(directory)
    if errors:
        for error in errors:
            click.echo(str(error), err=True)
        sys.exit(1)
    with session_scope() as session:
        try:
            results = ConversationService(session).upsert_templates(templates.values())
        except TemplateInvalid as exc:
            for error in exc.errors:
                click.echo(str(error), err=True)
            sys.exit(1)
        for r in results:
            state = "created" if r.created else ("updated" if r.changed else "unchanged")
            click.echo(f"{r.template.template_name}: {state}")


@templates_cli.command("list")
def list_templates() -> None:
    with session_scope() as session:
        for row in ConversationService(session).list_templates():
            flag = "active" if row.is_active else "inactive"
            click.echo(f"{row.template_name}\t{row.template_type}\t{flag}\t{', '.join(row.trigger_keywords or [])}")


@templates_cli.command("show")
@click.argument("name")
def show_template(name: str) -> None:
    with session_scope() as session:
        row = ConversationService(session).get_template(name)
        if row is None:
            raise click.ClickException(f"no template named {name}")
        click.echo(json.dumps(to_definition(row).model_dump(mode="json", exclude_none=True), indent=2))


@templates_cli.command("delete")
@click.argument("name")
def delete_template(name: str) -> None:
    """Delete NAME; refused if another template still switches to it."""
    with session_scope() as session:
        try:
            deleted = ConversationService(session).delete_template(name)
        except TemplateInvalid as exc:
            for error in exc.errors:
                click.echo(str(error), err=True)
            sys.exit(1)
    if not deleted:
        raise click.ClickException(f"no template named {name}")
    click.echo(f"{name}: deleted")


@templates_cli.command("graph")
@click.argument("name")
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot", "svg", "png"]), default="mermaid", show_default=True
)
@click.option("--highlight", default=None, help="A step to highlight.")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None, help="File (default stdout)."
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Draw from flow files, not the database.",
)
def graph_template(name: str, fmt: str, highlight: str | None, output: str | None, directory: str | None) -> None:
    """Draw NAME as a diagram; svg and png need Graphviz's `dot` (apt-get install graphviz)."""
    from templates import graph

    if directory:
        definitions = _load(directory)[0]
    else:
        with session_scope() as session:
            definitions = {r.template_name: to_definition(r) for r in ConversationService(session).list_templates()}
    if name not in definitions:
        raise click.ClickException(f"no template named {name}")
    drawn = graph.build_graph(definitions[name], definitions.keys())
    if fmt in {"mermaid", "dot"}:
        data = (graph.to_mermaid if fmt == "mermaid" else graph.to_dot)(drawn, highlight).encode()
    else:
        try:
            data = graph.render(drawn, "svg" if fmt == "svg" else "png", highlight)
        except graph.GraphvizMissing as exc:
            raise click.ClickException(str(exc)) from None
    if output:
        Path(output).write_bytes(data)
        click.echo(f"{name}: {fmt} written to {output}")
    else:
        click.echo(data, nl=False)  # bytes go to the binary stream untouched


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
                f"{_mask(row.user_key)}\t{row.conversation_flow}\t{row.current_step}\t{live}\t"
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


@click.command("stats")
@click.argument("template")
@click.option("--since", default=None, help="From this date/datetime (ISO, UTC).")
@click.option("--until", default=None, help="Up to this date (inclusive) or datetime (exclusive).")
def stats_command(template: str, since: str | None, until: str | None) -> None:
    """Drop-off per step of TEMPLATE: runs that reached each step and where they ended."""
    with session_scope() as session:
        funnel = stats.dropoff(session, template, _bound(since), _bound(until, end=True))
    if not funnel.steps:
        raise click.ClickException(f"no template and no recorded conversations named {template}")
    click.echo(stats.funnel_table(funnel))


def _bound(text: str | None, end: bool = False) -> datetime | None:
    try:
        return stats.parse_bound(text, end=end) if text else None
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO date (2026-11-30) or datetime") from None


_submission_filters = [
    click.option("--template", default=None, help="Only this template."),
    click.option("--since", default=None, help="From this date/datetime (ISO, UTC)."),
    click.option("--until", default=None, help="Up to this date (inclusive) or datetime (exclusive)."),
]


def _filtered(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_submission_filters):
        command = option(command)
    return command


@submissions_cli.command("list")
@_filtered
def list_submissions(template: str | None, since: str | None, until: str | None) -> None:
    """One line per submission: time, template, masked user, answers."""
    with session_scope() as session:
        rows = stats.submissions(session, template, _bound(since), _bound(until, end=True))
    for row in rows:
        answers = json.dumps(row.answers, ensure_ascii=False, sort_keys=True)
        click.echo(
            f"{row.created_at:%Y-%m-%d %H:%M:%S}Z\t{row.template_name}\t{stats.mask_user(row.user_key)}\t{answers}"
        )
    click.echo(f"{len(rows)} submission(s)", err=True)


@submissions_cli.command("export")
@_filtered
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None, help="File (default stdout).")
@click.option("--reveal-users", is_flag=True, help="Write full phone numbers/BSUIDs instead of masked ones.")
def export_submissions(
    template: str | None, since: str | None, until: str | None, output: str | None, reveal_users: bool
) -> None:
    """CSV: submitted_at, template, user, then one column per answer key."""
    with session_scope() as session:
        rows = stats.submissions(session, template, _bound(since), _bound(until, end=True))
    if output is None:
        stats.write_csv(rows, sys.stdout, reveal_users)
    else:
        with open(output, "w", newline="", encoding="utf-8") as out:
            stats.write_csv(rows, out, reveal_users)
        click.echo(f"{len(rows)} submission(s) written to {output}", err=True)


def _mask(user_key: str) -> str:
    return user_key if "." in user_key else f"***{user_key[-4:]}"


def build_text_webhook(text: str, user: str, phone_number_id: str, name: str = "Test User") -> dict:
    """A webhook body in Meta's shape carrying one text message from ``user``.

    ``user`` that looks like a BSUID (``CC.digits``) makes a username user: no phone.
    """
    bsuid = "." in user
    contact: dict = {"profile": {"name": name}}
    message: dict = {
        "id": f"wamid.TEST{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": text},
    }
    if bsuid:
        contact["user_id"] = user
    else:
        contact["wa_id"] = user
        message["from"] = user
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "0",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone_number_id},
                            "contacts": [contact],
                            "messages": [message],
                        },
                    }
                ],
            }
        ],
    }


@click.command("send-test")
@click.argument("text")
@click.option("--user", default="15550001111", show_default=True, help="Phone digits, or a BSUID like US.123.")
@click.option("--phone-number-id", default="100000000000001", show_default=True, help="The business number id.")
@click.option("--url", default=None, help="Webhook URL (default: PARLEY_PUBLIC_URL/webhook).")
def send_test(text: str, user: str, phone_number_id: str, url: str | None) -> None:
    """Sign and POST a text message as USER to the running receiver, like Meta would."""
    settings = current_app.config["PARLEY_SETTINGS"]
    body = json.dumps(build_text_webhook(text, user, phone_number_id)).encode()
    target = url or f"{settings.public_url}/webhook"
    try:
        response = requests.post(
            target,
            data=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, settings.app_secret)},
            timeout=10,
        )
    except requests.ConnectionError:
        raise click.ClickException(f"nothing answers at {target}: is the receiver running (make run)?") from None
    click.echo(f"POST {target} → {response.status_code} {response.text.strip()[:200]}")
    if settings.sandbox:
        click.echo(f"replies appear at {settings.public_url}/sandbox")


def init_app(app: Flask) -> None:
    app.cli.add_command(templates_cli)
    app.cli.add_command(conversations_cli)
    app.cli.add_command(submissions_cli)
    app.cli.add_command(stats_command)
    app.cli.add_command(send_test)
