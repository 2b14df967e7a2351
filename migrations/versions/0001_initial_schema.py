"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 09:55:33.427933
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('name', name=op.f('uq_api_tokens_name')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('change_id', sa.Integer(), nullable=True),
    sa.Column('switch_name', sa.String(length=64), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_change_id_ts', ['change_id', 'ts'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_ts'), ['ts'], unique=False)

    op.create_table('change_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('description', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('targets', sa.JSON(), nullable=False),
    sa.Column('intent', sa.JSON(), nullable=False),
    sa.Column('wave_size', sa.Integer(), nullable=False),
    sa.Column('approved_by', sa.String(length=64), nullable=True),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('owner', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_sets'))
    )
    with op.batch_alter_table('change_sets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_change_sets_status'), ['status'], unique=False)

    op.create_table('fabric',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('lossless_priorities', sa.JSON(), nullable=False),
    sa.Column('cnp_priority', sa.SmallInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fabric'))
    )
    op.create_table('model_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.Column('blob', sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_versions')),
    sa.UniqueConstraint('kind', 'version', name=op.f('uq_model_versions_kind_version'))
    )
    op.create_table('switches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('pod', sa.Integer(), nullable=True),
    sa.Column('mgmt_host', sa.String(length=255), nullable=False),
    sa.Column('mgmt_port', sa.Integer(), nullable=False),
    sa.Column('driver', sa.String(length=32), nullable=False),
    sa.Column('model', sa.String(length=64), nullable=False),
    sa.Column('asic', sa.String(length=64), nullable=False),
    sa.Column('buffer_bytes', sa.BigInteger(), nullable=False),
    sa.Column('credentials_ref', sa.String(length=255), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('poll_interval_s', sa.Float(), nullable=True),
    sa.Column('health', sa.String(length=16), nullable=False),
    sa.Column('health_reason', sa.String(length=500), nullable=False),
    sa.Column('last_poll_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_ok_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_switches')),
    sa.UniqueConstraint('name', name=op.f('uq_switches_name'))
    )
    with op.batch_alter_table('switches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_switches_pod'), ['pod'], unique=False)
        batch_op.create_index(batch_op.f('ix_switches_role'), ['role'], unique=False)

    op.create_table('change_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('change_id', sa.Integer(), nullable=False),
    sa.Column('switch_id', sa.Integer(), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('diff', sa.Text(), nullable=False),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['change_id'], ['change_sets.id'], name=op.f('fk_change_results_change_id_change_sets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['switch_id'], ['switches.id'], name=op.f('fk_change_results_switch_id_switches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_change_results')),
    sa.UniqueConstraint('change_id', 'switch_id', name=op.f('uq_change_results_change_id_switch_id'))
    )
    op.create_table('interfaces',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('switch_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('speed_gbps', sa.Integer(), nullable=False),
    sa.Column('peer', sa.String(length=128), nullable=False),
    sa.Column('cable_m', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['switch_id'], ['switches.id'], name=op.f('fk_interfaces_switch_id_switches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_interfaces')),
    sa.UniqueConstraint('switch_id', 'name', name=op.f('uq_interfaces_switch_id_name'))
    )
    op.create_table('proposals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('switch_id', sa.Integer(), nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('interfaces', sa.JSON(), nullable=False),
    sa.Column('profile', sa.String(length=32), nullable=False),
    sa.Column('probability', sa.Float(), nullable=False),
    sa.Column('current', sa.JSON(), nullable=False),
    sa.Column('proposed', sa.JSON(), nullable=False),
    sa.Column('predicted', sa.JSON(), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('explanation', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('change_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['change_id'], ['change_sets.id'], name=op.f('fk_proposals_change_id_change_sets'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['switch_id'], ['switches.id'], name=op.f('fk_proposals_switch_id_switches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_proposals'))
    )
    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_proposals_status'), ['status'], unique=False)
        batch_op.create_index('ix_proposals_switch_id_created_at', ['switch_id', 'created_at'], unique=False)

    op.create_table('qos_waterlines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('switch_id', sa.Integer(), nullable=False),
    sa.Column('interface_name', sa.String(length=64), nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('kmin_bytes', sa.BigInteger(), nullable=False),
    sa.Column('kmax_bytes', sa.BigInteger(), nullable=False),
    sa.Column('pmax', sa.Float(), nullable=False),
    sa.Column('xoff_bytes', sa.BigInteger(), nullable=True),
    sa.Column('xon_bytes', sa.BigInteger(), nullable=True),
    sa.Column('headroom_bytes', sa.BigInteger(), nullable=True),
    sa.Column('alpha', sa.Float(), nullable=True),
    sa.Column('pfc_enabled', sa.Boolean(), nullable=True),
    sa.Column('ecn_enabled', sa.Boolean(), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['switch_id'], ['switches.id'], name=op.f('fk_qos_waterlines_switch_id_switches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qos_waterlines')),
    sa.UniqueConstraint('switch_id', 'interface_name', 'priority', 'kind', name=op.f('uq_qos_waterlines_switch_id_interface_name_priority_kind'))
    )
    op.create_table('switch_locks',
    sa.Column('switch_id', sa.Integer(), nullable=False),
    sa.Column('change_id', sa.Integer(), nullable=False),
    sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['change_id'], ['change_sets.id'], name=op.f('fk_switch_locks_change_id_change_sets'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['switch_id'], ['switches.id'], name=op.f('fk_switch_locks_switch_id_switches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('switch_id', name=op.f('pk_switch_locks'))
    )
    op.create_table('links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('a_interface_id', sa.Integer(), nullable=False),
    sa.Column('b_interface_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['a_interface_id'], ['interfaces.id'], name=op.f('fk_links_a_interface_id_interfaces'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['b_interface_id'], ['interfaces.id'], name=op.f('fk_links_b_interface_id_interfaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_links')),
    sa.UniqueConstraint('a_interface_id', name=op.f('uq_links_a_interface_id')),
    sa.UniqueConstraint('b_interface_id', name=op.f('uq_links_b_interface_id'))
    )
    op.create_table('telemetry_samples',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('switch_id', sa.Integer(), nullable=False),
    sa.Column('interface_id', sa.Integer(), nullable=False),
    sa.Column('priority', sa.SmallInteger(), nullable=False),
    sa.Column('ts_ms', sa.BigInteger(), nullable=False),
    sa.Column('interval_s', sa.Float(), nullable=True),
    sa.Column('tx_packets', sa.BigInteger(), nullable=True),
    sa.Column('tx_bytes', sa.BigInteger(), nullable=True),
    sa.Column('ecn_marked_packets', sa.BigInteger(), nullable=True),
    sa.Column('rx_pause_frames', sa.BigInteger(), nullable=True),
    sa.Column('tx_pause_frames', sa.BigInteger(), nullable=True),
    sa.Column('drop_packets', sa.BigInteger(), nullable=True),
    sa.Column('occupancy_bytes', sa.BigInteger(), nullable=True),
    sa.Column('watermark_bytes', sa.BigInteger(), nullable=True),
    sa.Column('tx_bytes_per_s', sa.Float(), nullable=True),
    sa.Column('tx_packets_per_s', sa.Float(), nullable=True),
    sa.Column('ecn_marked_packets_per_s', sa.Float(), nullable=True),
    sa.Column('rx_pause_frames_per_s', sa.Float(), nullable=True),
    sa.Column('tx_pause_frames_per_s', sa.Float(), nullable=True),
    sa.Column('drop_packets_per_s', sa.Float(), nullable=True),
    sa.Column('utilisation', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['interface_id'], ['interfaces.id'], name=op.f('fk_telemetry_samples_interface_id_interfaces'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['switch_id'], ['switches.id'], name=op.f('fk_telemetry_samples_switch_id_switches'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_telemetry_samples')),
    sa.UniqueConstraint('switch_id', 'interface_id', 'priority', 'ts_ms', name=op.f('uq_telemetry_samples_switch_id_interface_id_priority_ts_ms'))
    )
    with op.batch_alter_table('telemetry_samples', schema=None) as batch_op:
        batch_op.create_index('ix_telemetry_samples_ts_ms', ['ts_ms'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('telemetry_samples', schema=None) as batch_op:
        batch_op.drop_index('ix_telemetry_samples_ts_ms')

    op.drop_table('telemetry_samples')
    op.drop_table('links')
    op.drop_table('switch_locks')
    op.drop_table('qos_waterlines')
    with op.batch_alter_table('proposals', schema=None) as batch_op:
        batch_op.drop_index('ix_proposals_switch_id_created_at')
        batch_op.drop_index(batch_op.f('ix_proposals_status'))

    op.drop_table('proposals')
    op.drop_table('interfaces')
    op.drop_table('change_results')
    with op.batch_alter_table('switches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_switches_role'))
        batch_op.drop_index(batch_op.f('ix_switches_pod'))

    op.drop_table('switches')
    op.drop_table('model_versions')
    op.drop_table('fabric')
    with op.batch_alter_table('change_sets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_change_sets_status'))

    op.drop_table('change_sets')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_ts'))
        batch_op.drop_index('ix_audit_events_change_id_ts')

    op.drop_table('audit_events')
    op.drop_table('api_tokens')
