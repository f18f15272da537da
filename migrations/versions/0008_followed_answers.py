"""a running answer followed from another process

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 10:40:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    # An answer is generated in one process; a page served by another worker or app server
    # follows it through the database. That process marks the answer followed until a moment a
    # few seconds ahead, renewed while the page stays, and the generating process saves the
    # text of followed answers often instead of once a second.
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('followed_until', sa.DateTime(), nullable=True))


def downgrade():
    # As in 0007: batch mode rebuilds the table on SQLite; keep AUTOINCREMENT and the search
    # index's triggers.
    bind = op.get_bind()
    triggers = []
    if bind.dialect.name == 'sqlite':
        triggers = bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'messages'"
        ).scalars().all()
    with op.batch_alter_table('messages', schema=None,
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_column('followed_until')
    for sql in triggers:
        bind.exec_driver_sql(sql)
