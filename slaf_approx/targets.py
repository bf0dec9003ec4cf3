"""The target catalogue: standard activation functions, one TOML file each.

Every ``*.toml`` file in a catalogue folder describes one target; its file stem is the target's name.
Adding a target means dropping a file there -- no library code changes.  The fields are listed in
:data:`FIELDS` (and on the catalogue page, ``docs/catalogue.md`` = :func:`schema_markdown`); only
``formula`` is required::

    formula = "x*tanh(softplus(x))"

The Lipschitz constant, kinks and singularities may be left out: they are then estimated from the
formula (:mod:`slaf_approx.analysis`) and named in :attr:`Target.estimated`.  When given, each is
verified against the formula when the entry is loaded, and a wrong one is a ValueError naming the file
and the field.

The default catalogue is the shipped one (the installed package ``slaf_approx.catalogue``, or the
repository's ``targets/`` folder) plus every folder listed in the environment variable
``SLAF_APPROX_TARGETS`` (several separated by ``os.pathsep``); a name defined twice is an error naming
both files.  ``load_catalogue(folder)`` loads one folder alone.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from . import analysis
from ._io import atomic_write
from .expr import CONSTANTS, FUNCTION_DOCS, OPERATORS, RESERVED_NAMES, Expression, constant

__all__ = ["ENV_VAR", "FIELDS", "NATIVE_FUNCTIONS", "Target", "clear_cache", "get_target", "load_catalogue",
           "schema_markdown", "target_names"]

ENV_VAR = "SLAF_APPROX_TARGETS"
_PACKAGE = "slaf_approx.catalogue"
_REPO_FOLDER = Path(__file__).resolve().parent.parent / "targets"
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
#: points at which every formula must evaluate finite, checked before anything else
_CHECK_POINTS = np.array([-1e4, -50.0, -3.0, -1.0, -0.25, 0.0, 0.25, 1.0, 3.0, 50.0, 1e4])

#: a declared Lipschitz constant L must satisfy S (1 - LIPSCHITZ_BELOW) <= L <= LIPSCHITZ_ABOVE S, with
#: S the sampled sup |f'| (accurate to ~1e-10 relative on every shipped target): it must bound |f'|,
#: and be within a factor 2 of the best bound so that Jackson's bound in a report is not vacuous
LIPSCHITZ_BELOW = 1e-6
LIPSCHITZ_ABOVE = 2.0
#: a declared kink must be within KINK_RTOL * max(1, |k|) of a detected one (detected kinks are the
#: zeros of the switching functions, to adjacent floats)
KINK_RTOL = 1e-8
#: ``entire = true`` is refused when f has a singularity in the strip |Im z| < ENTIRE_STRIP, |Re z| <= 6
#: (analysis.singularity_in_strip: Fourier coefficients of f's complex extension on circles)
ENTIRE_STRIP = 3.35
#: an undeclared singularity nearer than this cannot be located by the estimator: it must be declared
ESTIMATE_MIN_DISTANCE = 0.05


@dataclass(frozen=True)
class Field:
    """One catalogue field: its name, TOML type, and what it means."""

    name: str
    kind: str
    doc: str
    required: bool = False


FIELDS: tuple[Field, ...] = (
    Field("formula", "string", "the target f(x): a whitelisted expression in `x` and the parameters (see "
          "below); finite on [-1e4, 1e4] and continuous", required=True),
    Field("title", "string", "a human-readable name (default: the file name)"),
    Field("description", "string", "one line of prose"),
    Field("params", "table name = number", "parameters and their default values, e.g. "
          "`params = { alpha = 1.0 }`; `--param alpha=2` changes them"),
    Field("lipschitz", "number or constant expression", "sup |f'| on [-1e4, 1e4], e.g. `\"1/6\"` or "
          "`\"maximum(1, abs(alpha))\"`. Verified: it must bound the sampled sup S of |f'| "
          f"(L >= S (1 - {LIPSCHITZ_BELOW:g})) and be at most {LIPSCHITZ_ABOVE:g} S. Estimated when absent: "
          f"S times {analysis.LIPSCHITZ_SAFETY}"),
    Field("kinks", "list of numbers or constant expressions", "every point of [-1e4, 1e4] where f is "
          "continuous but not analytic (a derivative of order 1 to 3 jumps), e.g. `[0, \"-alpha\"]`. "
          f"Verified: each is a kink, and every kink found is listed (within {KINK_RTOL:g} relative); at "
          "parameter values other than the defaults, a listed kink where f happens to be smooth is kept. "
          "Detected when absent"),
    Field("singularities", "list of constant expression strings", "for an analytic target, the complex "
          "singularities nearest to the real axis (one of each conjugate pair), e.g. `[\"pi/2*1j\"]`; "
          "further ones may be listed when they are nearer in the Bernstein-ellipse sense for off-centre "
          "intervals. Verified: each is a singularity (one nearer than "
          f"{analysis.MIN_SINGULARITY_DISTANCE:g} to the real axis is taken as declared: too near to "
          "measure), and none clearly nearer is missing. "
          "Estimated when absent (from the decay of Chebyshev coefficients; typically within 15%)"),
    Field("entire", "bool", "true for an entire function (no kinks, no singularities). Verified: no kink "
          f"and no singularity within {ENTIRE_STRIP:g} of the real axis for |Re z| <= 6 (so the formula must "
          "not use abs, maximum, minimum, clip or where)"),
    Field("torch", "string", "torch's own implementation, one of the functions listed below (tests compare "
          "it with the formula)"),
    Field("torch_kwargs", "table", "keyword arguments of `torch`, among those listed below: a literal, or "
          "`{ param = NAME }` for a parameter's value"),
)
_FIELD_NAMES = tuple(f.name for f in FIELDS)

#: torch's own activation functions an entry may name, with the keyword arguments each accepts: "number"
#: (a literal or a parameter) or a tuple of allowed strings.  All are pure functions of their input.
NATIVE_FUNCTIONS: dict[str, dict[str, str | tuple[str, ...]]] = {
    "torch.abs": {}, "torch.tanh": {}, "torch.sigmoid": {}, "torch.erf": {}, "torch.atan": {},
    "torch.asinh": {}, "torch.sin": {}, "torch.cos": {},
    "torch.nn.functional.relu": {}, "torch.nn.functional.relu6": {},
    "torch.nn.functional.elu": {"alpha": "number"}, "torch.nn.functional.celu": {"alpha": "number"},
    "torch.nn.functional.selu": {}, "torch.nn.functional.gelu": {"approximate": ("none", "tanh")},
    "torch.nn.functional.silu": {}, "torch.nn.functional.mish": {},
    "torch.nn.functional.softplus": {"beta": "number", "threshold": "number"},
    "torch.nn.functional.leaky_relu": {"negative_slope": "number"},
    "torch.nn.functional.hardtanh": {"min_val": "number", "max_val": "number"},
    "torch.nn.functional.hardsigmoid": {}, "torch.nn.functional.hardswish": {},
    "torch.nn.functional.softsign": {}, "torch.nn.functional.tanhshrink": {},
    "torch.nn.functional.logsigmoid": {},
}


@dataclass(frozen=True)
class _Entry:
    """The validated contents of one TOML file, before parameter values are applied."""

    name: str
    source: str
    digest: str  # of the file's bytes: verification results are cached under it
    title: str
    description: str
    expression: Expression
    defaults: Mapping[str, float]
    lipschitz: float | str | None  # None: estimate
    kinks: tuple[float | str, ...] | None  # None: detect
    singularities: tuple[str, ...] | None  # None: estimate (unless kinked or entire)
    entire: bool | None
    torch_native: str | None
    torch_kwargs: Mapping[str, Any]


@dataclass(frozen=True)
class Target:
    """One catalogue entry with concrete parameter values.

    Call it for float64 numpy values; :meth:`torch`, :meth:`native` and :meth:`mp` give the
    torch formula, torch's own implementation and arbitrary-precision values.  ``estimated`` names
    the fields (among "lipschitz", "kinks", "singularities", "entire") that the entry left out and
    that were estimated from the formula; every other field was declared and verified.
    """

    name: str
    title: str
    formula: str
    params: Mapping[str, float]
    lipschitz: float
    kinks: tuple[float, ...]
    singularities: tuple[complex, ...]  # Im > 0, sorted by (Im, Re): the nearest to the real axis first
    entire: bool
    torch_native: str | None
    torch_kwargs: Mapping[str, object]
    source: str
    description: str
    estimated: frozenset[str] = frozenset()
    _entry: _Entry = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __hash__(self) -> int:
        return hash((self.name, self.source, tuple(sorted(self.params.items()))))

    def __call__(self, x: Any) -> np.ndarray:
        """Float64 values (an array shaped like ``x``; 0-d for a scalar)."""
        return self._entry.expression.numpy(np.asarray(x, dtype=np.float64), **self.params)

    def torch(self, x: Any) -> Any:
        """The formula evaluated in torch (dtype of ``x``; float64 for non-tensors); differentiable."""
        return self._entry.expression.torch(x, **self.params)

    def native(self, x: Any) -> Any:
        """Torch's own implementation (``torch_native`` with ``torch_kwargs``)."""
        if self.torch_native is None:
            raise ValueError(f"target {self.name!r} has no native torch function")
        import torch

        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x, dtype=torch.float64)
        return _resolve_torch(self.torch_native)(x, **self.torch_kwargs)

    def mp(self, x: Any) -> Any:
        """The mpmath value at ``x`` (an mpf, or anything mpmath accepts) at the current ``mp.dps``."""
        return self._entry.expression.mpmath(x, **self.params)

    def with_params(self, **params: float) -> Target:
        """A copy with some parameters changed; Lipschitz constant etc. are recomputed and verified."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            allowed = ", ".join(self.params) or "none"
            raise ValueError(f"target {self.name!r}: unknown parameter(s) {', '.join(unknown)}; "
                             f"parameters: {allowed}")
        values = dict(self.params)
        for key, value in params.items():
            values[key] = _param_value(value, f"target {self.name!r}: parameter {key!r}")
        return _build(self._entry, values)

    @property
    def analytic(self) -> bool:
        """True when the target has no kinks."""
        return not self.kinks

    @property
    def singularity_distance(self) -> float:
        """Distance of the nearest complex singularity from the real axis (inf if entire, nan if kinked)."""
        if self.kinks:
            return math.nan
        if self.entire:
            return math.inf
        return min(abs(z.imag) for z in self.singularities)


def _resolve_torch(dotted: str) -> Any:
    if dotted not in NATIVE_FUNCTIONS:
        raise ValueError(f"torch function {dotted!r} is not one of: {', '.join(NATIVE_FUNCTIONS)}")
    import torch

    obj: Any = torch
    for part in dotted.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


# --------------------------------------------------------------------------------------------
# Validation of one file
# --------------------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _param_value(value: Any, where: str) -> float:
    if not _is_number(value) and not isinstance(value, np.floating | np.integer):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    return value


def _parse(name: str, source: str, digest: str, data: dict) -> _Entry:
    def where(key: str) -> str:
        return f"{source}: field {key!r}"

    def string(key: str, default: str) -> str:
        value = data.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where(key)}: expected a non-empty string, got {value!r}")
        return value

    unknown = sorted(set(data) - set(_FIELD_NAMES))
    if unknown:
        raise ValueError(f"{where(unknown[0])}: unknown field; allowed fields: {', '.join(_FIELD_NAMES)}")
    missing = [f.name for f in FIELDS if f.required and f.name not in data]
    if missing:
        raise ValueError(f"{where(missing[0])}: required field is missing")

    params = data.get("params", {})
    if not isinstance(params, dict):
        raise ValueError(f"{where('params')}: expected a table of name = number, got {params!r}")
    for key, value in params.items():
        if not key.isidentifier() or key.startswith("_") or key in RESERVED_NAMES:
            raise ValueError(f"{where('params')}: invalid parameter name {key!r} (must be an identifier "
                             f"other than {', '.join(sorted(RESERVED_NAMES))})")
        _param_value(value, f"{where('params')}: parameter {key!r}")
    defaults = MappingProxyType({k: float(v) for k, v in params.items()})

    formula = data["formula"]
    if not isinstance(formula, str):
        raise ValueError(f"{where('formula')}: expected an expression string, got {formula!r}")
    expression = Expression(formula, defaults.keys(), where=where("formula"))

    def expression_or_number(key: str, value: Any, what: str) -> float | str:
        if _is_number(value):
            return _param_value(value, where(key))
        if isinstance(value, str):
            Expression(value, defaults.keys(), where=where(key), constant=True)  # check syntax now
            return value
        raise ValueError(f"{where(key)}: expected {what}, got {value!r}")

    def array(key: str) -> list | None:
        value = data.get(key)
        if value is not None and not isinstance(value, list):
            raise ValueError(f"{where(key)}: expected a list, got {value!r}")
        return value

    lipschitz = (None if "lipschitz" not in data else
                 expression_or_number("lipschitz", data["lipschitz"], "a number or expression string"))
    kink_list = array("kinks")
    kinks = None if kink_list is None else tuple(
        expression_or_number("kinks", v, "a number or expression string in a list") for v in kink_list)
    singularity_list = array("singularities")
    singularities = None
    if singularity_list is not None:
        singularities = []
        for value in singularity_list:
            if not isinstance(value, str):
                raise ValueError(f"{where('singularities')}: expected expression strings such as "
                                 f"\"pi/2*1j\", got {value!r}")
            singularities.append(expression_or_number("singularities", value, "an expression string"))
        singularities = tuple(singularities)

    entire = data.get("entire")
    if entire is not None and not isinstance(entire, bool):
        raise ValueError(f"{where('entire')}: expected true or false, got {entire!r}")
    if entire and (kinks or singularities):
        raise ValueError(f"{where('entire')}: an entire function has neither kinks nor singularities")
    if kinks and singularities:
        raise ValueError(f"{where('singularities')}: a target with kinks is not analytic; "
                         "leave singularities empty")

    torch_native = data.get("torch")
    if torch_native is not None and not (isinstance(torch_native, str) and torch_native in NATIVE_FUNCTIONS):
        raise ValueError(f"{where('torch')}: {torch_native!r} is not allowed; allowed: "
                         f"{', '.join(NATIVE_FUNCTIONS)}")
    torch_kwargs = data.get("torch_kwargs", {})
    if not isinstance(torch_kwargs, dict):
        raise ValueError(f"{where('torch_kwargs')}: expected a table, got {torch_kwargs!r}")
    if torch_kwargs and torch_native is None:
        raise ValueError(f"{where('torch_kwargs')}: given without a 'torch' function")
    for key, value in torch_kwargs.items():
        allowed = NATIVE_FUNCTIONS[torch_native]
        if key not in allowed:
            raise ValueError(f"{where('torch_kwargs')}: {torch_native} takes no keyword {key!r} here; "
                             f"allowed: {', '.join(allowed) or 'none'}")
        kind = allowed[key]
        if kind == "number":
            if isinstance(value, dict):
                param = value.get("param")
                if set(value) != {"param"} or not isinstance(param, str) or param not in defaults:
                    raise ValueError(f"{where('torch_kwargs')}: {key} = {value!r}: a table must be "
                                     f"{{ param = NAME }} with NAME one of: {', '.join(defaults) or 'none'}")
            else:
                _param_value(value, f"{where('torch_kwargs')}: {key}")
        elif value not in kind:
            raise ValueError(f"{where('torch_kwargs')}: {key} = {value!r}; allowed: {', '.join(kind)}")

    return _Entry(name=name, source=source, digest=digest, title=string("title", name),
                  description=string("description", " ") if "description" in data else "",
                  expression=expression, defaults=defaults, lipschitz=lipschitz, kinks=kinks,
                  singularities=singularities, entire=entire, torch_native=torch_native,
                  torch_kwargs=MappingProxyType(dict(torch_kwargs)))


def _real(value: float | str, params: Mapping[str, float], where: str) -> float:
    result = constant(value, params, where=where)
    if isinstance(result, complex):
        raise ValueError(f"{where}: {value!r} evaluates to the complex number {result}, expected a real one")
    return result


# --------------------------------------------------------------------------------------------
# Estimation and verification against the formula
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Properties:
    lipschitz: float
    kinks: tuple[float, ...]
    singularities: tuple[complex, ...]
    entire: bool
    estimated: frozenset[str]


_PROPERTIES: dict[tuple, _Properties] = {}


def _properties(entry: _Entry, params: Mapping[str, float]) -> _Properties:
    """Lipschitz constant, kinks and singularities: the declared ones verified, the others estimated.

    Verification costs ~25 ms per target, so results are cached in memory and on disk (under
    ``$SLAF_APPROX_CACHE/catalogue``), keyed by the file's content, the parameter values and the code
    that verifies; errors are not cached."""
    key = (entry.digest, tuple(sorted(params.items())))
    if key not in _PROPERTIES:
        path = _cache_path(key)
        props = _read_cached(path)
        if props is None:
            props = _analyse(entry, params)
            _write_cached(path, props)
        _PROPERTIES[key] = props
    return _PROPERTIES[key]


@functools.cache
def _code_digest() -> str:
    here = Path(__file__).resolve().parent
    return hashlib.sha256(b"".join((here / m).read_bytes() for m in ("targets.py", "analysis.py", "expr.py"))
                          ).hexdigest()


def _cache_path(key: tuple) -> Path:
    root = Path(os.environ.get("SLAF_APPROX_CACHE") or Path.home() / ".cache" / "slaf_approx")
    name = hashlib.sha256(repr((key, _code_digest())).encode()).hexdigest()
    return root / "catalogue" / f"{name}.json"


def _read_cached(path: Path) -> _Properties | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        return _Properties(float(d["lipschitz"]), tuple(map(float, d["kinks"])),
                           tuple(complex(re, im) for re, im in d["singularities"]), bool(d["entire"]),
                           frozenset(map(str, d["estimated"])))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or damaged: verify again


def _write_cached(path: Path, props: _Properties) -> None:
    data = {"lipschitz": props.lipschitz, "kinks": list(props.kinks),
            "singularities": [[z.real, z.imag] for z in props.singularities], "entire": props.entire,
            "estimated": sorted(props.estimated)}
    try:
        atomic_write(path, json.dumps(data))
    except OSError:
        pass  # a read-only cache only costs time


def _analyse(entry: _Entry, params: Mapping[str, float]) -> _Properties:
    def where(key: str) -> str:
        return f"{entry.source}: field {key!r}"

    text = entry.expression.text
    shown = f"{text!r}" + (f" (parameters {dict(params)})" if params else "")
    values = entry.expression.numpy(_CHECK_POINTS, **params)
    if not np.all(np.isfinite(values)):
        bad = _CHECK_POINTS[~np.isfinite(values)][0]
        raise ValueError(f"{where('formula')}: {shown} is not finite at x = {bad}")

    def f(x: np.ndarray) -> np.ndarray:
        return entry.expression.numpy(x, **params)

    def fmp(x: Any) -> Any:
        return entry.expression.mpmath(x, **params)

    switches = [lambda x, g=g: g(x, **params) for g in entry.expression.switching_functions()]
    estimated: set[str] = set()
    try:
        found = analysis.find_kinks(fmp, switches)
    except ValueError as exc:
        raise ValueError(f"{where('formula')}: {shown} {exc}") from None

    # kinks (declaring singularities or entire = true declares that there are none)
    declared_kinks = () if entry.kinks is None and (entry.singularities or entry.entire) else entry.kinks
    if declared_kinks is None:
        kinks = found
        estimated.add("kinks")
    else:
        kinks = tuple(sorted({_real(k, params, where("kinks")) for k in declared_kinks}))
        for k in kinks:
            try:
                is_kink = analysis.classify_point(fmp, k)
            except ValueError as exc:
                raise ValueError(f"{where('formula')}: {shown} {exc}") from None
            # At parameter values other than the defaults a listed kink may vanish (leaky_relu with
            # slope = 1 is x): it is kept, a harmless extra panel boundary.
            if not is_kink and dict(params) == dict(entry.defaults):
                raise ValueError(f"{where('kinks')}: {shown} is smooth at x = {k!r}, not a kink"
                                 + (f"; its kinks are at {', '.join(map(repr, found))}" if found else
                                    "; it has no kinks"))
        for c in found:
            if not any(abs(c - k) <= KINK_RTOL * max(1.0, abs(k)) for k in kinks):
                field_name = "kinks" if entry.kinks is not None else ("singularities" if entry.singularities
                                                                      else "entire")
                raise ValueError(f"{where(field_name)}: {shown} has a kink at x = {c!r} that is not listed "
                                 f"(listed: {', '.join(map(repr, kinks)) or 'none'})")
    if kinks and entry.entire:
        raise ValueError(f"{where('entire')}: {shown} has kinks at {', '.join(map(repr, kinks))}, so it "
                         "is not entire")
    if kinks and entry.singularities:
        raise ValueError(f"{where('singularities')}: {shown} has kinks at {', '.join(map(repr, kinks))}; a "
                         "target with kinks is not analytic, leave singularities out")

    # singularities
    singularities: tuple[complex, ...] = ()
    entire = bool(entry.entire)
    if not kinks:
        try:
            singularities, entire = _singularities(entry, params, f, fmp, shown, estimated)
        except ValueError as exc:
            if str(exc).startswith(entry.source):
                raise
            raise ValueError(f"{where('formula')}: {shown} {exc}") from None
    # Lipschitz constant
    try:
        sup, at = analysis.lipschitz_sup(f, kinks, singularities)
    except ValueError as exc:
        raise ValueError(f"{where('formula')}: {shown} {exc}") from None
    if entry.lipschitz is None:
        lipschitz = sup * analysis.LIPSCHITZ_SAFETY
        estimated.add("lipschitz")
    else:
        lipschitz = _real(entry.lipschitz, params, where("lipschitz"))
        declared = f"{entry.lipschitz!r} = " if isinstance(entry.lipschitz, str) else ""
        if lipschitz < 0:
            raise ValueError(f"{where('lipschitz')}: {entry.lipschitz!r} = {lipschitz} is negative")
        if lipschitz < sup * (1 - LIPSCHITZ_BELOW):
            raise ValueError(f"{where('lipschitz')}: {declared}{lipschitz:.10g} is below "
                             f"|f'({at:.10g})| = {sup:.10g}: a Lipschitz constant must bound |f'| on "
                             "[-1e4, 1e4] (leave the field out to have it estimated)")
        if lipschitz > LIPSCHITZ_ABOVE * sup:
            raise ValueError(f"{where('lipschitz')}: {declared}{lipschitz:.10g} is more than "
                             f"{LIPSCHITZ_ABOVE:g} times sup |f'| = {sup:.10g} (at x = {at:.10g}); give "
                             "sup |f'| (or leave the field out to have it estimated)")

    return _Properties(lipschitz, kinks, singularities, entire, frozenset(estimated))


def _singularities(entry: _Entry, params: Mapping[str, float], f, fmp, shown: str,
                   estimated: set[str]) -> tuple[tuple[complex, ...], bool]:
    def where(key: str) -> str:
        return f"{entry.source}: field {key!r}"

    if entry.singularities:
        declared = []
        for text in entry.singularities:
            z = complex(constant(text, params, where=where("singularities")))
            if z.imag == 0:
                raise ValueError(f"{where('singularities')}: {text!r} = {z} is on the real axis; "
                                 "list it as a kink")
            z = z.conjugate() if z.imag < 0 else z
            if z.imag >= analysis.MIN_SINGULARITY_DISTANCE and not analysis.is_singular(fmp, z):
                raise ValueError(f"{where('singularities')}: {shown} is analytic at {text!r} = {z:.10g}: "
                                 "|f'| does not grow towards it")
            declared.append(z)
        nearer = analysis.nearer_than_declared(f, declared)
        if nearer is not None:
            raise ValueError(f"{where('singularities')}: {shown} has a singularity nearer to the real axis "
                             f"than those listed, near {nearer[1]:.3g} (estimated)")
        return tuple(sorted(declared, key=lambda z: (z.imag, z.real))), False

    distance, centre = analysis.nearest_distance(f)
    if entry.entire:
        try:
            inside = analysis.singularity_in_strip(lambda z: entry.expression.complex(z, **params))
        except ValueError as exc:
            raise ValueError(f"{where('entire')}: {shown} cannot be checked to be entire: {exc}") from None
        if inside is not None:
            raise ValueError(f"{where('entire')}: {shown} is not entire: it has a singularity within "
                             f"{ENTIRE_STRIP:g} of the real axis, inside the circle of radius "
                             f"{analysis._CIRCLE_RADIUS:g} around {inside[0]:g}")
        return (), True
    if distance < ESTIMATE_MIN_DISTANCE:
        raise ValueError(f"has a singularity on or within ~{ESTIMATE_MIN_DISTANCE:g} of the real axis near "
                         f"x = {centre:g}; a target must be analytic or have listed kinks there (a pole "
                         f"at least {analysis.MIN_SINGULARITY_DISTANCE:g} away may be listed in "
                         "'singularities')")
    found = analysis.estimate_singularities(f)
    estimated.add("singularities")
    if any(z.imag < ENTIRE_STRIP for z in found):
        # The windows mistake the fast variation of some entire functions (GELU's tails) for
        # singularities; the circles, where the formula has a complex extension, tell them apart.
        try:
            inside = analysis.singularity_in_strip(lambda z: entry.expression.complex(z, **params))
        except ValueError:
            inside = ()  # abs, maximum, ... in an analytic formula: keep the windows' estimate
        if inside is None:
            found = tuple(z for z in found if z.imag >= ENTIRE_STRIP)
    if not found:
        if entry.entire is False:
            raise ValueError(f"{where('entire')}: false, but no singularity was found near the real axis; "
                             "list them in 'singularities'")
        estimated.add("entire")
        return (), True
    return found, False


def _build(entry: _Entry, params: Mapping[str, float]) -> Target:
    """Apply parameter values: evaluate and verify the declared fields, estimate the others."""
    props = _properties(entry, params)
    torch_kwargs = {key: params[value["param"]] if isinstance(value, dict) else value
                    for key, value in entry.torch_kwargs.items()}
    return Target(name=entry.name, title=entry.title, formula=entry.expression.text,
                  params=MappingProxyType(dict(params)), lipschitz=props.lipschitz, kinks=props.kinks,
                  singularities=props.singularities, entire=props.entire, torch_native=entry.torch_native,
                  torch_kwargs=MappingProxyType(torch_kwargs), source=entry.source,
                  description=entry.description, estimated=props.estimated, _entry=entry)


def _load_file(path: Any) -> Target:
    source = str(path)
    name = path.name[: -len(".toml")]
    if not _NAME.match(name):
        raise ValueError(f"{source}: the file name must be lower case letters, digits and '_' "
                         f"(starting with a letter), got {name!r}")
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{source}: invalid TOML: {exc}") from None
    entry = _parse(name, source, hashlib.sha256(raw).hexdigest(), data)
    return _build(entry, entry.defaults)


# --------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------
_CACHE: dict[tuple[str, ...], dict[str, Target]] = {}


def _shipped_folder() -> Any:
    try:
        folder = importlib.resources.files(_PACKAGE)
        if any(p.name.endswith(".toml") for p in folder.iterdir()):
            return folder
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError, TypeError):
        pass
    return _REPO_FOLDER


def _default_folders() -> list[Any]:
    extra = [Path(p).resolve() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p.strip()]
    return [_shipped_folder(), *extra]


def _load_folder(root: Any) -> list[Target]:
    if not root.is_dir():
        raise ValueError(f"target folder {root} does not exist")
    files = sorted((p for p in root.iterdir() if p.name.endswith(".toml") and p.is_file()),
                   key=lambda p: p.name)
    if not files:
        raise ValueError(f"target folder {root} holds no *.toml files")
    return [_load_file(p) for p in files]


def load_catalogue(folder: str | os.PathLike | None = None) -> dict[str, Target]:
    """All targets, sorted by name: of ``folder`` alone, or by default the shipped catalogue plus the
    folders in ``SLAF_APPROX_TARGETS`` (see the module docstring).

    Cached per folder list; call :func:`clear_cache` after editing files.  Raises ValueError naming
    the file and the field for a malformed or wrong entry, and both files for a name defined twice.
    """
    folders = _default_folders() if folder is None else [Path(folder).resolve()]
    key = tuple(str(f) for f in folders)
    if key not in _CACHE:
        found: dict[str, Target] = {}
        for root in folders:
            for target in _load_folder(root):
                if target.name in found:
                    raise ValueError(f"target {target.name!r} is defined twice: {found[target.name].source} "
                                     f"and {target.source}")
                found[target.name] = target
        _CACHE[key] = dict(sorted(found.items()))
    return dict(_CACHE[key])


def clear_cache() -> None:
    """Forget loaded catalogues (after files were edited)."""
    _CACHE.clear()


def target_names() -> list[str]:
    """Names of the targets in the default catalogue, sorted."""
    return list(load_catalogue())


def get_target(name: str, **params: float) -> Target:
    """The target called ``name`` from the default catalogue, with some parameters changed."""
    catalogue = load_catalogue()
    key = name.lower() if isinstance(name, str) else name
    if key not in catalogue:
        raise ValueError(f"unknown target {name!r}; known targets: {', '.join(catalogue)}")
    target = catalogue[key]
    return target.with_params(**params) if params else target


# --------------------------------------------------------------------------------------------
# The catalogue page
# --------------------------------------------------------------------------------------------
def schema_markdown() -> str:
    """The catalogue page (docs/catalogue.md): every field, function, operator and torch function."""
    from ._markdown import table as markdown_table

    def table(*args: Any) -> str:
        return markdown_table(*args).rstrip("\n")

    def kwargs(spec: Mapping[str, Any]) -> str:
        return ", ".join(f"`{k}` ({v if v == 'number' else ' or '.join(map(repr, v))})"
                         for k, v in spec.items()) or "-"

    lines = [
        "# The target catalogue",
        "",
        "<!-- generated by slaf_approx.targets.schema_markdown(); "
        "`slaf-approx targets --schema` prints it -->",
        "",
        "One TOML file per target; the file name (lower case letters, digits, `_`) is the target's name.",
        "The shipped files are in `targets/`. `SLAF_APPROX_TARGETS=DIR` (several folders separated by "
        "`os.pathsep`: `:`, or `;` on Windows) adds the `*.toml` files of DIR to them; a name defined "
        "twice is an error naming "
        "both files. A minimal entry is one line:",
        "",
        "```toml",
        'formula = "x*tanh(softplus(x))"',
        "```",
        "",
        "Fields left out among `lipschitz`, `kinks`, `singularities` and `entire` are estimated from the "
        "formula (`Target.estimated` names them, and `slaf-approx targets` marks them with `~`). Fields "
        "given are verified against the formula when the catalogue loads; a wrong one is an error naming "
        "the file and the field. Unknown fields are errors.",
        "",
        "## Fields",
        "",
        table(["field", "type", "required", "meaning"],
              [[f"`{f.name}`", f.kind, "yes" if f.required else "no", f.doc] for f in FIELDS],
              ["l", "l", "l", "l"]),
        "",
        "## Formula language",
        "",
        "A formula is a Python-like expression in the variable `x` and the entry's parameters, checked "
        "against a whitelist and never passed to `eval`. Constant fields (`lipschitz`, `kinks`, "
        "`singularities`) use the same language without `x`, plus imaginary literals such as `1j`.",
        "",
        f"- Operators: {', '.join(f'`{o}`' if ' ' not in o else o for o in OPERATORS)}.",
        f"- Constants: {', '.join(f'`{c}`' for c in CONSTANTS)}; numeric literals (`0.044715`, `1e-3`).",
        "",
        table(["function", "arguments", "meaning"],
              [[f"`{name}`", str(nargs), doc] for name, (nargs, doc) in FUNCTION_DOCS.items()],
              ["l", "r", "l"]),
        "",
        "## Estimation and verification",
        "",
        "- The formula must be finite on [-1e4, 1e4] and continuous.",
        "- Kinks: zeros of the arguments of `abs`, `sqrt`, of the differences of the arguments of "
        "`maximum`, `minimum`, `clip` and of a `where` comparison, found on a grid (step 1/128 on [-64, 64], "
        f"geometric beyond) and refined by bisection; a zero is a kink when a one-sided derivative of "
        f"order 1 to 3 jumps there (50-digit mpmath). At most {analysis.MAX_CANDIDATES} candidates.",
        f"- Lipschitz constant: the sup S of |f'| from central differences (step 2^-17 relative) on the "
        "same grid, one-sided differences at the kinks and golden-section refinement of the 8 largest "
        f"maxima (relative error ~1e-10 on the shipped targets). Estimate: {analysis.LIPSCHITZ_SAFETY} S. "
        f"A declared L must satisfy S (1 - {LIPSCHITZ_BELOW:g}) <= L <= {LIPSCHITZ_ABOVE:g} S.",
        "- Singularities: the decay rate rho of the Chebyshev coefficients of f on windows [c - 1, c + 1], "
        "c = -6, ..., 6, gives the Bernstein ellipse of the nearest singularity; a local minimum of rho "
        "over the windows locates one (an estimate within ~15% on the shipped targets, not always on the "
        "near side: treat it as a guide). Windows where f is a straight line to 1e-6 of its size are "
        "skipped. A declared singularity must be one (|f'| grows at least 10x from distance 1e-4 to 1e-6 "
        f"relative, in mpmath), be at least {analysis.MIN_SINGULARITY_DISTANCE:g} from the real axis, "
        f"and no window may show a clearly nearer one (log rho below {analysis.NEARER:g} of the declared "
        "ones'; 0.78 to 1.14 on the shipped targets). An "
        f"undeclared singularity within {ESTIMATE_MIN_DISTANCE:g} of the real axis is an error.",
        f"- `entire = true` is refused for a target with kinks or a singularity within "
        f"{ENTIRE_STRIP:g} of the real axis (|Re z| <= 6): the Fourier coefficients of negative order of "
        "f's complex extension on circles of radius 3.5 around -6, -4, ..., 6 must stay below 1e-8 of "
        "max |f| there (1e-16 for GELU; 2e-6 and more for every shipped target with a singularity). "
        "With nothing declared, a target is estimated entire when no window resolves a singularity "
        "outside that strip and the circles find none inside it.",
        "- Results are cached per file content and parameter values.",
        "",
        "## torch functions",
        "",
        "`torch` may name one of these side-effect-free functions, with only the keyword arguments listed:",
        "",
        table(["torch", "torch_kwargs"], [[f"`{k}`", kwargs(v)] for k, v in NATIVE_FUNCTIONS.items()],
              ["l", "l"]),
        "",
    ]
    return "\n".join(lines)
