"""Reminders inside a flow: a step's ``remind_after`` nudges a customer who has not answered.

The due time is a column of the customer's conversation row, written by the turn with the
step it belongs to (``due_at``), so it survives any restart and goes when the conversation
moves on or ends. Beat's sweep (``reminder_sweep.send_due``) sends each one once: per customer it takes
the same locks in the same order as the inbound path (their ``contacts`` row, then the
conversation row), re-reads the due time under them, and clears it in the transaction
that queues the reminder. A second Beat, or a worker restarted mid-sweep, finds it gone.

What goes out depends on the 24-hour window at that moment: the step's reminder text
while it is open, its message template once it has closed (nothing, when the step has
no template then). A customer who opted out of notifications gets none.
"""

from __future__ import annotations

from datetime import datetime

from conversation.state import Conversation, TemplateSet
from templates.template_call import parse_duration


def due_at(templates: TemplateSet, conv: Conversation | None, now: datetime) -> datetime | None:
    """When the reminder of the step ``conv`` now waits at is due; None when it has none."""
    if conv is None:
        return None
    template = templates.get(conv.template)
    step = template.steps.get(conv.step) if template is not None else None
    if step is None or step.remind_after is None:
        return None
    return now + parse_duration(step.remind_after)
