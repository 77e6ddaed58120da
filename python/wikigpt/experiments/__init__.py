"""Experiments over trained runs: `grow` (train in stages as parts are added), `report` and `plot` (curves and
tables read from the runs' metrics.jsonl)."""
