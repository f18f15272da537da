"""an index for finding answers being written

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 02:30:00

"""
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    # Every new message checks the person's running answers (status pending or streaming):
    # without an index that read every message they ever had.
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_status', ['status'], unique=False)


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_status')
