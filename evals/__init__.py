"""Evaluation runners and benchmarks against real models; never part of the default test run."""

__all__: list[str] = []
