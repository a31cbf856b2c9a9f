"""``webhook.cli.Commands``: every parley command is listed and runs, loaded on first use."""

from __future__ import annotations

import click
from flask import Flask

from settings import load_settings
from webhook import create_app
from webhook.cli import COMMANDS

NAMES = {"templates", "conversations", "submissions", "stats", "send-test", "chat", "notify", "orders"}


def app() -> Flask:
    return create_app({"SETTINGS": load_settings({"PARLEY_ENV": "test"}), "ENQUEUE": lambda body: None})


def test_every_command_is_listed_in_the_help() -> None:
    assert set(COMMANDS) == NAMES
    result = app().test_cli_runner().invoke(args=["--help"])
    assert result.exit_code == 0, result.output
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == NAMES


def test_each_name_loads_the_command_of_that_name() -> None:
    cli = app().cli
    with click.Context(cli) as ctx:
        for name in NAMES:
            command = cli.get_command(ctx, name)
            assert isinstance(command, click.Command) and command.name == name
        assert cli.get_command(ctx, "no-such-command") is None


def test_groups_keep_their_subcommands() -> None:
    result = app().test_cli_runner().invoke(args=["templates", "--help"])
    assert result.exit_code == 0, result.output
    listed = {line.split()[0] for line in result.output.split("Commands:")[1].splitlines() if line.strip()}
    assert listed == {"validate", "load", "list", "show", "delete", "graph"}
