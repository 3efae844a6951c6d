"""What the erasure tombstone check costs on the hot path (streams.tombstones).

    python3.11 -m bench.tombstones [--sessions 60] [--seed 3] [--rounds 5]

The same workload as bench.pipeline, through ingest -> reassemble -> summarize
(bench/chain.py, no sink), with:

* no tombstones (what every worker runs until a team erases something: one attribute
  test per check);
* 10,000 tombstones for other sessions, plus erased persons and a `before` moment of
  another team (every check does its set and dict lookups, none matches).

Runs alternate, each first in every other round (the second run of a round was seen
~5% slower whichever it was), best of `rounds` each. Then the check
alone, per call, against an empty function call: the figure beside the run without it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import timeit
from collections.abc import Callable

from bench.chain import StageChain
from bench.workloads import session_messages
from streams.tombstones import TombstoneHolder, TombstoneRow


def many_tombstones(count: int) -> TombstoneHolder:
    """`count` erased sessions of team 1 that the workload never sends, 100 erased
    persons of team 1 and a date for team 99: no workload message is erased."""
    rows: list[TombstoneRow] = [(1, "session", [f"erased-{i}" for i in range(count)], "", 0)]
    rows += [(1, "person", [], f"someone-{i}", 0) for i in range(100)]
    rows.append((99, "before", [], "", 2**40))
    holder = TombstoneHolder(lambda: rows)
    holder.refresh()
    return holder


def run(messages: list[bytes], holder: TombstoneHolder) -> float:
    """Seconds for the workload through the chained stages (the sets released at the end)."""
    chain = StageChain(None, summarize=True, tombstones=holder)
    started = time.perf_counter()
    for raw in messages:
        chain.process(raw)
        if chain.rows >= 500:
            asyncio.run(chain.flush())
    asyncio.run(chain.flush())
    return time.perf_counter() - started


def per_call(check: Callable[[], object], number: int = 1_000_000) -> float:
    """ns per call, best of 5."""
    return min(timeit.repeat(check, number=number, repeat=5)) / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    messages = session_messages(args.sessions, args.seed)
    modes = {"none": TombstoneHolder(), "10,000": many_tombstones(10_000)}
    best = dict.fromkeys(modes, float("inf"))
    for turn in range(args.rounds):
        order = list(modes.items())
        for name, holder in order if turn % 2 else reversed(order):  # the second run is slower
            best[name] = min(best[name], run(messages, holder))
    print(f"workload: {len(messages)} messages, best of {args.rounds}, ingest+reassemble+summarize")
    for name, seconds in best.items():
        rate, cost = len(messages) / seconds, seconds / len(messages) * 1e6
        print(f"tombstones {name:>7}: {rate:>9,.0f} msg/s {cost:>8.1f} us/msg")
    delta = (best["10,000"] - best["none"]) / len(messages) * 1e6
    print(f"difference: {delta:+.2f} us/msg (run to run noise; the check alone is below)")
    empty, full = modes["none"].current, modes["10,000"].current

    def nothing(team: int, session: str, person: str, first: int | None) -> bool:
        return False

    base = per_call(lambda: nothing(1, "s", "d", 5))
    none = per_call(lambda: empty.erased(1, "s", "d", 5))
    many = per_call(lambda: full.erased(1, "s", "d", 5))
    print(
        f"one check: no-op call {base:.0f} ns, no tombstones {none:.0f} ns, "
        f"10,000 tombstones {many:.0f} ns (one to three checks per batch)"
    )


if __name__ == "__main__":
    main()
