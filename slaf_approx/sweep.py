"""Sweeps: targets x bases x degrees x methods x intervals -> a tidy table (one row per fit).

The table is written as CSV and JSON Lines together, each to a temporary file that replaces the final
name only when complete: an interrupted sweep leaves the previous results untouched.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from ._io import atomic_write
from .bases import check_degree, check_interval, get_basis
from .fit import (
    ALL_METHODS,
    METHODS,
    RATIONAL_METHODS,
    ConditioningWarning,
    FitRecord,
    fit_degrees,
    resolve_target,
)

#: CSV columns: every record field but the (long) gradient history, which stays in the JSON Lines file
CSV_FIELDS = [f for f in FitRecord.__dataclass_fields__ if f != "history"]
JSON_FIELDS = ("coefficients", "params", "denominator", "pin")

DEFAULT_SUITE = dict(
    targets=("relu", "gelu", "swish", "tanh"),
    bases=("power", "chebyshev", "legendre"),
    degrees=tuple(range(1, 21)),
    methods=METHODS,
    intervals=((-3.0, 3.0),),
)
#: rational P/D beside the polynomials at equal parameter count, in PAU's convention (powers of the raw x)
RATIONAL_SUITE = dict(DEFAULT_SUITE, bases=("power",), methods=RATIONAL_METHODS)


def parse_basis(spec: str) -> tuple[str, str | None]:
    """'chebyshev' -> ('chebyshev', None); 'power:mapped' -> ('power', 'mapped')."""
    name, _, variable = spec.partition(":")
    get_basis(name)
    return name, variable or None


def plan(targets: Sequence[str], bases: Sequence[str], degrees: Iterable[int], methods: Sequence[str],
         intervals: Sequence[Sequence[float]]) -> list[tuple]:
    """Validate every axis up front (so a typo fails before any work) and expand the cross product.

    One job per (target, interval, method, basis), holding all degrees: gradient fits train them together.
    """
    tgs = [resolve_target(t) for t in targets]
    bs = [parse_basis(b) for b in bases]
    ds = [check_degree(d) for d in degrees]
    for m in methods:
        if m not in ALL_METHODS:
            raise ValueError(f"unknown method {m!r}; allowed: {', '.join(ALL_METHODS)}")
    ivs = [check_interval(iv) for iv in intervals]
    if not (tgs and bs and ds and methods and ivs):
        raise ValueError("a sweep needs at least one target, basis, degree, method and interval")
    return [(tg, iv, m, b, ds) for tg, iv, m, b in itertools.product(tgs, ivs, methods, bs)]


def sweep(targets, bases, degrees, methods, intervals, *, progress=True, **options) -> list[FitRecord]:
    """Run every fit of the cross product; `options` go to :func:`slaf_approx.fit.fit`."""
    jobs = plan(targets, bases, degrees, methods, intervals)
    records = []
    bar = _progress(sum(len(j[-1]) for j in jobs), progress)
    with warnings.catch_warnings():
        # ill-conditioning is recorded in each row's condition_number; don't print 100 warnings
        warnings.simplefilter("ignore", ConditioningWarning)
        for tg, iv, method, (basis, variable), degrees in jobs:
            records += fit_degrees(tg, degrees, method, basis, iv, variable=variable, **options)
            bar.update(len(degrees))
    bar.close()
    return records


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, disable=not enabled, unit="fit", file=sys.stderr, dynamic_ncols=True)


def _jsonable(v):
    """Strict JSON has no NaN or infinity: write null (read back as NaN)."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def write_table(records: Sequence[FitRecord | dict], stem: str | Path) -> tuple[Path, Path]:
    """Write STEM.csv and STEM.jsonl; returns their paths."""
    rows = [r.to_dict() if isinstance(r, FitRecord) else dict(r) for r in records]
    stem = Path(stem)
    csv_path, jsonl_path = stem.with_suffix(".csv"), stem.with_suffix(".jsonl")

    def write_csv(fh):
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(r.get(k)) if k in JSON_FIELDS else r.get(k, "") for k in CSV_FIELDS})

    def write_jsonl(fh):
        for r in rows:
            fh.write(json.dumps({k: _jsonable(v) for k, v in r.items()}) + "\n")

    for path, write in ((csv_path, write_csv), (jsonl_path, write_jsonl)):
        buf = io.StringIO(newline="")
        write(buf)  # the whole table in memory first: a failure here writes nothing
        atomic_write(path, buf.getvalue())
    return csv_path, jsonl_path


_INT = ("degree", "iterations")
_FLOAT = ("lo", "hi", "max_error", "rms_error", "levelled_error", "seconds", "condition_number",
          "max_error_at", "gap", "weighted_max_error")
_JSON = {"coefficients": list, "params": dict, "history": list, "denominator": list, "pin": list}


def _float(v) -> float:
    if v is None or (isinstance(v, str) and not v.strip()):
        return math.nan
    return float(v)


def _bool(v) -> bool:
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("true", "1", "yes"):
            return True
        if s in ("false", "0", "no", ""):
            return False
        raise ValueError(f"not a boolean: {v!r}")
    return bool(v)


def normalise_row(row) -> dict:
    """A copy of one results row with its types restored.

    Accepts a dict from memory (e.g. ``FitRecord.to_dict()``), a FitRecord itself, or a row of strings from
    ``csv.DictReader`` (``coefficients``, ``denominator``, ``params`` and ``history`` JSON-encoded; empty
    cells and JSON nulls read as nan). Numbers become int/float, ``converged`` a bool; unknown keys are kept
    as they are. ``denominator`` and ``form`` (rational fits) are kept when present: read them with .get.
    """
    r = dict(row.to_dict() if hasattr(row, "to_dict") else row)
    for k, kind in _JSON.items():
        v = r.get(k)
        if isinstance(v, str):
            v = json.loads(v) if v.strip() else kind()
        if v is None:
            v = kind()
        if k in r or k not in ("history", "denominator", "pin"):
            r[k] = kind(v)
    r["coefficients"] = [_float(c) for c in r["coefficients"]]
    if "denominator" in r:
        r["denominator"] = [_float(c) for c in r["denominator"]]
    for k in _INT:
        if k in r:
            r[k] = int(float(r[k])) if isinstance(r[k], str) else int(r[k])
    for k in _FLOAT:
        if k in r:
            r[k] = _float(r[k])
    r["converged"] = _bool(r.get("converged", True))
    for k in ("target", "basis", "variable", "method", "note", "weight", "form", "error_kind", "parity"):
        if k in r:
            r[k] = "" if r[k] is None else str(r[k])
    r.setdefault("variable", "mapped")
    r.setdefault("weight", "uniform")
    r.setdefault("note", "")
    return r


def read_table(path: str | Path) -> list[dict]:
    """Rows of a results table written by :func:`write_table` (.csv or .jsonl)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no results table at {str(path)!r}")
    try:
        with path.open(newline="") as fh:
            if path.suffix == ".jsonl":
                rows = [json.loads(line) for line in fh if line.strip()]
            else:
                rows = list(csv.DictReader(fh))
        rows = [normalise_row(r) for r in rows]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a slaf-approx results table ({exc})") from None
    missing = [k for k in ("target", "basis", "degree", "method", "max_error") if rows and k not in rows[0]]
    if not rows or missing:
        raise ValueError(f"{path}: not a slaf-approx results table (empty or missing {missing})")
    return rows
