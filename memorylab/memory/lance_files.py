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
