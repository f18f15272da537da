"""the served API: people's keys, a record of each call, conversations kept from it

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 17:10:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    # A key is kept as its SHA-256 digest only (it is shown once); its id never comes back for
    # another key, since call records and lists name keys by it.
    op.create_table(
        'api_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_used_at', sa.DateTime(), nullable=True),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_api_keys_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
        sa.UniqueConstraint('digest', name=op.f('uq_api_keys_digest')),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f('ix_api_keys_user_id'), 'api_keys', ['user_id'], unique=False)
    op.create_table(
        'api_calls',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('key_id', sa.Integer(), nullable=True),
        sa.Column('endpoint', sa.String(length=64), nullable=False),
        sa.Column('model', sa.String(length=200), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=True),
        sa.Column('provider_model', sa.String(length=128), nullable=True),
        sa.Column('stream', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('http_status', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('prompt_tokens', sa.Integer(), nullable=False),
        sa.Column('completion_tokens', sa.Integer(), nullable=False),
        sa.Column('conversation_id', sa.Integer(), nullable=True),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('first_token_at', sa.DateTime(), nullable=True),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_api_calls_user_id_users'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['key_id'], ['api_keys.id'],
                                name=op.f('fk_api_calls_key_id_api_keys'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'],
                                name=op.f('fk_api_calls_conversation_id_conversations'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_calls')),
    )
    op.create_index('ix_api_calls_user_started', 'api_calls', ['user_id', 'started_at'],
                    unique=False)
    op.create_index('ix_api_calls_status', 'api_calls', ['status'], unique=False)
    op.create_index(op.f('ix_api_calls_key_id'), 'api_calls', ['key_id'], unique=False)
    # Plain added columns (with a server default for the rows there are): no table rebuild.
    op.add_column('conversations', sa.Column('origin', sa.String(length=8), nullable=False,
                                             server_default='web'))
    op.add_column('conversations', sa.Column('api_digest', sa.String(length=64),
                                             nullable=True))
    op.create_index('ix_conversations_user_api_digest', 'conversations',
                    ['user_id', 'api_digest'], unique=False)


def downgrade():
    op.drop_index('ix_conversations_user_api_digest', table_name='conversations')
    # As 0009 does: SQLite 3.35+ drops a column in place (its index went first).
    op.drop_column('conversations', 'api_digest')
    op.drop_column('conversations', 'origin')
    op.drop_table('api_calls')
    op.drop_table('api_keys')
