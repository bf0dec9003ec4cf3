"""The report: README.md with a Summary, tables and figures, from a results table (one row per fit).

Everything here is a pure function of the rows. The package splits along its seams:

- :mod:`.labels`: how bases, series and numbers are named (also used by the command line);
- :mod:`.data`: groups and series of the rows, theory curves, and the facts the report states (the degree
  reaching a tolerance, bases giving the same numbers, diverging series, kernel costs);
- :mod:`.tables`: Markdown tables, none wider than eight columns;
- :mod:`.figures`: error and overlay figures;
- :mod:`.prose`: findings in words;
- :mod:`.writer`: README.md and the PNG files.
"""

from ..problem import approximant
from ..results import normalise_row
from .data import (
    ROUNDOFF,
    SAME_RTOL,
    STALL_GAP,
    TABLE_DEGREES,
    TOLERANCES,
    Group,
    diverges,
    groups,
    lowest_degree,
    merge_same,
    reach,
    series,
    table_degrees,
)
from .figures import error_figure, overlay_figure
from .labels import basis_label, fmt, series_label
from .prose import findings, gradient_findings
from .tables import (
    MAX_COLUMNS,
    PAU_GELU_54_MAX_ERROR,
    cost_table,
    glance_table,
    gradient_table,
    minimax_table,
    pau_reference,
    rational_table,
    summary_table,
)
from .writer import write_report

__all__ = [
    "MAX_COLUMNS", "PAU_GELU_54_MAX_ERROR", "ROUNDOFF", "SAME_RTOL", "STALL_GAP", "TABLE_DEGREES",
    "TOLERANCES",
    "Group", "approximant", "basis_label", "cost_table", "diverges", "error_figure", "findings", "fmt",
    "glance_table", "gradient_findings", "gradient_table", "groups", "lowest_degree", "merge_same",
    "minimax_table", "normalise_row", "overlay_figure", "pau_reference", "rational_table", "reach", "series",
    "series_label", "summary_table", "table_degrees", "write_report",
]
