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


def test_interrupted_sweep_leaves_the_old_table(tmp_path, monkeypatch, capsys):
    assert run(capsys, "sweep", "--targets", "relu", "--bases", "chebyshev", "--degrees", "2",
               "--methods", "lstsq", "--out", str(tmp_path), "--quiet")[0] == 0
    before = (tmp_path / "results.csv").read_bytes()
    calls = []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    real = sweep.fit_degrees
    monkeypatch.setattr(sweep, "fit_degrees", interrupted)
    code, _, err = run(capsys, "sweep", "--targets", "relu", "gelu", "--bases", "chebyshev", "--degrees", "2",
                       "--methods", "lstsq", "--out", str(tmp_path), "--quiet")
    assert code == 130 and "no results file was changed" in err
    assert (tmp_path / "results.csv").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "results.jsonl"]


def test_write_is_atomic_when_writing_fails(tmp_path):
    recs = [{"target": "relu", "basis": "chebyshev", "degree": 1, "method": "lstsq", "max_error": 0.1}]
    sweep.write_table(recs, tmp_path / "results")
    before = (tmp_path / "results.jsonl").read_text()
    with pytest.raises(TypeError):
        sweep.write_table([{**recs[0], "params": object()}], tmp_path / "results")
    assert (tmp_path / "results.jsonl").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


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
