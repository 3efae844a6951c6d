"""The one frozen settings object, read from ``REPLAY_*`` environment variables.

Every knob of the worker lives here so that a bad value fails at start, naming the
variable, instead of surfacing as a confusing error deep inside Faust or a sink.
Defaults point at the embedded local stack (Tansu on 127.0.0.1:9092, chDB under the
data directory), so `replay-ingest run` needs no configuration at all.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from config.values import (
    broker_url,
    clickhouse_url,
    log_level,
    non_negative_int,
    optional_http_url,
    optional_path,
    port,
    positive_float,
    positive_int,
    s3_url,
    secret,
    store,
)


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the variable."""


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """Limits on every statement of `replay-ingest sql` and ``POST /api/sql``."""

    max_execution_seconds: float = 30.0
    max_memory_bytes: int = 1024**3
    max_result_rows: int = 100_000
    max_query_bytes: int = 64 * 1024

    def clickhouse_settings(self) -> dict[str, object]:
        """Query settings; readonly last, since once it is on no setting may change."""
        return {
            "max_execution_time": self.max_execution_seconds,
            "max_memory_usage": self.max_memory_bytes,
            "max_result_rows": self.max_result_rows,
            "result_overflow_mode": "throw",
            "readonly": 1,
        }


_LIMITS = QueryLimits()


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated configuration. Build it with :func:`load_settings`. Its repr masks URL
    passwords and hides secrets, so settings can be logged."""

    def __repr__(self) -> str:
        shown_fields = (f"{f.name}={shown(f.name, getattr(self, f.name))}" for f in fields(self))
        return f"Settings({', '.join(shown_fields)})"

    broker_url: str
    clickhouse_url: str
    data_dir: Path
    app_id: str
    teams_file: Path | None
    web_host: str
    web_port: int
    metrics_host: str
    metrics_port: int
    partitions: int
    chunk_ttl_seconds: int
    chunk_expiry_interval_seconds: float
    max_message_bytes: int
    max_decoded_bytes: int
    take_max_messages: int
    take_max_seconds: float
    takes_in_flight: int
    sink_max_rows: int
    sink_max_bytes: int
    sink_retry_max_seconds: float
    stream_buffer_maxsize: int
    producer_max_batch_bytes: int
    store: str
    summary_window_seconds: int
    summary_window_expiry_seconds: int
    summary_flush_interval_seconds: float
    summary_dedup_seconds: int
    s3_url: str
    s3_endpoint_url: str
    s3_retry_seconds: float
    spill_interval_seconds: float
    retention_days: int
    performance_ttl_days: int
    admin_key: str = field(repr=False)  # never in a log line
    sql_max_execution_seconds: float
    sql_max_memory_bytes: int
    sql_max_result_rows: int
    sql_max_query_bytes: int
    log_level: str
    max_set_bytes: int
    max_record_bytes: int
    max_open_sets_per_team: int
    max_open_windows_per_team: int
    max_future_skew_seconds: int
    max_event_age_days: int
    capture_host: str
    capture_port: int
    capture_max_message_bytes: int
    capture_max_body_bytes: int
    capture_max_decoded_bytes: int
    capture_rate_per_second: float
    capture_rate_burst: int
    capture_produce_timeout_seconds: float
    capture_node_modules: Path | None
    share_key: str = field(repr=False)  # never in a log line
    share_expires_seconds: int
    public_url: str
    player_assets_dir: Path | None
    live_window_seconds: int
    live_poll_seconds: float
    max_live_streams: int
    erasure_tombstone_days: int
    erasure_poll_seconds: float

    @property
    def bootstrap(self) -> str:
        """The broker URL as Kafka clients take it: kafka://h:p;kafka://h2:p2 -> h:p,h2:p2."""
        return ",".join(part.split("://", 1)[-1] for part in self.broker_url.split(";"))

    @property
    def chdb_path(self) -> Path | None:
        """Directory of the embedded chDB database, or None for a ClickHouse server."""
        parts = urlsplit(self.clickhouse_url)
        return Path(parts.path) if parts.scheme == "chdb" else None

    @property
    def capture_js_dir(self) -> Path:
        """The node_modules the capture endpoint serves rrweb (and posthog-js's lazy
        bundles) from: REPLAY_CAPTURE_NODE_MODULES, else where `run` installs them."""
        return self.capture_node_modules or self.data_dir / "js" / "node_modules"

    @property
    def player_dir(self) -> Path:
        """Where the worker serves rrweb-player's JS and CSS from: REPLAY_PLAYER_ASSETS_DIR,
        else where `replay-ingest player install` (and `run`) put them."""
        return self.player_assets_dir or self.data_dir / "player"

    @property
    def base_url(self) -> str:
        """The worker's web server as viewers reach it, for share links: REPLAY_PUBLIC_URL,
        else its own host and port."""
        return self.public_url.rstrip("/") or f"http://{self.web_host}:{self.web_port}"

    @property
    def share_key_path(self) -> Path:
        """Where the worker keeps its generated share-token key when REPLAY_SHARE_KEY is
        empty."""
        return self.data_dir / SHARE_KEY_FILE

    @property
    def admin_key_path(self) -> Path:
        """Where the worker keeps its generated admin key when REPLAY_ADMIN_KEY is empty."""
        return self.data_dir / ADMIN_KEY_FILE

    @property
    def sql_limits(self) -> QueryLimits:
        return QueryLimits(
            self.sql_max_execution_seconds,
            self.sql_max_memory_bytes,
            self.sql_max_result_rows,
            self.sql_max_query_bytes,
        )


# variable suffix -> (parser, default). A default of None means "derived" (see load_settings).
_SPEC: dict[str, tuple[Callable[[str], Any], str | None]] = {
    "BROKER_URL": (broker_url, "kafka://127.0.0.1:9092"),
    "CLICKHOUSE_URL": (clickhouse_url, None),
    "DATA_DIR": (Path, ".replay-ingest"),
    "APP_ID": (str, "replay-ingest"),
    "TEAMS_FILE": (optional_path, ""),
    "WEB_HOST": (str, "127.0.0.1"),
    "WEB_PORT": (port, "6066"),
    "METRICS_HOST": (str, "127.0.0.1"),
    "METRICS_PORT": (port, "9464"),
    "PARTITIONS": (positive_int, "4"),
    "CHUNK_TTL_SECONDS": (positive_int, "3600"),
    "CHUNK_EXPIRY_INTERVAL_SECONDS": (positive_float, "30"),
    "MAX_MESSAGE_BYTES": (positive_int, str(4 * 1024 * 1024)),
    "MAX_DECODED_BYTES": (positive_int, str(64 * 1024 * 1024)),
    # a take: the messages an agent takes from its topic at once (at most this many,
    # waiting at most this long), acknowledged once all it produced is durable
    "TAKE_MAX_MESSAGES": (positive_int, "2000"),
    "TAKE_MAX_SECONDS": (positive_float, "1.0"),
    "TAKES_IN_FLIGHT": (non_negative_int, "2"),
    "SINK_MAX_ROWS": (positive_int, "5000"),
    "SINK_MAX_BYTES": (positive_int, str(64 * 1024 * 1024)),
    "SINK_RETRY_MAX_SECONDS": (positive_float, "30"),
    "STREAM_BUFFER_MAXSIZE": (positive_int, "4096"),
    # Kafka's producer batch size (its record batches, not ours). 1 byte = one record per
    # record batch: Tansu reports a wrong end offset otherwise and changelog recovery
    # stops early (DESIGN). Raise it (e.g. 1048576) on Apache Kafka.
    "PRODUCER_MAX_BATCH_BYTES": (positive_int, "1"),
    "STORE": (store, "rocksdb://"),
    "SUMMARY_WINDOW_SECONDS": (positive_int, "3600"),
    "SUMMARY_WINDOW_EXPIRY_SECONDS": (positive_int, "600"),
    "SUMMARY_FLUSH_INTERVAL_SECONDS": (positive_float, "10"),
    "SUMMARY_DEDUP_SECONDS": (positive_int, "86400"),
    "S3_URL": (s3_url, "s3://replay-ingest/session_recordings"),
    # empty: the AWS endpoint of the region (AWS_* variables); else MinIO, SeaweedFS, moto
    "S3_ENDPOINT_URL": (optional_http_url, "http://127.0.0.1:8333"),
    # how long the spill retries one S3 call through transient failures (then next run)
    "S3_RETRY_SECONDS": (positive_float, "300"),
    "SPILL_INTERVAL_SECONDS": (positive_float, "3600"),
    "RETENTION_DAYS": (positive_int, "7"),
    "PERFORMANCE_TTL_DAYS": (positive_int, "21"),
    # the key of POST /api/sql; empty: generated once into $REPLAY_DATA_DIR/admin.key
    "ADMIN_KEY": (secret, ""),
    "SQL_MAX_EXECUTION_SECONDS": (positive_float, str(_LIMITS.max_execution_seconds)),
    "SQL_MAX_MEMORY_BYTES": (positive_int, str(_LIMITS.max_memory_bytes)),
    "SQL_MAX_RESULT_ROWS": (positive_int, str(_LIMITS.max_result_rows)),
    "SQL_MAX_QUERY_BYTES": (positive_int, str(_LIMITS.max_query_bytes)),
    "LOG_LEVEL": (log_level, "INFO"),
    # Bounds on what input can make the worker hold or produce (README "Reliability").
    "MAX_SET_BYTES": (positive_int, str(32 * 1024 * 1024)),
    # no record the worker produces (repartition, changelog, statistics) is larger: 1 MB
    # is Apache Kafka's default message.max.bytes
    "MAX_RECORD_BYTES": (positive_int, "1000000"),
    "MAX_OPEN_SETS_PER_TEAM": (positive_int, "10000"),  # per partition
    "MAX_OPEN_WINDOWS_PER_TEAM": (positive_int, "50000"),  # per partition
    "MAX_FUTURE_SKEW_SECONDS": (positive_int, "86400"),
    "MAX_EVENT_AGE_DAYS": (positive_int, "365"),
    # The capture endpoint (`replay-ingest capture`, also started by `run`).
    "CAPTURE_HOST": (str, "127.0.0.1"),
    "CAPTURE_PORT": (port, "8010"),
    # no message it writes is larger: 1 MB is Apache Kafka's default message.max.bytes
    "CAPTURE_MAX_MESSAGE_BYTES": (positive_int, "1000000"),
    # a request body as sent (compressed) and once decompressed: past either, 413
    "CAPTURE_MAX_BODY_BYTES": (positive_int, str(20 * 1024 * 1024)),
    "CAPTURE_MAX_DECODED_BYTES": (positive_int, str(64 * 1024 * 1024)),
    # per token: a bucket of CAPTURE_RATE_BURST requests refilled at this rate; empty: 429
    "CAPTURE_RATE_PER_SECOND": (positive_float, "50"),
    "CAPTURE_RATE_BURST": (positive_int, "200"),
    # how long a request waits for Kafka to acknowledge its messages: past it, 503
    "CAPTURE_PRODUCE_TIMEOUT_SECONDS": (positive_float, "10"),
    # where rrweb and posthog-js are installed (npm); empty: $REPLAY_DATA_DIR/js/node_modules
    "CAPTURE_NODE_MODULES": (optional_path, ""),
    # The player page (/replay/{team_id}/{session_id}) and its share links.
    # the HMAC key of share tokens; empty: generated once into $REPLAY_DATA_DIR/share.key
    "SHARE_KEY": (secret, ""),
    "SHARE_EXPIRES_SECONDS": (positive_int, str(7 * 86400)),  # a share link's default life
    # the worker's web server as viewers reach it (share URLs); empty: http://WEB_HOST:WEB_PORT
    "PUBLIC_URL": (optional_http_url, ""),
    # rrweb-player's JS and CSS (npm); empty: $REPLAY_DATA_DIR/player
    "PLAYER_ASSETS_DIR": (optional_path, ""),
    # a session with a batch written this recently is live: its page follows it
    "LIVE_WINDOW_SECONDS": (positive_int, "300"),
    "LIVE_POLL_SECONDS": (positive_float, "1.0"),  # how often a live page's stream looks
    "MAX_LIVE_STREAMS": (positive_int, "64"),  # open live streams per worker; past it, 503
    # Erasure: how long an erased session or person is remembered (what arrives for it
    # later is dropped), and how often workers reload the erasures and run pending ones.
    "ERASURE_TOMBSTONE_DAYS": (positive_int, "30"),
    "ERASURE_POLL_SECONDS": (positive_float, "2"),
}

# Variable suffix -> the deprecated one it replaced, still read (with one warning per
# process) while the new variable is unset, so that deployments keep working.
_DEPRECATED = {
    "TAKE_MAX_MESSAGES": "BATCH_MAX_MESSAGES",
    "TAKE_MAX_SECONDS": "BATCH_MAX_SECONDS",
    "TAKES_IN_FLIGHT": "BATCHES_IN_FLIGHT",
}
_warned: set[str] = set()

ADMIN_KEY_FILE = "admin.key"
SHARE_KEY_FILE = "share.key"

if {k.lower() for k in _SPEC} != {f.name for f in fields(Settings)}:
    raise RuntimeError("settings spec and dataclass drifted")
SECRET_NAMES = frozenset({"ADMIN_KEY", "SHARE_KEY"})  # never printed


def mask_url(value: str) -> str:
    """`value` with the password of every URL in it replaced by ***, for logs and errors
    (a broker URL may list several, separated by `;`)."""
    masked = []
    for url in value.split(";"):
        parts = urlsplit(url)
        if parts.password:
            user = parts.username or ""
            host = parts.netloc.rpartition("@")[2]
            url = urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
        masked.append(url)
    return ";".join(masked)


def shown(name: str, value: object) -> str:
    """A setting's value as it may be printed: secrets hidden, URL passwords masked."""
    if name.upper() in SECRET_NAMES:
        return "***" if value else "''"
    return repr(mask_url(value)) if isinstance(value, str) else repr(value)


def _variable(env: Mapping[str, str], suffix: str) -> str:
    """The variable to read for `suffix`: REPLAY_<suffix>, or the deprecated one it
    replaced while only that one is set (a set deprecated one is warned about once)."""
    name, old = f"REPLAY_{suffix}", f"REPLAY_{_DEPRECATED.get(suffix, suffix)}"
    if old == name or old not in env:
        return name
    if old not in _warned:
        _warned.add(old)
        logging.getLogger(__name__).warning("%s is deprecated: set %s instead", old, name)
    return name if name in env else old


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every ``REPLAY_*`` variable; raise SettingsError naming the bad one."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for suffix, (parse, default) in _SPEC.items():
        name = _variable(env, suffix)
        raw = env.get(name, default)
        if raw is None:
            continue
        try:
            values[suffix.lower()] = parse(raw.strip())
        except ValueError as exc:
            raise SettingsError(f"{name}={shown(suffix, raw)} is invalid: {exc}") from None
    data_dir = Path(values["data_dir"]).expanduser().resolve()
    values["data_dir"] = data_dir
    values.setdefault("clickhouse_url", f"chdb://{data_dir / 'clickhouse'}")
    if not values["app_id"].replace("-", "").replace("_", "").isalnum():
        raise SettingsError(f"REPLAY_APP_ID={values['app_id']!r} is invalid: use [A-Za-z0-9_-]")
    if values["teams_file"] is not None and not values["teams_file"].is_file():
        raise SettingsError(f"REPLAY_TEAMS_FILE={str(values['teams_file'])!r} is not a file")
    return Settings(**values)


def read_admin_key(settings: Settings) -> str | None:
    """The admin key: REPLAY_ADMIN_KEY, else the worker's generated file, else None."""
    return _read_key(settings.admin_key, settings.admin_key_path)


def ensure_admin_key(settings: Settings) -> str:
    """The admin key of ``POST /api/sql`` (see ensure_key)."""
    return ensure_key(settings.admin_key, settings.admin_key_path)


def ensure_share_key(settings: Settings) -> str:
    """The HMAC key of share tokens (see ensure_key): the CLI that signs a link and the
    worker that checks it read the same file of the same data directory."""
    return ensure_key(settings.share_key, settings.share_key_path)


def _read_key(configured: str, path: Path) -> str | None:
    if configured:
        return configured
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def ensure_key(configured: str, path: Path) -> str:
    """`configured` when set, else the key in `path`, generating the file (mode 0600) on
    first use and keeping it after.

    The key is written to a private temporary file and hard-linked into place, so a
    reader never sees a partial key and two processes starting at once agree on one.
    """
    existing = _read_key(configured, path)
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(descriptor, f"{secrets.token_urlsafe(32)}\n".encode())
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    try:
        os.link(temporary, path)  # fails if another process made one first: theirs wins
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)
    key = _read_key(configured, path)
    if not key:
        raise SettingsError(f"{path} is empty: delete it to generate a new key")
    return key
