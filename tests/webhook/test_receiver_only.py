"""A receiver-only process loads only the thin path: no task module, no domain, no console.

Production settings without PARLEY_ADMIN_TOKEN serve no console. A fresh interpreter
(this test process has imported everything already) builds ``create_app()``, answers a
signed POST /webhook with 200 through a real Redis broker, and then reports which
modules it holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
import redis

from tests.conftest import ROOT
from tests.support.webhooks import contact, message, webhook
from tests.worker.dispatch_helpers import task_args

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

SECRET = "receiver-only-app-secret"

# Runs in the child. Prints the POST's status, then every loaded module of parley's packages.
CHILD = """
import json, sys
from webhook import create_app
from webhook.signature import sign

body = sys.stdin.buffer.read()
app = create_app()
answer = app.test_client().post(
    "/webhook", data=body, headers={"X-Hub-Signature-256": sign(body, sys.argv[1]), "Content-Type": "application/json"}
)
ours = sorted(m for m in sys.modules if m.split(".")[0] in {"webhook", "worker", "conversation", "templates"})
print(json.dumps({"status": answer.status_code, "modules": ours}))
"""

FORBIDDEN = ("worker.tasks", "conversation.engine", "conversation.service", "conversation.models", "webhook.console")


def loaded_by(module: str, modules: list[str]) -> list[str]:
    """``module`` and its submodules among ``modules``."""
    return [m for m in modules if m == module or m.startswith(module + ".")]


def test_a_receiver_without_console_imports_no_task_module_no_domain_no_console(redis_url: str, pg_url: str) -> None:
    wamid = f"wamid.RECEIVERONLY{uuid.uuid4().hex}"
    user = "15550007777"
    body = json.dumps(webhook([message(user, "hi", wamid=wamid)], [contact(user)])).encode()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARLEY_", "WHATSAPP_", "CELERY_", "DATABASE_"))}
    env |= {
        "PARLEY_ENV": "production",
        "DATABASE_URL": pg_url,
        "CELERY_BROKER_URL": redis_url,
        "WHATSAPP_APP_SECRET": SECRET,
        "WHATSAPP_VERIFY_TOKEN": "receiver-only-verify-token",
        "WHATSAPP_ACCESS_TOKEN": "receiver-only-access-token",
        "PYTHONPATH": str(ROOT),
    }
    assert "PARLEY_ADMIN_TOKEN" not in env
    child = subprocess.run(
        [sys.executable, "-c", CHILD, SECRET], input=body, env=env, cwd=ROOT, capture_output=True, timeout=60
    )
    assert child.returncode == 0, child.stderr.decode(errors="replace")[-3000:]
    report = json.loads(child.stdout.decode().strip().splitlines()[-1])
    assert report["status"] == 200

    modules = report["modules"]
    assert "worker.dispatch" in modules and "webhook.receiver" in modules  # it did take the real path
    for name in FORBIDDEN:
        assert loaded_by(name, modules) == [], f"a receiver-only process imported {name}"
    assert loaded_by("webhook.cli", modules) == ["webhook.cli"]  # the group only, no command module
    assert [m for m in modules if m.startswith("templates")] == []

    # The 200 means the payload is in the broker: the task message, by name, on the inbound queue.
    client = redis.Redis.from_url(redis_url)
    try:
        ours = [raw for raw in client.lrange("inbound", 0, -1) if wamid in task_args(json.loads(raw))[0]]
        assert len(ours) == 1
        assert json.loads(ours[0])["headers"]["task"] == "parley.inbound.process_payload"
        assert task_args(json.loads(ours[0])) == [body.decode()]
        client.lrem("inbound", 0, ours[0])
    finally:
        client.close()
