"""The kernel benchmarks' report and budget checker on small synthetic pytest-benchmark runs, and
`slaf-approx bench`'s bad input. Nothing here is timed (the benchmarks themselves run once, untimed, as
bench/ under --benchmark-disable)."""

import copy
import json
from pathlib import Path

import pytest
import torch

from slaf_approx import benchmarks as kb
from slaf_approx import cli
from slaf_approx.kernels import available_backends

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = ROOT / "bench" / "budgets.toml"
BIG = 2**24
MiB = 2**20


def _stats(median: float) -> dict:
    """The stats block pytest-benchmark writes."""
    return {"min": 0.9 * median, "max": 1.3 * median, "mean": 1.02 * median, "stddev": 0.05 * median,
            "rounds": 10, "median": median, "iqr": 0.02 * median, "q1": 0.99 * median, "q3": 1.01 * median,
            "iqr_outliers": 0, "stddev_outliers": 1, "outliers": "1;0", "ld15iqr": 0.9 * median,
            "hd15iqr": 1.2 * median, "ops": 1.0 / median, "total": 10 * median, "iterations": 1}


def _bench(name: str, median: float, extra: dict | None = None, group: str | None = None) -> dict:
    module = "test_bench_kernels" if extra and "op" in extra else "test_bench_fit"
    return {"group": group, "name": name, "fullname": f"bench/{module}.py::{name}", "params": None,
            "param": name.partition("[")[2].rstrip("]") or None, "extra_info": extra or {},
            "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 5, "max_time": 1.0,
                        "min_time": 5e-06, "warmup": False},
            "stats": _stats(median)}


def _kernel(op, mode, size, median, *, backend="torch", degree=None, dtype="float32", device="cpu",
            peak=None) -> dict:
    info = {"op": op, "backend": backend, "mode": mode, "degree": degree, "size": size, "dtype": dtype,
            "device": device, "bytes": kb.bytes_moved(size, dtype, mode, op), "peak_bytes": peak}
    name = f"test_{op}[{device}-{dtype}-{backend}-deg{degree}-{kb.size_label(size)}-{kb.MODE_IDS[mode]}]"
    return _bench(name, median, info, f"{device} {dtype} {kb.size_label(size)} {mode}")


def _run(benchmarks, device="cpu") -> dict:
    mi = {"node": "testhost", "processor": "x86_64", "python_version": "3.11.7",
          "cpu": {"brand_raw": "Test CPU"}, "torch": "2.13.0", "triton": "3.9.0", "cuda": "none",
          "torch_threads": 2, "bench_device": device}
    if device == "cuda":
        mi.update(cuda="13.0", cuda_device="NVIDIA H200")
    return {"machine_info": mi, "commit_info": {"id": "abc", "dirty": False},
            "benchmarks": benchmarks, "datetime": "2026-11-28T12:00:00+00:00", "version": "5.1.0"}


def cpu_run(fused_fwd=0.0105, fused_fb=0.045, naive_fb=0.9, fused_peak=128 * MiB) -> dict:
    """A CPU run at 2^20 and 2^24 that meets every CPU budget by default, with the fitting benchmarks."""
    b = []
    for n, s in ((2**20, 1 / 16), (BIG, 1.0)):
        b.append(_kernel("copy", "forward", n, 0.010 * s, peak=int(64 * MiB * s)))
        for op in kb.ACTIVATIONS:
            b.append(_kernel(op, "forward", n, 0.011 * s, peak=int(64 * MiB * s)))
            b.append(_kernel(op, "forward+backward", n, 0.05 * s, peak=int(128 * MiB * s)))
        for d in (2, 8):
            b.append(_kernel("slaf", "forward", n, fused_fwd * s, backend="fused", degree=d,
                             peak=int(64 * MiB * s)))
            b.append(_kernel("slaf", "forward+backward", n, fused_fb * s, backend="fused", degree=d,
                             peak=int(fused_peak * s)))
            b.append(_kernel("slaf", "forward", n, 0.2 * s, backend="reference", degree=d,
                             peak=int(600 * MiB * s)))
            b.append(_kernel("slaf", "forward+backward", n, 0.5 * s, backend="reference", degree=d,
                             peak=int(1600 * MiB * s)))
            b.append(_kernel("naive", "forward", n, 0.5 * s, degree=d, peak=int(500 * MiB * s)))
            b.append(_kernel("naive", "forward+backward", n, naive_fb * s, degree=d,
                             peak=int(1500 * MiB * s)))
    for op, backend in (("gelu_layer", "torch"), ("slaf_layer", "fused")):
        for mode, t in (("forward", 0.12), ("forward+backward", 0.3)):
            k = _kernel(op, mode, 2**26, t, backend=backend, degree=8 if op == "slaf_layer" else None,
                        peak=256 * MiB)
            k["extra_info"].update(shape=[128, 512, 32, 32], channels=512)
            b.append(k)
    b += [_bench("test_lstsq_ours", 0.00076), _bench("test_lstsq_numpy", 0.00078)]
    b += [_bench(f"test_remez[{t}-{d}]", m / (1 if d == 20 else 3),
                 {"target": t, "degree": d, "iterations": 5})
          for t, m in (("relu", 0.017), ("gelu", 0.0245)) for d in (8, 20)]
    b.append(_bench("test_default_sweep", 21.0))
    return _run(b)


def gpu_run(triton_fwd=0.0006, triton_fb=0.0017) -> dict:
    n, b = 2**28, []
    for dtype in ("float32", "bfloat16"):
        h = 0.5 if dtype == "bfloat16" else 1.0
        b.append(_kernel("copy", "forward", n, 0.00055 * h, dtype=dtype, device="cuda", peak=2**30))
        b.append(_kernel("gelu", "forward+backward", n, 0.0016 * h, dtype=dtype, device="cuda", peak=2**31))
        for mode, t in (("forward", triton_fwd), ("forward+backward", triton_fb)):
            b.append(_kernel("slaf", mode, n, t * h, backend="triton", degree=8, dtype=dtype, device="cuda",
                             peak=2**30))
            b.append(_kernel("naive", mode, n, 0.03 * h, degree=8, dtype=dtype, device="cuda", peak=2**34))
    return _run(b, "cuda")


def results_by_name(run, budgets=None):
    res = kb.check_budgets(kb.records(run), budgets or kb.load_budgets(BUDGETS))
    return {r.budget.name: r for r in res}


# ----------------------------------------------------------------------------------------------------
def test_records_compute_bandwidth_and_fraction_of_the_copy():
    recs = kb.records(cpu_run())
    copy_ = kb._one(recs, op="copy", size=BIG)
    assert copy_["gbps"] == pytest.approx(2 * BIG * 4 / 0.010 / 1e9)
    fused = kb._one(recs, op="slaf", backend="fused", mode="forward", degree=8, size=BIG)
    assert fused["copy_fraction"] == pytest.approx(0.010 / 0.0105)
    assert kb._one(recs, test="test_lstsq_ours")["median"] == 0.00076
    assert all("copy_fraction" not in r for r in recs if r.get("op") is None)


def test_the_versioned_budgets_file_holds_the_issue_budgets():
    budgets = {b.name: b for b in kb.load_budgets(BUDGETS)}
    assert budgets["lstsq_vs_numpy"].max == 1.1 and budgets["remez_degree_20"].max == 0.050
    assert budgets["default_sweep"].max == 60.0
    b = budgets["cpu_fused_forward_vs_copy"]
    assert b.max == 1.1 and b.numerator["size"] == BIG and b.numerator["degree"] == 8 and b.required == "cpu"
    assert budgets["cpu_fused_train_vs_gelu"].max == 1.0
    assert budgets["cpu_naive_vs_fused_train"].min == 15
    assert budgets["cpu_fused_train_memory_vs_gelu"].of == "peak_bytes"
    assert budgets["cuda_triton_forward_bandwidth"].min == 0.9
    assert budgets["cuda_triton_train_bandwidth"].min == 0.8
    assert budgets["cuda_triton_forward_bandwidth"].numerator["size"] == 2**28


def test_budgets_pass_on_a_good_cpu_run_and_gpu_ones_are_not_measured():
    res = results_by_name(cpu_run())
    for name in ("lstsq_vs_numpy", "remez_degree_20", "default_sweep", "cpu_fused_forward_vs_copy",
                 "cpu_fused_train_vs_gelu", "cpu_naive_vs_fused_train", "cpu_fused_train_memory_vs_gelu"):
        assert res[name].status == "ok", res[name]
    assert res["cpu_fused_forward_vs_copy"].value == pytest.approx(1.05)
    assert res["cpu_naive_vs_fused_train"].value == pytest.approx(20.0)
    assert res["remez_degree_20"].value == 0.0245  # the worst target
    for name in ("cuda_triton_forward_bandwidth", "cuda_triton_train_bandwidth"):
        assert res[name].status == "not measured" and not res[name].failed


@pytest.mark.parametrize("kwargs,broken", [
    (dict(fused_fwd=0.0115), "cpu_fused_forward_vs_copy"),
    (dict(fused_fb=0.055), "cpu_fused_train_vs_gelu"),
    (dict(naive_fb=0.5), "cpu_naive_vs_fused_train"),
    (dict(fused_peak=140 * MiB), "cpu_fused_train_memory_vs_gelu"),
])
def test_each_cpu_budget_fails(kwargs, broken):
    res = results_by_name(cpu_run(**kwargs))
    assert [n for n, r in res.items() if r.failed] == [broken]
    assert res[broken].status == "FAIL"


def test_cpu_budgets_must_be_present_in_a_cpu_run():
    run = cpu_run()
    run["benchmarks"] = [b for b in run["benchmarks"] if b["extra_info"].get("size") != BIG]
    res = results_by_name(run)
    assert res["cpu_fused_forward_vs_copy"].status == "missing"
    assert "required in a cpu run" in res["cpu_fused_forward_vs_copy"].detail
    assert res["lstsq_vs_numpy"].status == "ok"


def test_a_gpu_run_checks_the_gpu_budgets_only():
    res = results_by_name(gpu_run())
    assert res["cuda_triton_forward_bandwidth"].status == "ok"
    assert res["cuda_triton_forward_bandwidth"].value == pytest.approx(0.55 / 0.6)
    assert res["cuda_triton_train_bandwidth"].value == pytest.approx(2.5 * 0.55 / 1.7)
    assert res["cpu_fused_forward_vs_copy"].status == "not measured"  # no CPU kernels: not a CPU run
    assert res["lstsq_vs_numpy"].status == "not measured"
    slow = results_by_name(gpu_run(triton_fwd=0.001))
    assert slow["cuda_triton_forward_bandwidth"].status == "FAIL"


def test_a_selector_matching_two_benchmarks_is_ambiguous():
    run = cpu_run()
    run["benchmarks"].append(copy.deepcopy(run["benchmarks"][0]))  # a second copy at 2^20: not a budget's
    run["benchmarks"].append(_kernel("copy", "forward", BIG, 0.01))
    res = results_by_name(run)
    assert res["cpu_fused_forward_vs_copy"].status == "ambiguous" and res["cpu_fused_forward_vs_copy"].failed


GOOD = """version = 2
[budget.x]
numerator = { op = "slaf", size = 16 }
denominator = { op = "copy", size = 16 }
max = 1.1
"""


@pytest.mark.parametrize("text,key", [
    (GOOD.replace("version = 2\n", ""), "version"),
    (GOOD.replace("version = 2", "version = 1"), "version"),
    (GOOD.replace("max = 1.1\n", ""), "budget.x.max"),
    (GOOD.replace('denominator = { op = "copy", size = 16 }\n', ""), "budget.x.denominator"),
    (GOOD.replace('op = "slaf"', 'opp = "slaf"'), "budget.x.numerator.opp"),
    (GOOD.replace("max = 1.1", 'max = "small"'), "budget.x.max"),
    (GOOD.replace("max = 1.1", 'max = 1.1\nof = "speed"'), "budget.x.of"),
    (GOOD.replace("max = 1.1", "max = 1.1\nrequired = \"tpu\""), "budget.x.required"),
    (GOOD.replace("max = 1.1", "max = 1.1\nselect = { op = \"slaf\" }"), "budget.x"),
    ("version = 2\n", "budget"),
])
def test_a_malformed_budgets_file_names_the_file_and_the_key(tmp_path, text, key):
    path = tmp_path / "budgets.toml"
    path.write_text(text)
    with pytest.raises(kb.BudgetError) as e:
        kb.load_budgets(path)
    assert e.value.key == key and str(e.value).startswith(f"{path}: {key}: "), str(e.value)
    assert kb.load_budgets(_write(tmp_path, GOOD))[0].name == "x"


def _write(tmp_path, text, name="ok.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_a_missing_or_unparsable_budgets_file_names_the_file(tmp_path):
    with pytest.raises(kb.BudgetError, match="nope.toml: cannot read"):
        kb.load_budgets(tmp_path / "nope.toml")
    with pytest.raises(kb.BudgetError, match="bad.toml: not valid TOML"):
        kb.load_budgets(_write(tmp_path, "version = = 2", "bad.toml"))


def test_comparison_applies_pytest_benchmarks_check():
    before = cpu_run()
    now = copy.deepcopy(before)
    slow = now["benchmarks"][3]
    slow["stats"] = _stats(before["benchmarks"][3]["stats"]["median"] * 1.25)
    rows = kb.compare_runs(now, before, "median:10%")
    assert len(rows) == len(before["benchmarks"])
    bad = [r for r in rows if r.failed]
    assert [r.name for r in bad] == [slow["name"]] and bad[0].change == pytest.approx(25.0)
    table = kb.compare_table(rows, "median:10%", "0001.json")
    assert "1 slower than that" in table and slow["name"] in table and "+25.0%" in table
    assert not any(r.failed for r in kb.compare_runs(now, before, "median:30%"))
    with pytest.raises(ValueError, match="--compare-fail"):
        kb.parse_compare_fail("median:ten")


def test_report_files_on_cpu_say_the_gpu_is_not_measured(tmp_path):
    run = cpu_run()
    res = kb.check_budgets(kb.records(run), kb.load_budgets(BUDGETS))
    path = kb.write_kernel_report([("run-cpu.json", run)], tmp_path, res)
    text = path.read_text()
    assert path == tmp_path / "kernels.md"
    for needle in ("## CPU: float32", "Test CPU", "**dtype:** float32", "2026-11-28 12:00 UTC",
                   "torch** 2.13.0",
                   "copy (roofline)", "| 2^20 | 2^24 |", "### Speedup over the naive polynomial",
                   "### Peak memory", "### A real layer", "## Budgets", "cpu_naive_vs_fused_train",
                   "not measured yet"):
        assert needle in text, needle
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == ["kernels_memory_cpu_float32.png", "kernels_speedup_cpu_float32.png",
                    "kernels_throughput_cpu_float32.png"]
    assert all((tmp_path / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)
    assert f"({pngs[2]})" in text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # atomic writes leave nothing behind


def test_report_with_a_gpu_run_has_gpu_sections():
    md, figs = kb.kernel_report([("run-cpu.json", cpu_run()), ("gpu/kernels.json", gpu_run())])
    assert "not measured yet" not in md
    assert "## GPU: float32" in md and "## GPU: bfloat16" in md and "NVIDIA H200" in md
    assert "kernels_throughput_cuda_bfloat16.png" in figs
    summary = kb.short_summary(gpu_run())
    assert "cuda float32, 2^28 elements" in summary and "triton" in summary


def test_fit_markdown_lists_the_fitting_benchmarks_and_the_budgets():
    run = cpu_run()
    text = kb.fit_markdown(run, kb.check_budgets(kb.records(run), kb.load_budgets(BUDGETS)))
    assert "| test_lstsq_ours | 0.76 ms |" in text and "test_slaf" not in text.split("| budget |")[0]
    assert "| lstsq_vs_numpy |" in text
    assert "| target | n = 8 | n = 20 |" in text
    assert "| gelu | 8.17 ms (5 iterations) | 24.5 ms (5 iterations) |" in text
    assert "test_remez[" not in text  # the Remez fits are in their own table, by degree


def test_settings_defaults_and_the_untimed_cap():
    s = kb.bench_settings()
    assert (s.device, s.dtypes, s.sizes, s.backends, s.degrees) == (
        "cpu", ("float32",), (2**16, 2**20, 2**24), ("reference", "fused"), (2, 4, 8, 16))
    d = kb.bench_settings(disabled=True)
    assert d.sizes == (2**16, 2**20) and d.layer_shape == (2, 512, 32, 32)
    assert kb.bench_settings(sizes=["2^24"], disabled=True).sizes == (2**20,)
    q = kb.bench_settings(quick=True)
    assert (q.sizes, q.degrees, q.backends) == ((2**24,), (8,), ("fused",))
    assert kb.bench_settings(sizes="65536,2**10", degrees=["4"]).sizes == (2**10, 2**16)


def test_pytest_command_saves_or_compares(tmp_path):
    from pytest_benchmark.utils import get_machine_id

    s = kb.bench_settings(sizes=["2^16"])
    cmd = kb.pytest_command(tmp_path, s, tmp_path / "r.json")
    assert "--benchmark-autosave" in cmd.argv and "bench/test_bench_fit.py" in cmd.argv
    assert f"--benchmark-storage=file://{kb.storage_path(tmp_path, 'cpu')}" in cmd.argv
    check = kb.pytest_command(tmp_path, s, tmp_path / "r.json", check=True)
    assert check.compared is None and "--benchmark-compare" not in check.argv and check.notes
    saved = kb.storage_path(tmp_path, "cpu") / get_machine_id() / "0001_abc.json"
    saved.parent.mkdir(parents=True)
    saved.write_text(json.dumps(cpu_run()))
    check = kb.pytest_command(tmp_path, s, tmp_path / "r.json", check=True, compare_fail="median:5%")
    assert check.compared == saved and "--benchmark-autosave" not in check.argv
    assert "--benchmark-compare" in check.argv and "--benchmark-compare-fail=median:5%" in check.argv


def test_the_benchmarked_callables_return_what_they_compute():
    x, gy = kb.make_input(1024, "float32", "cpu")
    assert float(x.min()) >= -3.0 and float(x.max()) <= 3.0
    for op in ("copy", "gelu", "naive", "slaf"):
        for mode in kb.MODES if op != "copy" else ("forward",):
            out = kb.kernel_fn(op, mode, x, gy, backend="reference", degree=4)()
            y = out if mode == "forward" else out[0]
            assert y.shape == x.shape and bool(torch.isfinite(y).all())
    assert kb.bytes_moved(10, "bfloat16", "forward+backward") == 100
    assert kb.bytes_moved(10, "float32", "forward", "copy") == 80


def test_allocator_peak_is_the_maximum_of_the_running_sum():
    class E:
        def __init__(self, t, n):
            self.t, self.n = t, n

        def start_ns(self):
            return self.t

        def nbytes(self):
            return self.n

    # out of time order on purpose: +8 at t=1, +4 at t=2 (peak 12), -8 at t=3, +6 at t=4 (10)
    assert kb._allocator_peak([E(3, -8), E(1, 8), E(4, 6), E(2, 4)]) == 12
    assert kb._allocator_peak([]) == 0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_cpu_peak_memory_is_exact_to_the_byte(dtype):
    """Closed forms: a copy or a forward activation makes one output of n*s bytes; GELU forward+backward
    holds y and grad x (2 n s); the fused SLAF the same plus its coefficient gradient and cast coefficients,
    O(K) bytes; the reference SLAF at least one n-element temporary per recurrence step on top."""
    n, K = 3 * 2**12 + 5, 5  # odd sizes: no rounding to pages or allocator bins is hidden
    s = {"float32": 4, "bfloat16": 2}[dtype]
    x, gy = kb.make_input(n, dtype, "cpu")
    cases = {("copy", "forward"): n * s, ("relu", "forward"): n * s, ("gelu", "forward"): n * s,
             ("gelu", "forward+backward"): 2 * n * s}
    for (op, mode), expected in cases.items():
        _, peak = kb.peak_memory(kb.kernel_fn(op, mode, x, gy), "cpu")
        assert peak == expected, (op, mode, peak, expected)
    if "fused" in available_backends(x):
        for mode, outputs in (("forward", 1), ("forward+backward", 2)):
            _, peak = kb.peak_memory(kb.kernel_fn("slaf", mode, x, gy, backend="fused", degree=K - 1), "cpu")
            assert outputs * n * s <= peak <= outputs * n * s + 4 * 8 * K, (mode, peak)
    _, peak = kb.peak_memory(kb.kernel_fn("slaf", "forward", x, gy, backend="reference", degree=K - 1), "cpu")
    assert peak >= 2 * n * s, peak


def test_quick_kernel_table_is_markdown():
    text = kb.quick_kernel_table(size=2**10, degree=4, min_run_time=0.005)
    assert "| op | backend | mode |" in text and "gelu" in text and "naive (degree 4)" in text


def _cli(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv,needle", [
    (["--backends", "cudnn"], "unknown backend 'cudnn'"),
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--dtype", "float64"], "unknown dtype 'float64'"),
    (["--device", "cuda"], "CUDA is not available"),
    (["--backends", "triton"], "triton' is benchmarked on CUDA only"),
    (["--sizes", "2^x"], "sizes are positive integers"),
    (["--degrees", "0"], "degrees are integers in [1, 64]"),
    (["--compare-fail", "median"], "--compare-fail takes"),
    (["--budgets", "/nonexistent/budgets.toml"], "/nonexistent/budgets.toml: cannot read"),
])
def test_bench_bad_input_is_one_line_and_exit_2(capsys, monkeypatch, argv, needle):
    monkeypatch.setattr(kb, "cuda_available", lambda: False)
    monkeypatch.chdir(ROOT)
    code, out, err = _cli(capsys, "bench", *argv)
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and err.startswith("slaf-approx: error: "), err
    assert needle in err, err


def test_bench_outside_the_repository_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(capsys, "bench")
    assert code == 2 and err.count("\n") == 1 and "bench/test_bench_kernels.py not found" in err


def test_bench_malformed_budgets_names_file_and_key(capsys, tmp_path):
    path = _write(tmp_path, GOOD.replace("max = 1.1\n", ""), "budgets.toml")
    run = _write(tmp_path, json.dumps(cpu_run()), "run.json")
    code, _, err = _cli(capsys, "bench", "--report-only", str(run), "--budgets", str(path), "--out",
                        str(tmp_path / "rep"))
    assert code == 2 and err.count("\n") == 1 and f"{path}: budget.x.max: missing" in err, err


def test_bench_report_only_writes_the_report_and_check_fails_on_a_budget(capsys, tmp_path):
    good = _write(tmp_path, json.dumps(cpu_run()), "good.json")
    out = tmp_path / "rep"
    code, stdout, err = _cli(capsys, "bench", "--report-only", str(good), "--budgets", str(BUDGETS), "--out",
                             str(out), "--check")
    assert code == 0, err
    assert (out / "kernels.md").is_file() and (out / "bench" / "fit.md").is_file()
    assert "| cpu_fused_forward_vs_copy |" in stdout
    bad = _write(tmp_path, json.dumps(cpu_run(fused_fb=0.06)), "bad.json")
    code, stdout, err = _cli(capsys, "bench", "--report-only", str(bad), "--budgets", str(BUDGETS), "--out",
                             str(out), "--check")
    assert code == 1 and "**FAIL**" in stdout and "budgets broken: cpu_fused_train_vs_gelu" in err
    code, *_ = _cli(capsys, "bench", "--report-only", str(bad), "--budgets", str(BUDGETS), "--out", str(out))
    assert code == 0  # without --check a broken budget is reported, not an error
    code, _, err = _cli(capsys, "bench", "--report-only", str(tmp_path / "none.json"), "--budgets",
                        str(BUDGETS))
    assert code == 2 and "none.json: cannot read" in err


def _bench_subprocess(tmp_path, *argv):
    """`slaf-approx bench` for real (pytest-benchmark timing), on a tiny matrix, from the repository root."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "slaf_approx.cli", "bench", "--sizes", "2^12", "--degrees", "2",
           "--kernels-only", "--out", str(tmp_path / "rep"), "--storage", str(tmp_path / "store"), *argv,
           "--", "--benchmark-max-time=0.005", "--benchmark-min-rounds=3", "-k", "not test_layer"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_timed_run_records_every_field_then_check_compares_with_it(tmp_path):
    """End to end: one timed run saves its JSON (slim), report and pytest-benchmark's saved run; a --check
    run then compares with that saved run and fails on the budget that is broken."""
    p = _bench_subprocess(tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    run = json.loads((tmp_path / "rep" / "bench" / "run-cpu.json").read_text())
    assert {"torch", "triton", "cuda", "torch_threads", "bench_device"} <= set(run["machine_info"])
    recs = {r["name"]: r for r in kb.records(run)}
    copy = recs["test_copy[cpu-float32-2^12]"]
    assert copy["peak_bytes"] == 4 * 2**12  # the clone: one float32 tensor of 2^12 elements
    ops = {r["op"] for r in recs.values()}
    assert ops == {*kb.COPIES, "slaf", "naive", *kb.ACTIVATIONS}, ops
    for b in run["benchmarks"]:
        info, st = b["extra_info"], b["stats"]
        assert "data" not in st and st["rounds"] >= 3 and st["median"] > 0, b["name"]
        assert {"op", "backend", "mode", "size", "dtype", "device", "bytes", "gbps", "copy_fraction",
                "peak_bytes"} <= set(info), (b["name"], info)
        assert info["bytes"] == kb.bytes_moved(2**12, "float32", info["mode"], info["op"])
        assert info["gbps"] == pytest.approx(info["bytes"] / st["median"] / 1e9, rel=1e-12)
        assert info["copy_fraction"] == pytest.approx(info["gbps"] / copy["gbps"], rel=1e-12)
        if info["op"] == "copy_into":  # writes into a buffer made before the call: allocates nothing
            assert info["peak_bytes"] == 0, b["name"]
        else:  # at least y, and grad x in forward+backward
            assert info["peak_bytes"] >= (4 if info["mode"] == "forward" else 8) * 2**12, b["name"]
    saved = list((tmp_path / "store").rglob("*.json"))
    assert len(saved) == 1, saved
    assert "not measured yet" in (tmp_path / "rep" / "kernels.md").read_text()

    budgets = tmp_path / "budgets.toml"
    budgets.write_text(
        "version = 2\n"
        "[budget.holds]\nnumerator = { op = 'naive', mode = 'forward', size = 4096 }\n"
        "denominator = { op = 'copy', size = 4096 }\nmin = 1e-9\nrequired = 'cpu'\n"
        "[budget.breaks]\nselect = { op = 'gelu' }\nmax = 1e-12\n")
    p = _bench_subprocess(tmp_path, "--check", "--budgets", str(budgets), "--compare-fail", "median:100000%")
    assert p.returncode == 1, p.stderr[-3000:]
    assert "| holds |" in p.stdout and "| breaks |" in p.stdout and "**FAIL**" in p.stdout, p.stdout
    assert f"{len(run['benchmarks'])} benchmarks compared with the last saved run" in p.stdout, p.stdout
    assert "budgets broken: breaks" in p.stderr
    assert list((tmp_path / "store").rglob("*.json")) == saved  # a check saves nothing
