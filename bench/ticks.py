"""The event loop's time per periodic tick, at 100k open chunk sets and 100k open windows.

    python3.11 -m bench.ticks [--sets 100000] [--windows 100000] [--teams 10]
        [--partitions 2] [--rounds 5] [--stores dict,rocksdb]

Fills a PendingChunks with `--sets` open chunk sets (one piece of 1 KiB held of 2-4,
five sets per session) and a SessionWindows with `--windows` open windows (one per
session, two batches each, counted through SummarizeStage), over `--teams` teams and
the worker's partitioning of sessions over `--partitions` partitions. Then times one
tick message per partition through the worker's stages (`ReassembleStage.handle`,
`SummarizeStage.handle` plus its `after` callback: `flushed` and `forget`), summed over
the partitions, with nothing due, 1 % due and everything due; the rebuild of the
indexes from the store after an assignment; and, labelled "before", the full scan the
code before the indexes did on every tick (reproduced below). Not timed: the DLQ sends
of expired pieces and the sink's writes of window rows (Kafka and ClickHouse I/O).

Stores: `dict`, and `rocksdb`: one rocksdict database per partition opened as Faust's
RocksDB store opens it (raw mode), reads and writes routed to the partition of the
message being handled, keys iterated over every partition (as a Faust table does),
without Faust's changelog. Prints a table (ms per tick, us per due item) and a summary
line per store.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path

import msgspec
from rocksdict import Options, Rdict

from bench.chain import default_settings
from bench.workloads import REGISTRY
from config.settings import Settings
from sinks.clickhouse.summary import SessionFigures
from streams.clicks import span_of
from streams.loop import STATS_RECORD_BYTES, partition_of
from streams.models import BatchStats, SourceRef, encode_stats
from streams.output import TICK_HEADER, Message
from streams.parts import WindowState
from streams.reassembly import ChunkSetState, Outcome, PendingChunks
from streams.stages import Decoder, ReassembleStage, SummarizeStage
from streams.topics import REASSEMBLE, SUMMARIZE, repartition_topic
from streams.windows import SessionWindows

PIECE = b"x" * 1024
SETS_PER_SESSION = 5
SET_SPREAD_SECONDS = 0.001  # between the first pieces of consecutive sets
HOUR_MS = 3_600_000


class PartitionedRocks(MutableMapping[bytes, bytes]):
    """One RocksDB per partition, routed like Faust's store: writes and reads go to the
    partition of the current message (`partition`), keys come from every partition."""

    def __init__(self, directory: Path, partitions: int) -> None:
        options = Options(raw_mode=True)
        self.dbs = [Rdict(str(directory / str(p)), options) for p in range(partitions)]
        self.partition = 0

    def __getitem__(self, key: bytes) -> bytes:
        value = self.dbs[self.partition].get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:  # type: ignore[override]
        value = self.dbs[self.partition].get(key)
        return default if value is None else value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.dbs[self.partition].put(key, value)

    def __delitem__(self, key: bytes) -> None:
        self.dbs[self.partition].delete(key)

    def __iter__(self) -> Iterator[bytes]:
        for db in self.dbs:
            yield from db.keys()

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def close(self) -> None:
        for db in self.dbs:
            db.close()


Store = MutableMapping[bytes, bytes]


def on_partition(store: Store, partition: int) -> None:
    """What Faust's event context does for a table: route to the message's partition."""
    if isinstance(store, PartitionedRocks):
        store.partition = partition


@dataclasses.dataclass
class Bench:
    """The two stages under test, their stores, and what the fill put where."""

    settings: Settings
    reassemble: ReassembleStage
    summarize: SummarizeStage
    sets_store: Store
    windows_store: Store
    start: float  # wall clock of the fill
    sets: int
    hour_ms: int  # the event-time hour every batch is in
    rng: random.Random
    sessions: list[tuple[int, str]] = dataclasses.field(default_factory=list)  # one window each

    @property
    def pending(self) -> PendingChunks:
        return self.reassemble.pending

    @property
    def windows(self) -> SessionWindows:
        return self.summarize.windows

    def partitions(self) -> range:
        return range(self.settings.partitions)


def ids(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def fill_sets(bench: Bench, teams: int) -> None:
    """`sets` open sets, five per session, first pieces SET_SPREAD_SECONDS apart."""
    rng, topic = bench.rng, repartition_topic(bench.settings.app_id, REASSEMBLE)
    for number in range(bench.sets):
        if number % SETS_PER_SESSION == 0:
            team, session = 1 + (number // SETS_PER_SESSION) % teams, ids(rng)
            partition = partition_of(f"{team}:{session}", bench.settings.partitions)
        set_key = f"{team}:{session}:{ids(rng)}"
        on_partition(bench.sets_store, partition)
        first_seen = bench.start + number * SET_SPREAD_SECONDS
        source = SourceRef(topic, partition, number)
        count = rng.randint(2, 4)
        outcome = bench.pending.add(set_key, 0, count, PIECE, source, partition, first_seen, team)
        assert outcome is Outcome.STORED, f"{outcome}: raise --teams (the cap is per team)"


def batch(rng: random.Random, team: int, session: str, start_ms: int) -> BatchStats:
    """One batch's statistics, shaped like the generator's incremental batches."""
    first = start_ms + rng.randrange(0, 300_000)  # within the first 5 minutes of the hour
    last = first + rng.randrange(1_000, 60_000)
    urls = [f"https://app.example.com/page/{rng.randrange(50)}" for _ in range(rng.randint(1, 3))]
    window = ids(rng)
    clicks = [(first + 300 * n, 100.0 + n, 200.0) for n in range(3)]
    figures = SessionFigures(
        distinct_id=ids(rng),
        min_first_timestamp=first,
        max_last_timestamp=last,
        first_url=urls[0],
        first_url_timestamp=first,
        all_urls=urls,
        click_count=3,
        keypress_count=5,
        mouse_activity_count=40,
        console_log_count=2,
        console_warn_count=1,
        console_error_count=0,
        active_segments=[(first, last)],
        size=14_000,
        event_count=60,
        message_count=1,
        has_full_snapshot=rng.random() < 0.1,
        window_ids=[window],
        retention_days=7,
        click_spans=[span for span in [span_of(window, clicks)] if span is not None],
    )
    return BatchStats(team, session, ids(rng), figures)


def count_batches(bench: Bench, batches: list[BatchStats], now: float) -> None:
    """Batches into their windows through SummarizeStage, as the loop sends them."""
    by_partition: dict[int, list[BatchStats]] = {}
    for stats in batches:
        key = f"{stats.team_id}:{stats.session_id}"
        by_partition.setdefault(partition_of(key, bench.settings.partitions), []).append(stats)
    topic = repartition_topic(bench.settings.app_id, SUMMARIZE)
    for partition, group in by_partition.items():
        on_partition(bench.windows_store, partition)
        for record in encode_stats(group, STATS_RECORD_BYTES):
            out = bench.summarize.handle(Message(topic, partition, 0, None, record), now)
            assert not out.letters, out.letters[0].rejection


def fill_windows(bench: Bench, count: int, teams: int) -> None:
    """`count` sessions with one open window each (two batches), in one event-time hour."""
    rng = bench.rng
    bench.sessions += [(1 + number % teams, ids(rng)) for number in range(count)]
    batches = [batch(rng, t, s, bench.hour_ms) for t, s in bench.sessions for _ in range(2)]
    for start in range(0, len(batches), 2000):  # 2000 at a time, as the worker's takes
        count_batches(bench, batches[start : start + 2000], bench.start)


def tick(stage: ReassembleStage | SummarizeStage, store: Store, partition: int, now: float) -> int:
    """One tick message through the stage, then its `after` callbacks; the items due."""
    on_partition(store, partition)
    headers = ((TICK_HEADER, b"1"),)
    out = stage.handle(Message("tick", partition, 0, None, b"", headers), now)
    for after in out.after:
        after()
    return len(out.letters) + len(out.rows)


def timed(work: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    due = work()
    return time.perf_counter() - started, due


# ---- "before": the full scans per tick of the code before the indexes, reproduced ----

_decode_state = msgspec.msgpack.Decoder(ChunkSetState).decode
_decode_window = msgspec.msgpack.Decoder(WindowState).decode


def before_reassemble(store: Store, partition: int, now: float, ttl: float) -> int:
    """The old ReassembleStage tick: `expire` decoded the state of every set in the
    store to find those of this partition past the TTL, then `pending` decoded every
    state again for the gauges. (Nothing is deleted here: run it with nothing due.)"""
    due = 0
    for state in _old_states(store):
        if state.partition == partition:
            since = state.first_seen if state.done_at is None else state.done_at
            due += now - since >= ttl
    sets = held = 0
    for state in _old_states(store):
        if state.done_at is None:
            sets, held = sets + 1, held + state.piece_bytes
    return due


def _old_states(store: Store) -> Iterator[ChunkSetState]:
    for key in list(store.keys()):
        if key.startswith(b"s|") and (raw := store.get(key)) is not None:
            yield _decode_state(raw)


def before_summarize(windows: SessionWindows, partition: int, now: float) -> int:
    """The old SummarizeStage tick: `due`, the `sessions` gauge and (after the write)
    `forget` each decoded every window in the store to find those of this partition.
    (Nothing is written here: run it with nothing due.)"""
    due = 0
    for window in _old_windows(windows.store, partition):  # due
        watermark = windows.watermark(partition, window.team_id)
        ended = watermark >= window.window_start + windows.size_ms + windows.expiry_ms
        for part in window.parts:
            idle = now - part.updated_at >= windows.expiry_ms / 1000
            if part.closed_at is None and (ended or idle or part.version > part.flushed_version):
                due += 1
    held: dict[str, bool] = {}
    for window in _old_windows(windows.store, partition):  # sessions
        key = f"{window.team_id}:{window.session_id}"
        full = any(p.aggregate.has_full_snapshot for p in window.parts)
        held[key] = held.get(key, False) or full
    for window in _old_windows(windows.store, partition):  # forget
        closed = [p.closed_at for p in window.parts]
        due += all(c is not None and now - c >= windows.dedup_seconds for c in closed)
    return due


def _old_windows(store: Store, partition: int) -> Iterator[WindowState]:
    for key in list(store.keys()):
        if key.startswith(b"w|") and (raw := store.get(key)) is not None:
            window = _decode_window(raw)
            if window.partition == partition:
                yield window


# ---- measurements ----


@dataclasses.dataclass
class Line:
    """One row of the table: the median of the rounds' seconds, and the items due."""

    stage: str
    case: str
    seconds: list[float]
    due: int | None

    @property
    def ms(self) -> float:
        return statistics.median(self.seconds) * 1000

    def row(self, store: str) -> str:
        due = "-" if self.due is None else f"{self.due:,}"
        per = f"{self.ms * 1000 / self.due:.2f}" if self.due else "-"
        runs = len(self.seconds)
        return (
            f"{store:<8} {self.stage:<11} {self.case:<44} {due:>8} "
            f"{self.ms:>10.2f} {per:>8} {runs:>5}"
        )


HEADER = (
    f"{'store':<8} {'stage':<11} {'case':<44} {'due':>8} {'ms/tick':>10} {'us/due':>8} {'runs':>5}"
)


def every_partition(bench: Bench, work: Callable[[int], int]) -> Callable[[], int]:
    """One tick round: `work` on every partition, the items due summed."""
    return lambda: sum(work(partition) for partition in bench.partitions())


def rounds_of(work: Callable[[], int], rounds: int) -> tuple[list[float], int]:
    """Seconds of each round and the items due in the last."""
    seconds, due = [], 0
    for _ in range(rounds):
        took, due = timed(work)
        seconds.append(took)
    return seconds, due


def reassemble_lines(bench: Bench, rounds: int) -> list[Line]:
    store, ttl = bench.sets_store, bench.settings.chunk_ttl_seconds
    quiet = bench.start + bench.sets * SET_SPREAD_SECONDS + 1  # no set is a TTL old

    def ticks(now: float) -> Callable[[], int]:
        return every_partition(bench, lambda p: tick(bench.reassemble, store, p, now))

    lines = [Line("reassemble", "nothing due", *rounds_of(ticks(quiet), rounds))]
    gauges = every_partition(bench, lambda p: len(bench.pending.pending()))
    seconds, _ = rounds_of(gauges, rounds)
    lines.append(Line("reassemble", "  of which the pending() gauges", seconds, None))
    before = every_partition(bench, lambda p: _routed(store, p, before_reassemble, quiet, ttl))
    lines.append(
        Line("reassemble", "before: full scan per tick", *rounds_of(before, min(rounds, 2)))
    )
    lines.append(
        Line(
            "reassemble",
            "rebuild index (assignment), per set held",
            *rebuild_sets(bench, min(rounds, 2)),
        )
    )
    step = bench.sets // 100
    seconds, due = [], 0
    for number in range(1, rounds + 1):
        now = bench.start + ttl + (number * step - 0.5) * SET_SPREAD_SECONDS
        took, due = timed(ticks(now))
        seconds.append(took)
    lines.append(Line("reassemble", "1% due (sets expired)", seconds, due))
    took, due = timed(ticks(bench.start + ttl + bench.sets))
    lines.append(Line("reassemble", "everything due: one tick (capped per partition)", [took], due))
    drained, count = drain(ticks(bench.start + ttl + bench.sets + 0.5))
    lines.append(
        Line("reassemble", f"  then {count} more ticks to expire the rest", [drained], None)
    )
    return lines


def _routed(store: Store, partition: int, work: Callable[..., int], *args: object) -> int:
    on_partition(store, partition)
    return work(store, partition, *args)


def rebuild_sets(bench: Bench, rounds: int) -> tuple[list[float], int]:
    """forget_indexes, then the first expire on every partition rebuilds them."""
    quiet = bench.start + bench.sets * SET_SPREAD_SECONDS + 1
    ttl = bench.settings.chunk_ttl_seconds

    def rebuild() -> int:
        bench.pending.forget_indexes()
        for partition in bench.partitions():
            on_partition(bench.sets_store, partition)
            bench.pending.expire(partition, quiet, ttl)
        return bench.pending.pending()[0]

    return rounds_of(rebuild, rounds)


def drain(work: Callable[[], int]) -> tuple[float, int]:
    """Tick until nothing is due (a tick handles at most TICK_LIMIT items per partition):
    the time all those ticks took, and how many there were."""
    started, count = time.perf_counter(), 0
    while work():
        count += 1
    return time.perf_counter() - started, count


def summarize_lines(bench: Bench, rounds: int) -> list[Line]:
    store, windows = bench.windows_store, bench.windows

    def ticks(now: float) -> Callable[[], int]:
        return every_partition(bench, lambda p: tick(bench.summarize, store, p, now))

    took, due = timed(ticks(bench.start + 1))
    lines = [Line("summarize", "everything due: one tick (capped per partition)", [took], due)]
    drained, count = drain(ticks(bench.start + 1.5))
    lines.append(Line("summarize", f"  then {count} more ticks to flush the rest", [drained], None))
    lines.append(Line("summarize", "nothing due", *rounds_of(ticks(bench.start + 2), rounds)))
    gauges = every_partition(bench, lambda p: sum(windows.session_counts(p)))
    seconds, _ = rounds_of(gauges, rounds)
    lines.append(Line("summarize", "  of which the session gauges", seconds, None))
    before = every_partition(bench, lambda p: _before_summarize(bench, p, bench.start + 2))
    lines.append(
        Line("summarize", "before: full scan per tick", *rounds_of(before, min(rounds, 2)))
    )
    lines.append(
        Line(
            "summarize",
            "rebuild index (assignment), per window held",
            *rebuild_windows(bench, min(rounds, 2)),
        )
    )
    seconds, due = [], 0
    for number in range(rounds):
        now = bench.start + 3 + number
        touched = bench.rng.sample(bench.sessions, len(bench.sessions) // 100)
        count_batches(bench, [batch(bench.rng, t, s, bench.hour_ms) for t, s in touched], now)
        took, due = timed(ticks(now + 0.5))
        seconds.append(took)
    lines.append(Line("summarize", "1% due (windows with new batches flushed)", seconds, due))
    lines += close_and_forget(bench, ticks)
    return lines


def _before_summarize(bench: Bench, partition: int, now: float) -> int:
    on_partition(bench.windows_store, partition)
    return before_summarize(bench.windows, partition, now)


def rebuild_windows(bench: Bench, rounds: int) -> tuple[list[float], int]:
    """forget_indexes, then the first look at every partition rebuilds them."""

    def rebuild() -> int:
        bench.windows.forget_indexes()
        return open_windows(bench)

    return rounds_of(rebuild, rounds)


def close_and_forget(bench: Bench, ticks: Callable[[float], Callable[[], int]]) -> list[Line]:
    """Every window idle past the expiry (closed), then past the dedup time (forgotten)."""
    expiry = bench.settings.summary_window_expiry_seconds
    closing = bench.start + expiry + 60
    before = open_windows(bench)
    took, _ = timed(ticks(closing))
    lines = [Line("summarize", "one tick closing windows", [took], before - open_windows(bench))]
    drained, count = drain(ticks(closing + 0.5))
    lines.append(Line("summarize", f"  then {count} more ticks to close all", [drained], None))
    before = window_keys(bench)
    forgetting = closing + bench.settings.summary_dedup_seconds + 1
    took, _ = timed(ticks(forgetting))
    lines.append(
        Line("summarize", "one tick forgetting windows", [took], before - window_keys(bench))
    )
    drained, count = drain(ticks(forgetting + 0.5))
    lines.append(Line("summarize", f"  then {count} more ticks to forget all", [drained], None))
    return lines


def open_windows(bench: Bench) -> int:
    held = 0
    for partition in bench.partitions():
        on_partition(bench.windows_store, partition)
        held += bench.windows.open_windows(partition)
    return held


def window_keys(bench: Bench) -> int:
    return sum(1 for key in bench.windows_store if key.startswith(b"w|"))


# ---- the run ----


def make_bench(settings: Settings, stores: list[Store], args: argparse.Namespace) -> Bench:
    """The worker's two stateful stages over `stores`, bounded as the worker's."""
    pending = PendingChunks(stores[0], settings.max_set_bytes, settings.max_open_sets_per_team)
    windows = SessionWindows(
        stores[1],
        settings.summary_window_seconds * 1000,
        settings.summary_window_expiry_seconds * 1000,
        settings.summary_dedup_seconds,
        settings.max_open_windows_per_team,
    )
    start = time.time()
    decoder = Decoder(settings, REGISTRY)
    return Bench(
        settings,
        ReassembleStage(decoder, pending),
        SummarizeStage(windows),
        stores[0],
        stores[1],
        start,
        args.sets,
        int(start * 1000) // HOUR_MS * HOUR_MS,
        random.Random(args.seed),
    )


def run(kind: str, settings: Settings, args: argparse.Namespace, tmp: Path) -> tuple[float, float]:
    """Fill, measure and print one kind of store; (nothing due, before) in ms per tick."""
    stores = [_store(kind, tmp / name, settings.partitions) for name in ("sets", "windows")]
    try:
        bench = make_bench(settings, stores, args)
        started = time.perf_counter()
        fill_sets(bench, args.teams)
        filled = time.perf_counter()
        fill_windows(bench, args.windows, args.teams)
        print(
            f"{kind}: filled {args.sets:,} sets in {filled - started:.1f} s, "
            f"{args.windows:,} windows in {time.perf_counter() - filled:.1f} s"
        )
        lines = reassemble_lines(bench, args.rounds) + summarize_lines(bench, args.rounds)
    finally:
        for store in stores:
            if isinstance(store, PartitionedRocks):
                store.close()
    print(HEADER)
    for line in lines:
        print(line.row(kind))
    quiet = sum(line.ms for line in lines if line.case == "nothing due")
    before = sum(line.ms for line in lines if line.case.startswith("before"))
    return quiet, before


def _store(kind: str, directory: Path, partitions: int) -> Store:
    if kind == "dict":
        return {}
    directory.mkdir(parents=True)
    return PartitionedRocks(directory, partitions)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", type=int, default=100_000)
    parser.add_argument("--windows", type=int, default=100_000)
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--stores", default="dict,rocksdb")
    args = parser.parse_args()
    settings = dataclasses.replace(default_settings(), partitions=args.partitions)
    print(
        f"{args.sets:,} open sets and {args.windows:,} open windows, {args.teams} teams, "
        f"{args.partitions} partitions; ms per tick = one tick of the stage on every "
        f"partition (+ its after callback); median of the runs"
    )
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.stores.split(","):
            quiet, before = run(kind, settings, args, Path(tmp) / kind)
            summary.append(
                f"{kind}: tick at {args.sets // 1000}k open sets and {args.windows // 1000}k "
                f"open windows: {quiet:.1f} ms (nothing due) vs {before:.1f} ms full scan"
            )
    print("\n".join(summary))


if __name__ == "__main__":
    main()
