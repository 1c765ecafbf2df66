"""Random bytes handed out from blocks read from the system: never the same bytes twice,
across threads or a fork, and identifiers of the shape their readers expect."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from services.infra import randomness


def test_a_block_is_handed_out_once_in_slices_and_refilled_when_used_up():
    seen = [randomness.token_bytes(40) for _ in range(3 * randomness.BLOCK // 40)]
    assert all(len(chunk) == 40 for chunk in seen)
    assert len(set(seen)) == len(seen)
    assert len(randomness.token_bytes(2 * randomness.BLOCK)) == 2 * randomness.BLOCK


def test_threads_never_get_the_same_bytes():
    drawn: list[bytes] = []
    start = threading.Barrier(8)

    def draw():
        start.wait()
        mine = [randomness.token_bytes(16) for _ in range(1000)]
        drawn.extend(mine)

    threads = [threading.Thread(target=draw) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(drawn) == 8000 and len(set(drawn)) == 8000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parents_bytes():
    randomness.token_bytes(16)  # the parent holds a block with bytes left in it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next bytes, to the parent
        os.close(read)
        os.write(write, randomness.token_bytes(32))
        os._exit(0)
    os.close(write)
    child = os.read(read, 32)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32
    assert randomness.token_bytes(32) != child


def test_identifiers_have_the_shape_of_the_standard_librarys():
    for _ in range(1000):
        text = randomness.uuid4()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
    token = randomness.token_urlsafe(24)
    assert len(token) == 32 and set(token) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(randomness.token_hex(12)) == 24
