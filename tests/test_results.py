"""The results table on disk: one unit for CSV and JSON Lines, a lock, stale temporaries, a checked reader."""

import json
import math
import os
import re
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slaf_approx import results
from slaf_approx.fit import FitRecord
from slaf_approx.results import Journal, read_table, write_table


def rec(target="relu", degree=2, err=0.125, **kw):
    return FitRecord(target=target, basis="chebyshev", variable="mapped", degree=degree, lo=-1.0, hi=1.0,
                     method="lstsq", coefficients=[0.5 / (k + 1) for k in range(degree + 1)], max_error=err,
                     rms_error=err / 3, **kw)


def pair(stem):
    """Both files of the table, read and checked: (csv rows, jsonl rows)."""
    return read_table(stem.with_suffix(".csv")), read_table(stem.with_suffix(".jsonl"))


def test_round_trip_keeps_every_float_exactly(tmp_path):
    recs = [rec(degree=3, err=math.pi), rec("tanh", 5, 1 / 3, levelled_error=math.nan, gap=math.inf,
                                            history=[1.5, math.nan, 0.1 + 0.2])]
    csv_path, jsonl_path = write_table(recs, tmp_path / "results")
    for rows in pair(tmp_path / "results"):
        assert [r["coefficients"] for r in rows] == [r.coefficients for r in recs]
        assert [r["max_error"] for r in rows] == [math.pi, 1 / 3]
        assert math.isnan(rows[1]["levelled_error"]) and rows[1]["gap"] == math.inf
    hist = read_table(jsonl_path)[1]["history"]
    assert hist[0] == 1.5 and math.isnan(hist[1]) and hist[2] == 0.1 + 0.2
    json.loads(jsonl_path.read_text().splitlines()[1])  # strict JSON: no NaN or Infinity tokens


def test_layout_names_one_generation_and_old_ones_go(tmp_path):
    stem = tmp_path / "results"
    for n in (1, 2, 3):
        write_table([rec(degree=d) for d in range(1, n + 1)], stem)
    state = tmp_path / ".results"
    assert os.readlink(tmp_path / "results.csv") == ".results/current/results.csv"
    assert os.readlink(tmp_path / "results.jsonl") == ".results/current/results.jsonl"
    assert os.readlink(state / "current") == "g000003"
    assert sorted(p.name for p in state.iterdir() if p.name.startswith("g")) == ["g000003"]
    assert [len(rows) for rows in pair(stem)] == [3, 3]


def test_plain_files_of_older_releases_become_the_first_generation(tmp_path):
    stem = tmp_path / "results"
    csv_text, jsonl_text = results.render([rec()])
    (tmp_path / "results.csv").write_bytes(csv_text.encode())
    (tmp_path / "results.jsonl").write_bytes(jsonl_text.encode())
    results._link_names(stem)  # the conversion alone: the same table, now through the pointer
    assert (tmp_path / "results.csv").is_symlink()
    assert (tmp_path / "results.csv").read_bytes() == csv_text.encode()
    assert (tmp_path / "results.jsonl").read_text() == jsonl_text
    write_table([rec(), rec(degree=3)], stem)
    assert [len(rows) for rows in pair(stem)] == [2, 2]


def test_a_failed_write_changes_nothing_and_leaves_nothing(tmp_path):
    stem = tmp_path / "results"
    write_table([rec()], stem)
    before = (tmp_path / "results.jsonl").read_text(), results.generation(stem)
    with pytest.raises(TypeError):
        write_table([{**rec().to_dict(), "params": object()}], stem)
    assert ((tmp_path / "results.jsonl").read_text(), results.generation(stem)) == before
    assert sorted(p.name for p in (tmp_path / ".results").iterdir()) == ["current", "g000001"]


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    stem = tmp_path / "results"
    write_table([rec()], stem)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    state = tmp_path / ".results"
    leftovers = [tmp_path / f".results.csv.{dead}.abc123.tmp", state / f"tmp-{dead}-xyz", state / "g000009",
                 state / f"current-{dead}-00ff"]
    leftovers[0].write_text("x" * 1000)
    leftovers[1].mkdir()
    (leftovers[1] / "results.csv").write_text("partial")
    leftovers[2].mkdir()
    os.symlink("g000001", leftovers[3])
    alive = [tmp_path / f".results.csv.{os.getppid()}.abc123.tmp", tmp_path / "notes.txt",
             tmp_path / f".other.csv.{dead}.abc123.tmp"]  # a live pid, not ours, another name
    for p in alive:
        p.write_text("keep")
    gone = results.clean(stem)
    assert sorted(map(str, gone)) == sorted(map(str, leftovers))
    assert all(p.exists() for p in alive) and not any(os.path.lexists(p) for p in leftovers)
    assert [len(rows) for rows in pair(stem)] == [1, 1]


def test_old_unstamped_temporaries_go_only_when_old(tmp_path):
    old, new = tmp_path / ".results.csv.k2j3h4.tmp", tmp_path / ".results.jsonl.a8b7c6.tmp"
    old.write_text("x")
    new.write_text("y")
    past = old.stat().st_mtime - 2 * results.remove_stale_temps.__globals__["LEGACY_TEMP_AGE_S"]
    os.utime(old, (past, past))
    assert results.clean(tmp_path / "results") == [old] and new.exists()


def test_the_lock_refuses_a_second_writer(tmp_path):
    stem = tmp_path / "results"
    with results.locked(stem):
        with pytest.raises(results.TableBusy, match=f"pid {os.getpid()}.*choose another --out"):
            with results.locked(stem):
                pass
    with results.locked(stem):  # released
        pass


def test_journal_ignores_a_torn_line_and_cuts_it_before_appending(tmp_path):
    j = Journal(tmp_path / "results")
    j.append("a", {"degree": 1}, rec(degree=1).to_dict())
    j.append("b", {"degree": 2}, rec(degree=2, err=math.inf, converged=False).to_dict())
    j.close()
    with j.path.open("ab") as fh:
        fh.write(b'{"key": "c", "spec": {}, "row": {"tar')  # what a SIGKILL mid-write leaves
    done = Journal(tmp_path / "results").load()
    assert sorted(done) == ["a", "b"] and done["b"]["max_error"] == "inf"
    j2 = Journal(tmp_path / "results")
    j2.append("c", {"degree": 3}, rec(degree=3).to_dict())
    j2.close()
    j3 = Journal(tmp_path / "results")
    assert sorted(j3.load()) == ["a", "b", "c"] and j3.unreadable == 0
    assert j.path.read_bytes().count(b"\n") == 3


# ---------------------------------------------------------------------------------------------------------
# the reader: every bad row named by file, line and field


def _jsonl(tmp_path, rows):
    p = tmp_path / "t.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


GOOD = rec().to_dict()


@pytest.mark.parametrize("change,needle", [
    ({"coefficients": []}, "field 'coefficients': empty"),
    ({"coefficients": "[]"}, "field 'coefficients': empty"),
    ({"coefficients": [1.0]}, "1 coefficients for degree 2"),
    ({"coefficients": "[1, "}, "field 'coefficients': not JSON"),
    ({"coefficients": {"a": 1}}, "expected a JSON list"),
    ({"rms_error": None}, "field 'rms_error': nan is not an error"),
    ({"lo": None}, "field 'lo': interval ends must be finite"),
    ({"degree": -5}, "field 'degree': -5 is outside 0..64"),
    ({"degree": 10**9}, "field 'degree': 1000000000 is outside 0..64"),
    ({"degree": 2.5}, "field 'degree': expected an integer"),
    ({"degree": "two"}, "field 'degree': expected a number"),
    ({"max_error": -0.1}, "field 'max_error': -0.1 is not an error"),
    ({"max_error": "nan"}, "field 'max_error': nan is not an error"),
    ({"max_error": "inf"}, "field 'max_error': inf is not an error"),  # a converged fit cannot be infinite
    ({"rms_error": "-inf"}, "field 'rms_error': -inf is not an error"),
    ({"lo": 3.0}, "field 'hi': the interval needs lo < hi"),
    ({"hi": "1e999"}, "field 'hi': interval ends must be finite"),
    ({"target": ""}, "field 'target': missing"),
    ({"converged": "maybe"}, "field 'converged': not a boolean"),
    ({"params": [1]}, "field 'params': expected a JSON object"),
])
def test_bad_rows_name_file_line_and_field(tmp_path, change, needle):
    p = _jsonl(tmp_path, [GOOD, {**GOOD, **change}])
    with pytest.raises(ValueError) as exc:
        read_table(p)
    assert str(exc.value).startswith(f"{p}, line 2: ") and needle in str(exc.value), exc.value


@pytest.mark.parametrize("drop", ["rms_error", "lo", "target", "coefficients", "max_error"])
def test_a_row_missing_a_field_is_named(tmp_path, drop):
    p = _jsonl(tmp_path, [{k: v for k, v in GOOD.items() if k != drop}])
    with pytest.raises(ValueError, match=rf"line 1: field '{drop}'"):
        read_table(p)


def test_a_diverged_fit_may_be_infinite(tmp_path):
    p = _jsonl(tmp_path, [{**GOOD, "max_error": "inf", "rms_error": None, "converged": False}])
    with pytest.raises(ValueError, match="rms_error"):  # nan is never an error value
        read_table(p)
    p = _jsonl(tmp_path, [{**GOOD, "max_error": "inf", "rms_error": "inf", "converged": False}])
    assert read_table(p)[0]["max_error"] == math.inf


@pytest.mark.parametrize("text,needle", [
    ("", "line 1: not a slaf-approx results table"),
    ("target,basis\nrelu,power\n", "line 1: not a slaf-approx results table (the header lacks degree"),
    (None, "not UTF-8"),
])
def test_bad_csv_files(tmp_path, text, needle):
    p = tmp_path / "t.csv"
    if text is None:
        p.write_bytes(b"\xff\xfe\x00binary")
    else:
        p.write_text(text)
    with pytest.raises(ValueError, match=re.escape(needle)):
        read_table(p)


def test_csv_row_with_an_empty_coefficient_list(tmp_path):
    csv_text, _ = results.render([rec()])
    header, row = csv_text.splitlines()[:2]
    p = tmp_path / "t.csv"
    p.write_text(f"{header}\n{row}\n{row.replace('[0.5, 0.25, 0.16666666666666666]', '[]')}\n")
    assert '"[]"' in p.read_text() or ",[]," in p.read_text()
    with pytest.raises(ValueError, match=rf"^{re.escape(str(p))}, line 3: field 'coefficients': empty"):
        read_table(p)


_cell = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                  st.text(max_size=12), st.lists(st.floats(allow_nan=True), max_size=3))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.dictionaries(st.sampled_from(sorted(GOOD)), _cell, max_size=8), max_size=3),
       base=st.booleans())
def test_fuzz_jsonl_reader_gives_rows_or_a_clear_error(tmp_path, rows, base):
    p = tmp_path / "fuzz.jsonl"
    p.write_text("".join(json.dumps({**(GOOD if base else {}), **r}) + "\n" for r in rows))
    _rows_or_clear_error(p)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                      st.lists(st.lists(st.text(max_size=8), max_size=4), max_size=4)
                      .map(lambda rs: "\n".join(",".join(r) for r in rs))))
def test_fuzz_csv_reader_gives_rows_or_a_clear_error(tmp_path, text):
    csv_text, _ = results.render([rec()])
    p = tmp_path / "fuzz.csv"
    header = csv_text.splitlines()[0]
    for content in (text, f"{header}\n{text}"):
        p.write_text(content, encoding="utf-8")
        _rows_or_clear_error(p)


def _rows_or_clear_error(p):
    try:
        rows = read_table(p)
    except ValueError as exc:
        assert str(exc).startswith(str(p)), exc
        return
    for r in rows:  # what the reader lets through is a possible fit
        assert 0 <= r["degree"] <= 64 and r["lo"] < r["hi"] and r["coefficients"]
        assert r["max_error"] >= 0 and r["rms_error"] >= 0
