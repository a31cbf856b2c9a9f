"""End to end on the real stack: "oi" walks a Portuguese coffee order to an order number.

gunicorn receives the signed webhook, a real Celery worker runs the turn on Postgres, the
sender delivers to the Graph API stub; the language is the keyword's, stored on the
conversation, the contact and the submission.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from conversation.models import Contact, ConversationState, Order, Submission
from tests.support.graph_stub import GraphStub
from tests.support.stack import Stack, wait_until
from tests.support.webhooks import contact, message, webhook

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]
TIMEOUT = 30


def replies(graph: GraphStub, user: str, n: int) -> list[Any]:
    def mine() -> list[Any]:
        return [r for r in graph.requests() if r.kind == "message" and r.recipient in {user, "+" + user}]

    graph.wait_for(lambda _: len(mine()) >= n, TIMEOUT)
    return mine()


def say(stack: Stack, user: str, text: str | None = None, tap: tuple[str, str] | None = None) -> None:
    assert stack.post(webhook([message(user, text=text, tap=tap)], [contact(user)])).status_code == 200


def shown(request: Any) -> str:
    body = request.body
    if body["type"] == "text":
        return body["text"]["body"]
    inter = body["interactive"]
    action = inter["action"]
    titles = [b["reply"]["title"] for b in action.get("buttons", [])]
    titles += [r["title"] for s in action.get("sections", []) for r in s["rows"]]
    return f"{inter['body']['text']} [{'|'.join(titles)}]"


def test_oi_walks_a_portuguese_coffee_order_to_an_order_number(stack: Stack, graph: GraphStub, db: Engine) -> None:
    user = "1555" + str(uuid.uuid4().int)[:7]
    turns = [
        ({"text": "oi"}, "Olá, Test User! Como podemos ajudar você hoje? [Novo pedido|Atendimento|Minha conta]"),
        (
            {"tap": ("new_order", "Novo pedido")},
            "O que você gostaria de pedir? [Café|Chá|Suco|Sanduíche|Salada|Macarrão]",
        ),
        ({"tap": ("coffee", "Café")}, "Quantas unidades de Café você quer? (Envie um número)"),
        ({"text": "muitos"}, "Envie um número inteiro de 1 a 50, por exemplo: 2"),
        ({"text": "2"}, "Seu pedido: 2 x Café. Posso confirmar? [Confirmar|Alterar quantidade|Cancelar]"),
    ]
    for n, (said, expected) in enumerate(turns, start=1):
        say(stack, user, **said)
        got = replies(graph, user, n)
        assert len(got) == n and shown(got[-1]) == expected
    with db.connect() as conn:
        conv = conn.execute(select(ConversationState).where(ConversationState.user_key == user)).one()
    assert (conv.conversation_flow, conv.current_step, conv.language) == ("new_order", "confirmation", "pt_BR")

    say(stack, user, tap=("confirm", "Confirmar"))
    final = shown(replies(graph, user, 6)[-1])
    found = re.fullmatch(
        r"Pedido feito! O número do seu pedido é (ORD-\d{6})\. Avisamos assim que estiver pronto\.", final
    )
    assert found is not None, final
    wait_until(lambda: conversation_gone(db, user), 10, "conversation ended")
    with db.connect() as conn:
        sub = conn.execute(select(Submission).where(Submission.user_key == user)).one()
        order = conn.execute(select(Order).where(Order.user_key == user)).one()
        kept = conn.execute(select(Contact.language).where(Contact.user_key == user)).scalar_one()
    assert sub.answers["order_id"] == found.group(1) == f"ORD-{order.id:06d}"
    assert (sub.answers["product_title"], sub.answers["quantity"], sub.language, kept) == ("Café", 2, "pt_BR", "pt_BR")

    say(stack, user, text="e agora?")  # no conversation: the fallback speaks their last language
    assert shown(replies(graph, user, 7)[-1]) == "Desculpe, não entendi. Mande *oi* para ver o menu."


def conversation_gone(db: Engine, user: str) -> bool:
    with db.connect() as conn:
        return conn.execute(select(ConversationState).where(ConversationState.user_key == user)).first() is None
