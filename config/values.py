"""Parsers of configuration values: each takes the text of one variable and returns its
value or raises ValueError saying what was expected (config.settings names the variable)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit


def broker_url(value: str) -> str:
    parts = urlsplit(value if "://" in value else f"kafka://{value}")
    if parts.scheme not in ("kafka", "aiokafka") or not parts.hostname or not parts.port:
        raise ValueError("expected kafka://host:port[;kafka://host:port...]")
    return value if "://" in value else f"kafka://{value}"


def clickhouse_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme == "chdb":
        if not parts.path or parts.path == "/":
            raise ValueError("expected chdb:///absolute/path")
        return value
    if parts.scheme in ("http", "https") and parts.hostname:
        return value
    raise ValueError("expected chdb:///path or http(s)://user:pass@host:8123/database")


def s3_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "s3" or not parts.hostname:
        raise ValueError("expected s3://bucket/prefix")
    return value


def optional_http_url(value: str) -> str:
    parts = urlsplit(value)
    if value and (parts.scheme not in ("http", "https") or not parts.hostname):
        raise ValueError("expected http(s)://host:port or empty for AWS")
    return value


def positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive integer")
    return number


def non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be 0 or a positive integer")
    return number


def port(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise ValueError("must be a TCP port (0-65535)")
    return number


def positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be a positive number")
    return number


def optional_path(value: str) -> Path | None:
    return Path(value) if value else None


def store(value: str) -> str:
    if value not in ("rocksdb://", "memory://"):
        raise ValueError("expected rocksdb:// or memory://")
    return value


def secret(value: str) -> str:
    if value and (len(value) < 16 or not value.isascii() or not value.isprintable()):
        raise ValueError("must be at least 16 printable ASCII characters (or empty: generated)")
    return value


def log_level(value: str) -> str:
    level = value.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return level
