"""Telling people's clicks from scanners' and bots': signals, shipped data, verdicts."""
