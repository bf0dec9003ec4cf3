"""The benchmark suite: what an SLAF costs against its peers and the activations it replaces, the
budgets, the regression check and the reports.

Modules, each one job:

* :mod:`.settings` — what a run covers (device, dtypes, sizes, backends, peers, degrees);
* :mod:`.workloads` — the benchmarked callables (SLAF backends, peers, activations, copy, layer), bytes
  moved, peak memory, the slowdown test hook;
* :mod:`.runs` — a pytest-benchmark JSON as records; the saved runs of this machine, with their commit;
* :mod:`.budgets` — budgets.toml (budgets and goals) and their check;
* :mod:`.compare` — this run against a saved one: bootstrap intervals, and a threshold from the measured
  run-to-run spread;
* :mod:`.counts` — instructions counted under valgrind (`bench --counts`), deterministic under load;
* :mod:`.history` — each benchmark across the saved runs in commit order, time and instructions;
* :mod:`.trial` — the check's false alarms, detections and budgets held (`bench --trial N`);
* :mod:`.report` — kernels.md, its figures, reports/bench/fit.md, the printed summary;
* :mod:`.runtable` — the short kernel-cost table of `slaf-approx run`;
* :mod:`.command` — `slaf-approx bench` once parsed: the pytest command line, the timed run, the
  counts, the history, the trial (cli parses and prints); the pytest files themselves are in ``suite/``.

pytest-benchmark does the timing; torch is imported inside the functions that need it.
"""

from .budgets import (
    BUDGETS_FILE,
    Budget,
    BudgetError,
    BudgetResult,
    budget_table,
    check_budgets,
    load_budgets,
    parse_budgets,
)
from .runs import compact, load_run, one, records, select
from .settings import BenchSettings, bench_settings, cuda_available, parse_size, size_label

__all__ = [
    "BUDGETS_FILE",
    "BenchSettings",
    "Budget",
    "BudgetError",
    "BudgetResult",
    "bench_settings",
    "budget_table",
    "check_budgets",
    "compact",
    "cuda_available",
    "load_budgets",
    "load_run",
    "one",
    "parse_budgets",
    "parse_size",
    "records",
    "select",
    "size_label",
]
