"""Markdown tables: the one helper every report (fits, kernels, the paper) builds its tables with."""

from __future__ import annotations

from collections.abc import Sequence


def cell(text, width: int | None = None) -> str:
    """One table cell: whitespace folded, '|' escaped, cut to `width` characters with an ellipsis."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    if width is not None and len(text) > width:
        return text[: width - 1] + "…"
    return text


def table(header: Sequence[str], rows: Sequence[Sequence], align: str | Sequence[str] = "r") -> str:
    """A Markdown table ending in a newline.

    `align` is one letter per column ('l', 'r' or 'c') or one letter for all of them; every cell goes
    through :func:`cell`, so values may be any objects with a useful ``str``.
    """
    n = len(header)
    letters = [align] * n if isinstance(align, str) and len(align) == 1 else list(align)
    if len(letters) != n:
        raise ValueError(f"align has {len(letters)} letters for {n} columns")
    rule = {"l": ":---", "r": "---:", "c": ":---:"}
    try:
        sep = [rule[a] for a in letters]
    except KeyError as exc:
        raise ValueError(f"align letters are 'l', 'r' or 'c', got {exc.args[0]!r}") from None
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(sep) + "|"]
    for row in rows:
        if len(row) != n:
            raise ValueError(f"a row has {len(row)} cells for {n} columns: {list(row)!r}")
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def split_table(header: Sequence[str], rows: Sequence[Sequence], keep: int = 1,
                align: str | Sequence[str] = "r", max_columns: int = 8) -> str:
    """:func:`table`, split into tables of at most `max_columns` columns when wider: the first `keep`
    columns are repeated in each part, the others shared out in order; parts are separated by a blank line.
    `align`: one letter for all columns or one per column of the whole table."""
    letters = [align] * len(header) if isinstance(align, str) and len(align) == 1 else list(align)
    if len(letters) != len(header):
        raise ValueError(f"align has {len(letters)} letters for {len(header)} columns")
    if not 0 <= keep < max_columns:
        raise ValueError(f"keep must be in [0, max_columns), got keep={keep}, max_columns={max_columns}")
    rest = list(range(keep, len(header)))
    per = max_columns - keep
    chunks = [rest[i:i + per] for i in range(0, len(rest), per)] or [[]]
    parts = []
    for chunk in chunks:
        cols = list(range(keep)) + chunk
        parts.append(table([header[c] for c in cols], [[row[c] for c in cols] for row in rows],
                           [letters[c] for c in cols]))
    return "\n".join(parts)
