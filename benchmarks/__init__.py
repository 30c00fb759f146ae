"""Benchmark scripts: each prints JSON and a short table. Not timed tests."""
