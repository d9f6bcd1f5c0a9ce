"""What LanceDB leaves on disk: a delete or merge-insert only marks rows deleted and commits a new version,
so the old text stays in its data file and every older version still names it. Erasing it means compacting
(data files rewritten without the deleted rows) and then dropping every version but the newest, with their
files.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import Any


def erase_deleted_rows(table: Any) -> None:
    """Compacts `table` and drops all its versions but the newest, so deleted and overwritten rows are gone
    from disk. LanceDB warns that readers of older versions would fail: the store's one writer calls it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)


def ensure_scalar_index(table: Any, column: str) -> None:
    """A B-tree index on `column`, so an equality filter on it reads the matching rows rather than every row.
    Rows written later are searched unindexed until the table is next optimized (which indexes them)."""
    if any(index.columns == [column] for index in table.list_indices()):
        return
    with warnings.catch_warnings():  # the sync API's scalar index call is marked deprecated; it works
        warnings.simplefilter("ignore")
        table.create_scalar_index(column, index_type="BTREE")
