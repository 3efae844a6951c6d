"""Erasure: delete one session, every session of a person (``distinct_id``) or everything
of a team before a date, from every stored tier, and keep the proof.

A request is recorded durably first (a row of ``session_recording_deletions``, state
``requested``, `request`), then carried out by the executor (`execute`), which runs on
the worker's leader every ``REPLAY_ERASURE_POLL_SECONDS`` (`schedule`) or in-process in
``replay-ingest delete`` while no worker runs. The executor resolves the sessions and
records them with the counts it found (``running``) before deleting anything, so a crash
anywhere resumes where it stopped and the proof still counts the whole request; it then
deletes the ClickHouse rows (lightweight deletes) and the S3 objects, sweeps again for
batches that were in flight, and records ``done`` with the counts per tier, the S3 keys
and the time. Meanwhile the workers refuse what arrives for an erased session or person
(the tombstones, sinks.clickhouse.erasure.tombstones, loaded by the stream side).

Beside retention, below the API: this package uses config, metrics and sinks, never
streams or api. Its statements are in sinks.clickhouse.erasure.
"""
