"""The command line: outputs, and bad input as one line on stderr with exit code 2."""

import json
import subprocess
import sys

import pytest

from slaf_approx import cli, sweep
from slaf_approx.fit import FitRecord


def run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_targets_lists_the_catalogue(capsys):
    code, out, _ = run(capsys, "targets")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert {"relu", "gelu", "gelu_tanh", "silu", "swish", "tanh", "sigmoid", "softplus", "elu", "leaky_relu",
            "mish", "hardswish", "abs"} <= set(names)


def test_fit_json_holds_the_record(capsys):
    code, out, _ = run(capsys, "fit", "relu", "--degree", "1", "--method", "minimax", "--interval", "-1", "1",
                       "--json")
    assert code == 0
    d = json.loads(out)
    assert set(FitRecord.__dataclass_fields__) <= set(d)
    assert d["degree"] == 1 and d["basis"] == "chebyshev" and len(d["coefficients"]) == 2
    assert abs(d["max_error"] - 0.25) < 1e-15  # E_1(ReLU) on [-1, 1] = 1/4 (E_1(|x|) = 1/2)


def test_fit_defaults_and_text_output(capsys):
    code, out, _ = run(capsys, "fit", "gelu", "-n", "4", "--param", "dummy=1")
    assert code == 2  # gelu has no parameter 'dummy'
    code, out, _ = run(capsys, "fit", "swish", "-n", "4", "--param", "beta=2", "--basis", "power")
    assert code == 0
    assert "lstsq" in out and "raw" in out and "[-3" not in out
    assert "lo: -3" in out and "hi: 3" in out


@pytest.mark.parametrize("argv,needle", [
    (["fit", "nope", "-n", "3"], "unknown target 'nope'"),
    (["fit", "relu", "-n", "-1"], "degree must be an integer in [0, 64], got -1"),
    (["fit", "relu", "-n", "2.5"], "degree must be an integer in [0, 64], got '2.5'"),
    (["fit", "relu", "-n", "65"], "got 65"),
    (["fit", "relu", "-n", "3", "--basis", "fourier"], "invalid choice: 'fourier'"),
    (["fit", "relu", "-n", "3", "--method", "newton"], "invalid choice: 'newton'"),
    (["fit", "relu", "-n", "3", "--interval", "3", "-3"], "interval needs lo < hi, got [3.0, -3.0]"),
    (["fit", "relu", "-n", "3", "--interval", "0", "inf"], "interval ends must be finite"),
    (["fit", "relu", "-n", "3", "--interval", "nan", "1"], "interval ends must be finite"),
    (["fit", "relu", "-n", "3", "--param", "beta"], "--param takes NAME=NUMBER, got 'beta'"),
    (["fit", "relu"], "fit needs --degree N or --tol EPS"),
    (["sweep", "--targets", "relu", "nope"], "unknown target 'nope'"),
    (["sweep", "--methods", "newton"], "unknown method 'newton'"),
    (["sweep", "--degrees", "a-b"], "degrees take 'A-B' or 'A,B,C'"),
    (["report", "/nonexistent/results.csv"], "no results table at '/nonexistent/results.csv'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and err.startswith("slaf-approx: error: "), err
    assert needle in err, err


def test_console_script_entry_point_has_no_traceback():
    p = subprocess.run([sys.executable, "-m", "slaf_approx.cli", "fit", "relu", "-n", "99"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_sweep_then_report(tmp_path, capsys):
    code, _, err = run(capsys, "sweep", "--targets", "relu", "tanh", "--bases", "chebyshev", "power:mapped",
                       "--degrees", "2,4", "--methods", "lstsq", "minimax", "gradient", "--steps", "50",
                       "--out", str(tmp_path), "--quiet")
    assert code == 0, err
    rows = sweep.read_table(tmp_path / "results.csv")
    assert len(rows) == 2 * 2 * 2 * 3
    assert {r["variable"] for r in rows if r["basis"] == "power"} == {"mapped"}
    assert sweep.read_table(tmp_path / "results.jsonl")[5]["coefficients"] == rows[5]["coefficients"]
    code, _, err = run(capsys, "report", str(tmp_path / "results.csv"), "--out", str(tmp_path / "rep"))
    assert code == 0, err
    text = (tmp_path / "rep" / "README.md").read_text()
    assert "relu" in text and "tanh" in text


def test_interrupted_sweep_leaves_the_old_table_and_says_so(tmp_path, monkeypatch, capsys):
    base = ["sweep", "--bases", "chebyshev", "--degrees", "2", "--methods", "lstsq", "--out", str(tmp_path),
            "--quiet", "--executor", "serial"]
    assert run(capsys, *base, "--targets", "relu")[0] == 0
    before = (tmp_path / "results.csv").read_bytes()
    calls = []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    real = sweep.fit_degrees
    monkeypatch.setattr(sweep, "fit_degrees", interrupted)
    code, _, err = run(capsys, *base, "--targets", "relu", "gelu")
    assert code == 130 and err.splitlines()[-1] == (
        f"slaf-approx: interrupted; the results table in {str(tmp_path)!r} is unchanged; the fits finished "
        f"so far are in {tmp_path / '.results' / 'journal.jsonl'} (rerun with --resume to reuse them)"), err
    assert (tmp_path / "results.csv").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".results", "results.csv", "results.jsonl"]
    monkeypatch.setattr(sweep, "fit_degrees", real)
    code, _, err = run(capsys, *base, "--targets", "relu", "gelu", "--resume")
    assert code == 0 and "2 fits in" in err and "(1 computed, 1 reused from the journal)" in err, err
    assert [r["target"] for r in sweep.read_table(tmp_path / "results.jsonl")] == ["relu", "gelu"]


# ---------------------------------------------------------------------------- version, help, warnings, shows
def test_version_comes_from_the_package_metadata(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"slaf-approx {version('slaf-approx')}\n"


def _options():
    """(command, action) for every option and positional of every subcommand."""
    import argparse

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        for action in p._actions:
            if not isinstance(action, argparse._HelpAction):
                yield name, p, action


def test_every_option_help_states_its_default_and_allowed_values():
    missing = []
    for name, p, action in _options():
        text = p._get_formatter()._get_help_string(action)
        if not action.required and "default" not in text:
            missing.append(f"{name} {action.dest}: no default in {text!r}")
        for choice in action.choices or ():
            if str(choice) not in text:
                missing.append(f"{name} {action.dest}: allowed value {choice!r} not in {text!r}")
    assert not missing, "\n".join(missing)


def test_fit_help_names_the_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["fit", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "default: lstsq" in text and "default: chebyshev" in text and "default: [-3, 3]" in text


def test_a_warning_prints_as_one_line(capsys):
    code, out, err = run(capsys, "fit", "relu", "-n", "30", "--basis", "power")  # ill-conditioned
    assert code == 0 and "max_error" in out
    assert err.count("\n") == 1, err
    assert err.startswith("slaf-approx: warning: power basis (raw) at degree 30")
    assert "ConditioningWarning" in err
    assert ".py:" not in err and "warnings.warn" not in err


def _fields(out: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition(": ") for line in out.splitlines())}


def test_rational_fit_prints_its_type_and_labelled_numerator_and_denominator(capsys):
    from slaf_approx.fit import fit
    from slaf_approx.report import basis_label

    code, out, _ = run(capsys, "fit", "gelu", "--degree", "9", "--method", "rational-minimax")
    assert code == 0
    f = _fields(out)
    rec = fit("gelu", 9, "rational-minimax", "power")
    assert f["type"].startswith("(5, 4)") and f["form"].startswith("standard")
    # the basis its coefficients are in, named as the report names the same fits (power in the raw x)
    assert f["basis"] == basis_label(rec.basis, rec.variable) == "power(raw)"
    assert [float(c) for c in f["numerator p_0..p_5"].split()] == rec.coefficients  # %.17g round-trips
    assert [float(c) for c in f["denominator q_1..q_4"].split()] == rec.denominator
    code, out, _ = run(capsys, "fit", "gelu", "--degree", "9", "--method", "rational-minimax", "--basis",
                       "chebyshev")
    assert _fields(out)["basis"] == "chebyshev" and "mapped t" in _fields(out)["variable"]


def test_coefficients_show_prints_one_stored_set(capsys):
    from slaf_approx.coefstore import entry

    e = entry("tanh_rational-minimax_5_4_standard")
    code, out, _ = run(capsys, "coefficients", "--show", e["name"])
    assert code == 0
    f = _fields(out)
    assert f["basis"] == "power(raw)" and f["interval"] == "[-3, 3]" and f["type"].startswith("(5, 4)")
    assert float(f["max_error"]) == pytest.approx(e["max_error"], rel=1e-5)  # printed to 6 digits
    assert [float(c) for c in f["numerator p_0..p_5"].split()] == e["coefficients"]
    assert [float(c) for c in f["denominator q_1..q_4"].split()] == e["denominator"]
    code, out, err = run(capsys, "coefficients", "--show", "gelu_minimax_9_chebyshev")
    assert code == 2 and err.count("\n") == 1 and "known: gelu_rational-lstsq_5_4_pau" in err


def test_report_bench_option_must_name_a_file(capsys, tmp_path):
    code, _, err = run(capsys, "report", "reports/results.csv", "--bench", str(tmp_path / "none.json"),
                       "--out", str(tmp_path))
    assert code == 2 and "no benchmark run at" in err and not list(tmp_path.iterdir())


def test_report_summary_reads_the_benchmark_run(capsys, tmp_path):
    from slaf_approx.fit import fit_degrees

    rows = [r.to_dict() for r in fit_degrees("gelu", [4, 8], "minimax", "chebyshev")]
    table, _ = sweep.write_table(rows, tmp_path / "results")
    code, _, err = run(capsys, "report", str(table), "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert "not measured" in (tmp_path / "a" / "README.md").read_text()
    (tmp_path / "bench").mkdir()  # a benchmark run beside the results table, as `slaf-approx bench` writes it
    run_json = tmp_path / "bench" / "run-cpu.json"
    info = dict(op="slaf", mode="forward", backend="fused", degree=8, size=2**20, dtype="float32",
                device="cpu")
    run_json.write_text(json.dumps({"benchmarks": [
        {"name": "test_slaf[fused-deg8]", "stats": {"median": 2e-3, "rounds": 5}, "extra_info": info}]}))
    code, _, err = run(capsys, "report", str(table), "--out", str(tmp_path / "b"))
    assert code == 0, err
    text = (tmp_path / "b" / "README.md").read_text()
    assert f"{2e-3 / 2**20 * 1e9:.3g} ns/element, fused forward, float32 cpu" in text
    assert "(from the last `slaf-approx bench` run)" in text
    run_json.write_text("{not json")
    code, _, err = run(capsys, "report", str(table), "--out", str(tmp_path / "c"))
    assert code == 2 and "not JSON" in err and not (tmp_path / "c").exists()  # refused before any work


@pytest.mark.parametrize("argv,needle", [
    (["fit", "relu", "-n", "3", "--interval", "-1e3", "1e3", "--json"], None),
    (["fit", "relu", "-n", "3", "--interval", "-1E+3", "-1e-3", "--json"], None),
    (["fit", "relu", "-n", "3", "--interval", "-inf", "1"], "interval ends must be finite"),
    (["fit", "relu", "-n", "3", "--interval", "-nan", "1"], "interval ends must be finite"),
    (["fit", "relu", "-n", "3", "--interval", "-1", "1e999"], "interval ends must be finite"),
    (["fit", "swish", "-n", "3", "--param", "beta=nan"], "--param beta must be a finite number, got 'nan'"),
    (["fit", "swish", "-n", "3", "--param", "beta=-inf"], "--param beta must be a finite number"),
    (["fit", "swish", "-n", "3", "--param", "beta=1", "--param", "beta=2"], "--param beta is given twice"),
    (["fit", "swish", "-n", "3", "--param", "=1"], "--param takes NAME=NUMBER, got '=1'"),
    (["fit", "relu", "-n", "3", "--steps", "0"], "argument --steps: expected a positive integer, got '0'"),
    (["fit", "relu", "-n", "3", "--seed", "-1"], "argument --seed: expected an integer in 0..92233"),
    (["fit", "relu", "-n", "3", "--seed", str(10**30)], "argument --seed"),
    (["sweep", "--degrees", "1-1000000000"], "degree 1000000000 is out of range: degrees are 0-64"),
    (["sweep", "--degrees", "-5"], "degree -5 is out of range: degrees are 0-64"),
    (["sweep", "--degrees", "9-3"], "degree range '9-3' is empty"),
    (["sweep", "--degrees", "1,2,99"], "degree 99 is out of range"),
    (["sweep", "--steps", "0"], "argument --steps: expected a positive integer"),
    (["sweep", "--workers", "0"], "argument --workers: expected a positive integer"),
    (["sweep", "--executor", "mpi"], "invalid choice: 'mpi'"),
    (["sweep", "--executor", "dask"], "the dask executor needs the scheduler's address"),
    (["sweep", "--scheduler", "tcp://x:1"], "a scheduler address is an option of the dask executor"),
    (["sweep", "--interval", "-1e3", "-1e4"], "interval needs lo < hi"),
    (["sweep", "--out", "/proc/x"], "cannot write to --out '/proc/x'"),
    (["run", "--out", "/proc/x"], "cannot write to --out '/proc/x'"),
    (["run", "--steps", "0"], "argument --steps: expected a positive integer, got '0'"),
    (["report", "--out", "/proc/x", "reports/results.csv"], "cannot write to --out '/proc/x'"),
    (["expand", "--inputs", "2", "--widths", "4", "-n", "2", "--top", "-1"], "argument --top: expected a "
     "non-negative integer, got '-1'"),
    (["expand", "--inputs", "2", "--widths", "1000000000", "-n", "2"], "a Linear layer of 2000000000"),
    (["expand", "--inputs", "2", "--widths", "4", "-n", "2", "--max-terms", "1e18"], "argument --max-terms"),
    (["expand", "--inputs", "2", "--widths", "4", "-n", "2", "--max-terms", str(10**18)],
     "expected an integer in 1..67108864"),
    (["expand", "--inputs", "40", "--widths", "4", "4", "4", "-n", "64"],
     "(40 inputs, total degree 262144) > max_terms = 200000"),
    (["expand", "--inputs", "2", "--widths", "1000000", "-n", "64", "--max-terms", "10000"],
     "expansion would hold 1000000 x 2145 coefficients"),
])
def test_arguments_are_checked_before_any_work(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    if needle is None:
        assert code == 0 and err == "", err
        return
    assert code == 2, (code, out, err)
    assert err.count("\n") == 1 and err.startswith("slaf-approx: error: "), err
    assert needle in err, err


def test_a_bad_row_makes_report_exit_2_naming_file_line_and_field(tmp_path, capsys):
    sweep.write_table([FitRecord("relu", "chebyshev", "mapped", 2, -1.0, 1.0, "lstsq", [0.1, 0.2, 0.3], 0.1,
                                 0.05)], tmp_path / "results")
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n" + lines[0].replace('"degree": 2', '"degree": -5') + "\n")
    code, _, err = run(capsys, "report", str(bad), "--out", str(tmp_path / "rep"))
    assert code == 2 and err == (f"slaf-approx: error: {bad}, line 2: field 'degree': -5 is outside 0..64\n")
    assert not (tmp_path / "rep" / "README.md").exists()


# ---------------------------------------------------------------------------------------------------------
# fuzzing the parser: any argv gives exit 0 or 2 (or --help's 0), one line on stderr, never a traceback


_WORDS = ["fit", "sweep", "report", "expand", "run", "targets", "bench", "paper", "coefficients", "relu",
          "--degree", "-n", "--interval", "--param", "--degrees", "--steps", "--workers", "--executor",
          "--scheduler", "--targets", "--bases", "--methods", "--out", "--top", "--max-terms", "--inputs",
          "--widths", "--seed", "--basis", "--method", "--weight", "--form", "--resume", "--json", "beta=2",
          "=", "-", "--", "-1e3", "-inf", "nan", "1e999", "0", "1", "-1", "64", "65", "1-3", "2,4", "9-3",
          "dask", "serial", "process", "power:raw", "chebyshev", "minimax", "gradient", "/proc/x", "ü", ""]


def _parse_only(argv):
    """The parser and every check that runs before a command's work (no fitting, no writing)."""
    try:
        args = cli.build_parser().parse_args(argv)
        if args.command in ("sweep", "run"):
            from slaf_approx.executors import check

            check(args.executor, args.workers, args.scheduler)
            if args.command == "sweep":
                from slaf_approx.sweep import plan

                plan(args.targets, args.bases, args.degrees, args.methods,
                     [tuple(iv) for iv in (args.interval or [(-3.0, 3.0)])])
        if args.command == "fit":
            cli._params(args.param)
        return 0
    except (cli.UsageError, ValueError) as exc:
        assert str(exc).strip() and "\n" not in " ".join(str(exc).split()), exc
        return 2


def test_fuzz_parser_never_raises_an_unexpected_error():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.one_of(st.sampled_from(_WORDS), st.text(max_size=6)), max_size=8))
    def check(argv):
        try:
            assert _parse_only(argv) in (0, 2)
        except SystemExit as exc:  # --help and --version print and exit 0
            assert exc.code == 0

    check()


def test_fuzz_main_with_commands_that_do_no_heavy_work(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever a command would write by default lands here
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.sampled_from([["fit", "relu", "-n"], ["fit", "relu", "-n", "2", "--interval"],
                            ["sweep", "--out", "/proc/x", "--degrees"],
                            ["expand", "--inputs", "2", "-n", "2", "--widths"],
                            ["report", "--out", "/proc/x"]]),
           st.lists(st.sampled_from(_WORDS[30:]), max_size=3))
    def check(head, tail):
        try:
            code = cli.main(head + tail)
        except SystemExit as exc:
            code = exc.code
        _, err = capsys.readouterr()
        assert code in (0, 2), (head + tail, code, err)
        assert "Traceback" not in err and (code == 0 or err.count("\n") == 1), (head + tail, err)

    check()


@pytest.mark.parametrize("err", [0.0, float("inf")])
def test_report_draws_a_table_with_nothing_positive_to_log_scale(tmp_path, capsys, err):
    # exact fits (error 0) and diverged ones (inf, not converged) leave a log axis empty: drawn linear
    sweep.write_table([FitRecord("relu", "chebyshev", "mapped", d, -1.0, 1.0, "lstsq", [0.25] * (d + 1), err,
                                 err, converged=err == 0.0) for d in (1, 2)], tmp_path / "results")
    code, _, err_text = run(capsys, "report", str(tmp_path / "results.csv"), "--out", str(tmp_path / "rep"))
    assert code == 0, err_text
    assert (tmp_path / "rep" / "README.md").is_file() and list((tmp_path / "rep").glob("*.png"))


def test_sweep_takes_the_problem_options(tmp_path, capsys):
    code, _, err = run(capsys, "sweep", "--targets", "tanh", "--bases", "chebyshev", "--degrees", "5",
                       "--methods", "minimax", "lstsq", "--parity", "odd", "--weight", "normal:2",
                       "--coef-dtype", "float16", "--out", str(tmp_path), "--quiet", "--executor", "serial")
    assert code == 0, err
    rows = sweep.read_table(tmp_path / "results.csv")
    assert [(r["method"], r["parity"], r["pin"], r["weight"], r["coef_dtype"]) for r in rows] == \
        [(m, "odd", [], "normal:2", "float16") for m in ("minimax", "lstsq")], rows
    assert all(r["weighted_max_error"] <= r["naive_error"] for r in rows if r["method"] == "minimax"), rows
    code, _, err = run(capsys, "sweep", "--targets", "tanh", "--bases", "chebyshev", "--degrees", "5",
                       "--methods", "minimax", "--pin", "1", "--error", "relative",
                       "--out", str(tmp_path / "p"), "--quiet", "--executor", "serial")
    assert code == 0, err
    rows = sweep.read_table(tmp_path / "p" / "results.csv")
    got = [(r["pin"], r["error_kind"], r["converged"]) for r in rows]
    assert got == [([0.0, 1.0], "relative", True)], rows
    code, _, err = run(capsys, "sweep", "--targets", "tanh", "--degrees", "5", "--methods", "gradient",
                       "--error", "relative", "--out", str(tmp_path / "b"), "--quiet")
    assert code == 2 and err.count("\n") == 1 and "gradient fits take no relative error" in err, err
