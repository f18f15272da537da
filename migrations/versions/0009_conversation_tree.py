"""conversations as trees: each message's parent, the version shown, renamed titles

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 13:40:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def _triggers(bind) -> list[str]:
    """The search index's triggers on messages (SQLite): batch mode rebuilds the table there
    and drops them, so they are made again after (as in 0007)."""
    if bind.dialect.name != 'sqlite':
        return []
    return bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'messages'"
    ).scalars().all()


def upgrade():
    # Each message follows a parent; siblings are versions (a regenerated answer, an edited
    # message) and the selected one is shown. SQLite cannot add a table constraint in place:
    # batch mode rebuilds the table (keeping AUTOINCREMENT and, below, the triggers);
    # PostgreSQL alters it.
    bind = op.get_bind()
    triggers = _triggers(bind)
    with op.batch_alter_table('messages', schema=None,
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.add_column(sa.Column('parent_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('selected', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))
        batch_op.create_foreign_key('fk_messages_parent_id_messages', 'messages',
                                    ['parent_id'], ['id'], ondelete='CASCADE')
        batch_op.create_index('ix_messages_parent_id', ['parent_id'])
    for sql in triggers:
        bind.exec_driver_sql(sql)
    op.add_column('conversations', sa.Column('title_renamed', sa.Boolean(), nullable=False,
                                             server_default=sa.false()))
    # A conversation so far was a list ordered by id: it becomes one branch, each message
    # following the one before it.
    op.execute('UPDATE messages SET parent_id = (SELECT max(earlier.id) FROM messages earlier '
               'WHERE earlier.conversation_id = messages.conversation_id '
               'AND earlier.id < messages.id)')


def downgrade():
    # Back to a list: only the current path can be kept as one, so the other versions go.
    op.execute('WITH RECURSIVE shown(id) AS ('
               'SELECT id FROM messages WHERE parent_id IS NULL AND selected '
               'UNION ALL SELECT m.id FROM messages m JOIN shown ON m.parent_id = shown.id '
               'WHERE m.selected) '
               'DELETE FROM messages WHERE id NOT IN (SELECT id FROM shown)')
    op.drop_column('conversations', 'title_renamed')
    bind = op.get_bind()
    triggers = _triggers(bind)
    with op.batch_alter_table('messages', schema=None,
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_index('ix_messages_parent_id')
        batch_op.drop_constraint('fk_messages_parent_id_messages', type_='foreignkey')
        batch_op.drop_column('selected')
        batch_op.drop_column('parent_id')
    for sql in triggers:
        bind.exec_driver_sql(sql)
