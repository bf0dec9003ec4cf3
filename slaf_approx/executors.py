"""Run independent jobs serially, in a local process pool, or on a Dask distributed cluster.

Every executor runs each job with one thread (BLAS and torch): the same job then does the same floating
point operations in the same order wherever it runs, so a parallel sweep gives the serial sweep's results
bit for bit, and N workers on N cores do not fight over threads.

    for index, result in run_jobs(fn, jobs, executor="process", workers=4): ...

`fn` must be a module-level function (it is pickled by reference); results come back as each job ends.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

EXECUTORS = ("serial", "process", "dask")


def default_workers() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def one_thread():
    """BLAS and torch limited to one thread for the block (and restored after)."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=1):
        if torch is not None:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(before)


def _call_one_thread(fn: Callable, job):
    with one_thread():
        return fn(job)


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which stops the pool and reports what was kept."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _serial(fn, jobs, workers, scheduler) -> Iterator[tuple[int, object]]:
    for i, job in enumerate(jobs):
        yield i, _call_one_thread(fn, job)


def _process(fn, jobs, workers, scheduler) -> Iterator[tuple[int, object]]:
    if workers <= 1 or len(jobs) <= 1:
        yield from _serial(fn, jobs, workers, scheduler)
        return
    # forkserver: a clean interpreter per worker (no inherited torch thread pools or locks of this one)
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                      else "spawn")
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx,
                               initializer=_ignore_sigint)
    try:
        pending = {pool.submit(_call_one_thread, fn, job): i for i, job in enumerate(jobs)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield pending.pop(fut), fut.result()
    finally:
        # an exception or an interrupt here: drop the queued jobs, don't wait for them
        pool.shutdown(wait=True, cancel_futures=True)


def _dask(fn, jobs, workers, scheduler) -> Iterator[tuple[int, object]]:
    try:
        from dask.distributed import Client
    except ImportError:
        raise ValueError("the dask executor needs dask.distributed: pip install 'slaf-approx[dask]'") \
            from None
    client = Client(scheduler, timeout="30s")  # now, not at the first result: a bad address fails at once
    return _dask_results(client, fn, jobs)


def _dask_results(client, fn, jobs) -> Iterator[tuple[int, object]]:
    from dask.distributed import as_completed

    with client:
        futures = {client.submit(_call_one_thread, fn, job, pure=False): i for i, job in enumerate(jobs)}
        try:
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        finally:
            client.cancel(list(futures))


_RUNNERS = {"serial": _serial, "process": _process, "dask": _dask}


def check(executor: str, workers: int | None, scheduler: str | None) -> int:
    """Validate the options; returns the worker count (default: the cores)."""
    if executor not in _RUNNERS:
        raise ValueError(f"unknown executor {executor!r}; allowed: {', '.join(EXECUTORS)}")
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if executor == "dask" and not scheduler:
        raise ValueError("the dask executor needs the scheduler's address (e.g. tcp://host:8786)")
    if executor != "dask" and scheduler:
        raise ValueError("a scheduler address is an option of the dask executor")
    return workers


def run_jobs(fn: Callable, jobs: Sequence, *, executor: str = "serial", workers: int | None = 1,
             scheduler: str | None = None) -> Iterator[tuple[int, object]]:
    """(index into `jobs`, fn(job)) for every job, in the order they finish."""
    workers = check(executor, workers, scheduler)
    return _RUNNERS[executor](fn, list(jobs), workers, scheduler)
