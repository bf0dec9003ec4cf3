"""Sweeps: the journal and resume, parallel executors (bit for bit), and real signals at every step."""

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from slaf_approx import results
from slaf_approx.fit import fit_degrees
from slaf_approx.results import Journal, read_table
from slaf_approx.sweep import plan, run_sweep

SUITE = (["relu", "tanh"], ["chebyshev", "power"], [2, 3], ["lstsq", "gradient"], [(-2.0, 2.0)])
OPTIONS = {"steps": 15}


def same(a, b, skip=("seconds",)):
    """Rows equal in every field but the timing, NaN equal to NaN; the first difference printed."""
    assert len(a) == len(b), (len(a), len(b))
    for i, (ra, rb) in enumerate(zip(a, b, strict=True)):
        da, db = (r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in (ra, rb))
        for k in set(da) | set(db):
            if k in skip:
                continue
            va, vb = da.get(k), db.get(k)
            nan_both = isinstance(va, float) and isinstance(vb, float) and math.isnan(va) and math.isnan(vb)
            assert nan_both or va == vb, f"row {i} field {k}: {va!r} != {vb!r}"


@pytest.fixture(scope="module")
def serial():
    return run_sweep(*SUITE, **OPTIONS).records


def test_plan_splits_independent_fits_and_keeps_gradient_degrees_together():
    jobs = plan(*SUITE, **OPTIONS)
    assert [(j.method, j.degrees) for j in jobs[:6]] == [("lstsq", [2]), ("lstsq", [3]), ("lstsq", [2]),
                                                          ("lstsq", [3]), ("gradient", [2, 3]),
                                                          ("gradient", [2, 3])]
    assert len(plan(["relu", "relu"], ["chebyshev"], [2, 2], ["lstsq"], [(-1, 1), (-1.0, 1.0)])) == 1
    keys = [k for j in jobs for k in j.keys()]
    assert len(keys) == len(set(keys)) == 16
    spec = jobs[0].spec(2)
    assert spec["version"] and spec["formula"] and spec["options"] == {"steps": 15}
    other = plan(*SUITE, steps=16)[0]
    assert other.keys() != jobs[0].keys()  # an option is part of the key


def test_resume_reuses_the_journal_and_each_fit_appears_once(tmp_path, serial):
    stem = tmp_path / "results"
    j = Journal(stem)
    first = run_sweep(["relu"], ["chebyshev"], [2, 3], ["lstsq"], [(-2.0, 2.0)], journal=j, **OPTIONS)
    assert (first.computed, first.reused) == (2, 0)
    calls = []
    res = run_sweep(*SUITE, journal=j, resume=True, progress=lambda d, t: calls.append((d, t)), **OPTIONS)
    j.close()
    assert (res.reused, res.computed) == (2, 14)
    assert calls[0] == (2, 16) and calls[-1] == (16, 16)
    assert all(a[0] < b[0] for a, b in zip(calls, calls[1:], strict=False))
    same(res.records, serial)
    again = run_sweep(*SUITE, journal=Journal(stem), resume=True, **OPTIONS)
    assert (again.reused, again.computed) == (16, 0)
    same(again.records, serial)
    assert j.path.read_bytes().count(b"\n") == 16  # every fit journalled once


def test_process_pool_gives_the_serial_results_bit_for_bit(serial):
    res = run_sweep(*SUITE, executor="process", workers=2, **OPTIONS)
    same(res.records, serial)


def test_dask_cluster_gives_the_serial_results_bit_for_bit(serial):
    distributed = pytest.importorskip("dask.distributed")  # the test extra installs it: see pyproject.toml
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        res = run_sweep(*SUITE, executor="dask", scheduler=cluster.scheduler_address, **OPTIONS)
    same(res.records, serial)


@pytest.mark.parametrize("kw,needle", [
    ({"executor": "mpi"}, "unknown executor 'mpi'"),
    ({"executor": "process", "workers": 0}, "workers must be a positive integer"),
    ({"executor": "dask"}, "needs the scheduler's address"),
    ({"executor": "serial", "scheduler": "tcp://x:1"}, "an option of the dask executor"),
    ({"resume": True}, "resume needs a journal"),
])
def test_bad_executor_options(kw, needle):
    with pytest.raises(ValueError, match=needle):
        run_sweep(*SUITE, **kw, **OPTIONS)


# ---------------------------------------------------------------------------------------------------------
# real signals, in a subprocess paused at a chosen step (results.pause)


def _cli(out, degrees, pause=None, marker=None, resume=False, executor="serial"):
    env = dict(os.environ, PYTHONHASHSEED="0")
    if pause:
        env |= {"SLAF_APPROX_TEST_PAUSE": pause, "SLAF_APPROX_TEST_PAUSE_FILE": str(marker)}
    argv = [sys.executable, "-m", "slaf_approx.cli", "sweep", "--targets", "relu", "--bases", "chebyshev",
            "--degrees", degrees, "--methods", "lstsq", "--interval", "-1e0", "1", "--out", str(out),
            "--quiet", "--executor", executor, "--workers", "2"] + (["--resume"] if resume else [])
    # SIGINT at its default in the child, however pytest was started: a shell starts a background job with
    # SIGINT ignored (`nohup ... &`), the child inherits that, and Python then installs no handler for it
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _signal_at(out, degrees, step, sig, resume=False, executor="serial"):
    marker = out / f"paused-{step}"
    p = _cli(out, degrees, step, marker, resume, executor)
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline, "the subprocess never reached the pause"
        time.sleep(0.05)
    marker.unlink()
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    return p.returncode, err


def _table(out):
    """The table's two files must hold the same rows: returns their degrees."""
    a, b = read_table(out / "results.csv"), read_table(out / "results.jsonl")
    same(a, b, skip=("seconds", "history"))  # the CSV leaves out the gradient history
    return [r["degree"] for r in a]


STEPS = ["journal-append", "journalled", "between-files", "linked", "before-publish", "published"]


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_any_step_leaves_the_old_or_the_new_pair(tmp_path, step):
    assert _cli(tmp_path, "2").wait(timeout=240) == 0
    rc, _ = _signal_at(tmp_path, "2-4", step, signal.SIGKILL, resume=True)
    assert rc == -signal.SIGKILL
    assert _table(tmp_path) == ([2, 3, 4] if step == "published" else [2])
    # the next run cleans up what the killed one left, and loses no finished fit
    p = _cli(tmp_path, "2-4", resume=True)
    _, err = p.communicate(timeout=240)
    assert p.returncode == 0, err
    # degree 2 is in the journal from the first run; the killed run journals degree 3, then degree 4
    reused = {"journal-append": 1, "journalled": 2}.get(step, 3)
    assert "3 fits in" in err and f"({3 - reused} computed, {reused} reused" in err, err
    assert _table(tmp_path) == [2, 3, 4]
    state = tmp_path / ".results"
    gen = os.readlink(state / "current")
    assert sorted(p.name for p in state.iterdir()) == [".gitignore", "current", gen, "journal.jsonl", "lock"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".results", "results.csv", "results.jsonl"]


@pytest.mark.parametrize("step,told,executor", [
    ("journalled", "the results table in .* is unchanged; the fits finished so far are in .*journal.jsonl",
     "serial"),
    ("journalled", "the results table in .* is unchanged; the fits finished so far are in .*journal.jsonl",
     "process"),
    ("before-publish", "the results table in .* is unchanged", "serial"),
    ("published", "the results table in .* is written", "serial"),
])
def test_sigint_message_tells_the_truth(tmp_path, step, told, executor):
    import re

    assert _cli(tmp_path, "2").wait(timeout=240) == 0
    rc, err = _signal_at(tmp_path, "2-3", step, signal.SIGINT, executor=executor)
    last = err.splitlines()[-1]
    assert rc == 130 and "Traceback" not in err and re.search(told, last), err
    assert _table(tmp_path) == ([2, 3] if step == "published" else [2])


def test_a_second_sweep_into_the_same_folder_is_refused(tmp_path):
    marker = tmp_path / "paused"
    first = _cli(tmp_path, "2-3", "journalled", marker)
    deadline = time.monotonic() + 240
    while not marker.exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.05)
    second = _cli(tmp_path, "4")
    _, err = second.communicate(timeout=240)
    first.kill()
    first.wait()
    assert second.returncode == 2 and err.count("\n") == 1, err
    assert f"another slaf-approx process (pid {first.pid}) is writing the results in" in err, err
    assert not (tmp_path / "results.csv").exists() or _table(tmp_path) == []  # nothing half-written
    assert results.generation(tmp_path / "results") is None


def test_rational_rows_are_the_chained_fits_of_fit_degrees():
    # rational least squares starts each type from the previous degree's optimum; a sweep that fitted each
    # degree alone stopped in local optima (gelu degree 18 at 1.2e-4 against 6.1e-8 chained, swish 19 at
    # 2.4e-9 against 7e-15), so its rows must be fit_degrees' rows
    degrees = list(range(1, 9))  # alone, degree 8 stops at 3.5e-3; chained it reaches 1.8e-3
    jobs = plan(["gelu"], ["power"], degrees, ["rational"], [(-3.0, 3.0)])
    assert [j.degrees for j in jobs] == [degrees]
    rows = run_sweep(["gelu"], ["power"], degrees, ["rational"], [(-3.0, 3.0)]).records
    want = [r.to_dict() for r in fit_degrees("gelu", degrees, "rational", "power", (-3.0, 3.0))]
    assert len(rows) == len(want)
    for got, exp in zip((r.to_dict() for r in rows), want, strict=True):
        assert got["coefficients"] == exp["coefficients"] and got["denominator"] == exp["denominator"], \
            (got["degree"], got["max_error"], exp["max_error"])


# --- the problem's options: weight, error kind, pins, parity, coefficient format ------------------------
CONSTRAINED = (["tanh"], ["chebyshev"], [5, 7], ["minimax"], [(-3.0, 3.0)])


@pytest.mark.parametrize("option", [dict(error="relative"), dict(pin=(0.5,)), dict(parity="odd"),
                                    dict(weight="normal:1"), dict(coef_dtype="bfloat16")])
def test_each_problem_option_is_part_of_the_job_key(option):
    plain = plan(*CONSTRAINED)
    given = plan(*CONSTRAINED, **option)
    keys = lambda jobs: [k for j in jobs for k in j.keys()]  # noqa: E731
    assert not set(keys(plain)) & set(keys(given))
    spec = given[0].spec(5)
    name, value = next(iter(option.items()))
    assert (spec["weight"] if name == "weight" else spec["options"][name]) == \
        (list(value) if isinstance(value, tuple) else value), spec


def test_sweep_runs_the_constrained_certified_minimax_fits():
    recs = run_sweep(*CONSTRAINED, error="relative", weight="normal:2").records
    assert [r.degree for r in recs] == [5, 7]
    for r in recs:
        # relative error of tanh: its zero at 0 is pinned; the certificate holds for the weighted problem
        assert r.error_kind == "relative" and r.weight == "normal:2" and r.pin == [0.0] and r.converged, r
        assert r.levelled_error <= r.weighted_max_error <= r.levelled_error * (1 + 1e-9) + 1e-15, r
    odd = run_sweep(*CONSTRAINED, parity="odd", pin=(1.0,)).records
    assert all(r.parity == "odd" and r.pin == [1.0] and not any(r.coefficients[0::2]) for r in odd), odd
    x = np.array([1.0])
    assert all(abs(float(r.polynomial()(x)[0] - np.tanh(1.0))) <= 1e-14 for r in odd), odd


@pytest.mark.parametrize("methods, option, needle", [
    (["minimax", "gradient"], dict(parity="odd"), "gradient fits take no parity"),
    (["lstsq"], dict(error="relative"), "lstsq fits take no relative error"),
    (["minimax"], dict(pin=(5.0,)), "pin 5.0 is not inside the interval"),
    (["minimax"], dict(parity="even", ), None),
    (["minimax", "rational"], dict(coef_dtype="float16"), "rational fits take none"),
    (["minimax"], dict(weight="normal:-1"), "unknown weight"),
])
def test_bad_problem_options_fail_in_plan_before_any_fit(methods, option, needle, monkeypatch):
    from slaf_approx import sweep

    monkeypatch.setattr(sweep, "fit_degrees", lambda *a, **k: pytest.fail("a fit ran"))
    if needle is None:  # parity on an interval not symmetric about 0
        needle = "symmetric about 0"
        intervals = [(-3.0, 3.0), (-1.0, 2.0)]
    else:
        intervals = [(-3.0, 3.0)]
    with pytest.raises(ValueError, match=needle):
        run_sweep(["tanh"], ["chebyshev"], [4], methods, intervals, **option)
