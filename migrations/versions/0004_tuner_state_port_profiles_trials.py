"""tuner state, port profiles, trials

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 10:29:17.060426
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tuner_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('freeze_windows', sa.JSON(), nullable=False),
    sa.Column('updated_by', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_cycle_ms', sa.BigInteger(), nullable=True),
    sa.Column('cycles', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tuner_state'))
    )
    op.create_table('tuner_trials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('change_id', sa.Integer(), nullable=False),
    sa.Column('proposal_ids', sa.JSON(), nullable=False),
    sa.Column('profile', sa.String(length=32), nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('switch_ids', sa.JSON(), nullable=False),
    sa.Column('kpis_before', sa.JSON(), nullable=False),
    sa.Column('kpis_after', sa.JSON(), nullable=True),
    sa.Column('applied_ms', sa.BigInteger(), nullable=False),
    sa.Column('verify_after_ms', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['change_id'], ['change_sets.id'], name=op.f('fk_tuner_trials_change_id_change_sets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tuner_trials'))
    )
    with op.batch_alter_table('tuner_trials', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tuner_trials_status'), ['status'], unique=False)

    op.create_table('port_profiles',
    sa.Column('switch_id', sa.Integer(), nullable=False),
    sa.Column('interface_id', sa.Integer(), nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('profile', sa.String(length=32), nullable=False),
    sa.Column('probability', sa.Float(), nullable=False),
    sa.Column('since_ms', sa.BigInteger(), nullable=False),
    sa.Column('updated_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['interface_id'], ['interfaces.id'], name=op.f('fk_port_profiles_interface_id_interfaces'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['switch_id'], ['switches.id'], name=op.f('fk_port_profiles_switch_id_switches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('switch_id', 'interface_id', 'priority', name=op.f('pk_port_profiles'))
    )


def downgrade() -> None:
    op.drop_table('port_profiles')
    with op.batch_alter_table('tuner_trials', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tuner_trials_status'))

    op.drop_table('tuner_trials')
    op.drop_table('tuner_state')
