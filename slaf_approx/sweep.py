"""Sweeps: targets x bases x degrees x methods x intervals -> a tidy table (one row per fit).

Every fit is keyed by its full specification (:func:`spec`) and appended to the output folder's journal
as it finishes, so an interrupted sweep resumes where it stopped (``resume=True``): at most the job in
flight is lost. Jobs run serially, in a process pool or on a Dask cluster (:mod:`slaf_approx.executors`),
with the same results bit for bit. The table itself is written by :mod:`slaf_approx.results`: CSV and JSON
Lines change together, under a lock.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from . import __version__, executors
from .bases import check_degree, check_interval, get_basis
from .fit import (
    ALL_METHODS,
    METHODS,
    RATIONAL_METHODS,
    ConditioningWarning,
    FitRecord,
    check_options,
    fit_degrees,
    resolve_target,
)
from .problem import FitProblem
from .results import (  # noqa: F401  (the table's reader and writer, here for the callers of sweep)
    CSV_FIELDS,
    Journal,
    normalise_row,
    read_table,
    write_table,
)

DEFAULT_SUITE = dict(
    targets=("relu", "gelu", "swish", "tanh"),
    bases=("power", "chebyshev", "legendre"),
    degrees=tuple(range(1, 21)),
    methods=METHODS,
    intervals=((-3.0, 3.0),),
)
#: rational P/D beside the polynomials at equal parameter count, in PAU's convention (powers of the raw x)
RATIONAL_SUITE = dict(DEFAULT_SUITE, bases=("power",), methods=RATIONAL_METHODS)
#: minimax fits with coefficients fitted for each of COEF_FORMATS (the report's "Coefficients in a storage
#: format"), in the default basis, at the degrees the report's tables show (each fit also evaluates both
#: roundings in the format: about a second; tests/test_coefround.py covers every default degree)
COEF_SUITE = dict(DEFAULT_SUITE, bases=("chebyshev",), methods=("minimax",), degrees=(1, 2, 4, 8, 12, 16, 20))
COEF_FORMATS = ("bfloat16", "float16")


def parse_basis(spec: str) -> tuple[str, str | None]:
    """'chebyshev' -> ('chebyshev', None); 'power:mapped' -> ('power', 'mapped')."""
    name, _, variable = spec.partition(":")
    get_basis(name)
    return name, variable or None


#: methods whose fits of several degrees are computed together (one job, one journal group): gradient fits
#: train as one model; rational least squares starts each type from the previous degree's optimum (its
#: objective is not convex, and a lone start can stop in a local optimum: gelu (9, 9) at 1.2e-4 alone,
#: 6.1e-8 chained), so a sweep's rows are the ones fit_degrees gives
JOINT_METHODS = ("gradient", "rational")


@dataclass
class Job:
    """Fits computed together: one degree, or all degrees of a method in JOINT_METHODS.

    Travels to worker processes without the Target object (not picklable): the worker looks the target up
    again by name and parameters, and checks that its formula is the same.
    """

    target_name: str
    params: dict
    formula: str
    interval: tuple[float, float]
    method: str
    basis: str
    variable: str | None
    degrees: list[int]
    options: dict = field(default_factory=dict)
    target: object = field(default=None, repr=False, compare=False)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "target"} | {"target": None}

    def spec(self, degree: int) -> dict:
        """Everything the fit of `degree` depends on, the package version included."""
        return {"target": self.target_name, "formula": self.formula,
                "params": dict(sorted(self.params.items())),
                "basis": self.basis, "variable": self.variable or "default", "degree": degree,
                "method": self.method, "lo": self.interval[0], "hi": self.interval[1],
                "weight": self.options.get("weight", "uniform"),
                "options": {k: _canon(v) for k, v in sorted(self.options.items()) if k != "weight"},
                "trained_with": list(self.degrees) if self.method in JOINT_METHODS else [degree],
                "version": __version__}

    def keys(self) -> list[str]:
        return [spec_key(self.spec(d)) for d in self.degrees]


def _canon(v):
    if hasattr(v, "tolist"):  # numpy arrays and scalars
        return v.tolist()
    if isinstance(v, tuple | list):
        return [_canon(x) for x in v]
    return v


def spec_key(spec: dict) -> str:
    """A fit's journal key: SHA-256 of its canonical JSON specification."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def plan(targets: Sequence[str], bases: Sequence[str], degrees: Iterable[int], methods: Sequence[str],
         intervals: Sequence[Sequence[float]], **options) -> list[Job]:
    """Validate every axis up front (so a typo fails before any work) and expand the cross product.

    Repeated axis values count once, so every fit appears once. One job per fit, except that the degrees
    of a method in JOINT_METHODS (gradient, rational) are fitted together and form one job.
    """
    tgs = list(dict.fromkeys(resolve_target(t) for t in targets))
    bs = list(dict.fromkeys(parse_basis(b) for b in bases))
    ds = list(dict.fromkeys(check_degree(d) for d in degrees))
    for m in methods:
        if m not in ALL_METHODS:
            raise ValueError(f"unknown method {m!r}; allowed: {', '.join(ALL_METHODS)}")
    ms = list(dict.fromkeys(methods))
    ivs = list(dict.fromkeys(check_interval(iv) for iv in intervals))
    if not (tgs and bs and ds and ms and ivs):
        raise ValueError("a sweep needs at least one target, basis, degree, method and interval")
    _check_problem_options(tgs, bs, ms, ivs, options)
    jobs = []
    for tg, iv, m, (b, var) in itertools.product(tgs, ivs, ms, bs):
        groups = [ds] if m in JOINT_METHODS else [[d] for d in ds]
        jobs += [Job(tg.name, dict(tg.params), tg.formula, iv, m, b, var, g, dict(options), tg)
                 for g in groups]
    return jobs


#: fit options that shape the problem (checked for every method, target, basis and interval by plan)
PROBLEM_OPTIONS = ("weight", "error", "pin", "parity")


def _check_problem_options(tgs, bs, ms, ivs, options: dict) -> None:
    """ValueError before any fit when a method refuses an option (e.g. parity in a gradient fit) or a
    problem cannot be posed (a pin outside an interval, parity on an asymmetric one, relative error of a
    target with a double zero): the checks fit makes, made for every job at once."""
    given = {k: options[k] for k in ("error", "pin", "parity", "coef_dtype") if k in options}
    for m in ms:
        check_options(m, **given)
    if not any(k in options for k in PROBLEM_OPTIONS):
        return
    for tg, iv, (b, var) in itertools.product(tgs, ivs, bs):
        FitProblem.make(tg, b, iv, var, options.get("weight", "uniform"),
                        error=options.get("error", "absolute"), pin=options.get("pin", ()),
                        parity=options.get("parity"))


def run_job(job: Job) -> list[dict]:
    """The job's fits as rows (FitRecord.to_dict()); runs in a worker process or in this one."""
    tg = job.target
    if tg is None:
        tg = resolve_target(job.target_name, job.params)
        if tg.formula != job.formula:
            raise ValueError(f"target {job.target_name!r} has another formula in this worker's catalogue "
                             f"({tg.formula!r}, not {job.formula!r}): install the same catalogue everywhere")
    with warnings.catch_warnings():
        # ill-conditioning is recorded in each row's condition_number; don't print 100 warnings
        warnings.simplefilter("ignore", ConditioningWarning)
        recs = fit_degrees(tg, job.degrees, job.method, job.basis, job.interval, variable=job.variable,
                           **job.options)
    return [r.to_dict() for r in recs]


def _record(row: dict) -> FitRecord:
    r = normalise_row(row)
    return FitRecord(**{k: r[k] for k in FitRecord.__dataclass_fields__ if k in r})


@dataclass
class SweepResult:
    records: list[FitRecord]
    reused: int  # fits taken from the journal
    computed: int  # fits computed by this run


def run_sweep(targets, bases, degrees, methods, intervals, *,
              progress: Callable[[int, int], None] | None = None, journal: Journal | None = None,
              resume: bool = False, executor: str = "serial", workers: int | None = 1,
              scheduler: str | None = None, **options) -> SweepResult:
    """Run every fit of the cross product; `options` go to :func:`slaf_approx.fit.fit`.

    progress(done, total) is called with fit counts, first with done = 0. Each finished fit is appended to
    `journal`; with `resume`, fits already there (same specification) are reused, not computed. Jobs run
    on `executor` ("serial", "process" with `workers`, or "dask" at `scheduler`).
    """
    jobs = plan(targets, bases, degrees, methods, intervals, **options)
    executors.check(executor, workers, scheduler)
    if resume and journal is None:
        raise ValueError("resume needs a journal")
    done = journal.load() if (journal is not None and resume) else {}
    total = sum(len(j.degrees) for j in jobs)
    rows: list[list[dict] | None] = [None] * len(jobs)
    todo = []
    for i, job in enumerate(jobs):
        keys = job.keys()
        if all(k in done for k in keys):
            rows[i] = [done[k] for k in keys]
        else:
            todo.append(i)
    reused = total - sum(len(jobs[i].degrees) for i in todo)
    count = reused
    finished = executors.run_jobs(run_job, [jobs[i] for i in todo], executor=executor, workers=workers,
                                  scheduler=scheduler)  # connects to a cluster now, before the first report
    if progress:
        progress(count, total)
    for n, out in finished:
        job = jobs[todo[n]]
        if journal is not None:
            for d, key, row in zip(job.degrees, job.keys(), out, strict=True):
                journal.append(key, job.spec(d), row)
        rows[todo[n]] = out
        count += len(out)
        if progress:
            progress(count, total)
    return SweepResult([_record(r) for rs in rows for r in rs], reused, total - reused)


def sweep(targets, bases, degrees, methods, intervals, **kwargs) -> list[FitRecord]:
    """The records of :func:`run_sweep`."""
    return run_sweep(targets, bases, degrees, methods, intervals, **kwargs).records
