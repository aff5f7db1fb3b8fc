"""connectors.evm.heads on the shared devnet: every block once and in order over the WebSocket, the fall back to
polling when the socket dies (the missed range backfilled), reorgs by evm_revert and by anvil_reorg with the
right fork point, a gap longer than max_gap, and resuming from an earlier block."""

from __future__ import annotations

import contextlib
import itertools
import queue
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

import devnet
from connectors.errors import InvalidInputError
from connectors.evm.heads import (
    GapTooLong,
    HeadEvent,
    HeadFollower,
    HeadMoved,
    HeadStream,
    NewBlock,
    Reorg,
    TransportChanged,
    ws_url_for,
)
from connectors.evm.rpc import RpcClient
from tests.faultproxy import reorg as anvil_reorg


def test_ws_url_for() -> None:
    assert ws_url_for("http://127.0.0.1:8545") == "ws://127.0.0.1:8545"
    assert ws_url_for("https://eth.example/v2/KEY?x=1") == "wss://eth.example/v2/KEY?x=1"
    assert ws_url_for("wss://eth.example/ws") == "wss://eth.example/ws"
    with pytest.raises(InvalidInputError) as info:
        ws_url_for("ftp://eth.example/secret-key")
    assert "secret-key" not in str(info.value)


def test_bad_parameters() -> None:
    with RpcClient("http://127.0.0.1:1") as rpc:
        for kwargs in ({"window": 0}, {"max_gap": 0}, {"poll_interval_s": 0.0}):
            with pytest.raises(ValueError, match="must be"):
                HeadFollower(rpc, None, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------- devnet
class TcpRelay:
    """A TCP relay in front of the node (the WebSocket goes through it); :meth:`kill` closes every connection
    and stops listening, so the socket drops and cannot be reopened."""

    def __init__(self, port: int) -> None:
        self.upstream = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.accepting = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.accepting:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def kill(self) -> None:
        self.accepting = False
        self.listener.close()
        with self.lock:
            for s in self.conns:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.conns.clear()


@pytest.fixture
def chain(fresh_devnet: devnet.DevnetInfo) -> Iterator[devnet.DevnetInfo]:
    snap = devnet.snapshot(fresh_devnet)
    yield fresh_devnet
    devnet.revert(fresh_devnet, snap)


@pytest.fixture
def rpc(chain: devnet.DevnetInfo) -> Iterator[RpcClient]:
    with RpcClient(chain.rpc_url) as client:
        yield client


def head(rpc: RpcClient) -> int:
    return rpc.block_number()


def mine(rpc: RpcClient, n: int = 1) -> None:
    rpc.request("anvil_mine", [hex(n)])


def take_until(
    stream: HeadStream, done: Callable[[list[HeadEvent]], bool], timeout: float = 20.0
) -> list[HeadEvent]:
    got: list[HeadEvent] = []
    while not done(got):
        try:
            got.append(stream.get(timeout=timeout))
        except queue.Empty:
            pytest.fail(f"no event within {timeout} s; got {got}")
    return got


def up_to(number: int) -> Callable[[list[HeadEvent]], bool]:
    return lambda evs: any(isinstance(e, NewBlock) and e.block.number >= number for e in evs)


def assert_consecutive(events: list[HeadEvent], start: int, rpc: RpcClient) -> list[NewBlock]:
    """The NewBlocks are start, start+1, … each once, each the canonical block with its parent's hash."""
    blocks = [e for e in events if isinstance(e, NewBlock)]
    assert [b.block.number for b in blocks] == list(range(start, start + len(blocks)))
    for prev, cur in itertools.pairwise(blocks):
        assert cur.parent_hash == prev.block.hash
    for b in blocks:
        assert rpc.get_block(b.block.number).hash == b.block.hash
    return blocks


@pytest.mark.chain
def test_ws_every_block_once_in_order_then_polling_backfills_when_the_socket_dies(
    chain: devnet.DevnetInfo, rpc: RpcClient
) -> None:
    port = int(chain.rpc_url.rsplit(":", 1)[1].split("/")[0])
    relay = TcpRelay(port)
    follower = HeadFollower(
        rpc, f"ws://127.0.0.1:{relay.port}", poll_interval_s=0.05, ws_retry_s=600, ws_idle_s=1.0, ws_timeout_s=3.0
    )
    with follower.sync() as stream:
        start = head(rpc)
        first = take_until(stream, up_to(start))
        assert first[0] == TransportChanged("ws", first[0].reason)  # type: ignore[union-attr]
        for _ in range(6):  # one announcement per block
            mine(rpc)
        events = first + take_until(stream, up_to(start + 6))
        assert not any(isinstance(e, TransportChanged) and e.transport == "poll" for e in events)
        assert_consecutive(events, start, rpc)

        relay.kill()
        mine(rpc, 4)  # missed by the socket: announced by nobody
        later = take_until(stream, up_to(start + 10))
        changes = [e for e in later if isinstance(e, TransportChanged)]
        assert [c.transport for c in changes] == ["poll"]
        mine(rpc)
        later += take_until(stream, up_to(start + 11))
        assert_consecutive(events + later, start, rpc)
        assert follower.transport == "poll"
        assert not any(isinstance(e, Reorg | GapTooLong) for e in events + later)


@pytest.mark.chain
def test_unreachable_socket_polls_from_the_start(rpc: RpcClient) -> None:
    dead = socket.create_server(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    follower = HeadFollower(rpc, f"ws://127.0.0.1:{port}", poll_interval_s=0.05, ws_timeout_s=2.0)
    with follower.sync() as stream:
        start = head(rpc)
        events = take_until(stream, up_to(start))
        assert isinstance(events[0], TransportChanged)
        assert events[0].transport == "poll"
        assert str(port) in events[0].reason
        mine(rpc, 3)
        events += take_until(stream, up_to(start + 3))
        assert_consecutive(events, start, rpc)


@pytest.mark.chain
@pytest.mark.parametrize("ws", [False, True])
def test_reorg_by_snapshot_and_revert_reports_the_fork_point(
    chain: devnet.DevnetInfo, rpc: RpcClient, ws: bool
) -> None:
    follower = HeadFollower(
        rpc, ws_url_for(chain.rpc_url) if ws else None, poll_interval_s=0.05, ws_idle_s=0.5, window=16
    )
    with follower.sync() as stream:
        fork = head(rpc)
        events = take_until(stream, up_to(fork))
        fork_ref = rpc.get_block(fork)
        snap = devnet.snapshot(chain)
        mine(rpc, 3)
        events += take_until(stream, up_to(fork + 3))
        old = [rpc.get_block(fork + i) for i in (1, 2, 3)]
        devnet.revert(chain, snap)
        rpc.request("evm_increaseTime", [100])  # the new blocks differ from the reverted ones
        for _ in range(5):
            mine(rpc)
        after = take_until(stream, lambda evs: any(isinstance(e, Reorg) for e in evs) and up_to(fork + 5)(evs))
    reorgs = [e for e in after if isinstance(e, Reorg)]
    assert len(reorgs) == 1
    assert reorgs[0].fork_point == fork_ref
    assert [b.hash for b in reorgs[0].reverted] == [b.hash for b in old]
    at = after.index(reorgs[0])
    before, rest = after[:at], after[at + 1 :]
    assert not [e for e in before if isinstance(e, NewBlock)]  # nothing delivered between the revert and it
    assert_consecutive(rest, fork + 1, rpc)
    assert [e.block.number for e in rest if isinstance(e, NewBlock)] == [fork + 1, fork + 2, fork + 3, fork + 4,
                                                                       fork + 5]


@pytest.mark.chain
def test_reorg_at_the_same_height_by_anvil_reorg(chain: devnet.DevnetInfo, rpc: RpcClient) -> None:
    floor = head(rpc)
    mine(rpc, 4)
    follower = HeadFollower(rpc, None, resume_from=floor, poll_interval_s=0.05)  # the 4 blocks in its window
    with follower.sync() as stream:
        top = head(rpc)
        take_until(stream, up_to(top))
        result = anvil_reorg(chain.rpc_url, 2, floor=floor)
        events = take_until(stream, up_to(top))
    reorg = events[0]
    assert isinstance(reorg, Reorg)
    assert reorg.fork_point.number == top - 2
    assert [b.hash for b in reorg.reverted] == [result.old_hashes[top - 1], result.old_hashes[top]]
    blocks = assert_consecutive(events[1:], top - 1, rpc)
    assert [b.block.hash for b in blocks] == [result.new_hashes[top - 1], result.new_hashes[top]]


@pytest.mark.chain
def test_gap_too_long_then_delivery_goes_on(rpc: RpcClient) -> None:
    follower = HeadFollower(rpc, None, max_gap=5, poll_interval_s=0.2)
    with follower.sync() as stream:
        start = head(rpc)
        events = take_until(stream, up_to(start))
        mine(rpc, 40)
        events += take_until(stream, lambda evs: any(isinstance(e, GapTooLong) for e in evs))
        gap = events[-1]
        assert isinstance(gap, GapTooLong)
        assert gap.last == rpc.get_block(start + 40)
        delivered = assert_consecutive(events[:-1], start, rpc)
        assert gap.first == delivered[-1].block.number + 1
        mine(rpc, 2)
        after = take_until(stream, up_to(start + 42))
    assert_consecutive(after, start + 41, rpc)
    assert follower.last is not None
    assert follower.last.number == start + 42


@pytest.mark.chain
@pytest.mark.parametrize("as_ref", [False, True])
def test_resume_from_an_earlier_block_backfills_in_order(rpc: RpcClient, as_ref: bool) -> None:
    mine(rpc, 3)
    top = head(rpc)
    resume = rpc.get_block(top - 3) if as_ref else top - 3
    follower = HeadFollower(rpc, None, resume_from=resume, poll_interval_s=0.05)
    with follower.sync() as stream:
        events = take_until(stream, up_to(top))
    assert isinstance(events[0], TransportChanged)
    assert_consecutive(events, top - 2, rpc)


@pytest.mark.chain
def test_async_events_iterator(rpc: RpcClient) -> None:
    import asyncio

    async def collect() -> list[HeadEvent]:
        follower = HeadFollower(rpc, None, poll_interval_s=0.05)
        out: list[HeadEvent] = []
        start = head(rpc)
        async for event in follower.events():
            out.append(event)
            if isinstance(event, NewBlock) and event.block.number == start:
                await asyncio.to_thread(mine, rpc, 2)
            if isinstance(event, NewBlock) and event.block.number == start + 2:
                follower.close()
        return out

    events = asyncio.run(collect())
    assert_consecutive(events, events[1].block.number, rpc)  # type: ignore[union-attr]
    assert len([e for e in events if isinstance(e, NewBlock)]) == 3


@pytest.mark.chain
def test_reorg_deeper_than_the_window_is_a_full_sweep(chain: devnet.DevnetInfo, rpc: RpcClient) -> None:
    floor = head(rpc)
    mine(rpc, 4)
    follower = HeadFollower(rpc, None, window=2, poll_interval_s=0.05)
    with follower.sync() as stream:
        top = head(rpc)
        take_until(stream, up_to(top))
        mine(rpc)
        take_until(stream, up_to(top + 1))
        anvil_reorg(chain.rpc_url, 3, floor=floor)  # the fork point (top - 2) is older than the 2 kept
        events = take_until(stream, lambda evs: any(isinstance(e, GapTooLong) for e in evs))
    assert events == [GapTooLong(top, rpc.get_block(top + 1))]


@pytest.mark.chain
@pytest.mark.parametrize("ws", [True, False], ids=["ws", "poll"])
def test_a_trigger_reads_no_block(chain: devnet.DevnetInfo, rpc: RpcClient, ws: bool) -> None:
    """``read_blocks=False`` (block mode's triggers): each announced head is a :class:`HeadMoved` and the follower's
    HTTP client reads no block (over the socket only its first head is asked for; polling asks for numbers only);
    a same-height reorganisation announced again is news again. The reading follower, for comparison, reads each."""

    def heads_of(events: list[HeadEvent]) -> list[int]:
        return [e.number for e in events if isinstance(e, HeadMoved)]

    def run(read_blocks: bool) -> tuple[list[HeadEvent], dict[str, int]]:
        with RpcClient(chain.rpc_url) as own:
            follower = HeadFollower(own, ws_url_for(chain.rpc_url) if ws else None, poll_interval_s=0.05,
                                    ws_idle_s=5.0, read_blocks=read_blocks)
            with follower.sync() as stream:
                start = head(rpc)
                moved = lambda n: lambda evs: any(  # noqa: E731
                    (isinstance(e, HeadMoved) and e.number >= n) or (isinstance(e, NewBlock) and e.block.number >= n)
                    for e in evs)
                events = take_until(stream, moved(start))
                for i in range(1, 4):
                    mine(rpc)
                    events += take_until(stream, moved(start + i))
            return events, dict(own.stats.calls_by_method)

    events, calls = run(read_blocks=False)
    numbers = heads_of(events)
    assert numbers == sorted(set(numbers))
    assert numbers[-3:] == [numbers[-1] - 2, numbers[-1] - 1, numbers[-1]]  # each mined block announced, in order
    assert not [e for e in events if isinstance(e, NewBlock | Reorg | GapTooLong)]
    assert "eth_getBlockByNumber" not in calls, calls
    reading_events, reading_calls = run(read_blocks=True)
    assert len([e for e in reading_events if isinstance(e, NewBlock)]) >= 4
    assert reading_calls.get("eth_getBlockByNumber", 0) >= 4  # guard: the reading follower reads each head
