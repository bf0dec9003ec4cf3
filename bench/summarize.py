"""Check a pytest-benchmark JSON against bench/budgets.toml and write a Markdown table.

    python bench/summarize.py reports/bench/fit.json [reports/bench/fit.md]

Exit status 1 when a budget is broken, 2 when a file or key is missing or malformed.
"""

import json
import sys
import tomllib
from pathlib import Path

BUDGETS = Path(__file__).with_name("budgets.toml")


def medians(run: dict) -> dict[str, float]:
    return {b["name"]: b["stats"]["median"] for b in run["benchmarks"]}


def check(run: dict, budgets: dict) -> list[tuple[str, float, float, bool]]:
    """(budget name, measured, limit, ok) for every budget."""
    med, rows = medians(run), []
    for name, b in budgets.get("ratio", {}).items():
        value = med[b["numerator"]] / med[b["denominator"]]
        rows.append((f"ratio {name}", value, b["max"], value <= b["max"]))
    for name, b in budgets.get("seconds", {}).items():
        hits = [v for k, v in med.items() if k.split("[")[0] == b["benchmarks"]]
        if not hits:
            raise KeyError(f"seconds.{name}.benchmarks: no benchmark named {b['benchmarks']!r} in the run")
        value = max(hits)
        rows.append((f"seconds {name}", value, b["max"], value <= b["max"]))
    return rows


def table(run: dict, rows) -> str:
    mi = run.get("machine_info", {})
    cpu = mi.get("cpu", {}).get("brand_raw", mi.get("processor", "?"))
    lines = [f"Machine: {mi.get('node', '?')} ({cpu}), "
             f"python {mi.get('python_version', '?')}; run {run.get('datetime', '?')}", "",
             "| benchmark | median | rounds |", "|---|---|---|"]
    for b in run["benchmarks"]:
        lines.append(f"| {b['name']} | {b['stats']['median'] * 1e3:.3g} ms | {b['stats']['rounds']} |")
    lines += ["", "| budget | measured | limit | ok |", "|---|---|---|---|"]
    lines += [f"| {n} | {v:.3g} | {lim:.3g} | {'yes' if ok else '**NO**'} |" for n, v, lim, ok in rows]
    return "\n".join(lines) + "\n"


def main(argv) -> int:
    if not argv:
        print("usage: summarize.py RUN.json [OUT.md]", file=sys.stderr)
        return 2
    try:
        run = json.loads(Path(argv[0]).read_text())
        budgets = tomllib.loads(BUDGETS.read_text())
        rows = check(run, budgets)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"summarize: error: {BUDGETS if 'budgets' in str(exc) else argv[0]}: {exc!r}", file=sys.stderr)
        return 2
    text = table(run, rows)
    if len(argv) > 1:
        Path(argv[1]).write_text(text)
    print(text)
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
