"""Each probe group's peak is read right after its own last insertion, not after the group inserted last."""

from __future__ import annotations

from types import SimpleNamespace

from memorylab.runners.continual.report import retention_section


def test_every_group_peaks_after_its_own_last_insertion():
    retention = SimpleNamespace(insert_at=10, spacing=2, probes=4, repeats=[1, 3])  # x1 at 10, x3 at 10, 12, 14
    steps = [0, 10, 11, 15, 20]
    # x1 is best right after step 10 (0.9 at 11) and fades by 15; x3 peaks after 14 (at 15).
    curves = {"x1": [0.1, 0.1, 0.9, 0.5, 0.3], "x3": [0.1, 0.1, 0.4, 0.8, 0.6]}
    points = [{"step": s, "probes": {g: {"recognition": c[i], "recall": c[i] / 2} for g, c in curves.items()}}
              for i, s in enumerate(steps)]
    section = retention_section(SimpleNamespace(retention=retention), {"arm": {"points": points}})
    x1, x3 = section["arms"]["arm"]["x1"], section["arms"]["arm"]["x3"]
    assert x1["recognition_peak"] == 0.9 and x3["recognition_peak"] == 0.8
