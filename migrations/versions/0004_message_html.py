"""rendered HTML of finished answers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 23:05:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    # Filled when an answer finishes; answers saved before this revision are rendered when
    # shown, as before.
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('html', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('html')
