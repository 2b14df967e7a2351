"""tuner lease: which daemon process runs the cycles

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 22:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tuner_state') as batch:
        batch.add_column(sa.Column('owner', sa.String(length=128), nullable=True))
        batch.add_column(sa.Column('lease_until_ms', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tuner_state') as batch:
        batch.drop_column('lease_until_ms')
        batch.drop_column('owner')
