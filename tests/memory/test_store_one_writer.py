"""One writer per store folder (issue 19, defect 8): a second process is refused while the first holds the
store, and takes over, with every acknowledged write, once the first is gone."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from memorylab.errors import MemorylabError
from memorylab.memory.records import MemoryRecord
from memorylab.memory.store import MemoryStore
from memorylab.memory.writer_lock import StoreLocked

WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from memorylab.memory.records import MemoryRecord
    from memorylab.memory.store import MemoryStore

    store = MemoryStore(sys.argv[1])
    vector = np.ones(384, np.float32) / np.sqrt(384)
    for i in range(3):
        store.add(MemoryRecord(id="", tenant="t", agent="a", text=f"Fact {i} was stored.", created_at=0.0,
                               updated_at=0.0, source="test"), vector)
    print("acknowledged", flush=True)
    time.sleep(600)
""")


@pytest.fixture
def other_writer(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "acknowledged"
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_second_process_is_refused_then_takes_over_with_every_write(tmp_path, other_writer):
    with pytest.raises(StoreLocked, match=rf"{tmp_path}: another process writes to this memory store \(pid "):
        MemoryStore(tmp_path, writer_wait_s=0.3)
    other_writer.kill()  # a killed replica: its lock goes with it
    other_writer.wait()
    store = MemoryStore(tmp_path, writer_wait_s=5)
    assert sorted(r.text for r in store.list("t", "a", 10)[0]) == [f"Fact {i} was stored." for i in range(3)]
    store.add(MemoryRecord(id="", tenant="t", agent="a", text="Fact 3 was stored.", created_at=0.0,
                           updated_at=0.0, source="test"), np.ones(384, np.float32) / np.sqrt(384))


def test_a_process_may_open_its_own_store_again(tmp_path):
    first = MemoryStore(tmp_path, writer_wait_s=0)
    again = MemoryStore(tmp_path, writer_wait_s=0)
    assert first.path == again.path


def test_a_closed_store_lets_another_process_write(tmp_path):
    store = MemoryStore(tmp_path, writer_wait_s=0)
    store.add(MemoryRecord(id="", tenant="t", agent="a", text="Fact 0 was stored.", created_at=0.0, updated_at=0.0),
              np.ones(384, np.float32) / np.sqrt(384))
    store.close()  # a bulk load done before the served replica, another process, opens the folder
    opened = subprocess.run([sys.executable, "-c", "import sys; from memorylab.memory.store import MemoryStore; "
                             "print(MemoryStore(sys.argv[1], writer_wait_s=1).count())", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert opened.returncode == 0 and opened.stdout.strip() == "1", opened.stderr[-500:]
    with pytest.raises(MemorylabError, match="was closed: another process may write it now"):
        store.add(MemoryRecord(id="", tenant="t", agent="b", text="Fact 1 was stored.", created_at=0.0,
                               updated_at=0.0), np.ones(384, np.float32) / np.sqrt(384))
