"""``flask --app webhook templates validate|load|list|show|delete|graph``: the flow files and the stored flows.

Commands are thin: they open one session, call the domain, and print.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask.cli import AppGroup

from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.db import session_scope
from conversation.service import ConversationService, TemplateInvalid, to_definition
from conversation.template_status import not_approved
from templates.loader import load_directory
from templates.message_templates import load_catalogue

templates_cli = AppGroup("templates", help="Validate, load and inspect flow templates.")


def _load(directory: str) -> tuple[dict, list]:
    result = load_directory(Path(directory), actions=ACTION_PROVIDES, globals_=GLOBAL_PLACEHOLDERS)
    return result.templates, result.errors


@templates_cli.command("validate")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--meta-status", is_flag=True, help="Also warn about message templates whose last status from Meta is not APPROVED."
)
def validate_templates(directory: str, meta_status: bool) -> None:
    """Check every flow in DIRECTORY; exit 1 on any error (one line per error)."""
    templates, errors = _load(directory)
    for error in errors:
        click.echo(str(error), err=True)
    if errors:
        click.echo(f"{len(errors)} error(s); no template in {directory} is valid until they are fixed.", err=True)
        sys.exit(1)
    click.echo(f"{len(templates)} template(s) OK: {', '.join(sorted(templates))}")
    if meta_status:
        for warning in unapproved_templates(Path(directory)):
            click.echo(f"warning: {warning}", err=True)


def unapproved_templates(directory: Path) -> list[str]:
    """The declared message templates Meta last reported as not approved (from the database)."""
    declared = sorted(load_catalogue(directory).catalogue.templates)
    with session_scope() as session:
        return not_approved(session, declared)


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
    from templates import diagrams

    if directory:
        definitions = _load(directory)[0]
    else:
        with session_scope() as session:
            definitions = {r.template_name: to_definition(r) for r in ConversationService(session).list_templates()}
    if name not in definitions:
        raise click.ClickException(f"no template named {name}")
    drawn = diagrams.build_graph(definitions[name], definitions.keys())
    if fmt in {"mermaid", "dot"}:
        data = (diagrams.to_mermaid if fmt == "mermaid" else diagrams.to_dot)(drawn, highlight).encode()
    else:
        try:
            data = diagrams.render(drawn, "svg" if fmt == "svg" else "png", highlight)
        except diagrams.GraphvizMissing as exc:
            raise click.ClickException(str(exc)) from None
    if output:
        Path(output).write_bytes(data)
        click.echo(f"{name}: {fmt} written to {output}")
    else:
        click.echo(data, nl=False)  # bytes go to the binary stream untouched
