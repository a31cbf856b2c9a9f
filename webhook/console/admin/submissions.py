"""``/admin/api/submissions`` (JSON and CSV) and ``/admin/api/stats/TEMPLATE`` (the drop-off funnel)."""

from __future__ import annotations

import io

from flask import Response, jsonify
from sqlalchemy.orm import Session
from werkzeug.exceptions import NotFound

from conversation import stats
from conversation.logs import mask_identity
from conversation.models import Submission
from webhook.console.admin.base import bool_arg, bp, date_arg, int_arg, iso, scope, text_arg
from webhook.console.openapi import MAX_LIMIT, MAX_OFFSET


def _submission_rows(session: Session, limit: int | None, offset: int) -> list[Submission]:
    since, until = date_arg("since"), date_arg("until", end=True)
    return stats.submissions(session, text_arg("template"), since, until, limit, offset)


@bp.get("/submissions")
def list_submissions() -> Response:
    reveal = bool_arg("reveal_users")
    limit, offset = int_arg("limit", 100, 1, MAX_LIMIT), int_arg("offset", 0, 0, MAX_OFFSET)
    with scope() as session:
        items = [
            {
                "id": str(row.id),
                "template": row.template_name,
                "user": row.user_key if reveal else mask_identity(row.user_key),
                "submitted_at": iso(row.created_at),
                "answers": row.answers or {},
            }
            for row in _submission_rows(session, limit, offset)
        ]
    return jsonify({"submissions": items})


@bp.get("/submissions.csv")
def export_submissions() -> Response:
    with scope() as session:
        rows = _submission_rows(session, None, 0)
    out = io.StringIO()
    stats.write_csv(rows, out, bool_arg("reveal_users"))
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="submissions.csv"'
    return response


@bp.get("/stats/<template>")
def template_stats(template: str) -> Response:
    since, until = date_arg("since"), date_arg("until", end=True)
    with scope() as session:
        funnel = stats.dropoff(session, template, since, until)
    if not funnel.steps:
        raise NotFound(f"no template and no recorded conversations named {template}")
    return jsonify(funnel.as_dict())
