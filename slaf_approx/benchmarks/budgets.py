"""Budgets (budgets.toml, shipped beside this module): limits on ratios measured inside one run, and goals.

A budget is checked (`slaf-approx bench --check` exits 1 when one breaks); it must hold in every run on
its reference machine, so its limit leaves room for that machine's noise, and it is a figure of one run
that the machine's load cannot move much: a ratio of two benchmarks, a paired-copy ratio or peak bytes (an
absolute time or bandwidth is refused as a budget; it can be a goal). A goal has the same form but is
only reported: it states a target not met yet, or one too noisy to enforce.

Ratios of kernel benchmarks read the quantity "anchored" by default: each benchmark's per-round time over
the time of the copy run just before it in the same round (interleaved rounds, see suite/conftest.py), so
the numerator and denominator are measured against the same moments of the machine's load. "raced" reads
a SLAF backend against a peer raced against it call for call (the peer's rival_samples, suite/conftest.py).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._markdown import table
from .runs import raced, select
from .settings import DEVICES, KERNEL_OPS, size_label

BUDGET_VERSION = 3
BUDGETS_FILE = Path(__file__).with_name("budgets.toml")
SELECTOR_KEYS = ("test", "op", "backend", "variant", "mode", "degree", "size", "dtype", "device")
QUANTITIES = {
    "anchored": "time / paired copy time",
    "median": "median time",
    "gbps": "GB/s",
    "peak_bytes": "peak memory",
    "raced": "time / the other's, call for call",
}
BUDGET_KEYS = ("description", "of", "numerator", "denominator", "select", "reduce", "max", "min", "required")
FAILED = ("FAIL", "missing", "ambiguous")


class BudgetError(ValueError):
    """A missing or malformed budgets file: the message names the file and the key."""

    def __init__(self, path, key: str | None, problem: str):
        self.path, self.key = Path(path), key
        super().__init__(f"{path}: {key}: {problem}" if key else f"{path}: {problem}")


@dataclass(frozen=True)
class Budget:
    """One budget or goal. A ratio (numerator / denominator, each selecting exactly one benchmark) or an
    absolute value (select, the worst of the benchmarks it matches) of the quantity `of`, held to
    [min, max]."""

    name: str
    of: str = "anchored"
    numerator: dict | None = None
    denominator: dict | None = None
    select: dict | None = None
    reduce: str = "max"
    max: float | None = None
    min: float | None = None
    required: str | None = None
    description: str = ""
    goal: bool = False

    @property
    def is_ratio(self) -> bool:
        return self.select is None

    def limit(self) -> str:
        unit = (
            ""
            if self.is_ratio
            else {"median": " s", "anchored": "", "gbps": " GB/s", "peak_bytes": " B"}[self.of]
        )
        parts = []
        if self.min is not None:
            parts.append(f"≥ {self.min:g}{unit}")
        if self.max is not None:
            parts.append(f"≤ {self.max:g}{unit}")
        return " ".join(parts)


@dataclass(frozen=True)
class BudgetResult:
    budget: Budget
    value: float | None
    status: str  # ok, FAIL, not measured, missing, ambiguous (goals: met, not met, not measured)
    detail: str = ""

    @property
    def failed(self) -> bool:
        return not self.budget.goal and self.status in FAILED


def _selector(path, key: str, value) -> dict:
    if not isinstance(value, dict) or not value:
        raise BudgetError(path, key, 'must be a non-empty table such as { op = "slaf", size = 16777216 }')
    for k, v in value.items():
        if k not in SELECTOR_KEYS:
            raise BudgetError(path, f"{key}.{k}", f"unknown field; allowed: {', '.join(SELECTOR_KEYS)}")
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise BudgetError(path, f"{key}.{k}", f"must be a string or an integer, got {v!r}")
    return dict(value)


def _number(path, key: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BudgetError(path, key, f"must be a finite number, got {value!r}")
    return float(value)


def _parse_one(path, key: str, name: str, b, goal: bool) -> Budget:
    if not isinstance(b, dict):
        raise BudgetError(path, key, "must be a table")
    for k in b:
        if k not in BUDGET_KEYS:
            raise BudgetError(path, f"{key}.{k}", f"unknown key; allowed: {', '.join(BUDGET_KEYS)}")
    of = b.get("of", "anchored")
    if of not in QUANTITIES:
        raise BudgetError(path, f"{key}.of", f"unknown quantity {of!r}; allowed: {', '.join(QUANTITIES)}")
    has_ratio = "numerator" in b or "denominator" in b
    if has_ratio and "select" in b:
        raise BudgetError(path, key, "has both select and numerator/denominator: give one")
    if has_ratio:
        for side in ("numerator", "denominator"):
            if side not in b:
                raise BudgetError(path, f"{key}.{side}", "missing")
        num, den, sel = (
            _selector(path, f"{key}.numerator", b["numerator"]),
            _selector(path, f"{key}.denominator", b["denominator"]),
            None,
        )
    elif "select" in b:
        if of == "raced":
            raise BudgetError(path, f"{key}.of", "raced is a ratio: give numerator and denominator")
        if not goal and of in ("median", "gbps"):
            raise BudgetError(path, f"{key}.of", f"an absolute {QUANTITIES[of]} moves with the machine's "
                              "load: a budget is a ratio within one run (of = anchored, or numerator and "
                              "denominator); make it a [goal] to report it")
        num = den = None
        sel = _selector(path, f"{key}.select", b["select"])
    else:
        raise BudgetError(path, f"{key}.select", "missing (or numerator and denominator for a ratio)")
    lo, hi = _number(path, f"{key}.min", b.get("min")), _number(path, f"{key}.max", b.get("max"))
    if lo is None and hi is None:
        raise BudgetError(path, f"{key}.max", "missing: a budget needs max or min")
    reduce = b.get("reduce", "max")
    if reduce not in ("max", "min"):
        raise BudgetError(path, f"{key}.reduce", f"must be 'max' or 'min', got {reduce!r}")
    required = b.get("required")
    if required is not None and required not in DEVICES:
        raise BudgetError(path, f"{key}.required", f"must be one of {', '.join(DEVICES)}, got {required!r}")
    desc = b.get("description", "")
    if not isinstance(desc, str):
        raise BudgetError(path, f"{key}.description", "must be a string")
    return Budget(name, of, num, den, sel, reduce, hi, lo, required, desc, goal)


def parse_budgets(data: Mapping, path=BUDGETS_FILE) -> list[Budget]:
    """Budgets, then goals, from the parsed TOML; BudgetError naming the file and key for anything
    malformed."""
    if "version" not in data:
        raise BudgetError(path, "version", f"missing (this suite reads version {BUDGET_VERSION})")
    if data["version"] != BUDGET_VERSION:
        raise BudgetError(
            path, "version", f"is {data['version']!r}; this suite reads version {BUDGET_VERSION}"
        )
    for k in data:
        if k not in ("version", "budget", "goal"):
            raise BudgetError(path, k, "unknown key; allowed: version, budget, goal")
    if not isinstance(data.get("budget"), dict) or not data["budget"]:
        raise BudgetError(path, "budget", "missing: no [budget.NAME] tables")
    out = []
    for section in ("budget", "goal"):
        tables = data.get(section, {})
        if not isinstance(tables, dict):
            raise BudgetError(path, section, "must be tables [" + section + ".NAME]")
        out += [
            _parse_one(path, f"{section}.{name}", name, b, section == "goal") for name, b in tables.items()
        ]
    return out


def load_budgets(path=BUDGETS_FILE) -> list[Budget]:
    """The budgets of a TOML file; BudgetError naming the file (and key) when missing, undecodable or
    malformed."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise BudgetError(path, None, f"cannot read the budgets file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise BudgetError(
            path, None, f"not a text (UTF-8) file: byte {exc.start} is {exc.object[exc.start]:#04x}"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BudgetError(path, None, f"not valid TOML: {exc}") from None
    return parse_budgets(data, path)


def _quantity(r: Mapping, of: str):
    v = r.get(of)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def check_budgets(recs: Sequence[Mapping], budgets: Sequence[Budget]) -> list[BudgetResult]:
    """Each budget (and goal) against the records of one run. A budget whose benchmarks are absent is 'not
    measured', or 'missing' (a failure) when it is `required` on a device the run benchmarked kernels on.
    Goals read 'met' or 'not met'."""
    run_devices = {r.get("device") for r in recs if r.get("op") in KERNEL_OPS}
    out = []
    for b in budgets:

        def absent(detail, b=b):
            if b.required and b.required in run_devices and not b.goal:
                return BudgetResult(b, None, "missing", f"{detail}; required in a {b.required} run")
            return BudgetResult(b, None, "not measured", detail)

        if b.is_ratio:
            sides = []
            for side, sel in (("numerator", b.numerator), ("denominator", b.denominator)):
                hits = select(recs, sel)
                if len(hits) > 1:
                    sides.append(
                        BudgetResult(b, None, "ambiguous", f"{len(hits)} benchmarks match the {side}")
                    )
                elif not hits:
                    sides.append(absent(f"no benchmark matches the {side}"))
                elif _quantity(hits[0], "median" if b.of == "raced" else b.of) is None:
                    sides.append(absent(f"the {side} has no {QUANTITIES[b.of]}"))
                else:
                    sides.append(hits[0] if b.of == "raced" else _quantity(hits[0], b.of))
            if b.of == "raced" and not any(isinstance(s, BudgetResult) for s in sides):
                v = raced(*sides)
                sides = [v, 1.0] if v is not None else [absent("the denominator was not raced against the "
                                                                "numerator")]
            bad = [s for s in sides if isinstance(s, BudgetResult)]
            if bad:
                out.append(min(bad, key=lambda s: ("ambiguous", "missing", "not measured").index(s.status)))
                continue
            if sides[1] == 0:
                out.append(
                    BudgetResult(b, None, "not measured", f"the denominator's {QUANTITIES[b.of]} is 0")
                )
                continue
            value = sides[0] / sides[1]
        else:
            hits = select(recs, b.select)
            vals = [_quantity(r, b.of) for r in hits]
            if not hits or any(v is None for v in vals):
                out.append(absent("no benchmark matches" if not hits else f"no {QUANTITIES[b.of]} recorded"))
                continue
            value = max(vals) if b.reduce == "max" else min(vals)
        ok = (b.max is None or value <= b.max) and (b.min is None or value >= b.min)
        status = ("met" if ok else "not met") if b.goal else ("ok" if ok else "FAIL")
        out.append(BudgetResult(b, value, status))
    return out


def _selector_text(sel: Mapping) -> str:
    return " ".join(size_label(v) if k == "size" else str(v) for k, v in sel.items())


def _what(b: Budget) -> str:
    if b.description:
        return b.description
    if b.is_ratio:
        return f"{QUANTITIES[b.of]}: {_selector_text(b.numerator)} / {_selector_text(b.denominator)}"
    return f"{QUANTITIES[b.of]} ({b.reduce}): {_selector_text(b.select)}"


def measured_text(r: BudgetResult) -> str:
    b = r.budget
    if r.value is None:
        return "–"
    if b.is_ratio:
        return f"{r.value:#.3g}×"
    if b.of == "peak_bytes":
        return f"{r.value / 2**20:.4g} MiB"
    return f"{r.value:.3g}" + {"median": " s", "gbps": " GB/s", "anchored": "×"}[b.of]


def budget_table(results: Sequence[BudgetResult]) -> str:
    """Markdown: budget (or goal), what it holds, measured value, limit, status."""
    rows = []
    for r in results:
        status = r.status if not r.failed else f"**{r.status}**"
        if r.detail:
            status += f" ({r.detail})"
        rows.append([r.budget.name, _what(r.budget), measured_text(r), r.budget.limit(), status])
    return table(["budget", "what", "measured", "limit", "status"], rows, "llrll")
