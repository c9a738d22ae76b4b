import pandas as pd

from spinelib.tables import flat_columns, to_markdown


def _wide() -> pd.DataFrame:
    index = pd.MultiIndex.from_tuples([("scs", "l1_l2"), ("scs", "l2_l3")], names=["condition", "level"])
    columns = pd.MultiIndex.from_tuples([("annotated", "qwk"), ("predicted", "qwk")])
    return pd.DataFrame([[0.5, 0.25], [0.75, 1.0]], index=index, columns=columns)


def test_column_levels_are_joined():
    assert list(flat_columns(_wide()).columns) == ["annotated qwk", "predicted qwk"]


def test_markdown_has_no_tuples_and_keeps_every_value():
    text = to_markdown(_wide())
    header, rule, *rows = text.strip().splitlines()
    assert "(" not in text
    assert [c.strip() for c in header.strip("|").split("|")] == ["condition", "level", "annotated qwk", "predicted qwk"]
    assert len(rows) == 2 and "l2_l3" in rows[1] and "0.75" in rows[1] and "1" in rows[1]


def test_a_plain_table_keeps_its_index():
    text = to_markdown(pd.DataFrame({"score": [0.5]}, index=["spinal"]))
    assert "spinal" in text and "score" in text
