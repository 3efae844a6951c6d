"""ClickHouse in three parts: `schema` (tables, DDL, the summary view, migrations and
the client factory), `sink` (insert blocks, retries, error classes) and `queries` (every read,
and every statement of the retention job)."""
