"""``flask --app webhook stats`` and ``submissions list|export`` on the real Postgres."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy.orm import Session

from tests.webhook.console.test_admin import make_app, scope_of, seed
from webhook.cli import submissions

pytestmark = pytest.mark.postgres


@pytest.fixture
def runner(db_session: Session, monkeypatch: pytest.MonkeyPatch) -> FlaskCliRunner:
    seed(db_session)
    monkeypatch.setattr(submissions, "session_scope", scope_of(db_session))
    return make_app(db_session).test_cli_runner()


def test_stats_prints_the_funnel_as_a_table(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["stats", "new_order"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "new_order: 2 conversation(s) started, 1 completed"
    assert lines[1].split()[:3] == ["step", "reached", "%"]
    assert [line.split()[:3] for line in lines[2:6]] == [
        ["initial", "2", "100"],
        ["quantity", "2", "100"],
        ["confirmation", "1", "50"],
        ["complete", "1", "50"],
    ]
    assert lines[5].split()[3] == "1"  # completed at "complete"


def test_stats_refuses_unknown_templates_and_bad_dates(runner: FlaskCliRunner) -> None:
    unknown = runner.invoke(args=["stats", "nothing"])
    assert unknown.exit_code == 1 and "no template and no recorded conversations named nothing" in unknown.output
    bad = runner.invoke(args=["stats", "new_order", "--since", "last week"])
    assert bad.exit_code == 2 and "is not an ISO date" in bad.output
    later = runner.invoke(args=["stats", "new_order", "--since", "2999-01-01"])
    assert later.exit_code == 0 and later.output.startswith("new_order: 0 conversation(s) started")


def test_submissions_list_masks_users_and_filters(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["submissions", "list"])
    assert result.exit_code == 0
    lines = [line for line in result.output.splitlines() if "\t" in line]
    assert [line.split("\t")[1:3] for line in lines] == [["support", "US.***1918"], ["new_order", "***4321"]]
    assert "15550004321" not in result.output
    only = runner.invoke(args=["submissions", "list", "--template", "support", "--until", "2026-11-02"])
    assert [line.split("\t")[1] for line in only.output.splitlines() if "\t" in line] == ["support"]


def test_submissions_export_writes_csv(runner: FlaskCliRunner, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    result = runner.invoke(args=["submissions", "export", "--template", "new_order", "--output", str(target)])
    assert result.exit_code == 0 and f"1 submission(s) written to {target}" in result.output
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["template"], r["user"], r["product"], r["quantity"]) for r in rows] == [
        ("new_order", "***4321", "tea", "2")
    ]
    revealed = runner.invoke(args=["submissions", "export", "--reveal-users"])
    assert revealed.exit_code == 0
    assert revealed.output.splitlines()[0].startswith("submitted_at,template,user,")
    assert "15550004321" in revealed.output and "US.13491208655302741918" in revealed.output
