"""ids never reused on SQLite; failed sign-ins counted in the database

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:45:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

# Tables whose ids people see (links, bookmarks, exports). Without AUTOINCREMENT, SQLite hands
# the id of the newest row again once it is deleted, so an old link to a deleted conversation
# opened the next conversation made. PostgreSQL's sequences never go back: nothing to do there.
TABLES = ('users', 'conversations', 'messages', 'shares')


def _rebuild(table, autoincrement):
    """Rebuild ``table`` on SQLite with or without AUTOINCREMENT, keeping its triggers."""
    bind = op.get_bind()
    # Batch mode copies the table into a new one and drops the old: the triggers on it (the
    # full-text search index's, on messages) go with it and are made again from their text.
    triggers = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
        (table,)).scalars().all()
    with op.batch_alter_table(table, recreate='always',
                              table_kwargs={'sqlite_autoincrement': autoincrement}):
        pass
    for sql in triggers:
        bind.exec_driver_sql(sql)


def upgrade():
    op.create_table(
        'sign_in_failures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account', sa.String(length=64), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sign_in_failures')),
    )
    with op.batch_alter_table('sign_in_failures', schema=None) as batch_op:
        batch_op.create_index('ix_sign_in_failures_account_created',
                              ['account', 'created_at'], unique=False)
        batch_op.create_index('ix_sign_in_failures_address_created',
                              ['address', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sign_in_failures_created_at'), ['created_at'],
                              unique=False)
    if op.get_bind().dialect.name == 'sqlite':
        for table in TABLES:
            _rebuild(table, True)


def downgrade():
    if op.get_bind().dialect.name == 'sqlite':
        for table in TABLES:
            _rebuild(table, False)
    with op.batch_alter_table('sign_in_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sign_in_failures_created_at'))
        batch_op.drop_index('ix_sign_in_failures_address_created')
        batch_op.drop_index('ix_sign_in_failures_account_created')
    op.drop_table('sign_in_failures')
