"""``flask --app webhook templates validate|graph``: flow files checked and drawn from the command line."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import Result

from settings import ROOT, load_settings
from templates import diagrams
from webhook import create_app
from webhook.cli.templates import VIZ_JS

SHIPPED = ROOT / "templates"


def run(*args: str) -> Result:
    app = create_app({"SETTINGS": load_settings({"PARLEY_ENV": "test"}), "ENQUEUE": lambda _raw: None})
    return app.test_cli_runner().invoke(args=["templates", *args])


def misspelled_copy(tmp_path: Path) -> Path:
    """new_order.yaml with its quantity step sending the customer to 'confirmaton'."""
    text = (SHIPPED / "new_order.yaml").read_text(encoding="utf-8")
    assert "next_step: confirmation" in text
    file = tmp_path / "new_order.yaml"
    file.write_text(text.replace("next_step: confirmation", "next_step: confirmaton", 1), encoding="utf-8")
    return file


def test_validate_a_folder() -> None:
    done = run("validate", str(SHIPPED))
    assert done.exit_code == 0, done.stderr
    assert done.stdout == (
        "6 template(s) OK: account, cart_order, language, main_menu, new_order, support\n"
        "2 message template(s) OK: order_ready, order_reminder\n"
    )


def test_validate_one_file_resolves_switches_to_the_shipped_flows(tmp_path: Path) -> None:
    # new_order switches back to main_menu: alone in a folder that target would not exist.
    copy = tmp_path / "new_order.yaml"
    shutil.copy(SHIPPED / "new_order.yaml", copy)
    done = run("validate", str(copy))
    assert done.exit_code == 0, done.stderr
    assert done.stdout == "1 template(s) OK: new_order\n"
    alone = run("validate", str(tmp_path))
    assert alone.exit_code == 1 and "main_menu" in alone.stderr


def test_validate_a_misspelled_target_suggests_the_step(tmp_path: Path) -> None:
    file = misspelled_copy(tmp_path)
    done = run("validate", str(file), str(SHIPPED))
    assert done.exit_code == 1
    assert done.stderr.splitlines() == [
        f"{file}: step quantity: next_step 'confirmaton' is not a step of new_order nor a template;"
        " did you mean 'confirmation'?",
        "1 error(s); a flow with an error is not valid until it is fixed.",
    ]


def test_validate_a_file_that_fails_the_schema(tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("template_name: broken\nmenu_structure: [1]\n", encoding="utf-8")
    done = run("validate", str(file))
    assert done.exit_code == 1
    assert all(line.startswith(f"{file}: ") for line in done.stderr.splitlines()[:-1])


def test_graph_html_is_one_offline_file_without_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagrams.shutil, "which", lambda _name: None)
    out = tmp_path / "new_order.html"
    done = run(
        "graph", "new_order", "--dir", str(SHIPPED), "--format", "html", "--highlight", "quantity", "-o", str(out)
    )
    assert done.exit_code == 0, done.stderr
    page = out.read_text(encoding="utf-8")
    assert VIZ_JS.read_text(encoding="utf-8")[:400] in page  # the renderer, inline
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)  # nothing fetched from elsewhere
    embedded = re.search(r'<script type="application/json" id="dot">(.*?)</script>', page, re.S)
    assert embedded is not None
    dot = json.loads(embedded.group(1))
    assert '"step_quantity" [id="step_quantity" class="step current"' in dot
    assert page.count("</script>") == 3  # renderer, DOT, starter: the DOT could not end its element early


def test_graph_svg_without_dot_names_the_html_format(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagrams.shutil, "which", lambda _name: None)
    done = run("graph", "account", "--dir", str(SHIPPED), "--format", "svg", "--highlight", "initial")
    assert done.exit_code == 1
    assert "--format html" in done.stderr and "nothing to install" in done.stderr


@pytest.mark.postgres
def test_validate_meta_status_warns_about_a_template_meta_has_not_approved(db_session, monkeypatch) -> None:
    from conversation.account_changes import TemplateUpdate
    from conversation.models import utcnow
    from conversation.template_status import record
    from tests.webhook.console.test_admin import scope_of
    from webhook.cli import templates as templates_cli

    record(db_session, TemplateUpdate("order_ready", "en_US", None, status="PAUSED"), utcnow())
    monkeypatch.setattr(templates_cli, "session_scope", scope_of(db_session))
    done = run("validate", str(SHIPPED), "--meta-status")
    assert done.exit_code == 0, done.stderr
    assert done.stderr == "warning: order_ready (en_US): Meta's last status is PAUSED\n"


# --- translations and parley's own texts ------------------------------------------------


def test_an_incomplete_translation_is_refused_line_by_line(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    shutil.copytree(SHIPPED, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    path = folder / "support.yaml"
    text = path.read_text(encoding="utf-8")
    # Two defects: a step's Portuguese prompt gone, another's placeholder lost.
    gone = '        prompt: "Qual é o número do seu pedido? (por exemplo, ORD-000123)"\n'
    lost = ('prompt: "Pedido {order_number}: {order_status}"', 'prompt: "Pedido {order_number}: {situacao}"')
    assert text.count(gone) == 1 and text.count(lost[0]) == 1
    path.write_text(text.replace(gone, "").replace(*lost), encoding="utf-8")
    done = run("validate", str(folder))
    assert (done.exit_code, done.stdout) == (1, "")
    assert done.stderr.splitlines() == [
        f"{path}: step order_number: translations.pt_BR.prompt: missing: the en text is"
        " 'What is your order number? (e.g. ORD-000123)'",
        f"{path}: step order_status: translations.pt_BR.prompt: placeholder {{order_status}} of the en text is missing",
        f"{path}: step order_status: translations.pt_BR.prompt: placeholder {{situacao}} is not in the en text",
        "3 error(s); a flow with an error is not valid until it is fixed.",
    ]


def test_a_broken_text_override_beside_the_flows_is_refused_too(tmp_path: Path) -> None:
    folder = tmp_path / "flows"
    shutil.copytree(SHIPPED, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (folder / "texts").mkdir()
    override = folder / "texts" / "pt_BR.yaml"
    override.write_text('texts:\n  cancelld: "Cancelado."\n  media: "Não consigo abrir {what}."\n', encoding="utf-8")
    done = run("validate", str(folder))
    assert (done.exit_code, done.stdout) == (1, "")
    lines = done.stderr.splitlines()
    assert len(lines) == 3 and lines[-1] == "2 error(s); a flow with an error is not valid until it is fixed."
    assert all(line.startswith(f"{override}: texts.") for line in lines[:2])
    assert "cancelld" in lines[0] and "{expected}" in lines[1]
