"""Chunk reassembly, tested as the pure class it is (a dict stands in for the table)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.models import SourceRef
from streams.reassembly import Outcome, PendingChunks
from streams.topics import CAPTURE_TOPIC

SOURCE = SourceRef(CAPTURE_TOPIC, 0, 0)


def split(payload: bytes, parts: int) -> list[bytes]:
    size = -(-len(payload) // parts)
    return [payload[i * size : (i + 1) * size] for i in range(parts)]


@st.composite
def interleavings(draw: st.DrawFn) -> tuple[dict[str, bytes], list[tuple[str, int, int, bytes]]]:
    """Several sets, each cut into pieces; some pieces repeated; everything shuffled."""
    originals = draw(
        st.dictionaries(
            st.from_regex(r"1:s[0-9]:[a-f0-9]{1,6}", fullmatch=True),
            st.binary(min_size=4, max_size=300),
            min_size=1,
            max_size=6,
        )
    )
    stream = []
    for key, payload in originals.items():
        parts = draw(st.integers(1, min(4, len(payload))))
        stream += [(key, i, parts, piece) for i, piece in enumerate(split(payload, parts))]
    duplicates = draw(st.lists(st.sampled_from(stream), max_size=len(stream)))
    return originals, draw(st.permutations(stream + duplicates))


@settings(max_examples=300, deadline=None)
@given(interleavings())
def test_any_shuffled_duplicated_interleaving_reassembles(case: tuple) -> None:
    originals, stream = case
    store: dict[bytes, bytes] = {}
    pending = PendingChunks(store)
    joined: dict[str, bytes] = {}
    for offset, (key, index, count, piece) in enumerate(stream):
        outcome = pending.add(key, index, count, piece, SourceRef("t", 0, offset), 0, 1.0)
        assert outcome is not Outcome.MISMATCH
        if outcome is Outcome.COMPLETE:
            assert key not in joined
            joined[key] = b"".join(p for p, _ in pending.pieces(key))
            pending.release(key, 2.0)
    assert joined == originals
    assert all(k.startswith(b"s|") for k in store), "pieces of finished sets are dropped"
    assert max(map(len, store.values()), default=0) < 200, "state records stay small"


def test_complete_reports_without_forgetting_until_release() -> None:
    """A crash between COMPLETE and release must be able to complete the set again."""
    pending = PendingChunks({})
    assert pending.add("k", 0, 2, b"ab", SOURCE, 0, 1.0) is Outcome.STORED
    assert pending.add("k", 1, 2, b"cd", SOURCE, 0, 1.0) is Outcome.COMPLETE
    # the pieces come again after a crash (the store kept them): complete again, any order
    assert pending.add("k", 0, 2, b"ab", SOURCE, 0, 1.5) is Outcome.COMPLETE
    assert pending.add("k", 1, 2, b"cd", SOURCE, 0, 1.5) is Outcome.COMPLETE
    assert [p for p, _ in pending.pieces("k")] == [b"ab", b"cd"]
    pending.release("k", 2.0)
    assert pending.add("k", 0, 2, b"ab", SOURCE, 0, 3.0) is Outcome.ALREADY_DONE
    assert pending.pieces("k") == []


def test_count_mismatch_is_reported() -> None:
    pending = PendingChunks({})
    pending.add("k", 0, 3, b"a", SOURCE, 0, 1.0)
    assert pending.add("k", 1, 2, b"b", SOURCE, 0, 1.0) is Outcome.MISMATCH


def test_expiry_returns_held_pieces_of_its_partition_only() -> None:
    store: dict[bytes, bytes] = {}
    pending = PendingChunks(store)
    pending.add("old", 0, 3, b"p0", SourceRef("t", 2, 10), 1, now=0.0)
    pending.add("old", 2, 3, b"p2", SourceRef("t", 3, 11), 1, now=5.0)
    pending.add("young", 0, 2, b"y", SOURCE, 1, now=50.0)
    pending.add("elsewhere", 0, 2, b"e", SOURCE, 2, now=0.0)
    pending.add("done", 0, 1, b"d", SOURCE, 1, now=0.0)
    pending.release("done", 0.0)
    pending.add("complete", 0, 1, b"c", SOURCE, 1, now=0.0)  # its row is being written
    assert pending.pending() == (4, 7)

    expired = pending.expire(partition=1, now=60.0, ttl=60.0, keep={"complete"})

    assert [(e.set_key, e.pieces) for e in expired] == [
        ("old", [(b"p0", SourceRef("t", 2, 10)), (b"p2", SourceRef("t", 3, 11))])
    ]
    assert pending.state("old") is None and pending.state("done") is None
    assert pending.state("young") is not None and pending.state("elsewhere") is not None
    assert pending.state("complete") is not None
    assert pending.pending() == (3, 3)
    # a complete set nobody is writing (its decode failed unexpectedly) goes a TTL later
    assert pending.expire(partition=1, now=100.0, ttl=60.0) == []
    assert [e.set_key for e in pending.expire(partition=1, now=121.0, ttl=60.0)] == [
        "young",
        "complete",
    ]


def test_bounds_oversized_sets_and_team_caps() -> None:
    pending = PendingChunks({}, max_set_bytes=10, max_sets_per_team=2)
    assert pending.add("1:s:a", 0, 3, b"12345", SOURCE, 0, 0.0, team_id=1) is Outcome.STORED
    assert pending.add("1:s:a", 1, 3, b"123456", SOURCE, 0, 0.0, team_id=1) is Outcome.OVERSIZED
    dropped = pending.reject("1:s:a", 3, 0, 1.0)
    assert [piece for piece, _ in dropped.pieces] == [b"12345"]
    assert pending.add("1:s:a", 2, 3, b"1", SOURCE, 0, 2.0, team_id=1) is Outcome.REJECTED
    assert pending.add("1:s:b", 0, 2, b"1", SOURCE, 0, 0.0, team_id=1) is Outcome.STORED
    assert pending.add("1:s:c", 0, 2, b"1", SOURCE, 0, 0.0, team_id=1) is Outcome.STORED
    assert pending.add("1:s:d", 0, 2, b"1", SOURCE, 0, 0.0, team_id=1) is Outcome.TEAM_CAP
    assert pending.add("2:s:d", 0, 2, b"1", SOURCE, 0, 0.0, team_id=2) is Outcome.STORED
    assert pending.add("1:s:d", 0, 2, b"1", SOURCE, 1, 0.0, team_id=1) is Outcome.STORED
    pending.release("1:s:b", 3.0)  # a finished set frees its team's slot
    assert pending.add("1:s:e", 0, 2, b"1", SOURCE, 0, 0.0, team_id=1) is Outcome.STORED


def test_the_index_rebuilt_from_the_store_expires_the_same() -> None:
    """After a restart or rebalance the index is rebuilt from the (changelog) store."""
    store: dict[bytes, bytes] = {}
    first = PendingChunks(store)
    for n in range(20):
        first.add(f"1:s:{n}", 0, 2, b"x", SOURCE, n % 2, float(n), team_id=1)
    first.add("1:s:done", 0, 1, b"x", SOURCE, 0, 0.0, team_id=1)
    first.release("1:s:done", 5.0)
    again = PendingChunks(dict(store))
    want = [e.set_key for e in first.expire(0, 70.0, 60.0)]
    assert (
        [e.set_key for e in again.expire(0, 70.0, 60.0)]
        == want
        == [f"1:s:{n}" for n in range(0, 11, 2)]
    )
    assert again.state("1:s:done") is None
