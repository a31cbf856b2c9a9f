"""``flask --app webhook submissions list|export`` (answers of completed flows) and ``stats TEMPLATE``."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime

import click
from flask.cli import AppGroup

from conversation import stats
from conversation.db import session_scope
from conversation.logs import mask_identity

submissions_cli = AppGroup("submissions", help="Answers of completed flows.")


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
            f"{row.created_at:%Y-%m-%d %H:%M:%S}Z\t{row.template_name}\t{mask_identity(row.user_key)}\t{answers}"
        )
    click.echo(f"{len(rows)} submission(s)", err=True)


@submissions_cli.command("export")
@_filtered
@click.option("--output", type=click.Path(dir_okay=False, writable=True), default=None, help="File (default stdout).")
@click.option("--reveal-users", is_flag=True, help="Write full phone numbers/BSUIDs instead of masked ones.")
def export_submissions(
    template: str | None, since: str | None, until: str | None, output: str | None, reveal_users: bool
) -> None:
    """CSV: submitted_at, template, user, language, then one column per answer key."""
    with session_scope() as session:
        rows = stats.submissions(session, template, _bound(since), _bound(until, end=True))
    if output is None:
        stats.write_csv(rows, sys.stdout, reveal_users)
    else:
        with open(output, "w", newline="", encoding="utf-8") as out:
            stats.write_csv(rows, out, reveal_users)
        click.echo(f"{len(rows)} submission(s) written to {output}", err=True)
