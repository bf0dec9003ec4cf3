import pytest

from slaf_approx._markdown import cell, split_table, table


def test_table_layout_and_escaping():
    out = table(["a", "b|c"], [[1, "x  y"], ["p|q", 2.5]], align="lr")
    assert out == "| a | b\\|c |\n|:---|---:|\n| 1 | x y |\n| p\\|q | 2.5 |\n"


def test_cell_cut_to_width():
    assert cell("abcdef", 4) == "abc…"
    assert cell("abc", 4) == "abc"


@pytest.mark.parametrize("rows, align, match", [([[1]], "r", "1 cells for 2"), ([[1, 2]], "rrr", "3 letters"),
                                                ([[1, 2]], "rx", "'x'")])
def test_table_rejects_bad_shapes(rows, align, match):
    with pytest.raises(ValueError, match=match):
        table(["a", "b"], rows, align=align)


def test_split_table_repeats_the_leading_columns():
    header = ["n", "a", "b", "c", "d", "e"]
    rows = [[1, 10, 20, 30, 40, 50], [2, 11, 21, 31, 41, 51]]
    out = split_table(header, rows, keep=1, align="lrrrrr", max_columns=3)
    assert out == "\n".join([table(["n", "a", "b"], [[1, 10, 20], [2, 11, 21]], "lrr"),
                             table(["n", "c", "d"], [[1, 30, 40], [2, 31, 41]], "lrr"),
                             table(["n", "e"], [[1, 50], [2, 51]], "lr")])  # parts apart by a blank line
    assert split_table(header, rows, keep=1, max_columns=8) == table(header, rows)  # narrow enough: one table
    with pytest.raises(ValueError, match="keep must be in"):
        split_table(header, rows, keep=3, max_columns=3)
