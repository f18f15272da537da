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


def upgrade():
    # Each message follows a parent; siblings are versions (a regenerated answer, an edited
    # message) and the selected one is shown. Added without rebuilding the table: SQLite can
    # add a column with a REFERENCES clause in place (batch mode would copy the table and
    # drop the search index's triggers), PostgreSQL adds the constraint after.
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        op.execute('ALTER TABLE messages ADD COLUMN parent_id INTEGER '
                   'REFERENCES messages (id) ON DELETE CASCADE')
    else:
        op.add_column('messages', sa.Column('parent_id', sa.Integer(), nullable=True))
        op.create_foreign_key('fk_messages_parent_id_messages', 'messages', 'messages',
                              ['parent_id'], ['id'], ondelete='CASCADE')
    op.add_column('messages', sa.Column('selected', sa.Boolean(), nullable=False,
                                        server_default=sa.true()))
    op.create_index('ix_messages_parent_id', 'messages', ['parent_id'])
    op.add_column('conversations', sa.Column('title_renamed', sa.Boolean(), nullable=False,
                                             server_default=sa.false()))
    # A conversation so far was a list ordered by id: it becomes one branch, each message
    # following the one before it.
    op.execute('UPDATE messages SET parent_id = (SELECT max(earlier.id) FROM messages earlier '
               'WHERE earlier.conversation_id = messages.conversation_id '
               'AND earlier.id < messages.id)')


def downgrade():
    # Back to a list: only the current path can be kept as one, so the other versions go.
    op.execute('DELETE FROM messages WHERE NOT selected')
    op.drop_column('conversations', 'title_renamed')
    op.drop_index('ix_messages_parent_id', table_name='messages')
    bind = op.get_bind()
    triggers = []
    if bind.dialect.name == 'sqlite':
        # As in 0007: batch mode rebuilds the table; keep AUTOINCREMENT and the triggers.
        triggers = bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'messages'"
        ).scalars().all()
    else:
        op.drop_constraint('fk_messages_parent_id_messages', 'messages', type_='foreignkey')
    with op.batch_alter_table('messages', schema=None,
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_column('selected')
        batch_op.drop_column('parent_id')
    for sql in triggers:
        bind.exec_driver_sql(sql)
