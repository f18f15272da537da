"""session tokens

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 22:48:44.671504

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_token', sa.String(length=64), nullable=True))
    # Existing accounts keep their sessions until they next sign out (an empty token matches
    # the sessions they have now); new accounts get a random token at creation.
    if op.get_bind().dialect.name == "sqlite":
        # Retry turns a finished answer back into a pending one: take it out of the search
        # index, which the "finish" trigger fills again when the new answer ends.
        op.execute("""CREATE TRIGGER messages_fts_reopen AFTER UPDATE ON messages
            WHEN old.status IN ('complete', 'stopped', 'error')
             AND new.status NOT IN ('complete', 'stopped', 'error') BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content)
            VALUES ('delete', old.id, old.content); END""")


def downgrade():
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS messages_fts_reopen")
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_token')
