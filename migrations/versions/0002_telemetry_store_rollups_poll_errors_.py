"""telemetry store, rollups, poll errors, collector leases

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 10:02:20.159853
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('collector_workers',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('heartbeat_ms', sa.BigInteger(), nullable=False),
    sa.Column('started_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_collector_workers'))
    )
    op.create_table('rollup_state',
    sa.Column('name', sa.String(length=16), nullable=False),
    sa.Column('done_until_ms', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_rollup_state'))
    )
    op.create_table('telemetry_rollup_1h',
    sa.Column('switch_id', sa.Integer(), nullable=False),
    sa.Column('interface_id', sa.Integer(), nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('bucket_ms', sa.BigInteger(), nullable=False),
    sa.Column('samples', sa.Integer(), nullable=False),
    sa.Column('tx_bytes_per_s', sa.Float(), nullable=True),
    sa.Column('tx_packets_per_s', sa.Float(), nullable=True),
    sa.Column('ecn_marked_packets_per_s', sa.Float(), nullable=True),
    sa.Column('rx_pause_frames_per_s', sa.Float(), nullable=True),
    sa.Column('tx_pause_frames_per_s', sa.Float(), nullable=True),
    sa.Column('drop_packets_per_s', sa.Float(), nullable=True),
    sa.Column('utilisation', sa.Float(), nullable=True),
    sa.Column('occupancy_bytes', sa.Float(), nullable=True),
    sa.Column('watermark_bytes', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('switch_id', 'interface_id', 'priority', 'bucket_ms', name=op.f('pk_telemetry_rollup_1h'))
    )
    op.create_table('telemetry_rollup_1m',
    sa.Column('switch_id', sa.Integer(), nullable=False),
    sa.Column('interface_id', sa.Integer(), nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('bucket_ms', sa.BigInteger(), nullable=False),
    sa.Column('samples', sa.Integer(), nullable=False),
    sa.Column('tx_bytes_per_s', sa.Float(), nullable=True),
    sa.Column('tx_packets_per_s', sa.Float(), nullable=True),
    sa.Column('ecn_marked_packets_per_s', sa.Float(), nullable=True),
    sa.Column('rx_pause_frames_per_s', sa.Float(), nullable=True),
    sa.Column('tx_pause_frames_per_s', sa.Float(), nullable=True),
    sa.Column('drop_packets_per_s', sa.Float(), nullable=True),
    sa.Column('utilisation', sa.Float(), nullable=True),
    sa.Column('occupancy_bytes', sa.Float(), nullable=True),
    sa.Column('watermark_bytes', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('switch_id', 'interface_id', 'priority', 'bucket_ms', name=op.f('pk_telemetry_rollup_1m'))
    )
    op.create_table('collector_leases',
    sa.Column('switch_id', sa.Integer(), nullable=False),
    sa.Column('owner', sa.String(length=128), nullable=True),
    sa.Column('expires_ms', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['switch_id'], ['switches.id'], name=op.f('fk_collector_leases_switch_id_switches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('switch_id', name=op.f('pk_collector_leases'))
    )
    with op.batch_alter_table('collector_leases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_collector_leases_owner'), ['owner'], unique=False)

    op.create_table('poll_errors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('switch_id', sa.Integer(), nullable=False),
    sa.Column('ts_ms', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('message', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['switch_id'], ['switches.id'], name=op.f('fk_poll_errors_switch_id_switches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_poll_errors'))
    )
    with op.batch_alter_table('poll_errors', schema=None) as batch_op:
        batch_op.create_index('ix_poll_errors_switch_id_ts_ms', ['switch_id', 'ts_ms'], unique=False)

    op.create_table('telemetry_latest',
    sa.Column('switch_id', sa.Integer(), nullable=False),
    sa.Column('interface_id', sa.Integer(), nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('ts_ms', sa.BigInteger(), nullable=False),
    sa.Column('tx_packets', sa.BigInteger(), nullable=True),
    sa.Column('tx_bytes', sa.BigInteger(), nullable=True),
    sa.Column('ecn_marked_packets', sa.BigInteger(), nullable=True),
    sa.Column('rx_pause_frames', sa.BigInteger(), nullable=True),
    sa.Column('tx_pause_frames', sa.BigInteger(), nullable=True),
    sa.Column('drop_packets', sa.BigInteger(), nullable=True),
    sa.Column('occupancy_bytes', sa.BigInteger(), nullable=True),
    sa.Column('watermark_bytes', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['interface_id'], ['interfaces.id'], name=op.f('fk_telemetry_latest_interface_id_interfaces'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['switch_id'], ['switches.id'], name=op.f('fk_telemetry_latest_switch_id_switches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('switch_id', 'interface_id', 'priority', name=op.f('pk_telemetry_latest'))
    )


def downgrade() -> None:
    op.drop_table('telemetry_latest')
    with op.batch_alter_table('poll_errors', schema=None) as batch_op:
        batch_op.drop_index('ix_poll_errors_switch_id_ts_ms')

    op.drop_table('poll_errors')
    with op.batch_alter_table('collector_leases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_collector_leases_owner'))

    op.drop_table('collector_leases')
    op.drop_table('telemetry_rollup_1m')
    op.drop_table('telemetry_rollup_1h')
    op.drop_table('rollup_state')
    op.drop_table('collector_workers')
