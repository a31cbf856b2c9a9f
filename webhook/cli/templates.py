"""``flask --app webhook templates validate|load|list|show|delete|graph``: the flow files and the stored flows.

Commands are thin: they open one session, call the domain, and print.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

import templates as templates_package
import webhook.console as console_package
from conversation.actions import ACTION_PROVIDES, GLOBAL_PLACEHOLDERS
from conversation.db import session_scope
from conversation.service import ConversationService, TemplateInvalid, to_definition
from conversation.template_status import not_approved
from conversation.texts.catalogue import texts_problems
from templates.lint import LintError
from templates.loader import lint_definitions, load_directory, load_file
from templates.message_templates import CATALOGUE_FILE, load_catalogue
from templates.template_uses import flow_template_uses, lint_template_uses

SHIPPED = Path(templates_package.__file__).parent  # the flows that come with parley
# The browser build of Graphviz the simulator draws with; `graph --format html` embeds it.
VIZ_JS = Path(console_package.__file__).parent / "static" / "vendor" / "viz" / "viz-global.js"

templates_cli = AppGroup("templates", help="Validate, load and inspect flow templates.")


def _load(directory: str) -> tuple[dict, list]:
    language = current_app.config["PARLEY_SETTINGS"].default_language
    result = load_directory(Path(directory), ACTION_PROVIDES, GLOBAL_PLACEHOLDERS, default_language=language)
    return result.templates, result.errors


@templates_cli.command("validate")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--meta-status",
    is_flag=True,
    help="Also warn about message templates (of the folders given) whose last status from Meta is not APPROVED.",
)
def validate_templates(paths: tuple[str, ...], meta_status: bool) -> None:
    """Check flow files and folders, and the message templates beside them; exit 1 on any error.

    A folder is checked as one set; a single file is checked with the flows parley ships
    (replacing the one of its name), so its switches to other flows resolve.
    """
    valid: set[str] = set()
    messages: set[str] = set()
    errors: list[LintError] = []
    for path in map(Path, paths):
        templates, found = _load(str(path)) if path.is_dir() else _load_beside_shipped(path)
        valid.update(templates)
        errors.extend(found)
        # The message templates of the flows' folder (a lone file without one: the shipped
        # ones, as for its flows): their own rules, and the flows' uses of them.
        catalogue = load_catalogue(_catalogue_folder(path))
        if path.is_dir():  # a folder's own catalogue is reported; a lone file's is only used
            messages.update(catalogue.catalogue.names())
        errors.extend(catalogue.errors)
        uses = [u for name, t in templates.items() for u in flow_template_uses(_source(path, name), t)]
        errors.extend(lint_template_uses(uses, catalogue.catalogue) if not catalogue.errors else [])
    errors = sorted(set(errors), key=LintError.sort_key)
    # A folder's own texts (texts/ beside its flows) are checked too: a typo there stops the workers.
    language = current_app.config["PARLEY_SETTINGS"].default_language
    problems = [p for path in map(Path, paths) if path.is_dir() for p in texts_problems(path / "texts", language)]
    for error in [*map(str, errors), *problems]:
        click.echo(error, err=True)
    if errors or problems:
        count = len(errors) + len(problems)
        click.echo(f"{count} error(s); a flow with an error is not valid until it is fixed.", err=True)
        sys.exit(1)
    click.echo(f"{len(valid)} template(s) OK: {', '.join(sorted(valid))}")
    if messages:
        click.echo(f"{len(messages)} message template(s) OK: {', '.join(sorted(messages))}")
    if meta_status:
        folders = [Path(p) for p in paths if Path(p).is_dir()] or [SHIPPED]
        for warning in unapproved_templates(folders):
            click.echo(f"warning: {warning}", err=True)


def unapproved_templates(folders: list[Path]) -> list[str]:
    """The declared message templates Meta last reported as not approved (from the database)."""
    declared = sorted({key for folder in folders for key in load_catalogue(folder).catalogue.templates})
    with session_scope() as session:
        return not_approved(session, declared)


def _catalogue_folder(path: Path) -> Path:
    if path.is_dir():
        return path
    return path.parent if (path.parent / CATALOGUE_FILE).is_file() else SHIPPED


def _source(path: Path, name: str) -> str:
    return str(path / f"{name}.yaml") if path.is_dir() else str(path)


def _load_beside_shipped(file: Path) -> tuple[dict, list]:
    """``file`` checked alone, then with the shipped flows for the rules that span flows."""
    definition, errors = load_file(file)
    if definition is None:
        return {}, errors
    shipped = load_directory(SHIPPED, actions=ACTION_PROVIDES, globals_=GLOBAL_PLACEHOLDERS)
    name = definition.template_name
    defs = {**shipped.templates, name: definition}
    sources = {**{n: str(p) for n, p in shipped.sources.items()}, name: str(file)}
    errors = lint_definitions(defs, sources, ACTION_PROVIDES, GLOBAL_PLACEHOLDERS)
    return ({name: definition} if not errors else {}), errors


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
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot", "html", "svg", "png"]),
    default="mermaid",
    show_default=True,
    help="html: one file that draws itself in any browser, offline; svg and png need Graphviz's `dot`.",
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
    """Draw NAME as a diagram (html needs nothing installed; svg and png need Graphviz's `dot`)."""
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
    elif fmt == "html":
        data = diagrams.to_html(drawn, VIZ_JS.read_text(encoding="utf-8"), highlight).encode()
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
