"""why an answer ended and how much of the conversation it was given

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 15:00:00

"""
import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    # finish_reason: the provider's own word for why the answer ended ('stop', 'length'...), so
    # an answer cut at the token limit can say so. history_skipped: how many earlier messages
    # were left out of what the model was sent (context window, history bounds).
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('finish_reason', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('history_skipped', sa.Integer(), nullable=False,
                                      server_default='0'))


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('history_skipped')
        batch_op.drop_column('finish_reason')
