"""Benchmarks: figures measured against the emulator, outside the test run."""
