"""``/admin/api/message-templates``: what Meta last said about each message template
(status, category, quality) and whether parley will send it."""

from __future__ import annotations

from flask import Response, jsonify

from conversation import template_status
from webhook.console.admin.base import bp, scope


@bp.get("/message-templates")
def list_message_template_statuses() -> Response:
    with scope() as session:
        return jsonify({"message_templates": template_status.listing(session)})
