"""Flow-control accounting of the link's pod streams (minik.client.window)."""

from __future__ import annotations

import asyncio

import pytest

from minik.client._generated import cluster_pb2 as pb
from minik.client.window import GRANT_AT, MAX_STREAMS, WINDOW, RecvWindow, SendGate, SendWindow, WindowError, coalesce


def test_defaults_bound_a_link() -> None:
    # The bound the module documents: streams × counted channels × window.
    assert MAX_STREAMS * 3 * WINDOW == 96 * 1024 * 1024
    assert 0 < GRANT_AT <= WINDOW


def test_receiver_refuses_data_beyond_the_window() -> None:
    w = RecvWindow(100, 25)
    w.received(60)
    w.received(40)
    assert w.credit == 0 and w.queued == 100
    with pytest.raises(WindowError, match="1 bytes with only 0"):
        w.received(1)


@pytest.mark.parametrize(("takes", "grants"), [
    ([10, 10, 4], [0, 0, 0]),          # below the batch: nothing yet
    ([10, 10, 5], [0, 0, 25]),         # the batch reached: all that was taken
    ([30], [30]),
    ([25, 25, 25, 25], [25, 25, 25, 25]),
])
def test_receiver_grants_in_batches(takes: list[int], grants: list[int]) -> None:
    w = RecvWindow(100, 25)
    w.received(100)
    assert [w.taken(n) for n in takes] == grants
    assert w.credit + w.queued + w.pending == 100


def test_receiver_never_strands_a_sender_at_zero_credit() -> None:
    # Whatever the chunking, a sender that used the whole window gets credit once the queue is taken.
    for chunk in (1, 7, 24, 25, 26, 99, 100):
        w = RecvWindow(100, 25)
        s = SendWindow(100)
        queued: list[int] = []
        sent = 0
        while sent < 1000:
            n = s.take(chunk)
            if n == 0:
                assert queued, "sender waits with nothing left to take: deadlock"
                g = w.taken(queued.pop(0))
                if g:
                    s.granted(g)
                continue
            w.received(n)
            queued.append(n)
            sent += n


def test_taking_more_than_queued_is_a_bug() -> None:
    w = RecvWindow(100, 25)
    w.received(10)
    with pytest.raises(ValueError):
        w.taken(11)


def test_sender_cuts_to_credit_and_refuses_over_granting() -> None:
    s = SendWindow(100)
    assert s.take(70) == 70
    assert s.take(70) == 30
    assert s.take(5) == 0
    s.granted(50)
    assert s.credit == 50
    with pytest.raises(WindowError, match="granted 51"):
        s.granted(51)
    with pytest.raises(WindowError):
        s.granted(0)


def test_bad_sizes() -> None:
    with pytest.raises(ValueError):
        RecvWindow(0)
    with pytest.raises(ValueError):
        RecvWindow(10, 11)
    with pytest.raises(ValueError):
        SendWindow(-1)


async def test_gate_waits_for_credit_and_only_then_sends() -> None:
    g = SendGate(10)
    sent: list[bytes] = []

    async def send(data: bytes) -> None:
        async for piece in g.pieces(data):
            sent.append(piece)

    task = asyncio.create_task(send(b"abcdefghijklmnop"))
    await asyncio.sleep(0.01)
    assert sent == [b"abcdefghij"] and not task.done()   # waiting: no credit left
    g.grant(4)
    await asyncio.sleep(0.01)
    assert sent == [b"abcdefghij", b"klmn"] and not task.done()
    g.grant(10)
    await asyncio.wait_for(task, 1)
    assert b"".join(sent) == b"abcdefghijklmnop"
    assert g.window.credit == 8


async def test_gate_close_wakes_a_waiting_sender() -> None:
    g = SendGate(4)

    async def send() -> None:
        async for _ in g.pieces(b"123456"):
            pass

    task = asyncio.create_task(send())
    await asyncio.sleep(0.01)
    assert not task.done()
    g.close("the pod stream ended")
    with pytest.raises(ConnectionError, match="the pod stream ended"):
        await asyncio.wait_for(task, 1)


def _data(sid: int, ch: int, data: bytes) -> pb.AgentMessage:
    return pb.AgentMessage(data=pb.StreamData(id=sid, channel=ch, data=data))


def test_coalesce_joins_runs_of_one_stream_channel_in_order() -> None:
    credit = pb.AgentMessage(credit=pb.StreamCredit(id=1, channel=0, bytes=5))
    batch = [_data(1, 1, b"ab"), _data(1, 1, b"cd"), _data(1, 2, b"e"), _data(1, 2, b"f"), credit,
             _data(1, 2, b"g"), _data(2, 2, b"h"), _data(1, 2, b"i")]
    got = coalesce(batch)
    assert [(m.WhichOneof("msg"), m.data.id, m.data.channel, m.data.data) for m in got] == [
        ("data", 1, 1, b"abcd"), ("data", 1, 2, b"ef"), ("credit", 0, 0, b""),
        ("data", 1, 2, b"g"), ("data", 2, 2, b"h"), ("data", 1, 2, b"i")]
    assert got[2] is credit
    # Every byte of every stream channel, in order, exactly once.
    assert b"".join(m.data.data for m in got) == b"".join(m.data.data for m in batch)


def test_coalesce_respects_the_limit_and_keeps_a_single_large_piece() -> None:
    big = _data(1, 1, b"x" * 10)
    got = coalesce([_data(1, 1, b"aaaa"), _data(1, 1, b"bbbb"), _data(1, 1, b"cc"), big, _data(1, 1, b"d")], limit=8)
    assert [m.data.data for m in got] == [b"aaaabbbb", b"cc", b"x" * 10, b"d"]
    assert got[2] is big


def test_coalesce_keeps_server_messages_typed() -> None:
    batch = [pb.ServerMessage(data=pb.StreamData(id=3, channel=0, data=b"a")),
             pb.ServerMessage(data=pb.StreamData(id=3, channel=0, data=b"b"))]
    (m,) = coalesce(batch)
    assert isinstance(m, pb.ServerMessage) and m.data.data == b"ab" and m.data.id == 3
