"""The direct link between a target's process and an assistant's (LinkServer / SocketLink), without Ray."""

from __future__ import annotations

import glob
import os
import time

import numpy as np
import pytest
import torch

from memorylab.decoding.assistant_link import LinkError, LinkServer, SocketLink


class FakeAssistant:
    """Logits that depend on the session's history, so a lost or crossed step shows."""

    def __init__(self) -> None:
        self.history: dict[str, list[int]] = {}
        self.ended: list[str] = []
        self.calls: list[tuple] = []  # (mask, positions) as each step received them

    def step(self, session, ids, mask, positions) -> torch.Tensor:
        self.calls.append((mask, positions))
        if ids.shape[-1] > 1 and session in self.history:
            raise ValueError(f"session {session!r} is already open")
        if ids.shape[-1] == 1 and session not in self.history:
            raise ValueError(f"decoding session {session!r} is not open in this actor")
        seen = self.history.setdefault(session, [])
        seen.extend(ids[:, -1].tolist())
        rows = torch.arange(ids.shape[0], dtype=torch.float32).unsqueeze(-1)
        return rows * 100 + torch.arange(5, dtype=torch.float32) + float(sum(seen)) + float(0 if mask is None else mask.sum())

    def end(self, session: str) -> None:
        self.ended.append(session)
        self.history.pop(session, None)


@pytest.fixture
def linked():
    fake = FakeAssistant()
    server = LinkServer(fake.step, fake.end)
    link = SocketLink(server.address, server.authkey)
    yield fake, server, link
    link.close()
    server.close()


def test_a_step_comes_back_as_the_assistant_computed_it(linked):
    fake, _, link = linked
    ids, mask = np.array([[3, 4], [5, 6]]), np.ones((2, 2), dtype=np.int64)
    link.send_step("s", ids, mask, None)
    expected = fake.step("t", ids, mask, None)  # what the same history gives
    np.testing.assert_array_equal(link.receive().numpy(), expected.numpy())
    link.send_step("s", np.array([[7], [8]]), np.ones((2, 3), dtype=np.int64), np.array([[2], [2]]))
    got = link.receive()
    assert got.shape == (2, 5) and float(got[0, 0]) == (4 + 6) + (7 + 8) + 6  # last ids so far + mask
    link.end("s")
    link.send_step("u", np.array([[1]]), np.ones((1, 2), dtype=np.int64), None)
    with pytest.raises(LinkError, match="not open in this actor"):  # 'u' never began: a sentence, not a hang
        link.receive()
    assert fake.ended == ["s"]
    link.send_step("v", np.array([[1, 2]]), np.ones((1, 2), dtype=np.int64), None)  # the link still works
    assert link.receive().shape == (1, 5)


def test_no_mask_and_positions_travel_as_given_and_more_rows_grow_the_logits_file(linked):
    fake, _, link = linked
    link.send_step("w", np.array([[1, 2, 3]]), None, np.array([[5, 6, 7]]))
    assert link.receive().shape == (1, 5)
    mask, positions = fake.calls[-1]
    assert mask is None and positions.tolist() == [[5, 6, 7]] and positions.dtype == np.int64
    wide = np.arange(40, dtype=np.int64).reshape(8, 5)
    link.send_step("x", wide, np.ones((8, 5), dtype=np.int64), None)
    got = link.receive()  # 8 rows: more than the first file held
    assert got.shape == (8, 5) and float(got[7, 0]) == 700 + sum(wide[:, -1]) + 40
    assert fake.calls[-1][0].dtype == np.int64 and fake.calls[-1][1] is None


def test_closing_the_server_before_a_target_connects_frees_its_thread_and_socket():
    fake = FakeAssistant()
    server = LinkServer(fake.step, fake.end)
    assert server.serving and os.path.exists(server.address)
    server.close()
    server.close()  # again: nothing to do (it raced the serving thread's own close before)
    assert not server.serving and not os.path.exists(server.address)


def test_nothing_stays_on_disk_once_the_target_is_connected_and_has_mapped_the_logits(linked):
    # ray.kill runs no cleanup: names left in /dev/shm would hold memory until the machine restarts.
    _, server, link = linked
    left = lambda: glob.glob(server.address.rsplit(".", 1)[0] + "*")  # noqa: E731
    link.send_step("s", np.array([[1, 2]]), np.ones((1, 2), dtype=np.int64), None)
    link.receive()
    assert len(left()) == 1  # the logits file, until the target says it has mapped it
    link.send_step("t", np.arange(12).reshape(4, 3), np.ones((4, 3), dtype=np.int64), None)  # 4 rows: grows
    assert link.receive().shape == (4, 5)
    link.end("t")
    for _ in range(100):
        if not left():
            break
        time.sleep(0.01)
    assert left() == []
    link.send_step("s", np.array([[3]]), np.ones((1, 3), dtype=np.int64), None)  # still linked, still right
    assert link.receive().shape == (1, 5)


def test_a_target_closing_its_end_stops_the_server(linked):
    _, server, link = linked
    link.send_step("s", np.array([[1, 2]]), np.ones((1, 2), dtype=np.int64), None)
    link.receive()
    link.close()
    for _ in range(100):
        if not server.serving:
            break
        time.sleep(0.02)
    assert not server.serving and not os.path.exists(server.address)


def test_a_dead_assistant_is_a_link_error(linked):
    _, server, link = linked
    link._conn.send_bytes(b"C")  # the server's side ends, as when the assistant's actor dies
    time.sleep(0.1)
    with pytest.raises(LinkError, match="closed the link"):
        link.send_step("s", np.array([[1, 2]]), np.ones((1, 2), dtype=np.int64), None)
        link.receive()


def test_a_stranger_without_the_key_is_refused_and_the_target_still_connects():
    from multiprocessing import AuthenticationError
    from multiprocessing.connection import Client

    fake = FakeAssistant()
    server = LinkServer(fake.step, fake.end)
    try:
        with pytest.raises((AuthenticationError, EOFError, OSError)):
            Client(server.address, family="AF_UNIX", authkey=b"wrong").send_bytes(b"S")
        assert fake.history == {}
        link = SocketLink(server.address, server.authkey)
        link.send_step("s", np.array([[1, 2]]), np.ones((1, 2), dtype=np.int64), None)
        assert link.receive().shape == (1, 5)
        link.close()
    finally:
        server.close()


def test_an_address_with_nothing_behind_it_is_a_link_error(tmp_path):
    with pytest.raises(LinkError, match="cannot link to the assistant's actor"):
        SocketLink(str(tmp_path / "nothing.sock"), b"key")
