"""The Flask CLI: ``flask --app webhook templates|conversations|submissions|stats|send-test|chat|notify|orders``.

``create_app`` installs :class:`Commands` as ``app.cli``. Each command's module is
imported when the ``flask`` command looks that command up, never when the app is built:
the commands use the domain, which a receiver process must not load.
"""

from __future__ import annotations

from collections.abc import Callable

import click
from flask.cli import AppGroup


def _templates() -> click.Command:
    from webhook.cli.templates import templates_cli

    return templates_cli


def _conversations() -> click.Command:
    from webhook.cli.conversations import conversations_cli

    return conversations_cli


def _submissions() -> click.Command:
    from webhook.cli.submissions import submissions_cli

    return submissions_cli


def _stats() -> click.Command:
    from webhook.cli.submissions import stats_command

    return stats_command


def _send_test() -> click.Command:
    from webhook.cli.send_test import send_test

    return send_test


def _chat() -> click.Command:
    from webhook.cli.chat import chat

    return chat


def _notify() -> click.Command:
    from webhook.cli.notify import notify_command

    return notify_command


def _orders() -> click.Command:
    from webhook.cli.orders import orders_cli

    return orders_cli


COMMANDS: dict[str, Callable[[], click.Command]] = {
    "templates": _templates,
    "conversations": _conversations,
    "submissions": _submissions,
    "stats": _stats,
    "send-test": _send_test,
    "chat": _chat,
    "notify": _notify,
    "orders": _orders,
}


class Commands(AppGroup):
    """The app's command group, with parley's commands loaded on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        load = COMMANDS.get(cmd_name)
        return load() if load is not None else super().get_command(ctx, cmd_name)
