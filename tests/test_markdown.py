import pytest

from slaf_approx._markdown import cell, table


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
