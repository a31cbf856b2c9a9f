"""``notify()``: the function a business's own Python code calls to message a customer first.

    from worker.notify import notify
    notify("+15550002222", idempotency_key="order-42-ready", template="order_ready", parameters=["ORD-000042"])

It commits the notification in its own transaction and then hands the customer to a
sender, like the admin API and ``flask --app webhook notify`` do. Code that already holds
a session (a Python action, say) calls ``conversation.notifications.create_notification``
inside its own transaction instead, and the Beat outbox sweep, or ``hand_off`` after its
commit, sends it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from conversation.db import session_scope
from conversation.models import utcnow
from conversation.notifications import Created, NotificationRequest, TemplateRequest, create_notification
from settings import Settings, get_settings
from templates.message_templates import load_catalogue


def notify(
    to: str,
    *,
    idempotency_key: str,
    template: str | None = None,
    language: str = "en_US",
    parameters: Sequence[str] = (),
    text: str | None = None,
    phone_number_id: str | None = None,
) -> Created:
    """Queue a template (or, inside the customer's 24-hour window, a text) and hand it to a
    sender. Raises ``conversation.notifications.NotificationRefused`` (nothing queued)."""
    call = TemplateRequest(template, language, list(parameters)) if template is not None else None
    request = NotificationRequest(to, idempotency_key, template=call, text=text, phone_number_id=phone_number_id)
    return submit(request)


def submit(
    request: NotificationRequest,
    hand_off: Callable[[str], None] | None = None,
    settings: Settings | None = None,
) -> Created:
    """Commit ``request``, then hand the customer on (``worker.tasks.hand_off`` by default)."""
    settings = settings or get_settings()
    catalogue = load_catalogue(settings.templates_dir).catalogue
    with session_scope() as session:
        created = create_notification(session, request, catalogue, settings.phone_number_id, utcnow())
    if created.created:
        (hand_off or _celery_hand_off)(created.user_key)
    return created


def _celery_hand_off(user_key: str) -> None:
    from worker.tasks import hand_off  # builds the Celery app: only once something is to be sent

    hand_off(user_key)
