"""telemetry blocks: each ingest batch packed for the window reads

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 01:00:00

The last hour of raw samples is packed into blocks here, so the daemon's and the API's
windows (two and five minutes by default) read the same data after the upgrade as before it.
The encoding is written out in full (not imported): this revision must keep producing what
``app.telemetry_blocks`` of its time reads.
"""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_COLUMNS = ('switch_id', 'interface_id', 'priority', 'ts_ms',
            'tx_bytes_per_s', 'tx_packets_per_s', 'ecn_marked_packets_per_s',
            'rx_pause_frames_per_s', 'tx_pause_frames_per_s', 'drop_packets_per_s',
            'occupancy_bytes', 'watermark_bytes')
_BACKFILL_MS = 3_600_000
_BLOCK_ROWS = 50_000


def upgrade() -> None:
    blocks = op.create_table('telemetry_blocks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('ts_min_ms', sa.BigInteger(), nullable=False),
    sa.Column('ts_max_ms', sa.BigInteger(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_telemetry_blocks'))
    )
    op.create_index('ix_telemetry_blocks_ts_max_ms', 'telemetry_blocks', ['ts_max_ms'], unique=False)
    _backfill(blocks)


def _backfill(blocks: sa.Table) -> None:
    conn = op.get_bind()
    newest = conn.execute(sa.text('SELECT MAX(ts_ms) FROM telemetry_samples')).scalar()
    if newest is None:
        return
    result = conn.execute(
        sa.text(f"SELECT {', '.join(_COLUMNS)} FROM telemetry_samples "
                'WHERE ts_ms >= :since ORDER BY id'),
        {'since': int(newest) - _BACKFILL_MS}, execution_options={'stream_results': True})
    while chunk := result.fetchmany(_BLOCK_ROWS):
        values = np.array([[np.nan if v is None else float(v) for v in row] for row in chunk],
                          dtype='<f8')
        window = values[:, 4:]
        window[~np.isfinite(window)] = np.nan
        conn.execute(blocks.insert().values(
            ts_min_ms=int(values[:, 3].min()), ts_max_ms=int(values[:, 3].max()),
            rows=len(values), payload=values.tobytes()))


def downgrade() -> None:
    op.drop_index('ix_telemetry_blocks_ts_max_ms', table_name='telemetry_blocks')
    op.drop_table('telemetry_blocks')
