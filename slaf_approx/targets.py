"""The target catalogue: standard activation functions, one TOML file each.

Every ``*.toml`` file in the catalogue folder describes one target; its file stem is the
target's name.  Adding a target means dropping a file there -- no library code changes.

Schema (every field is checked; unknown fields are errors)::

    title = "GELU (erf form)"                # required, string
    formula = "0.5*x*erfc(-x/sqrt(2))"       # required, whitelisted expression (see slaf_approx.expr)
    lipschitz = "0.5*erfc(-1) + exp(-1)/sqrt(pi)"   # required, number or constant expression in params
    description = "..."                      # optional string
    params = { alpha = 1.0 }                 # optional table name -> number (defaults)
    kinks = [0, "-alpha"]                    # optional list of numbers / constant expressions
    singularities = ["pi/2*1j"]              # optional list of constant expressions, see below
    entire = true                            # optional bool
    torch = "torch.nn.functional.elu"        # optional dotted name of the matching torch function
    torch_kwargs = { alpha = { param = "alpha" } }   # optional; values are literals or {param = name}

``singularities`` lists the complex singularities that limit analyticity near the real axis: at least
those nearest to it (one of each conjugate pair; Im z < 0 is conjugated), optionally further ones that
are nearer in the Bernstein-ellipse sense for off-centre intervals.

Consistency rules: a target with kinks has no singularities and is not entire; an entire target lists
neither; an analytic target that is not entire must list its nearest singularities.

The folder is, in order of precedence: the ``folder`` argument, the environment variable
``SLAF_APPROX_TARGETS``, the installed package ``slaf_approx.catalogue``, the repository's
``targets/`` folder next to ``slaf_approx/``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.resources
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

from .expr import RESERVED_NAMES, Expression, constant

__all__ = ["ENV_VAR", "Target", "clear_cache", "get_target", "load_catalogue", "target_names"]

ENV_VAR = "SLAF_APPROX_TARGETS"
_PACKAGE = "slaf_approx.catalogue"
_REPO_FOLDER = Path(__file__).resolve().parent.parent / "targets"
_REQUIRED = ("title", "formula", "lipschitz")
_OPTIONAL = ("description", "params", "kinks", "singularities", "entire", "torch", "torch_kwargs")
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_TORCH_NAME = re.compile(r"torch(\.[A-Za-z_][A-Za-z0-9_]*)+\Z")
#: points at which every formula must evaluate finite when loaded
_CHECK_POINTS = np.array([-1e4, -50.0, -3.0, -1.0, -0.25, 0.0, 0.25, 1.0, 3.0, 50.0, 1e4])


@dataclass(frozen=True)
class _Entry:
    """The validated contents of one TOML file, before parameter values are applied."""

    name: str
    source: str
    title: str
    description: str
    expression: Expression
    defaults: Mapping[str, float]
    lipschitz: float | str
    kinks: tuple[float | str, ...]
    singularities: tuple[str, ...]
    entire: bool
    torch_native: str | None
    torch_kwargs: Mapping[str, Any]


@dataclass(frozen=True)
class Target:
    """One catalogue entry with concrete parameter values.

    Call it for float64 numpy values; :meth:`torch`, :meth:`native` and :meth:`mp` give the
    torch formula, torch's own implementation and arbitrary-precision values.
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
    _entry: _Entry = field(repr=False, compare=False)

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
        """A copy with some parameters changed; Lipschitz constant etc. are recomputed."""
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


@functools.cache
def _resolve_torch(dotted: str) -> Any:
    parts = dotted.split(".")
    obj: Any = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            try:
                obj = importlib.import_module(".".join(parts[: i + 1]))
            except ImportError:
                raise ValueError(f"torch function {dotted!r} does not exist") from None
    if not callable(obj):
        raise ValueError(f"{dotted!r} is not callable")
    return obj


# --------------------------------------------------------------------------------------------
# Validation of one file
# --------------------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _param_value(value: Any, where: str) -> float:
    if not _is_number(value) and not isinstance(value, np.floating | np.integer):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    return value


def _parse(name: str, source: str, data: dict) -> _Entry:
    def where(key: str) -> str:
        return f"{source}: field {key!r}"

    def string(key: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if not isinstance(value, str) or (key in _REQUIRED and not value.strip()):
            raise ValueError(f"{where(key)}: expected a non-empty string, got {value!r}")
        return value

    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise ValueError(f"{where(unknown[0])}: unknown field; allowed fields: "
                         f"{', '.join(_REQUIRED + _OPTIONAL)}")
    missing = [key for key in _REQUIRED if key not in data]
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

    expression = Expression(string("formula"), defaults.keys(), where=where("formula"))

    def expression_or_number(key: str, value: Any, what: str) -> float | str:
        if _is_number(value):
            return float(value)
        if isinstance(value, str):
            Expression(value, defaults.keys(), where=where(key), constant=True)  # check syntax now
            return value
        raise ValueError(f"{where(key)}: expected {what}, got {value!r}")

    def array(key: str) -> list:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise ValueError(f"{where(key)}: expected a list, got {value!r}")
        return value

    lipschitz = expression_or_number("lipschitz", data["lipschitz"], "a number or expression string")
    kinks = tuple(expression_or_number("kinks", v, "a number or expression string in a list")
                  for v in array("kinks"))
    singularities = []
    for value in array("singularities"):
        if not isinstance(value, str):
            raise ValueError(f"{where('singularities')}: expected expression strings such as "
                             f"\"pi/2*1j\", got {value!r}")
        singularities.append(expression_or_number("singularities", value, "an expression string"))

    entire = data.get("entire", False)
    if not isinstance(entire, bool):
        raise ValueError(f"{where('entire')}: expected true or false, got {entire!r}")
    if entire and (kinks or singularities):
        raise ValueError(f"{where('entire')}: an entire function has neither kinks nor singularities")
    if kinks and singularities:
        raise ValueError(f"{where('singularities')}: a target with kinks is not analytic; "
                         "leave singularities empty")
    if not (kinks or singularities or entire):
        raise ValueError(f"{where('singularities')}: an analytic target must list its nearest complex "
                         "singularities, or set entire = true (or list its kinks)")

    torch_native = data.get("torch")
    if torch_native is not None and not (isinstance(torch_native, str) and _TORCH_NAME.match(torch_native)):
        raise ValueError(f"{where('torch')}: expected a dotted name such as \"torch.nn.functional.gelu\", "
                         f"got {torch_native!r}")
    torch_kwargs = data.get("torch_kwargs", {})
    if not isinstance(torch_kwargs, dict):
        raise ValueError(f"{where('torch_kwargs')}: expected a table, got {torch_kwargs!r}")
    if torch_kwargs and torch_native is None:
        raise ValueError(f"{where('torch_kwargs')}: given without a 'torch' function")
    for key, value in torch_kwargs.items():
        if isinstance(value, dict):
            if set(value) != {"param"} or value["param"] not in defaults:
                raise ValueError(f"{where('torch_kwargs')}: {key} = {value!r}: a table must be "
                                 f"{{ param = NAME }} with NAME one of: {', '.join(defaults) or 'none'}")
        elif not isinstance(value, (str, bool, int, float)):
            raise ValueError(f"{where('torch_kwargs')}: {key} = {value!r}: expected a string, bool, number "
                             "or { param = NAME }")

    return _Entry(name=name, source=source, title=string("title"), description=string("description", ""),
                  expression=expression, defaults=defaults, lipschitz=lipschitz, kinks=kinks,
                  singularities=tuple(singularities), entire=entire, torch_native=torch_native,
                  torch_kwargs=MappingProxyType(dict(torch_kwargs)))


def _real(value: float | str, params: Mapping[str, float], where: str) -> float:
    result = constant(value, params, where=where)
    if isinstance(result, complex):
        raise ValueError(f"{where}: {value!r} evaluates to the complex number {result}, expected a real one")
    return result


def _build(entry: _Entry, params: Mapping[str, float]) -> Target:
    """Apply parameter values: evaluate the constant fields and check the formula is finite."""

    def where(key: str) -> str:
        return f"{entry.source}: field {key!r}"

    lipschitz = _real(entry.lipschitz, params, where("lipschitz"))
    if lipschitz < 0:
        raise ValueError(f"{where('lipschitz')}: {entry.lipschitz!r} = {lipschitz} is negative")
    kinks = tuple(sorted({_real(k, params, where("kinks")) for k in entry.kinks}))
    singularities = []
    for text in entry.singularities:
        z = complex(constant(text, params, where=where("singularities")))
        if z.imag == 0:
            raise ValueError(f"{where('singularities')}: {text!r} = {z} is on the real axis; "
                             "list it as a kink")
        singularities.append(z.conjugate() if z.imag < 0 else z)
    torch_kwargs = {key: params[value["param"]] if isinstance(value, dict) else value
                    for key, value in entry.torch_kwargs.items()}

    values = entry.expression.numpy(_CHECK_POINTS, **params)
    if not np.all(np.isfinite(values)):
        bad = _CHECK_POINTS[~np.isfinite(values)][0]
        raise ValueError(f"{where('formula')}: {entry.expression.text!r} is not finite at x = {bad} "
                         f"(parameters {dict(params)})")

    return Target(name=entry.name, title=entry.title, formula=entry.expression.text,
                  params=MappingProxyType(dict(params)), lipschitz=lipschitz, kinks=kinks,
                  singularities=tuple(sorted(singularities, key=lambda z: (z.imag, z.real))),
                  entire=entry.entire, torch_native=entry.torch_native,
                  torch_kwargs=MappingProxyType(torch_kwargs), source=entry.source,
                  description=entry.description, _entry=entry)


def _load_file(path: Any) -> Target:
    source = str(path)
    name = path.name[: -len(".toml")]
    if not _NAME.match(name):
        raise ValueError(f"{source}: the file name must be lower case letters, digits and '_' "
                         f"(starting with a letter), got {name!r}")
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{source}: invalid TOML: {exc}") from None
    entry = _parse(name, source, data)
    return _build(entry, entry.defaults)


# --------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------
_CACHE: dict[str, dict[str, Target]] = {}


def _default_folder() -> Any:
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).resolve()
    try:
        folder = importlib.resources.files(_PACKAGE)
        if any(p.name.endswith(".toml") for p in folder.iterdir()):
            return folder
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError, TypeError):
        pass
    return _REPO_FOLDER


def load_catalogue(folder: str | os.PathLike | None = None) -> dict[str, Target]:
    """All targets in ``folder`` (see the module docstring for the default), sorted by name.

    Cached per folder; call :func:`clear_cache` after editing files.  Raises ValueError naming
    the file and the field for a malformed entry.
    """
    root = _default_folder() if folder is None else Path(folder).resolve()
    key = str(root)
    if key not in _CACHE:
        if not root.is_dir():
            raise ValueError(f"target folder {key} does not exist")
        files = sorted((p for p in root.iterdir() if p.name.endswith(".toml") and p.is_file()),
                       key=lambda p: p.name)
        if not files:
            raise ValueError(f"target folder {key} holds no *.toml files")
        _CACHE[key] = {target.name: target for target in map(_load_file, files)}
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
