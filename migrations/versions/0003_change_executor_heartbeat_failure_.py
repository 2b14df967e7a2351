"""change executor heartbeat, failure policy, observed qos

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 10:11:24.711524
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('change_sets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('heartbeat_ms', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('on_failure', sa.String(length=16), server_default='stop', nullable=False))

    with op.batch_alter_table('switches', schema=None) as batch_op:
        batch_op.add_column(sa.Column('observed_qos', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('observed_qos_at', sa.DateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('switches', schema=None) as batch_op:
        batch_op.drop_column('observed_qos_at')
        batch_op.drop_column('observed_qos')

    with op.batch_alter_table('change_sets', schema=None) as batch_op:
        batch_op.drop_column('on_failure')
        batch_op.drop_column('heartbeat_ms')

