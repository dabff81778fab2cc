"""Benchmarks: a grid of tasks × solvers × targets × seeds, run with resume, summarised as a
CSV, a markdown report and plots (``prunegym bench``)."""

from prunegym.bench.grid import BenchSpec, Cell, run_bench
from prunegym.bench.report import summarise, write_reports

__all__ = ["BenchSpec", "Cell", "run_bench", "summarise", "write_reports"]
