"""Tables written for readers: Markdown with flat headers, whatever the DataFrame's index and column levels."""

from __future__ import annotations

import pandas as pd


def flat_columns(table: pd.DataFrame, sep: str = " ") -> pd.DataFrame:
    """A copy whose MultiIndex columns are joined into one string per column ('annotated qwk')."""
    frame = table.copy()
    if isinstance(frame.columns, pd.MultiIndex):
        frame.columns = [sep.join(str(level) for level in column) for column in frame.columns]
    return frame


def to_markdown(table: pd.DataFrame) -> str:
    """GitHub Markdown of ``table``: column levels joined, each index level its own named column."""
    frame = flat_columns(table)
    # A named (or multi-level) index carries meaning (e.g. metric, config): give each level a headed column.
    # to_markdown would otherwise print the levels as one unnamed tuple column.
    if isinstance(frame.index, pd.MultiIndex) or frame.index.name is not None:
        return frame.reset_index().to_markdown(index=False) + "\n"
    # An unnamed index (row labels only) stays as to_markdown's first column.
    return frame.to_markdown() + "\n"
