"""Helpers every stage shares, one module a job: `io` (atomic writes, locks), `progress` (progress lines),
`fmt` (bytes, counts, durations), `metrics` (reading metrics.jsonl)."""
