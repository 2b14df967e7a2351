"""change results reached flag

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 11:43:22.816333
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('change_results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reached', sa.Boolean(), server_default=sa.false(), nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('change_results', schema=None) as batch_op:
        batch_op.drop_column('reached')

