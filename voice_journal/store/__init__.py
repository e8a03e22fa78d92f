"""The journal on disk: one DuckDB file of sessions, turns and their audio."""
