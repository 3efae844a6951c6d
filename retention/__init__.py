"""Retention: spill sessions past their team's retention to S3 (`spill`, run by the
worker's leader on a timer, `schedule`, or by `replay-ingest spill --once`), and read
any session back whatever its tier (`read`).

A session is its archived *parts* (S3 objects, keys in sinks.s3) plus its *hot
remainder* (raw rows in ``session_recording_events``). Every part is indexed in
``session_recording_archive_parts`` with the chunk_ids whose events it holds (`index`);
a chunk_id is in at most one part, and a raw row whose chunk_id is in an indexed part is
never served (the spill deletes it, also when a duplicate of it arrives later: same
events). ``session_recording_archive`` keeps one row per session (state, key of part 0,
totals).

A part's object is JSON lines, zstd-compressed, one line per event in timestamp order.
Since the windowed format, a line is the two-element array ``["<window_id>",<event>]``
(PostHog's blob format: the window_id as a JSON string, then the rrweb event's bytes as
ingested), so a session read back from S3 still says which browser window each event
came from. Objects written before it hold bare events, one ``{...}`` per line; readers
take both (a line starting with ``{`` is a bare event of an unknown window, ""). No
line holds a raw CR or LF: those bytes can only be whitespace inside a valid event and
become spaces where events become lines (`read.ordered_events`).

Below the stream stages, beside them: this package uses config, metrics and sinks, never
streams. Its statements are in sinks.clickhouse.queries.
"""
