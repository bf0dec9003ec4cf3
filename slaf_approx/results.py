"""The results table on disk: CSV and JSON Lines that change together, a lock, and a journal of fits.

Layout of an output folder OUT for the table stem ``results``::

    OUT/results.csv    -> .results/current/results.csv     (symbolic links, made once)
    OUT/results.jsonl  -> .results/current/results.jsonl
    OUT/.results/current -> g000007                         (the one pointer: replaced atomically)
    OUT/.results/g000007/results.csv, results.jsonl        (one complete generation of the table)
    OUT/.results/journal.jsonl                              (append-only: one line per finished fit)
    OUT/.results/lock                                       (flock'ed by the process writing the table)

A new table is written complete into ``.results/tmp-PID-XXXX/``, renamed to the next generation, and
published by replacing the ``current`` link: one rename, so a reader (and a signal or SIGKILL at any
moment) sees the old pair or the new pair, never one of each. A folder holding plain results.csv and
results.jsonl (older releases) is converted the same way, old pair first. Leftovers of a killed writer
(temporary folders and links stamped with a dead pid, unpublished generations) are removed by the next
writer, under the lock.

The reader (:func:`read_table`) checks every row and names the file, line and field of the first bad one.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ._io import pid_alive, remove_stale_temps
from .bases import MAX_DEGREE
from .fit import FitRecord
from .precision import DTYPES

#: CSV columns: every record field but the (long) gradient history, which stays in the JSON Lines file
CSV_FIELDS = [f for f in FitRecord.__dataclass_fields__ if f != "history"]
JSON_FIELDS = ("coefficients", "params", "denominator", "pin")
SUFFIXES = (".csv", ".jsonl")
_GEN = re.compile(r"^g(\d{6,})$")
_STAMPED = re.compile(r"^(?:tmp|current)-(\d+)-")


def pause(step: str) -> None:
    """A test hook: when SLAF_APPROX_TEST_PAUSE names `step`, touch SLAF_APPROX_TEST_PAUSE_FILE and wait,
    so that a test can signal this process at that exact moment. Costs one environment lookup otherwise."""
    if os.environ.get("SLAF_APPROX_TEST_PAUSE") == step:
        Path(os.environ["SLAF_APPROX_TEST_PAUSE_FILE"]).touch()
        time.sleep(120)


class TableBusy(ValueError):
    """Another process holds the lock of an output folder."""


# ---------------------------------------------------------------------------------------------------------
# writing


def _jsonable(v):
    """Strict JSON has no NaN or infinity: write them as the strings "nan", "inf", "-inf"."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def _rows(records: Iterable[FitRecord | dict]) -> list[dict]:
    return [r.to_dict() if isinstance(r, FitRecord) else dict(r) for r in records]


def render(records: Iterable[FitRecord | dict]) -> tuple[str, str]:
    """The CSV and JSON Lines texts of a table (in memory: a failure here writes nothing)."""
    rows = _rows(records)
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: json.dumps(_jsonable(r.get(k))) if k in JSON_FIELDS else r.get(k, "")
                    for k in CSV_FIELDS})
    jsonl = "".join(json.dumps(_jsonable(r), allow_nan=False) + "\n" for r in rows)
    return buf.getvalue(), jsonl


def state_dir(stem: str | Path) -> Path:
    """OUT/.STEM: the generations, the journal and the lock of the table OUT/STEM.{csv,jsonl}."""
    stem = Path(stem)
    return stem.parent / f".{stem.name}"


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _generations(state: Path) -> list[int]:
    return sorted(int(m[1]) for p in state.iterdir() if (m := _GEN.match(p.name)))


def _current(state: Path) -> str | None:
    link = state / "current"
    return os.readlink(link) if link.is_symlink() else None


def generation(stem: str | Path) -> str | None:
    """The published generation of the table at `stem` (None before the first)."""
    state = state_dir(stem)
    return _current(state) if state.is_dir() else None


def _point(state: Path, target: str) -> None:
    """Publish generation `target`: the single atomic step of a table change."""
    tmp = state / f"current-{os.getpid()}-{os.urandom(4).hex()}"
    os.symlink(target, tmp)
    os.replace(tmp, state / "current")
    _fsync_dir(state)


def _link_names(stem: Path) -> None:
    """Make OUT/STEM.csv and OUT/STEM.jsonl links through `current`; plain files first become a generation."""
    state = state_dir(stem)
    state.mkdir(parents=True, exist_ok=True)
    plain = [stem.with_suffix(s) for s in SUFFIXES if stem.with_suffix(s).is_file()
             and not stem.with_suffix(s).is_symlink()]
    if plain and _current(state) is None:
        tmp = Path(tempfile.mkdtemp(dir=state, prefix=f"tmp-{os.getpid()}-"))
        for p in plain:
            shutil.copy2(p, tmp / p.name)
        os.chmod(tmp, 0o777 & ~_umask())
        gen = f"g{(max(_generations(state), default=0) + 1):06d}"
        os.rename(tmp, state / gen)
        _point(state, gen)  # the old pair, now also reachable through current
    for s in SUFFIXES:
        path = stem.with_suffix(s)
        want = f"{state.name}/current/{path.name}"
        if path.is_symlink() and os.readlink(path) == want:
            continue
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        os.symlink(want, tmp)
        os.replace(tmp, path)  # same content before and after: both names show the same generation
    _fsync_dir(stem.parent)


def write_table(records: Sequence[FitRecord | dict], stem: str | Path) -> tuple[Path, Path]:
    """Write STEM.csv and STEM.jsonl as one unit (see the module docstring); returns their paths.

    Call it under :func:`locked` when another process may write the same table.
    """
    stem = Path(stem)
    csv_text, jsonl_text = render(records)
    state = state_dir(stem)
    state.mkdir(parents=True, exist_ok=True)
    clean(stem)
    tmp = Path(tempfile.mkdtemp(dir=state, prefix=f"tmp-{os.getpid()}-"))
    try:
        _write_synced(tmp / f"{stem.name}.csv", csv_text)
        pause("between-files")
        _write_synced(tmp / f"{stem.name}.jsonl", jsonl_text)
        os.chmod(tmp, 0o777 & ~_umask())
        _link_names(stem)
        pause("linked")
        gen = f"g{(max(_generations(state), default=0) + 1):06d}"
        os.rename(tmp, state / gen)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pause("before-publish")
    _point(state, gen)
    pause("published")
    clean(stem)
    return stem.with_suffix(".csv"), stem.with_suffix(".jsonl")


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def clean(stem: str | Path) -> list[Path]:
    """Remove what killed writers left: temporaries stamped with a dead pid and unpublished generations.

    Call it under :func:`locked` (a generation is unpublished only when no writer is running).
    """
    stem = Path(stem)
    state = state_dir(stem)
    gone = remove_stale_temps(stem.parent, {stem.name + s for s in SUFFIXES})
    if not state.is_dir():
        return gone
    current = _current(state)
    for p in state.iterdir():
        m = _STAMPED.match(p.name)
        stale = (m is not None and int(m[1]) != os.getpid() and not pid_alive(int(m[1]))) or \
            (_GEN.match(p.name) is not None and current is not None and p.name != current)
        if stale:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
            gone.append(p)
    return gone


@contextlib.contextmanager
def locked(stem: str | Path) -> Iterator[Path]:
    """Hold OUT/.STEM/lock for the block; TableBusy (a ValueError) at once when another process holds it."""
    state = state_dir(stem)
    state.mkdir(parents=True, exist_ok=True)
    ignore = state / ".gitignore"  # the lock, journal and temporaries are this machine's, not results
    if not ignore.exists():
        _write_synced(ignore, "lock\njournal.jsonl\ntmp-*\ncurrent-*\n")
    fd = os.open(state / "lock", os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise TableBusy(f"another slaf-approx process (pid {holder}) is writing the results in "
                            f"{str(Path(stem).parent)!r}; wait for it to finish or choose another --out") \
                from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield state
    finally:
        os.close(fd)  # closing releases the flock


# ---------------------------------------------------------------------------------------------------------
# reading

_INT = ("degree", "iterations")
_FLOAT = ("lo", "hi", "max_error", "rms_error", "levelled_error", "seconds", "condition_number",
          "max_error_at", "gap", "weighted_max_error", "achieved_error", "achieved_rms")
_JSON = {"coefficients": list, "params": dict, "history": list, "denominator": list, "pin": list}
_TEXT = ("target", "basis", "variable", "method", "note", "weight", "form", "error_kind", "parity", "dtype")
REQUIRED = ("target", "basis", "degree", "method", "lo", "hi", "coefficients", "max_error", "rms_error")


class RowError(ValueError):
    """A bad value in one row: the field and why (the reader adds the file and line)."""

    def __init__(self, field: str, why: str):
        super().__init__(f"field {field!r}: {why}")
        self.field = field


def _float(v, field: str) -> float:
    if v is None or (isinstance(v, str) and not v.strip()):
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise RowError(field, f"expected a number, got {v!r}")
    try:
        return float(v)
    except (ValueError, OverflowError):
        raise RowError(field, f"expected a number, got {v!r}") from None


def _int(v, field: str) -> int:
    x = _float(v, field)
    if not math.isfinite(x) or x != int(x):
        raise RowError(field, f"expected an integer, got {v!r}")
    return int(x)


def _bool(v) -> bool:
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("true", "1", "yes"):
            return True
        if s in ("false", "0", "no", ""):
            return False
        raise RowError("converged", f"not a boolean: {v!r}")
    if v is None or isinstance(v, (bool, int)):
        return bool(v) if v is not None else True
    raise RowError("converged", f"not a boolean: {v!r}")


def _json_field(r: dict, k: str, kind: type):
    v = r.get(k)
    if isinstance(v, str):
        try:
            v = json.loads(v) if v.strip() else kind()
        except ValueError:
            raise RowError(k, f"not JSON: {v[:40]!r}") from None
    if v is None:
        v = kind()
    if not isinstance(v, kind):
        raise RowError(k, f"expected a JSON {'list' if kind is list else 'object'}, got {v!r:.40}")
    return v


def normalise_row(row) -> dict:
    """A copy of one results row with its types restored (RowError, a ValueError, for a bad value).

    Accepts a dict from memory (e.g. ``FitRecord.to_dict()``), a FitRecord itself, or a row of strings from
    ``csv.DictReader`` (``coefficients``, ``denominator``, ``params`` and ``history`` JSON-encoded; empty
    cells, JSON nulls and "nan" read as nan). Numbers become int/float, ``converged`` a bool; unknown keys
    are kept as they are. ``denominator`` and ``form`` (rational fits) are kept when present: read them with
    .get. Types only: :func:`check_row` checks the values.
    """
    r = dict(row.to_dict() if hasattr(row, "to_dict") else row)
    for k, kind in _JSON.items():
        v = _json_field(r, k, kind)
        if k in r or k not in ("history", "denominator", "pin"):
            r[k] = v
    r["coefficients"] = [_float(c, "coefficients") for c in r["coefficients"]]
    if "denominator" in r:
        r["denominator"] = [_float(c, "denominator") for c in r["denominator"]]
    for k in ("history", "pin"):
        if k in r:
            r[k] = [_float(c, k) for c in r[k]]
    for k in _INT:
        if k in r:
            r[k] = _int(r[k], k)
    for k in _FLOAT:
        if k in r:
            r[k] = _float(r[k], k)
    r["converged"] = _bool(r.get("converged", True))
    for k in _TEXT:
        if k in r:
            r[k] = "" if r[k] is None else str(r[k])
    r.setdefault("variable", "mapped")
    r.setdefault("weight", "uniform")
    r.setdefault("note", "")
    r.setdefault("dtype", "float64")  # tables written before dtypes existed: float64, not measured
    for k in ("achieved_error", "achieved_rms"):
        r.setdefault(k, math.nan)
    return r


def check_row(r: dict) -> dict:
    """RowError unless the typed row `r` (from :func:`normalise_row`) describes a possible fit."""
    for k in REQUIRED:
        if k not in r or (k in _TEXT and not r[k]):
            raise RowError(k, "missing")
    if not 0 <= r["degree"] <= MAX_DEGREE:
        raise RowError("degree", f"{r['degree']} is outside 0..{MAX_DEGREE}")
    lo, hi = r["lo"], r["hi"]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise RowError("lo" if not math.isfinite(lo) else "hi",
                       f"interval ends must be finite, got [{lo}, {hi}]")
    if not lo < hi:
        raise RowError("hi", f"the interval needs lo < hi, got [{lo}, {hi}]")
    if not r["coefficients"]:
        raise RowError("coefficients", "empty (a fit has at least one coefficient)")
    if len(r["coefficients"]) > MAX_DEGREE + 1:
        raise RowError("coefficients", f"{len(r['coefficients'])} coefficients, at most {MAX_DEGREE + 1}")
    if not r.get("form") and len(r["coefficients"]) != r["degree"] + 1:
        raise RowError("coefficients", f"{len(r['coefficients'])} coefficients for degree {r['degree']} "
                                       f"(a polynomial has degree + 1)")
    if r.get("dtype", "float64") not in DTYPES:
        raise RowError("dtype", f"{r['dtype']!r} is not a dtype (allowed: {', '.join(DTYPES)})")
    for k in ("achieved_error", "achieved_rms"):
        if r.get(k, 0.0) < 0:
            raise RowError(k, f"{r[k]} is not an error (allowed: a number >= 0, inf, or nan: not measured)")
    for k in ("max_error", "rms_error"):
        e = r[k]
        # +inf is what a diverged fit measures, and such a fit says it did not converge
        if math.isnan(e) or e < 0 or (e == math.inf and r["converged"]):
            raise RowError(k, f"{e} is not an error (allowed: a finite number >= 0, or inf for a fit "
                              "that did not converge)")
    return r


def read_table(path: str | Path) -> list[dict]:
    """The checked rows of a results table written by :func:`write_table` (.csv or .jsonl).

    ValueError naming the file, the line and the field of the first bad row.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no results table at {str(path)!r}")
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{path}: a results table is a .csv or .jsonl file")
    rows = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            for line, raw in _raw_rows(path, fh):
                try:
                    rows.append(check_row(normalise_row(raw)))
                except ValueError as exc:
                    raise ValueError(f"{path}, line {line}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a slaf-approx results table (not UTF-8 text: {exc.reason} at byte "
                         f"{exc.start})") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: not a slaf-approx results table (CSV: {exc})") from None
    if not rows:
        raise ValueError(f"{path}: not a slaf-approx results table (no rows)")
    return rows


def _raw_rows(path: Path, fh) -> Iterator[tuple[int, dict]]:
    if path.suffix == ".jsonl":
        for line, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except ValueError:
                raise ValueError(f"{path}, line {line}: not a JSON object") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {line}: not a JSON object")
            yield line, row
        return
    reader = csv.DictReader(fh)
    header = reader.fieldnames or []
    missing = [k for k in REQUIRED if k not in header]
    if missing:
        raise ValueError(f"{path}, line 1: not a slaf-approx results table (the header lacks "
                         f"{', '.join(missing)})")
    for row in reader:
        if None in row:
            raise ValueError(f"{path}, line {reader.line_num}: more cells than the header has columns")
        yield reader.line_num, row


# ---------------------------------------------------------------------------------------------------------
# the journal: every finished fit, appended as it completes


class Journal:
    """OUT/.STEM/journal.jsonl: one line per finished fit, ``{"key": ..., "spec": {...}, "row": {...}}``.

    Lines are appended with one write each and fsync'd, so a SIGKILL loses at most the line being written;
    a torn last line is ignored on reading and cut off before the next append. Later lines win over
    earlier ones with the same key. Use it under :func:`locked`.
    """

    def __init__(self, stem: str | Path):
        self.path = state_dir(stem) / "journal.jsonl"
        self.unreadable = 0  # complete lines that did not parse (skipped: their fits are recomputed)
        self._fd: int | None = None

    def load(self) -> dict[str, dict]:
        """key -> row of every complete line."""
        done: dict[str, dict] = {}
        self.unreadable = 0
        if not self.path.is_file():
            return done
        data = self.path.read_bytes()
        for text in data.split(b"\n")[:-1]:  # the last piece is empty or a torn line
            if not text.strip():
                continue
            try:
                entry = json.loads(text)
                done[str(entry["key"])] = dict(entry["row"])
            except (ValueError, KeyError, TypeError):
                self.unreadable += 1
        return done

    def append(self, key: str, spec: dict, row: dict) -> None:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
            size = os.fstat(self._fd).st_size
            if size and os.pread(self._fd, 1, size - 1) != b"\n":  # a torn line from a killed writer
                os.ftruncate(self._fd, os.pread(self._fd, size, 0).rfind(b"\n") + 1)
        line = json.dumps({"key": key, "spec": _jsonable(spec), "row": _jsonable(row)}, allow_nan=False)
        pause("journal-append")
        os.write(self._fd, line.encode() + b"\n")
        os.fsync(self._fd)
        pause("journalled")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
