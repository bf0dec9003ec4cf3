"""A versioned file of fitted coefficient sets, each stored with everything needed to evaluate it.

A coefficient vector means nothing without its basis, its variable (mapped t in [-1, 1] or raw x), its
interval and, for a rational function, the form of its denominator: every entry carries all of them, and
:func:`load` re-evaluates every entry against its target, so a file whose numbers do not reproduce the
errors it claims is refused.

File format (JSON)::

    {"schema": "slaf-approx/coefficients", "version": 1, "entries": [ENTRY, ...]}

ENTRY fields (all required unless marked optional):

    name            unique, non-empty string
    target, params  catalogue name and parameter values ({} for the defaults)
    kind            "polynomial" or "rational"
    degree          polynomial: n; rational: m + n (the polynomial degree with as many parameters)
    type            rational only: [m, n]
    basis           a slaf_approx.bases name (rational: the basis phi_j of numerator and denominator)
    variable        "mapped" (t = (2x - lo - hi)/(hi - lo)) or "raw" (x; power basis only)
    form            "" (polynomial); "pau": P/(1 + |sum q_j phi_j|) or "standard": P/(1 + sum q_j phi_j)
    interval        [lo, hi], finite, lo < hi
    coefficients    polynomial coefficients / numerator p_0..p_m, increasing degree (n + 1 / m + 1 of them)
    denominator     q_1..q_n ([] for a polynomial)
    max_error       sup |f - approximation| on the interval, as measured when fitted
    rms_error       sqrt(1/(hi - lo) * integral (f - approximation)^2)
    method          the fitting method (slaf_approx.fit.ALL_METHODS)
    created         ISO 8601 date
    levelled_error, converged, note   optional: the minimax certificate (h, null if none) and diagnostics

``python -m slaf_approx.coefstore --write [PATH]`` regenerates the shipped file
(slaf_approx/data/coefficients.json); ``slaf-approx coefficients`` lists and checks a file.
"""

from __future__ import annotations

import importlib.resources
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ._io import atomic_write
from .bases import BASES, SlafPolynomial, check_interval, check_variable
from .fit import ALL_METHODS, FitRecord, fit
from .problem import approximant, measure_row, resolve_target
from .ratfun import FORMS, RationalFunction
from .rational import rational_type
from .targets import Target

SCHEMA = "slaf-approx/coefficients"
VERSION = 1
KINDS = ("polynomial", "rational")
REQUIRED = ("name", "target", "params", "kind", "degree", "basis", "variable", "form", "interval",
            "coefficients", "denominator", "max_error", "rms_error", "method", "created")
OPTIONAL = ("type", "levelled_error", "converged", "note")
#: a stored error must be reproduced to this relative tolerance (plus a few ulps of the target's scale)
RTOL = 1e-9
EPS = np.finfo(float).eps
#: the targets, interval and types of the shipped file
DEFAULT_TARGETS = ("gelu", "swish", "tanh", "relu")
DEFAULT_INTERVAL = (-3.0, 3.0)
DEFAULT_DEGREE = 9  # rational (5, 4), PAU's type, against the degree-9 polynomial (10 parameters each)


class CoefficientFileError(ValueError):
    """A coefficient file that cannot be used; the message names the file, the entry and the field."""


def default_path() -> Path:
    """The shipped file, slaf_approx/data/coefficients.json."""
    return Path(str(importlib.resources.files("slaf_approx").joinpath("data", "coefficients.json")))


# --------------------------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------------------------
def entry_from_record(rec: FitRecord, name: str | None = None, created: str | None = None) -> dict:
    """The store entry of a fit (name default: target_method_degree[_form])."""
    rational = bool(rec.form)
    lev = rec.levelled_error
    e = dict(name=name or default_name(rec), target=rec.target, params=dict(rec.params),
             kind="rational" if rational else "polynomial", degree=rec.degree, basis=rec.basis,
             variable=rec.variable, form=rec.form, interval=[rec.lo, rec.hi],
             coefficients=[float(c) for c in rec.coefficients],
             denominator=[float(c) for c in rec.denominator],
             max_error=rec.max_error, rms_error=rec.rms_error, method=rec.method,
             created=created or datetime.now(UTC).strftime("%Y-%m-%d"),
             levelled_error=lev if math.isfinite(lev) else None, converged=bool(rec.converged), note=rec.note)
    if rational:
        e["type"] = [len(rec.coefficients) - 1, len(rec.denominator)]
    return e


def default_name(rec: FitRecord) -> str:
    """gelu_rational-lstsq_5_4_pau, gelu_rational-minimax_5_4_standard, gelu_minimax_9_power, ..."""
    if rec.form:
        m, n = len(rec.coefficients) - 1, len(rec.denominator)
        method = "rational-lstsq" if rec.method == "rational" else rec.method
        return f"{rec.target}_{method}_{m}_{n}_{rec.form}"
    return f"{rec.target}_{rec.method}_{rec.degree}_{rec.basis}"


def function(entry: Mapping) -> SlafPolynomial | RationalFunction:
    """The entry's approximation: a SlafPolynomial or a RationalFunction, callable on x."""
    return approximant(entry)


def _target(entry: Mapping, catalogue: Mapping[str, Target] | None) -> Target:
    if catalogue is not None:
        if entry["target"] not in catalogue:
            raise ValueError(f"unknown target {entry['target']!r}")
        return resolve_target(catalogue[entry["target"]], entry["params"])
    return resolve_target(entry["target"], entry["params"])


def errors(entry: Mapping, target: Target) -> tuple[float, float]:
    """(max error, rms error) of the entry's approximation, measured as the fitting code measures them."""
    emax, _, rms = measure_row(entry, target)
    return emax, rms


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_entry(e, fail) -> None:
    """Structure, types and consistency of one entry; `fail(field, problem)` raises."""
    if not isinstance(e, dict):
        fail(None, f"expected an object, got {type(e).__name__}")
    for k in REQUIRED:
        if k not in e:
            fail(k, "required field is missing")
    unknown = sorted(set(e) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        fail(unknown[0], f"unknown field; allowed: {', '.join(REQUIRED + OPTIONAL)}")
    for k in ("name", "target", "method", "created", "basis", "variable", "form", "kind"):
        if not isinstance(e[k], str) or (k not in ("form",) and not e[k]):
            fail(k, f"expected a non-empty string, got {e[k]!r}")
    if not isinstance(e["params"], dict) or not all(_is_number(v) for v in e["params"].values()):
        fail("params", f"expected an object of name: number, got {e['params']!r}")
    if e["kind"] not in KINDS:
        fail("kind", f"expected one of {', '.join(KINDS)}, got {e['kind']!r}")
    if e["basis"] not in BASES:
        fail("basis", f"unknown basis {e['basis']!r}; allowed: {', '.join(BASES)}")
    try:
        check_variable(BASES[e["basis"]], e["variable"])
    except ValueError as exc:
        fail("variable", f"expected one of {', '.join(BASES[e['basis']].variables)}: {exc}")
    if e["method"] not in ALL_METHODS:
        fail("method", f"unknown method {e['method']!r}; allowed: {', '.join(ALL_METHODS)}")
    iv = e["interval"]
    if not (isinstance(iv, list) and len(iv) == 2 and all(_is_number(v) for v in iv)):
        fail("interval", f"expected [lo, hi] with finite lo < hi, got {iv!r}")
    try:
        check_interval(iv)
    except ValueError as exc:
        fail("interval", f"expected [lo, hi] with finite lo < hi, wide enough: {exc}")
    for k in ("coefficients", "denominator"):
        v = e[k]
        if not (isinstance(v, list) and all(_is_number(c) and math.isfinite(c) for c in v)):
            fail(k, "expected a list of finite numbers")
    if not e["coefficients"]:
        fail("coefficients", "expected at least one coefficient")
    for k in ("max_error", "rms_error"):
        if not (_is_number(e[k]) and math.isfinite(e[k]) and e[k] >= 0):
            fail(k, f"expected a finite number >= 0, got {e[k]!r}")
    d = e["degree"]
    if isinstance(d, bool) or not isinstance(d, int) or d < 0:
        fail("degree", f"expected an integer >= 0, got {d!r}")
    nc, nd = len(e["coefficients"]), len(e["denominator"])
    if e["kind"] == "polynomial":
        if e["form"] != "":
            fail("form", f"a polynomial has form \"\", got {e['form']!r}")
        if "type" in e:
            fail("type", "a polynomial has no type (its degree says it)")
        if nd:
            fail("denominator", f"a polynomial has no denominator, got {nd} coefficients")
        if nc != d + 1:
            fail("coefficients", f"degree {d} needs {d + 1} coefficients, got {nc}")
    else:
        if e["form"] not in FORMS:
            fail("form", f"expected one of {', '.join(FORMS)}, got {e['form']!r}")
        t = e.get("type")
        if not (isinstance(t, list) and len(t) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                            and v >= 0 for v in t)):
            fail("type", f"expected [m, n] (integers >= 0), got {t!r}")
        if t[0] + t[1] != d:
            fail("degree", f"type ({t[0]}, {t[1]}) has degree m + n = {t[0] + t[1]}, got {d}")
        if nc != t[0] + 1:
            fail("coefficients", f"type ({t[0]}, {t[1]}) needs {t[0] + 1} numerator coefficients, got {nc}")
        if nd != t[1]:
            fail("denominator", f"type ({t[0]}, {t[1]}) needs {t[1]} denominator coefficients, got {nd}")
    lev = e.get("levelled_error")
    if lev is not None and not (_is_number(lev) and math.isfinite(lev) and lev >= 0):
        fail("levelled_error", f"expected a number >= 0 or null, got {lev!r}")
    if "converged" in e and not isinstance(e["converged"], bool):
        fail("converged", f"expected true or false, got {e['converged']!r}")
    if "note" in e and not isinstance(e["note"], str):
        fail("note", f"expected a string, got {e['note']!r}")


def _check_errors(e, target: Target, fail) -> None:
    """The stored errors are reproduced by evaluating the stored coefficients against the target."""
    g = function(e)
    if isinstance(g, RationalFunction) and g.min_denominator() <= 0:
        fail("denominator", "the denominator vanishes on the interval (a pole)")
    emax, rms = errors(e, target)
    lo, hi = e["interval"]
    scale = float(np.max(np.abs(np.asarray(target(np.linspace(lo, hi, 257)), dtype=float))))
    for k, value in (("max_error", emax), ("rms_error", rms)):
        tol = RTOL * e[k] + 8 * (e["degree"] + 2) * EPS * scale
        if not abs(value - e[k]) <= tol:
            fail(k, f"stored {e[k]!r}, but the stored coefficients give {value!r} against target "
                    f"{e['target']!r} (tolerance {tol:.3g}): coefficients, target or convention changed")


def load(path: str | os.PathLike | None = None, *, catalogue: Mapping[str, Target] | None = None,
         reevaluate: bool = True) -> list[dict]:
    """The entries of a coefficient file (default: the shipped one), checked.

    Checks the schema and version, every entry's fields, types and lengths (consistent with its kind,
    degree and type), its interval, and - unless `reevaluate` is False - that its coefficients reproduce
    its stored max and rms errors against its target (looked up in `catalogue` when given). Raises
    :class:`CoefficientFileError` naming the file, the entry and the field.
    """
    path = Path(path) if path is not None else default_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CoefficientFileError(f"{path}: cannot read the coefficient file ({exc.strerror})") from None
    except ValueError as exc:
        raise CoefficientFileError(f"{path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise CoefficientFileError(f"{path}: field 'schema': expected {SCHEMA!r}, got "
                                   f"{data.get('schema') if isinstance(data, dict) else data!r}")
    if data.get("version") != VERSION:
        raise CoefficientFileError(f"{path}: field 'version': unsupported version {data.get('version')!r} "
                                   f"(this slaf-approx reads version {VERSION})")
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise CoefficientFileError(f"{path}: field 'entries': expected a list of entries")
    _check_all(entries, path, catalogue, reevaluate)
    return entries


def entry(name: str, path: str | os.PathLike | None = None) -> dict:
    """The entry called `name` in a coefficient file (default: the shipped one), checked as :func:`load`
    checks it; ValueError naming the known names when there is none."""
    if not isinstance(name, str):
        raise TypeError(f"a coefficient set is named by a string, got {type(name).__name__}")
    entries = load(path)
    for e in entries:
        if e["name"] == name:
            return e
    raise ValueError(f"no coefficient set named {name!r}; known: {', '.join(e['name'] for e in entries)}")


def _check_all(entries: list, path, catalogue, reevaluate: bool) -> None:
    names = set()
    for i, e in enumerate(entries):
        label = f"entry {e.get('name')!r} (#{i})" if isinstance(e, dict) and "name" in e else f"entry #{i}"

        def fail(field, problem, label=label):
            where = f"{path}: {label}" + (f": field {field!r}" if field else "")
            raise CoefficientFileError(f"{where}: {problem}")

        _check_entry(e, fail)
        if e["name"] in names:
            fail("name", "duplicate name")
        names.add(e["name"])
        if reevaluate:
            try:
                tg = _target(e, catalogue)
            except (ValueError, TypeError) as exc:
                fail("target", str(exc))
            _check_errors(e, tg, fail)


def save(items: Iterable[FitRecord | Mapping], path: str | os.PathLike) -> Path:
    """Write fits (FitRecords, named by :func:`default_name`) or entries to `path`, atomically.

    Every entry is checked as :func:`load` checks it (without re-evaluation) before anything is written.
    """
    path = Path(path)
    entries = [entry_from_record(r) if isinstance(r, FitRecord) else dict(r) for r in items]
    for e in entries:
        if isinstance(e.get("levelled_error"), float) and not math.isfinite(e["levelled_error"]):
            e["levelled_error"] = None
    _check_all(entries, path, None, reevaluate=False)
    text = json.dumps({"schema": SCHEMA, "version": VERSION, "entries": entries}, indent=1) + "\n"
    return atomic_write(path, text)


# --------------------------------------------------------------------------------------------
# The shipped file
# --------------------------------------------------------------------------------------------
def default_records(targets=DEFAULT_TARGETS, interval=DEFAULT_INTERVAL, degree: int = DEFAULT_DEGREE):
    """The fits of the shipped file: per target, rational type rational_type(degree) by least squares in
    PAU's form and convention (power basis, raw x) and by minimax (standard form, certified), and the
    polynomial minimax of the same degree in the power basis (raw x, the SLAF paper's a_i)."""
    recs = []
    for name in targets:
        recs.append(fit(name, degree, "rational", "power", interval, form="pau"))
        recs.append(fit(name, degree, "rational-minimax", "power", interval, form="standard"))
        recs.append(fit(name, degree, "minimax", "power", interval))
    return recs


def write_default(path: str | os.PathLike | None = None) -> Path:
    """Regenerate the shipped coefficient file (or write it to `path`)."""
    m, n = rational_type(DEFAULT_DEGREE)
    assert (m, n) == (5, 4)
    return save(default_records(), path or default_path())


def main(argv=None) -> int:
    """``python -m slaf_approx.coefstore --write [PATH]``: regenerate; ``--check [PATH]``: load and check."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("--write", "--check") or len(args) > 2:
        raise SystemExit("usage: python -m slaf_approx.coefstore --write|--check [PATH]")
    path = args[1] if len(args) == 2 else None
    if args[0] == "--write":
        write_default(path)
    load(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
