"""The benchmark package on small synthetic runs (budgets, the statistical check, history, report), the
workloads' values, and `slaf-approx bench` end to end on a tiny matrix. Nothing here asserts on a timing
(the benchmarks themselves run once, untimed, as slaf_approx/benchmarks/suite under --benchmark-disable)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from slaf_approx import benchmarks as kb
from slaf_approx import cli
from slaf_approx.benchmarks import compare, history, report, runs, settings, workloads
from slaf_approx.benchmarks.command import SUITE, pytest_command
from slaf_approx.kernels import available_backends, resolve_backend
from slaf_approx.kernels import pau as pau_kernel

ROOT = Path(__file__).resolve().parents[1]
Q = 2**20  # the quick size, the budgets'
MiB = 2**20


def _stats(median: float, rounds: int = 10) -> dict:
    """The stats block pytest-benchmark writes."""
    return {
        "min": 0.9 * median,
        "max": 1.3 * median,
        "mean": 1.02 * median,
        "stddev": 0.05 * median,
        "rounds": rounds,
        "median": median,
        "iqr": 0.02 * median,
        "q1": 0.99 * median,
        "q3": 1.01 * median,
        "ops": 1.0 / median,
        "total": rounds * median,
        "iterations": 1,
    }


def _samples(center: float, n: int = 40, spread: float = 0.02, seed: int = 0) -> list[float]:
    return list(center * (1.0 + spread * np.random.default_rng(seed).standard_normal(n)))


def _bench(
    name: str, median: float, extra: dict | None = None, anchored: float | None = None, seed=0
) -> dict:
    """A benchmark as the compact saved run holds it: its samples are ratios to the paired copy
    (`anchored`) or, like the fitting benchmarks', raw seconds."""
    info = dict(extra or {})
    if anchored is not None:
        info.update(samples=_samples(anchored, seed=seed), sample_kind="anchored")
    else:
        info.update(samples=_samples(median, seed=seed), sample_kind="seconds")
    return {
        "group": None,
        "name": name,
        "fullname": f"suite::{name}",
        "extra_info": info,
        "stats": _stats(median),
    }


def _kernel(
    op,
    mode,
    size,
    median,
    *,
    backend="torch",
    degree=None,
    dtype="float32",
    device="cpu",
    peak=None,
    variant=None,
    first=None,
    seed=0,
    rival=None,
) -> dict:
    """A kernel benchmark; rival = (SLAF backend, this benchmark's time over that backend's): raced."""
    info = {
        "op": op,
        "backend": backend,
        "mode": mode,
        "degree": degree,
        "size": size,
        "dtype": dtype,
        "device": device,
        "bytes": workloads.bytes_moved(size, dtype, mode, op),
        "peak_bytes": peak,
    }
    if variant:
        info["variant"] = variant
    if first is not None:
        info["first_call_s"] = first
    if rival is not None:
        info["rival_backend"] = rival[0]
        info["rival_samples"] = _samples(rival[1], n=41, spread=0.002, seed=seed + 1)
    name = f"test_{op}[{device}-{dtype}-{backend}-{variant}-deg{degree}-{kb.size_label(size)}-{mode}]"
    copy_t = 0.001 * size / Q
    return _bench(name, median, info, anchored=median / copy_t, seed=seed)


def _run(benchmarks, device="cpu", commit="c1") -> dict:
    mi = {
        "node": "testhost",
        "processor": "x86_64",
        "python_version": "3.11.7",
        "cpu": {"brand_raw": "Test CPU"},
        "torch": "2.13.0",
        "triton": "3.9.0",
        "cuda": "none",
        "torch_threads": 2,
        "bench_device": device,
    }
    if device == "cuda":
        mi.update(cuda="13.0", cuda_device="NVIDIA H200")
    return {
        "machine_info": mi,
        "commit_info": {"id": commit},
        "benchmarks": benchmarks,
        "datetime": "2026-11-28T12:00:00+00:00",
        "version": "5.1.0",
        "slaf_approx": {"commit": commit, "dirty": False},
    }


def cpu_run(
    fused_fwd=0.0011,
    fused_fb=0.004,
    eager_fb=0.02,
    fused_peak=8 * MiB,
    lstsq=1.0,
    commit="c1",
    seed=0,
    raced_compiled=None,
) -> dict:
    """A CPU run at 2^10 and 2^20 that meets every CPU budget by default, with the fitting benchmarks. Each
    peer is raced against the fused backend at its medians' ratio, or at raced_compiled for the compiled
    Horner (a race that disagrees with the medians)."""
    b = []
    for n in (2**10, Q):
        s = n / Q
        b.append(_kernel("copy", "forward", n, 0.001 * s, peak=4 * n, seed=seed))
        for op in settings.ACTIVATIONS:
            b.append(_kernel(op, "forward", n, 0.0012 * s, peak=4 * n, seed=seed))
            b.append(_kernel(op, "forward+backward", n, 0.005 * s, peak=8 * n, seed=seed))
        for d in (2, 8):
            for mode, t, e in (("forward", fused_fwd, 0.01), ("forward+backward", fused_fb, eager_fb)):
                b.append(
                    _kernel(
                        "slaf",
                        mode,
                        n,
                        t * s,
                        backend="fused",
                        degree=d,
                        peak=int(fused_peak * s) if mode != "forward" else 4 * n,
                        seed=seed,
                    )
                )
                b.append(
                    _kernel("slaf", mode, n, 5 * t * s, backend="reference", degree=d, peak=40 * n, seed=seed)
                )
                b.append(
                    _kernel(
                        "horner",
                        mode,
                        n,
                        e * s,
                        backend="eager",
                        degree=d,
                        peak=30 * n,
                        seed=seed,
                        rival=("fused", e / t),
                    )
                )
                b.append(
                    _kernel(
                        "horner",
                        mode,
                        n,
                        0.8 * t * s,
                        backend="compile",
                        degree=d,
                        peak=8 * n,
                        first=4.0,
                        seed=seed,
                        rival=("fused", raced_compiled or 0.8),
                    )
                )
                b.append(
                    _kernel(
                        "pau",
                        mode,
                        n,
                        3 * t * s,
                        backend="compile",
                        degree=d,
                        variant="matched",
                        peak=8 * n,
                        first=6.0,
                        seed=seed,
                        rival=("fused", 3.0),
                    )
                )
    b.append(_bench("test_lstsq_ours", 0.00076, anchored=lstsq, seed=seed))
    b.append(_bench("test_lstsq_numpy", 0.00078, seed=seed))
    b += [
        _bench(f"test_remez[{t}-{d}]", m, {"target": t, "degree": d, "iterations": 5}, seed=seed)
        for t, m in (("relu", 0.017), ("gelu", 0.0245))
        for d in (8, 20)
    ]
    return _run(b, commit=commit)


def gpu_run(triton_fwd=0.0006) -> dict:
    n, b = 2**28, []
    for dtype in ("float32", "bfloat16"):
        b.append(_kernel("copy", "forward", n, 0.00055, dtype=dtype, device="cuda", peak=2**30))
        b.append(
            _kernel(
                "slaf",
                "forward",
                n,
                triton_fwd,
                backend="triton",
                degree=8,
                dtype=dtype,
                device="cuda",
                peak=2**30,
            )
        )
        b.append(_kernel("horner", "forward", n, 0.01, backend="eager", degree=8, dtype=dtype, device="cuda"))
    return _run(b, "cuda")


def results_by_name(run, budgets=None):
    return {r.budget.name: r for r in kb.check_budgets(kb.records(run), budgets or kb.load_budgets())}


# ---- records and budgets -------------------------------------------------------------------------
def test_records_compute_bandwidth_fraction_of_the_copy_and_the_anchored_median():
    recs = kb.records(cpu_run())
    c = kb.one(recs, op="copy", size=Q)
    assert c["gbps"] == pytest.approx(2 * Q * 4 / 0.001 / 1e9)
    fused = kb.one(recs, op="slaf", backend="fused", mode="forward", degree=8, size=Q)
    assert fused["copy_fraction"] == pytest.approx(0.001 / 0.0011)
    assert fused["anchored"] == pytest.approx(np.median(fused["samples"]))
    assert all("copy_fraction" not in r for r in recs if r.get("op") is None)


def test_the_shipped_budgets_hold_on_a_good_run_and_goals_never_fail():
    budgets = kb.load_budgets()
    assert kb.BUDGETS_FILE.parent == Path(kb.__file__).parent  # shipped inside the package
    names = {b.name for b in budgets if not b.goal}
    assert names == {
        "cpu_fused_forward_vs_eager_horner",
        "cpu_fused_train_vs_eager_horner",
        "cpu_fused_train_memory_vs_gelu",
    }
    # the goals the issues set, reported but never failing the check
    goals = {b.name: b for b in budgets if b.goal}
    assert goals["cpu_fused_forward_vs_copy"].max == 1.1 and goals["cuda_triton_train_bandwidth"].min == 0.8
    res = results_by_name(cpu_run())
    for name in names:
        assert res[name].status == "ok", res[name]
    assert res["cpu_fused_train_vs_eager_horner"].value == pytest.approx(0.2, rel=1e-2)
    # the compiled Horner is faster than the fused SLAF in this run: the goal is 'not met', not a failure
    assert res["cpu_fused_forward_vs_compiled_horner"].status == "not met"
    assert not res["cpu_fused_forward_vs_compiled_horner"].failed


@pytest.mark.parametrize(
    "kwargs,broken",
    [
        (dict(fused_fwd=0.006), "cpu_fused_forward_vs_eager_horner"),
        (dict(eager_fb=0.006), "cpu_fused_train_vs_eager_horner"),
        (dict(fused_peak=9 * MiB), "cpu_fused_train_memory_vs_gelu"),
    ],
)
def test_each_budget_fails(kwargs, broken):
    res = results_by_name(cpu_run(**kwargs))
    assert [n for n, r in res.items() if r.failed] == [broken]


def test_cpu_budgets_must_be_present_in_a_cpu_run_and_gpu_goals_read_a_gpu_run():
    run = cpu_run()
    run["benchmarks"] = [b for b in run["benchmarks"] if b["extra_info"].get("size") != Q]
    res = results_by_name(run)
    assert res["cpu_fused_forward_vs_eager_horner"].status == "missing"
    g = results_by_name(gpu_run())
    assert g["cuda_triton_forward_bandwidth"].status == "met"
    assert g["cuda_triton_forward_bandwidth"].value == pytest.approx(0.55 / 0.6)
    assert results_by_name(gpu_run(triton_fwd=0.001))["cuda_triton_forward_bandwidth"].status == "not met"


GOOD = """version = 3
[budget.x]
numerator = { op = "slaf", size = 16 }
denominator = { op = "copy", size = 16 }
max = 1.1
"""


@pytest.mark.parametrize(
    "text,key",
    [
        (GOOD.replace("version = 3\n", ""), "version"),
        (GOOD.replace("version = 3", "version = 2"), "version"),
        (GOOD.replace("max = 1.1\n", ""), "budget.x.max"),
        (GOOD.replace('denominator = { op = "copy", size = 16 }\n', ""), "budget.x.denominator"),
        (GOOD.replace('op = "slaf"', 'opp = "slaf"'), "budget.x.numerator.opp"),
        (GOOD.replace("max = 1.1", 'max = "small"'), "budget.x.max"),
        (GOOD.replace("max = 1.1", 'max = 1.1\nof = "speed"'), "budget.x.of"),
        (GOOD.replace("max = 1.1", 'max = 1.1\nrequired = "tpu"'), "budget.x.required"),
        (GOOD.replace("max = 1.1", 'max = 1.1\nselect = { op = "slaf" }'), "budget.x"),
        (GOOD + "[goal.y]\nselect = { op = 'slaf' }\n", "goal.y.max"),
        ("version = 3\n", "budget"),
    ],
)
def test_a_malformed_budgets_file_names_the_file_and_the_key(tmp_path, text, key):
    path = tmp_path / "budgets.toml"
    path.write_text(text)
    with pytest.raises(kb.BudgetError) as e:
        kb.load_budgets(path)
    assert e.value.key == key and str(e.value).startswith(f"{path}: {key}: "), str(e.value)


def test_every_shipped_budget_is_a_same_run_ratio_and_goals_are_only_reported():
    """A budget must hold on a shared machine: a ratio of two benchmarks of one run (interleaved paired-copy
    ratios or exact peak bytes), never an absolute time; absolute times are goals."""
    shipped = kb.load_budgets()
    budgets = [b for b in shipped if not b.goal]
    assert budgets and all(b.is_ratio and b.of in ("anchored", "peak_bytes") for b in budgets), budgets
    assert any(b.goal and b.of == "median" for b in shipped)
    # the parser refuses an absolute time or bandwidth as a budget, and takes it as a goal
    import tomllib

    for of in ("median", "gbps"):
        text = GOOD + f"[budget.t]\nof = '{of}'\nselect = {{ test = 'test_remez' }}\nmax = 0.05\n"
        with pytest.raises(kb.BudgetError, match=r"budget.t.of: an absolute .* make it a \[goal\]"):
            kb.parse_budgets(tomllib.loads(text))
        assert kb.parse_budgets(tomllib.loads(text.replace("budget.t", "goal.t")))[-1].goal


def test_a_missing_binary_or_unparsable_budgets_file_names_the_file(tmp_path):
    with pytest.raises(kb.BudgetError, match="nope.toml: cannot read"):
        kb.load_budgets(tmp_path / "nope.toml")
    (tmp_path / "bin.toml").write_bytes(b"version = 3\n\xff\xfe\x00garbage")
    with pytest.raises(kb.BudgetError, match=r"bin.toml: not a text \(UTF-8\) file: byte 12 is 0xff"):
        kb.load_budgets(tmp_path / "bin.toml")
    (tmp_path / "bad.toml").write_text("version = = 3")
    with pytest.raises(kb.BudgetError, match="bad.toml: not valid TOML"):
        kb.load_budgets(tmp_path / "bad.toml")


# ---- the statistical check -----------------------------------------------------------------------
def test_median_ci_is_reproducible_and_brackets_the_median():
    s = _samples(1.0, n=50, spread=0.05)
    lo, hi = compare.median_ci(s)
    assert lo < float(np.median(s)) < hi and compare.median_ci(s) == (lo, hi)
    assert compare.median_ci([2.0]) == (2.0, 2.0)
    with pytest.raises(ValueError):
        compare.median_ci([])


def _slowed(run, factor, op="slaf"):
    out = json.loads(json.dumps(run))
    for b in out["benchmarks"]:
        if b["extra_info"].get("op") == op:
            b["extra_info"]["samples"] = [v * factor for v in b["extra_info"]["samples"]]
    return out


def test_the_check_catches_a_25_percent_slowdown_and_not_noise():
    before, again = cpu_run(seed=1), cpu_run(seed=2)  # the same distributions, other draws
    rows = compare.compare_runs(again, before, 0.10)
    assert rows and not any(r.slower for r in rows)
    # samples of another kind (seconds against ratios to the copy) are not compared
    other = json.loads(json.dumps(again))
    other["benchmarks"][0]["extra_info"]["sample_kind"] = "seconds"
    assert len(compare.compare_runs(other, before, 0.10)) == len(rows) - 1
    # nor ratios to another anchor (runs saved before the anchor became a copy into a warm buffer)
    moved = json.loads(json.dumps(again))
    moved["benchmarks"][0]["extra_info"]["anchor"] = "copy into a warm buffer"
    assert len(compare.compare_runs(moved, before, 0.10)) == len(rows) - 1
    slow = compare.compare_runs(_slowed(again, 1.25), before, 0.10)
    flagged = {r.name for r in slow if r.slower}
    assert flagged == {b["name"] for b in again["benchmarks"] if b["extra_info"].get("op") == "slaf"}
    # a shift inside the threshold is not reported, however tight the intervals
    assert not any(r.slower for r in compare.compare_runs(_slowed(again, 1.08), before, 0.10))
    # nor one whose intervals overlap: very noisy samples
    noisy = json.loads(json.dumps(again))
    for i, b in enumerate(noisy["benchmarks"]):
        if "samples" in b["extra_info"]:
            b["extra_info"]["samples"] = _samples(
                1.25 * np.median(b["extra_info"]["samples"]), n=5, spread=0.6, seed=i
            )
    assert sum(r.slower for r in compare.compare_runs(noisy, before, 0.10)) < len(flagged)


def test_only_our_own_code_can_fail_the_check():
    # a copy (like a peer or a native activation) timing slower is the machine or torch, not our change:
    # shown in the comparison, never a failure; the same slowdown of a SLAF op is one
    before, again = cpu_run(seed=1), cpu_run(seed=2)
    rows = compare.compare_runs(_slowed(again, 1.6, op="copy"), before, 0.10)
    assert any(r.name.startswith("test_copy") and r.ratio > 1.4 for r in rows)
    assert not any(r.slower for r in rows)
    assert compare.guarded({"name": "test_slaf[x]", "extra_info": {"op": "slaf"}})
    assert compare.guarded({"name": "test_remez[gelu-8]", "extra_info": {}})
    for name, op in (("test_peer[x]", "horner"), ("test_copy[x]", "copy"), ("test_lstsq_numpy", None)):
        assert not compare.guarded({"name": name, "extra_info": {"op": op}})


def test_the_spread_is_how_far_each_run_lies_above_the_others_of_its_code_per_group():
    many = [cpu_run(seed=1), _slowed(cpu_run(seed=2), 1.2), cpu_run(seed=3)]
    s = compare.spread(many)
    # the same figures computed independently: per test function, u = log(median / median of the other
    # runs' medians) where positive, u^2 / (1 + v_2) (v_2 = 1/2: the median of two is their mean) ...
    meds = [
        {x["fullname"]: np.median(x["extra_info"]["samples"]) for x in r["benchmarks"] if compare.guarded(x)}
        for r in many
    ]
    group = {x["fullname"]: x["name"].split("[")[0] for x in many[0]["benchmarks"]}
    expect: dict[str, list[float]] = {}
    for i, m in enumerate(meds):
        for name, v in m.items():
            u = max(0.0, float(np.log(v / np.median([o[name] for j, o in enumerate(meds) if j != i]))))
            expect.setdefault(group[name], []).append(u * u / 1.5)
    # ... and sigma = sqrt(2 mean)
    assert s["runs"] == 3
    assert set(s["by_group"]) == set(expect) == {"test_slaf", "test_lstsq_ours", "test_remez"}
    for g, vals in expect.items():
        assert s["by_group"][g]["n"] == len(vals)
        assert s["by_group"][g]["sigma"] == pytest.approx(np.sqrt(2 * np.mean(vals)), rel=1e-12)
    # the SLAF ops of one run lie 20% above the others: their group's sigma shows it, the fits' do not
    assert s["by_group"]["test_slaf"]["sigma"] > 0.1 > 0.05 > s["by_group"]["test_remez"]["sigma"]
    # a run faster than the others adds nothing: only the upper half counts
    fast = compare.spread([cpu_run(seed=1), cpu_run(seed=3), cpu_run(seed=4), _slowed(cpu_run(seed=2), 0.8)])
    assert fast["by_group"]["test_slaf"]["sigma"] < 0.05
    # runs of different code form no cluster; only the newest max_runs runs count
    assert compare.spread([cpu_run(seed=1), cpu_run(seed=3, commit="c2")]) == {
        "by_group": {}, "runs": 0, "benchmarks": 0}
    assert compare.spread([cpu_run(seed=k) for k in range(1, 6)], max_runs=3)["runs"] == 3


def test_the_median_variances_match_a_simulation():
    rng = np.random.default_rng(0)
    for k in range(1, 12):
        sim = float(np.var(np.median(rng.standard_normal((400_000, k)), axis=1)))
        if k <= 7:
            assert compare.median_variance(k) == pytest.approx(sim, rel=0.01), k
        else:  # the large-k limit, above the exact value (conservative), and not far
            assert sim < compare.median_variance(k) < 1.2 * sim, k
    with pytest.raises(ValueError, match="at least 1, got 0"):
        compare.median_variance(0)


def test_the_threshold_is_z_sigmas_of_the_comparison_above_a_floor_per_group():
    sig = 0.06
    for k in (1, 3, 5):
        want = np.expm1(compare.Z * sig * np.sqrt(1 + compare.median_variance(k)))
        assert want > compare.FLOOR
        assert compare.threshold_of(sig, k) == pytest.approx(want, rel=1e-12)
    assert compare.threshold_of(sig, 1) > compare.threshold_of(sig, 5)  # a wider baseline, a tighter check
    assert compare.threshold_of(0.001) == compare.FLOOR  # a quiet machine: the floor
    measured = {"by_group": {"test_slaf": {"sigma": sig, "n": 10}, "test_remez": {"sigma": 0.1, "n": 20}},
                "runs": 5}
    ts, how = compare.thresholds(measured, 5)
    assert ts == {"test_slaf": compare.threshold_of(sig, 5), "test_remez": compare.threshold_of(0.1, 5)}
    assert "from 5 saved runs" in how and "test_slaf" in how and "no spread measured yet" in how
    assert "test_remez" in how.split("cannot resolve")[0] and how.count("cannot resolve") == 1
    # a group not measured gets the default; a number applies to all
    assert compare.threshold_for(ts, {"name": "test_default_sweep"}) == compare.DEFAULT_THRESHOLD
    assert compare.threshold_for(0.3, {"name": "test_slaf[x]"}) == 0.3
    assert compare.thresholds({}, floor=0.5) == ({}, "any other group 50.0% (no spread measured yet)")


def test_the_baseline_is_the_newest_run_with_the_benchmarks_and_the_runs_of_its_code_before_it():
    old = [cpu_run(seed=k, commit="c0") for k in range(3)]
    mine = [cpu_run(seed=k, commit="c1") for k in range(3, 10)]
    run = cpu_run(seed=20, commit="c2")
    base = compare.baseline([*old, *mine], run)
    assert base == mine[-compare.BASELINE_RUNS:]
    # interleaved code: only the newest run's code counts, at most k runs
    mixed = [mine[0], old[0], mine[1], old[1]]
    assert compare.baseline(mixed, run) == [old[0], old[1]] and compare.baseline(mixed, run, k=1) == [old[1]]
    # a saved run with none of this run's benchmarks is skipped; none at all: no baseline
    other = {"benchmarks": [{"name": "test_elsewhere"}], "slaf_approx": {"commit": "c3"}}
    assert compare.baseline([*mine, other], run) == mine[-compare.BASELINE_RUNS:]
    assert compare.baseline([other], run) == []
    # compared with several runs: the median of their medians
    rows = compare.compare_runs(run, base, 0.1)
    name = rows[0].name
    want = np.median([np.median(_samples_of(r, lambda n: n == name)) for r in base])
    assert rows[0].before == pytest.approx(want, rel=1e-12)


def _samples_of(run, which):
    return next(b for b in run["benchmarks"] if which(b["name"]))["extra_info"]["samples"]


def _machine_runs(rng, count, *, sigma_run, sigma_round, rounds, fast=0.0, slow=1.0, commit="c1"):
    """`count` runs of a machine whose runs move each benchmark by a lognormal factor of sigma `sigma_run`
    (and, with probability `fast`, make a whole run 10% faster), whose rounds scatter around it by
    `sigma_round`: the 7 benchmarks a quick check judges (all "anchored"), the SLAF ops `slow` times
    slower."""
    names = [("test_slaf[fwd]", "slaf", 1.5), ("test_slaf[fwdbwd]", "slaf", 3.9)]
    names += [("test_lstsq_ours", None, 0.9)]
    names += [(f"test_remez[{t}-20]", None, 3.0) for t in ("relu", "gelu", "swish", "tanh")]
    out = []
    for _ in range(count):
        bs = []
        whole = 0.9 if rng.random() < fast else 1.0
        for name, op, center in names:
            level = center * whole * np.exp(sigma_run * rng.standard_normal()) * (slow if op else 1.0)
            samples = level * np.exp(sigma_round * rng.standard_normal(rounds))
            info = {"op": op, "samples": list(samples), "sample_kind": "anchored"}
            bs.append({"name": name, "fullname": name, "extra_info": info, "stats": _stats(level)})
        out.append({"benchmarks": bs, "slaf_approx": {"commit": commit, "dirty": False, "diff": "0"}})
    return out


# The 2-core reference VM. quiet: nothing else running; from the trial of 2026-11-30 07:46
# (tests/data/trial_2026-11-30.json), over its 15 runs of unchanged code a kernel ratio's median lies above
# the median of all by an upper semi-deviation of 0.024 (fwd 0.0237, fwdbwd 0.0241), and about one run in
# five is a fast one (down to -9%); 10+ rounds. loaded: 5 helpers sharing it (load 7-9), measured
# 2026-11-30 06:29-06:35 from two saved quick runs: log median ratios up to 0.24, per-round scatter
# 0.04-1.7 (log), 5-26 rounds.
MACHINES = {
    "quiet": dict(sigma_run=0.024, sigma_round=0.02, rounds=10, fast=0.2),
    "loaded": dict(sigma_run=0.12, sigma_round=0.4, rounds=5),
}
SLAF = {"test_slaf[fwd]", "test_slaf[fwdbwd]"}


def _check(saved, run):
    base = compare.baseline(saved, run)
    thresh, how = compare.thresholds(compare.spread(saved), len(base))
    return {r.name for r in compare.compare_runs(run, base, thresh) if r.slower}, thresh, how


def test_on_a_model_of_the_quiet_machine_false_alarms_are_rare_and_a_25_percent_slowdown_is_caught():
    """Synthetic runs drawn from the quiet machine (normal scatter, which has longer upper tails than the
    machine showed): BASE_RUNS saved runs set the thresholds and the baseline as `bench --trial` does. Of
    300 checks of unchanged code at most 1% flag anything; of 300 with the SLAF ops 25% slower at least 85%
    flag a SLAF benchmark (as the trial counts a detection): the rest are draws whose 5 saved runs put the
    kernels' threshold above 25%, where the check says it cannot resolve the slowdown. The recorded trials
    below are the measure on the real machine."""
    from slaf_approx.benchmarks.trial import BASE_RUNS

    rng = np.random.default_rng(7)
    params = MACHINES["quiet"]
    false_alarms, detected, wrong, worst = 0, 0, 0, 0.0
    for _ in range(300):
        saved = _machine_runs(rng, BASE_RUNS, **params)
        same, thresh, _ = _check(saved, _machine_runs(rng, 1, **params)[0])
        worst = max(worst, thresh.get("test_slaf", compare.DEFAULT_THRESHOLD))
        false_alarms += bool(same)
        flagged, _, _ = _check(saved, _machine_runs(rng, 1, slow=1.25, **params)[0])
        detected += bool(flagged & SLAF)
        wrong += bool(flagged - SLAF)
    assert false_alarms <= 3 and detected >= 255 and wrong <= 3, (false_alarms, detected, wrong, worst)


def test_the_loaded_machine_raises_no_false_alarm_and_says_it_cannot_resolve_25_percent():
    from slaf_approx.benchmarks.trial import BASE_RUNS

    rng = np.random.default_rng(7)
    params = MACHINES["loaded"]
    false_alarms, unresolved = 0, 0
    for _ in range(100):
        saved = _machine_runs(rng, BASE_RUNS, **params)
        same, _, how = _check(saved, _machine_runs(rng, 1, **params)[0])
        unresolved += "cannot resolve a 25% slowdown" in how
        false_alarms += bool(same)
    assert false_alarms == 0 and unresolved > 95, unresolved


DATA = Path(__file__).parent / "data"
#: the recorded trials (bench --trial 10 on the 2-core VM, 2026-11-30): 07:46, which failed the old rule;
#: 10:26, which failed FLOOR = 10% (two false alarms); 10:57, the rule as shipped (kernel rounds anchored to
#: a copy into a warm buffer); and the groups each can judge: in the first the Remez rounds were paired
#: with the old anchor (a sort), against which they drifted 20-30%
TRIALS = {
    "trial_2026-11-30.json": ("test_slaf",),
    "trial_2026-11-30b.json": ("test_slaf", "test_remez", "test_lstsq_ours"),
    "trial_2026-11-30c.json": ("test_slaf", "test_remez", "test_lstsq_ours"),
}


def _trial(kind, name="trial_2026-11-30.json"):
    runs_ = json.loads((DATA / name).read_text())["runs"]
    return [r for r in runs_ if r["run"].startswith(kind)]


@pytest.mark.parametrize("name", list(TRIALS))
def test_the_verdicts_on_the_recorded_trials_are_right_from_every_window_of_saved_runs(name):
    """Every window of 5 consecutive runs of unchanged code taken as the saved runs, the other 10 checked,
    and the 10 with the SLAF ops 25% slower: no false alarm in the groups the trial can judge, and every
    slowed run caught."""
    same, slow = _trial("saved", name) + _trial("unchanged", name), _trial("slowed", name)
    alarms, detections, checks, worst = [], 0, 0, 0.0
    for start in range(len(same) - 4):
        saved = same[start:start + 5]
        for r in [r for r in same if r not in saved]:
            flagged, thresh, _ = _check(saved, r)
            worst = max(worst, thresh["test_slaf"])
            alarms += [(start, r["run"], n) for n in flagged if n.split("[")[0] in TRIALS[name]]
            checks += 1
        for r in slow:
            flagged, _, _ = _check(saved, r)
            detections += any(n.startswith("test_slaf") for n in flagged)
    assert not alarms and detections == 10 * (len(same) - 4), (alarms, detections, worst)
    assert checks == 10 * (len(same) - 4) and worst < 0.25


def test_the_floor_is_what_the_second_trial_needed():
    """The class of failure FLOOR = 15% fixes: at the old 10%, the second trial's own saved runs flag two of
    its ten checks of unchanged code (as the trial did, exit 1)."""
    saved, same = _trial("saved", "trial_2026-11-30b.json"), _trial("unchanged", "trial_2026-11-30b.json")
    base = compare.baseline(saved, same[0])
    old, _ = compare.thresholds(compare.spread(saved), len(base), floor=0.10)
    new, _ = compare.thresholds(compare.spread(saved), len(base))
    flagged = [r["run"] for r in same if any(x.slower for x in compare.compare_runs(r, base, old))]
    assert flagged == ["unchanged-4", "unchanged-10"], flagged
    assert not any(x.slower for r in same for x in compare.compare_runs(r, base, new))


def test_a_single_fast_saved_run_is_why_the_baseline_is_several():
    """The failure the several-run baseline fixes, on the recorded trial: the fifth saved run was a fast
    one, and against it alone every check of unchanged code lies above, up to the threshold's edge."""
    saved, same = _trial("saved"), _trial("unchanged")

    def fwd(r):
        return np.median(_samples_of(r, lambda n: n.endswith("fwd]")))

    last = [fwd(r) / fwd(saved[-1]) - 1 for r in same]
    pooled = [fwd(r) / np.median([fwd(s) for s in saved]) - 1 for r in same]
    assert min(last) > 0.03 and max(pooled) < 0.05, (last, pooled)


def test_compare_table_is_one_table_of_the_slower_benchmarks():
    rows = compare.compare_runs(_slowed(cpu_run(seed=2), 1.25), cpu_run(seed=1), 0.1)
    text = compare.compare_table(rows, "test")
    assert text.count("| benchmark |") == 1 and "16 slower, 0 faster" in text
    changes = [float(line.split(" | ")[-2].rstrip("%")) for line in text.splitlines() if "**slower**" in line]
    assert len(changes) == 16 and all(22 < c < 28 for c in changes), changes  # 25%, and the draws' noise


# ---- history -------------------------------------------------------------------------------------
def test_history_orders_runs_by_commit_and_takes_any_quantity():
    r1, r2, r3 = cpu_run(commit="aaa"), cpu_run(commit="bbb"), cpu_run(commit="ccc")
    r2["benchmarks"][0]["extra_info"]["instructions"] = 1000
    r3["benchmarks"][0]["extra_info"]["instructions"] = 1100
    order = {"ccc": 2, "aaa": 0, "bbb": 1}
    runs_ = history.ordered([r3, r1, r2], order)
    assert [r["slaf_approx"]["commit"] for r in runs_] == ["aaa", "bbb", "ccc"]
    s = history.series(runs_, "instructions")
    assert list(s.values()) == [[None, 1000.0, 1100.0]]
    text = history.history_table(runs_, "instructions")
    assert "| benchmark | aaa | bbb | ccc |" in text and "| – | 1 000 | 1 100 |" in text
    assert "ms" in history.history_table(runs_, "median")
    fig = history.history_figure(runs_, "median")
    assert len(fig.axes[0].lines) == len(history.series(runs_, "median")) + 1  # one per benchmark, and 1.0
    # the legend names the benchmarks that moved most: here the one slowed by 25% in the last run
    slow = [_slowed(cpu_run(commit=c, seed=i), 1.25 if c == "ccc" else 1.0) for i, c in enumerate(order)]
    named = [t.get_text() for t in history.history_figure(slow, "anchored").axes[0].get_legend().get_texts()]
    assert len(named) == history.NAMED and all(n.startswith("test_slaf[") for n in named), named


def _counts_doc(instructions: int, key: str = "x86_64-test") -> dict:
    from slaf_approx.benchmarks import counts as pc

    bench = {"instructions": instructions, "kind": "kernel", "per_element": instructions / 1024}
    return {"format": pc.FORMAT, "key": key, "selection": "default", "meta": {}, "benchmarks": {"k": bench}}


def test_history_draws_time_and_the_kept_instruction_counts(tmp_path):
    from slaf_approx.benchmarks import counts as pc

    store = tmp_path / "counts"
    paths = [pc.save_history(store, _counts_doc(n)) for n in (1000, 1100)]
    assert [p.name[:4] for p in paths] == ["0001", "0002"]
    assert paths[0].parent == store / "x86_64-test" / "runs"
    counted = history.count_runs(store)
    assert [d["benchmarks"]["k"]["instructions"] for d in counted] == [1000, 1100]
    assert counted[0]["slaf_approx"]["commit"] == runs.code_version()["commit"]
    assert history.count_runs(tmp_path / "none") == []
    timed = [cpu_run(commit="aaa"), cpu_run(commit="bbb")]
    text, fig = history.history_markdown(timed, counted)
    assert text.index("## Median time (s)") < text.index("## Instructions (valgrind)")
    assert "| k | 1 000 | 1 100 |" in text, text
    assert len(fig.axes) == 2 and all(ax.get_legend() is not None for ax in fig.axes)
    only, fig = history.history_markdown([], counted, level=3)
    assert only.startswith("### Instructions (valgrind)") and "Median time" not in only and len(fig.axes) == 1


def test_the_full_report_has_the_rule_the_trial_and_both_histories(tmp_path):
    import argparse

    from slaf_approx.benchmarks import command
    from slaf_approx.benchmarks import counts as pc

    store = tmp_path / "store" / "host-cpu"
    for seed in (1, 2):
        runs.save_run(store, cpu_run(seed=seed, commit=runs.code_version()["commit"] or "c1"))
    for n in (1000, 1100):
        pc.save_history(tmp_path / "store" / "counts", _counts_doc(n))
    out = tmp_path / "rep"
    (out / "bench").mkdir(parents=True)
    (out / "bench" / "false_alarm.md").write_text("TRIAL PAGE\n")
    args = argparse.Namespace(budgets=kb.BUDGETS_FILE, history_of="median", storage=str(store), check=False)
    notes = []
    got = command.finish(args, [("run-cpu.json", cpu_run())], kb.load_budgets(), out, storage=store,
                         full=True, say=notes.append)
    text = (out / "kernels.md").read_text()
    assert got.code == 0 and notes == [f"report -> {out / 'kernels.md'}"]
    assert "## The regression check" in text and "exp(3 × sigma × sqrt(1 + v)) - 1" in text
    assert text.index("### False alarms and detection") < text.index("TRIAL PAGE")
    assert "### Median time (s)" in text and "### Instructions (valgrind)" in text
    assert "| k | 1 000 | 1 100 |" in text
    assert (out / "kernels_history.png").is_file()


# ---- the trial ----------------------------------------------------------------------------------
def test_the_trial_counts_false_alarms_detections_and_budgets_held():
    from datetime import UTC, datetime

    from slaf_approx.benchmarks import trial

    R = trial.RunResult
    results = [
        R("saved", 1, 0), R("saved", 2, 0, broken=["cpu_x"]), R("saved", 3, 0),
        R("unchanged", 1, 0), R("unchanged", 2, 1, slower=["test_remez[relu-20]"]),
        R("slowed", 1, 1, slower=["test_slaf[a]", "test_slaf[b]"]), R("slowed", 2, 1, broken=["cpu_x"]),
        R("slowed", 3, 0),
    ]
    s = trial.summary(results)
    assert s == dict(checks=2, false_alarms=1, detected=1, slowed=3, budget_runs=5, budgets_held=4)
    t = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    md = trial.markdown(results, t, t, "a partial trial of 2")
    assert "| false alarms (exit 1 on unchanged code) | 1 of 2 | 0 |" in md
    assert "| detections of the 25% slowdown | 1 of 3 | 3 of 3 |" in md
    assert "| runs of unchanged code in which every budget held | 4 of 5 | 5 of 5 |" in md
    assert "| unchanged 2 | 1 | `test_remez[relu-20]` | – |" in md and md.count("| saved ") == 3


def test_the_trial_verdicts_are_the_checks():
    from slaf_approx.benchmarks import trial

    budgets = kb.load_budgets()
    saved = [cpu_run(seed=1), cpu_run(seed=2)]
    assert trial.verdicts(cpu_run(seed=3), saved, budgets) == ([], [])
    slower, broken = trial.verdicts(_slowed(cpu_run(seed=3), 1.3), saved, budgets)
    assert slower and all(n.startswith("test_slaf[") for n in slower) and broken == []
    broken = trial.verdicts(cpu_run(seed=3, eager_fb=0.006), [], budgets)
    assert broken == ([], ["cpu_fused_train_vs_eager_horner"])


# ---- report --------------------------------------------------------------------------------------
def test_report_has_the_peer_and_compile_tables_and_says_the_gpu_is_not_measured(tmp_path):
    run = cpu_run()
    res = kb.check_budgets(kb.records(run), kb.load_budgets())
    path = report.write_kernel_report([("run-cpu.json", run)], tmp_path, res)
    text = path.read_text()
    for needle in (
        "## CPU: float32",
        "### Against the peers",
        "### Compile time",
        "## Budgets",
        "## Goals",
        "horner compile",
        "pau matched compile",
        "| 2^10 | 2^20 |",
        "**not measured**",
        "| 4 s | 4 s |",
    ):
        assert needle in text, needle
    # the fused SLAF's forward at degree 8 against the fastest peer, the compiled Horner: 1 / 0.8
    assert "| fused | forward | 8 | 1.25× (horner compile) | 1.25× (horner compile) |" in text
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == [
        "kernels_memory_cpu_float32.png",
        "kernels_peers_cpu_float32.png",
        "kernels_throughput_cpu_float32.png",
    ]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_peer_table_reads_the_race_for_the_rival_backend_and_paired_copies_for_the_others():
    """The medians say the compiled Horner is 0.8 of the fused SLAF's time; its race against the fused
    backend says 1.25 (the SLAF faster): the fused rows read the race, the reference backend's the anchors."""
    recs = kb.records(cpu_run(raced_compiled=1.25))
    ratios = report.peer_ratios(recs, "cpu", "float32")
    pr = {(p["backend"], p["mode"], p["degree"], p["size"]): p for p in ratios}
    fused = pr[("fused", "forward", 8, Q)]
    assert fused["how"] == "raced" and fused["fastest"] == "horner compile"
    assert fused["vs_fastest"] == pytest.approx(0.8, rel=0.01)
    assert fused["ratios"]["pau matched compile"] == pytest.approx(1 / 3, rel=0.01)
    ref = pr[("reference", "forward", 8, Q)]
    assert ref["how"] == "anchored" and ref["fastest"] == "horner compile"
    assert ref["vs_fastest"] == pytest.approx(5 / 0.8, rel=0.05)
    # the goal against the compiled Horner reads the race too
    res = results_by_name(cpu_run(raced_compiled=1.25))
    goal = res["cpu_fused_forward_vs_compiled_horner"]
    assert goal.status == "met" and goal.value == pytest.approx(0.8, rel=0.01)


def test_a_raced_budget_needs_the_race():
    import tomllib

    shipped = tomllib.loads(kb.BUDGETS_FILE.read_text())
    budgets = kb.parse_budgets(
        {
            "version": shipped["version"],
            "budget": shipped["budget"],
            "goal": {
                "vs_compiled": {
                    "of": "raced",
                    "numerator": {"op": "slaf", "backend": "reference", "mode": "forward", "degree": 8,
                                  "size": Q},
                    "denominator": {"op": "horner", "backend": "compile", "mode": "forward", "degree": 8,
                                    "size": Q},
                    "max": 1.0,
                }
            },
        }
    )
    res = kb.check_budgets(kb.records(cpu_run()), budgets)[-1]
    assert res.budget.name == "vs_compiled"
    assert res.status == "not measured" and "not raced against the numerator" in res.detail
    bad = {**shipped, "goal": {"g": {"of": "raced", "select": {"op": "slaf"}, "max": 1.0}}}
    with pytest.raises(kb.BudgetError, match="raced is a ratio"):
        kb.parse_budgets(bad)


def test_a_race_alternates_the_order_and_records_each_pairs_ratio():
    from slaf_approx.benchmarks.suite.conftest import RACE_MIN_PAIRS, raced

    calls, now = [], [0.0]

    def subject(name, cost):
        def f():
            # the second call of a pair pays 1 extra unit (the first one's frees): alternating cancels it
            second = len(calls) % 2 == 1 and len(calls) > 4
            calls.append(name)
            now[0] += cost + (1.0 if second else 0.0)

        return f

    ratios = raced(subject("fn", 2.0), subject("rival", 4.0), lambda: now[0], budget_s=0.0)
    pairs = calls[4:]  # after two untimed calls each and one timed pair to size the race
    assert len(ratios) == RACE_MIN_PAIRS and len(pairs) == 2 * RACE_MIN_PAIRS
    assert pairs[:4] == ["fn", "rival", "rival", "fn"]
    assert ratios[0] == pytest.approx(2 / 5) and ratios[1] == pytest.approx(3 / 4)
    assert np.median([1 / r for r in ratios]) == pytest.approx((5 / 2 + 4 / 3) / 2)


def test_report_with_a_gpu_run_has_gpu_sections():
    md, figs = report.kernel_report([("run-cpu.json", cpu_run()), ("gpu/kernels.json", gpu_run())])
    assert "**not measured**" not in md and "## GPU: bfloat16" in md and "NVIDIA H200" in md
    assert "kernels_throughput_cuda_bfloat16.png" in figs
    assert "cuda float32, 2^28 elements" in report.short_summary(gpu_run())


def test_fit_markdown_lists_the_fitting_benchmarks_and_the_budgets():
    run = cpu_run()
    text = report.fit_markdown(run, kb.check_budgets(kb.records(run), kb.load_budgets()))
    assert "| test_lstsq_ours | 0.76 ms |" in text and "| lstsq_vs_numpy |" in text
    assert "| gelu | 24.5 ms (5 iterations) | 24.5 ms (5 iterations) |" in text


# ---- settings and workloads ----------------------------------------------------------------------
def test_settings_defaults_quick_and_the_untimed_cut():
    s = kb.bench_settings()
    assert (s.device, s.dtypes, s.sizes, s.degrees, s.peers) == (
        "cpu",
        ("float32",),
        (2**10, 2**16, 2**20, 2**24),
        (2, 4, 8, 16),
        settings.PEERS,
    )
    assert "triton" not in settings.slaf_backends(s, "float32")
    assert settings.slaf_backends(s, "float32") == [
        b for b in available_backends(torch.ones(1)) if b != "triton"
    ]
    q = kb.bench_settings(quick=True)
    assert (q.sizes, q.degrees, q.peers) == ((Q,), (8,), settings.QUICK_PEERS)
    assert q.backends == (resolve_backend("auto", torch.ones(1)),)
    d = kb.bench_settings(disabled=True)
    assert d.sizes == (2**10,) and d.degrees == (2, 16) and d.layer_shape == (2, 512, 32, 32)
    assert kb.bench_settings(peers=["none"]).peers == ()
    with pytest.raises(ValueError, match="unknown peer 'jax'"):
        kb.bench_settings(peers=["jax"])


def test_horner_and_pau_compute_their_formulas_eager_and_compiled():
    x = torch.linspace(-3, 3, 101, dtype=torch.float64)
    a = workloads.coefficients(6, x, scale=3.0)
    ref = np.polynomial.polynomial.polyval(x.numpy(), a.numpy())
    got = pau_kernel.horner(x, a).numpy()
    assert np.max(np.abs(got - ref)) <= 8 * np.finfo(float).eps * np.max(np.abs(ref)), np.argmax(
        np.abs(got - ref)
    )
    b = workloads.coefficients(4, x, scale=3.0, seed=7)
    q = x.numpy() * np.polynomial.polynomial.polyval(x.numpy(), b.numpy())
    assert np.allclose(pau_kernel.pau(x, a, b).numpy(), ref / (1 + np.abs(q)), rtol=1e-13, atol=0)
    assert workloads.pau_type("5/4", None) == (5, 4)
    assert [workloads.pau_type("matched", n) for n in (2, 4, 8, 16)] == [(1, 1), (2, 2), (4, 4), (8, 8)]
    xs, gy = workloads.make_input(512, "float32", "cpu")
    for op, variant in (("horner", None), ("pau", "matched"), ("recurrence", None)):
        eager = (
            workloads.kernel_fn(op, "forward", xs, gy, backend="eager", degree=4, variant=variant)
            if op != "recurrence"
            else None
        )
        comp = workloads.kernel_fn(
            op, "forward+backward", xs, gy, backend="compile", degree=4, variant=variant
        )
        gx, *gc = comp()
        assert len(gc) == (2 if op == "pau" else 1) and all(bool(torch.isfinite(g).all()) for g in (gx, *gc))
        if eager is not None:
            y = workloads.kernel_fn(op, "forward", xs, gy, backend="compile", degree=4, variant=variant)()
            assert torch.allclose(y, eager(), rtol=1e-5, atol=1e-6), op
    with pytest.raises(ValueError, match="peer 'recurrence' has backends compile"):
        workloads.kernel_fn("recurrence", "forward", xs, gy, backend="eager", degree=2)


def test_the_slowdown_hook_wraps_the_slaf_benchmarks_only(monkeypatch):
    x, gy = workloads.make_input(256, "float32", "cpu")
    plain = workloads.kernel_fn("slaf", "forward", x, gy, backend="reference", degree=3)
    monkeypatch.setenv(workloads.SLOWDOWN_ENV, "1.25")
    slow = workloads.kernel_fn("slaf", "forward", x, gy, backend="reference", degree=3)
    assert slow.__name__ == "slow" and torch.equal(slow(), plain())
    assert workloads.kernel_fn("gelu", "forward", x, gy).__name__ != "slow"
    for bad in ("0.5", "nan", "fast"):
        monkeypatch.setenv(workloads.SLOWDOWN_ENV, bad)
        with pytest.raises(ValueError, match="SLAF_APPROX_BENCH_SLOWDOWN"):
            workloads.slowdown()


def test_cpu_peak_memory_is_exact_to_the_byte():
    n = 3 * 2**12 + 5
    x, gy = workloads.make_input(n, "float32", "cpu")
    for (op, mode), expected in {("copy", "forward"): 4 * n, ("gelu", "forward+backward"): 8 * n}.items():
        assert workloads.peak_memory(workloads.kernel_fn(op, mode, x, gy), "cpu")[1] == expected


def test_quick_kernel_table_is_markdown():
    from slaf_approx.benchmarks.runtable import PEER_ROWS, quick_kernel_table

    text = quick_kernel_table(size=2**10, degree=4, min_run_time=0.002, peers=PEER_ROWS[:3])
    assert "| op | backend | mode |" in text and "| horner (degree 4) | eager |" in text
    assert "| slaf (degree 4) | reference |" in text


# ---- the command line ----------------------------------------------------------------------------
def _cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--backends", "cudnn"], "unknown backend 'cudnn'"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--dtype", "float64"], "unknown dtype 'float64'"),
        (["--device", "cuda"], "CUDA is not available"),
        (["--backends", "triton"], "triton' is benchmarked on CUDA only"),
        (["--sizes", "2^x"], "sizes are positive integers"),
        (["--degrees", "0"], "degrees are integers in [1, 64]"),
        (["--deadline", "nan"], "expected a finite number of seconds > 0, got 'nan'"),
        (["--deadline", "-3"], "expected a finite number of seconds > 0"),
        (["--threshold", "ten"], "expected a fraction such as 5%"),
        (["--budgets", "/nonexistent/budgets.toml"], "/nonexistent/budgets.toml: cannot read"),
        (["--trial", "3", "--check"], "it does not go with --check"),
        (["--trial", "0"], "--trial"),
        (["--trial", "3", "--budgets", "/nonexistent/b.toml"], "/nonexistent/b.toml: cannot read"),
    ],
)
def test_bench_bad_input_is_one_line_and_exit_2(capsys, monkeypatch, tmp_path, argv, needle):
    monkeypatch.setattr(settings, "cuda_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(capsys, "bench", *argv)
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and err.startswith("slaf-approx: error: "), err
    assert needle in err, err
    assert not list(tmp_path.iterdir())  # nothing written before the input was checked


def test_bench_binary_budgets_file_and_bad_slowdown_are_exit_2(capsys, tmp_path, monkeypatch):
    (tmp_path / "b.toml").write_bytes(bytes(range(256)))
    code, _, err = _cli(capsys, "bench", "--budgets", str(tmp_path / "b.toml"), "--out", str(tmp_path / "o"))
    assert code == 2 and err.count("\n") == 1 and f"{tmp_path / 'b.toml'}: not a text (UTF-8) file" in err, (
        err
    )
    monkeypatch.setenv(workloads.SLOWDOWN_ENV, "0.9")
    code, _, err = _cli(capsys, "bench", "--out", str(tmp_path / "o"))
    assert code == 2 and "SLAF_APPROX_BENCH_SLOWDOWN" in err and not (tmp_path / "o").exists()


def test_report_only_writes_the_report_and_check_fails_with_one_table(capsys, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(cpu_run()))
    out = tmp_path / "rep"
    code, stdout, err = _cli(capsys, "bench", "--report-only", str(good), "--out", str(out), "--check")
    assert code == 0, err
    assert (out / "kernels.md").is_file() and (out / "bench" / "fit.md").is_file()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(cpu_run(eager_fb=0.006)))
    code, stdout, err = _cli(capsys, "bench", "--report-only", str(bad), "--out", str(out), "--check")
    assert (
        code == 1
        and stdout.count("| check |") == 1
        and "| budget | cpu_fused_train_vs_eager_horner |" in stdout
    )
    assert err.count("\n") == 2 and "check failed: 0 benchmarks slower, 1 budgets broken" in err, err


def test_the_out_folder_of_partial_runs_is_the_scratch_folder(capsys):
    class A:
        out = None

    assert cli._default_out(A(), "bench", partial=False) == Path("reports")
    assert cli._default_out(A(), "run", partial=True) == Path(".scratch/run")
    assert ".scratch/run/" in capsys.readouterr().err
    A.out = "/tmp/x"
    assert cli._default_out(A(), "bench", partial=True) == Path("/tmp/x")


@pytest.mark.parametrize("argv, partial", [
    (["paper"], False), (["paper", "--quick"], True), (["paper", "--seeds", "2"], True),
    (["paper", "--tasks", "cubic"], True), (["run"], False), (["run", "--quick"], True),
    (["run", "--steps", "9"], True)])
def test_partial_paper_and_run_go_to_the_scratch_folder(monkeypatch, tmp_path, argv, partial):
    # the command's own partial-run rule decides the folder: run the command up to its first work, no further
    monkeypatch.chdir(tmp_path)
    seen = {}

    def stop(text):
        seen["out"] = Path(text)
        raise cli.UsageError("stopped before any work")

    monkeypatch.setattr(cli, "_out_folder", stop)
    assert cli.main(argv) == 2
    assert seen["out"] == (Path(".scratch") / argv[0] if partial else Path("reports"))
    assert ".scratch/" in (ROOT / ".gitignore").read_text().split()


TINY = [
    "--sizes",
    "2^10",
    "--degrees",
    "2",
    "--peers",
    "horner:eager",
    "--kernels-only",
    "--",
    "--benchmark-max-time=0.002",
    "--benchmark-min-rounds=3",
    "-k",
    "not test_layer",
]


def _bench_cli(cwd, *argv, env=None):
    import os

    e = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "slaf_approx.cli", "bench", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=e,
    )


def test_bench_from_any_directory_saves_checks_and_leaves_git_clean(tmp_path):
    """End to end from a folder outside the repository: a timed run of the shipped suite saves its run with
    the commit; a check compares with it (no traceback whatever the verdict) and saves nothing; a check
    with a budget that cannot hold fails with one table; the repository's git status does not change."""
    before = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    store = tmp_path / "store"
    p = _bench_cli(tmp_path, "--storage", str(store), *TINY)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "a partial run: writing to .scratch/bench/" in p.stderr
    saved = runs.saved_runs(store)
    assert len(saved) == 1
    run = kb.load_run(saved[0])
    assert run["slaf_approx"]["commit"] and run["slaf_approx"]["spread"]["runs"] == 0
    recs = kb.records(run)
    assert {r["op"] for r in recs} == {*settings.COPIES, *settings.ACTIVATIONS, "slaf", "horner"}
    for r in recs:
        assert r["sample_kind"] == "anchored" and len(r["samples"]) == r["rounds"] >= 3, r["name"]
        assert r["first_call_s"] > 0 and r["peak_bytes"] is not None
    p = _bench_cli(tmp_path, "--storage", str(store), "--check", *TINY)
    assert p.returncode in (0, 1) and "Traceback" not in p.stdout + p.stderr, p.stderr[-3000:]
    assert "benchmarks compared with the saved run 0001_" in p.stdout + p.stderr or p.returncode == 1
    budgets = tmp_path / "budgets.toml"
    budgets.write_text("version = 3\n[budget.breaks]\nselect = { op = 'gelu' }\nmax = 1e-12\n")
    p = _bench_cli(tmp_path, "--storage", str(store), "--check", "--budgets", str(budgets), *TINY)
    assert p.returncode == 1 and "Traceback" not in p.stdout + p.stderr
    assert p.stdout.count("| check |") == 1 and "| budget | breaks |" in p.stdout, p.stdout
    assert runs.saved_runs(store) == saved  # a check saves nothing
    h = _bench_cli(tmp_path, "--storage", str(store), "--history", "--out", str(tmp_path / "h"))
    assert h.returncode == 0 and (tmp_path / "h" / "kernels_history.png").is_file(), h.stderr
    after = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    assert after == before


def test_quick_bench_in_the_repository_leaves_git_status_unchanged(tmp_path):
    before = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    p = _bench_cli(ROOT, "--quick", "--storage", str(tmp_path / "s"), *TINY)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (ROOT / ".scratch" / "bench" / "kernels.md").is_file()
    after = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    assert after == before


def test_pytest_command_runs_the_shipped_suite():
    argv = pytest_command(kb.bench_settings(quick=True), "/tmp/r.json", quick=True)
    assert str(SUITE / "test_bench_kernels.py") in argv and str(SUITE / "test_bench_fit.py") in argv
    k = argv[argv.index("-k") + 1]
    assert (
        k.startswith("not test_default_sweep and not test_layer and (not test_remez")
        and "--bench-peers" in argv
    )
    assert SUITE.is_dir() and (SUITE / "conftest.py").is_file()
