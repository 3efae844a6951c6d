"""Synthetic recordings, deterministic per seed, for tests, benchmarks and `run`.

- `sessions`: the options (`GenerateOptions`) and who is recorded: each session's ids,
  URLs, start and random stream, shared by the two outputs below.
- `rrweb`: the rrweb events of one session (`SessionWriter`), window by window.
- `capture`: those events as capture messages (`generate`), batch by batch, with the
  ground truth of each batch (`BatchTruth`).
- `items`: the same batches as `$snapshot_items` messages, PostHog's current format
  (`generate_items`), plain, gzip or lz4, some events `cv`-compressed, with their truth.
- `performance`: PerformanceEntry reports of the same sessions (`generate_performance`).
"""
