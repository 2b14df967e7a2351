"""profile tracks (what the tuner has seen per switch and priority)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('profile_tracks',
    sa.Column('switch_id', sa.Integer(), nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['switch_id'], ['switches.id'], name=op.f('fk_profile_tracks_switch_id_switches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('switch_id', 'priority', name=op.f('pk_profile_tracks'))
    )


def downgrade() -> None:
    op.drop_table('profile_tracks')
