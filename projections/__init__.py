"""The read side: DuckDB read models, projector runtime, replay, SQL."""
