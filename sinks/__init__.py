"""Sinks: ClickHouse (and S3). They know their own schemas and take plain rows."""
