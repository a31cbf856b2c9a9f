"""template revision: one row a trigger changes on every write to workflow_templates

Workers read it per message (a primary-key read) instead of scanning the template table
to notice a change.

Revision ID: c4d2e8a1f7b3
Revises: b71abf9bcdb8
Create Date: 2026-11-22 06:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4d2e8a1f7b3"
down_revision: str | None = "b71abf9bcdb8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A new value comes from a sequence (random on SQLite), never ``+ 1``: a rolled-back
# write must not leave a value that a later, different write could repeat, or a worker
# would keep a template set built from the rolled-back write.
CREATE = {
    "postgresql": [
        "CREATE SEQUENCE template_revision_seq",
        "INSERT INTO template_revision (id, revision) VALUES (1, nextval('template_revision_seq'))",
        """CREATE FUNCTION parley_bump_template_revision() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE template_revision SET revision = nextval('template_revision_seq') WHERE id = 1;
            RETURN NULL;
        END $$""",
        """CREATE TRIGGER workflow_templates_revision
        AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON workflow_templates
        FOR EACH STATEMENT EXECUTE FUNCTION parley_bump_template_revision()""",
    ],
    "sqlite": [
        "INSERT INTO template_revision (id, revision) VALUES (1, abs(random()))",
        *(
            f"""CREATE TRIGGER workflow_templates_revision_{op_name.lower()} AFTER {op_name} ON workflow_templates
            BEGIN UPDATE template_revision SET revision = abs(random()) WHERE id = 1; END"""
            for op_name in ("INSERT", "UPDATE", "DELETE")
        ),
    ],
}
DROP = {
    "postgresql": [
        "DROP TRIGGER workflow_templates_revision ON workflow_templates",
        "DROP FUNCTION parley_bump_template_revision()",
        "DROP SEQUENCE template_revision_seq",
    ],
    "sqlite": [f"DROP TRIGGER workflow_templates_revision_{name}" for name in ("insert", "update", "delete")],
}


def upgrade() -> None:
    op.create_table(
        "template_revision",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_revision")),
    )
    for statement in CREATE[op.get_bind().dialect.name]:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP[op.get_bind().dialect.name]:
        op.execute(statement)
    op.drop_table("template_revision")
