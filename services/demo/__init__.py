"""The `runlog demo` workload: simulated agents driving runlog through its command subjects."""

from .workload import DemoReport, run_workload

__all__ = ["DemoReport", "run_workload"]
