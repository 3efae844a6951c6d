"""Every read of ClickHouse the worker and the CLI make, typed and bounded."""

from __future__ import annotations

from datetime import datetime

from sinks.clickhouse.schema import (
    PERFORMANCE_COLUMNS,
    PERFORMANCE_TABLE,
    SESSION_FIELDS,
    SUMMARY_VIEW,
)

SUMMARY_FIELDS = ", ".join(SESSION_FIELDS)


def _ms_literal(moment: datetime) -> str:
    return f"fromUnixTimestamp64Milli({int(moment.timestamp() * 1000)}, 'UTC')"


def sessions_sql(
    team_id: int, since: datetime | None = None, until: datetime | None = None, limit: int = 100
) -> str:
    """Newest sessions of a team that started in [since, until). Values are typed, not text."""
    where = [f"team_id = {int(team_id)}"]
    if since is not None:
        where.append(f"start_time >= {_ms_literal(since)}")
    if until is not None:
        where.append(f"start_time < {_ms_literal(until)}")
    return (
        f"SELECT {SUMMARY_FIELDS} FROM {SUMMARY_VIEW} WHERE {' AND '.join(where)} "
        f"ORDER BY start_time DESC, session_id LIMIT {int(limit)}"
    )


def session_sql(team_id: int, session_id: str) -> str:
    """One session's summary; session_id must already be a validated id (no quotes)."""
    assert "'" not in session_id and "\\" not in session_id
    return (
        f"SELECT {SUMMARY_FIELDS} FROM {SUMMARY_VIEW} "
        f"WHERE team_id = {int(team_id)} AND session_id = '{session_id}'"
    )


def network_sql(team_id: int, session_id: str) -> str:
    """A session's performance entries in time order; session_id must be a validated id."""
    assert "'" not in session_id and "\\" not in session_id
    columns = ", ".join(c for c in PERFORMANCE_COLUMNS if c not in ("team_id", "session_id"))
    return (
        f"SELECT {columns} FROM {PERFORMANCE_TABLE} FINAL "
        f"WHERE team_id = {int(team_id)} AND session_id = '{session_id}' "
        "ORDER BY timestamp, start_time, entry_id"
    )
