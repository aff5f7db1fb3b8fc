"""DirtyReader over a fake node: one request per block, rewatch rebuilds (and re-reads the rest of a range with the
new filter), a failed rebuild kept pending and retried, unwatched venues, refused inputs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from eth_abi.abi import encode

import aggregator.dirty as dirty_mod
from aggregator.dirty import DirtyReader, chain_watch
from connectors.errors import DecodeError, InvalidInputError, RpcUnavailableError
from connectors.evm.logs import Decoded, Effect, Event, LogWatch, wallets_of, watched
from connectors.evm.rpc import RpcClient
from connectors.types import BlockRef, checksum

CHAIN = 5
POOL = checksum("0x" + "11" * 20)
NEW = checksum("0x" + "33" * 20)
ALICE = checksum("0x" + "a1" * 20)
BOB = checksum("0x" + "b2" * 20)
SUPPLY = Event("Supply(address indexed onBehalf, uint256 amount)")
LISTED = Event("Listed(address indexed market)")


def _hash(n: int) -> str:
    return f"0x{n:064x}"


def _word(typ: str, value: Any) -> str:
    return "0x" + encode([typ], [value]).hex()


def _log(address: str, event: Event, arg: str, block: int, index: int = 0, block_hash: str | None = None
         ) -> dict[str, Any]:
    data = encode(["uint256"], [1]) if event is SUPPLY else b""
    return {"address": address.lower(), "topics": [event.topic0, _word("address", arg)], "data": "0x" + data.hex(),
            "blockNumber": hex(block), "blockHash": block_hash or _hash(block), "transactionHash": "0x" + "cd" * 32,
            "logIndex": hex(index), "removed": False}


@dataclass
class Snapshot:
    """A fake venue read: the markets it names are the contracts to watch."""

    block: BlockRef
    markets: tuple[str, ...]
    accounts: tuple[Any, ...] = ()


class FakePlugin:
    """Watches Supply at every market of the snapshot, and Listed at POOL (a new market: rebuild)."""

    def log_watch(self, venue: Any, snapshot: Snapshot) -> LogWatch | None:
        if venue.config.type == "silent":
            return None

        def listed(decoded: Decoded) -> Effect:
            return Effect(market_reason=f"Listed {decoded['market']}", rewatch=f"Listed {decoded['market']}")

        return LogWatch(venue.config.name, (watched(snapshot.markets, SUPPLY, wallets_of("onBehalf")),
                                            watched([POOL], LISTED, listed)))


class FakeNode:
    def __init__(self, logs: list[dict[str, Any]]) -> None:
        self.logs = logs
        self.filters: list[dict[str, Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        method, params = body["method"], body["params"]
        if method == "eth_chainId":
            result: Any = hex(CHAIN)
        elif method == "eth_getBlockByNumber":
            n = int(params[0], 16)
            result = {"number": hex(n), "hash": _hash(n), "timestamp": hex(1000 + n)}
        else:
            (flt,) = params
            self.filters.append(flt)
            wanted = {a.lower() for a in flt["address"]}
            if "blockHash" in flt:
                hits = [lg for lg in self.logs if lg["blockHash"] == flt["blockHash"]]
            else:
                lo, hi = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
                hits = [lg for lg in self.logs if lo <= int(lg["blockNumber"], 16) <= hi]
            result = [lg for lg in hits if lg["address"] in wanted and lg["topics"][0] in flt["topics"][0]]
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": result})


def _ref(n: int, chain: int = CHAIN) -> BlockRef:
    return BlockRef(chain_id=chain, number=n, hash=_hash(n), timestamp=1000 + n)


def _venue(name: str = "lend", typ: str = "fake") -> Any:
    return SimpleNamespace(config=SimpleNamespace(name=name, type=typ))


@pytest.fixture
def plugin(monkeypatch: pytest.MonkeyPatch) -> FakePlugin:
    fake = FakePlugin()
    monkeypatch.setattr(dirty_mod, "plugin_of", lambda _type: fake)
    return fake


@pytest.fixture
def node_logs() -> list[dict[str, Any]]:
    return [_log(POOL, SUPPLY, ALICE, 1), _log(POOL, LISTED, NEW, 3), _log(NEW, SUPPLY, BOB, 3, 1),
            _log(NEW, SUPPLY, ALICE, 4), _log(POOL, SUPPLY, BOB, 6)]


def _reader(node: FakeNode, refreshed: list[int], fail: int = 0) -> tuple[DirtyReader, RpcClient]:
    rpc = RpcClient("http://node.test", transport=httpx.MockTransport(node.handle), max_retries=0)
    failures = [fail]

    def refresh(venue: Any, old: Snapshot, block: BlockRef) -> Snapshot:
        if failures[0] > 0:
            failures[0] -= 1
            raise RpcUnavailableError("node down")
        refreshed.append(block.number)
        return Snapshot(block, (*old.markets, NEW))

    watch = chain_watch(CHAIN, [(_venue(), Snapshot(_ref(0), (POOL,)))])
    return DirtyReader(rpc, watch, refresh=refresh), rpc


@pytest.mark.usefixtures("plugin")
def test_a_rewatch_log_rebuilds_the_watch_at_that_block(node_logs: list[dict[str, Any]]) -> None:
    node = FakeNode(node_logs)
    refreshed: list[int] = []
    reader, rpc = _reader(node, refreshed)
    assert reader.block(_ref(1)).venue("lend").wallets == {ALICE}
    third = reader.block(_ref(3))
    assert third.venue("lend").rewatch == (f"Listed {NEW}",)
    assert third.venue("lend").wallets == frozenset()  # NEW was not watched when block 3 was read
    assert refreshed == [3]
    assert [(r.block, r.venue) for r in reader.rebuilds] == [(3, "lend")]
    assert reader.rebuilds[0].snapshot.block.number == 3  # the full read that covers block 3 at NEW
    assert NEW in reader.watch.query.addresses
    assert reader.block(_ref(4)).venue("lend").wallets == {ALICE}  # NEW's Supply is seen from now on
    assert rpc.stats.calls_by_method == {"eth_getLogs": 3}


@pytest.mark.usefixtures("plugin")
def test_a_failed_rebuild_is_kept_pending_and_retried(node_logs: list[dict[str, Any]]) -> None:
    refreshed: list[int] = []
    reader, _ = _reader(FakeNode(node_logs), refreshed, fail=1)
    reader.block(_ref(3))
    assert reader.pending == {"lend": (f"Listed {NEW}",)}
    assert NEW not in reader.watch.query.addresses  # the old watch stays in use
    reader.block(_ref(4))
    assert reader.pending == {}
    assert refreshed == [4]
    assert NEW in reader.watch.query.addresses


@pytest.mark.usefixtures("plugin")
def test_a_range_is_read_again_with_the_rebuilt_filter(node_logs: list[dict[str, Any]]) -> None:
    node = FakeNode(node_logs)
    refreshed: list[int] = []
    reader, rpc = _reader(node, refreshed)
    blocks = reader.range_blocks(1, 6)
    assert [d.first_block for d in blocks] == [1, 2, 3, 4, 5, 6]
    assert [set(d.venue("lend").wallets) for d in blocks] == [{ALICE}, set(), set(), {ALICE}, set(), {BOB}]
    assert [(f["fromBlock"], f["toBlock"]) for f in node.filters] == [("0x1", "0x6"), ("0x4", "0x6")]
    assert NEW.lower() in {a.lower() for a in node.filters[1]["address"]}
    assert rpc.stats.calls_by_method["eth_getLogs"] == 2
    assert refreshed == [3]
    fresh, _ = _reader(FakeNode(node_logs), [])
    union = fresh.range(1, 6)
    assert union.venue("lend").wallets == {ALICE, BOB}
    assert (union.first_block, union.last_block) == (1, 6)


@pytest.mark.usefixtures("plugin")
def test_logs_of_one_block_under_two_hashes_are_refused() -> None:
    logs = [_log(POOL, SUPPLY, ALICE, 2), _log(POOL, SUPPLY, BOB, 2, 1, block_hash=_hash(99))]
    reader, _ = _reader(FakeNode(logs), [])
    with pytest.raises(DecodeError, match="two hashes"):
        reader.range_blocks(1, 3)


@pytest.mark.usefixtures("plugin")
def test_a_venue_without_events_is_unwatched_and_costs_no_request() -> None:
    node = FakeNode([_log(POOL, SUPPLY, ALICE, 1)])
    rpc = RpcClient("http://node.test", transport=httpx.MockTransport(node.handle), max_retries=0)
    watch = chain_watch(CHAIN, [(_venue("quiet", "silent"), Snapshot(_ref(0), (POOL,)))])
    assert watch.unwatched == ("quiet",)
    assert watch.query.empty
    assert DirtyReader(rpc, watch).block(_ref(1)).venues == {}
    assert rpc.stats.calls == 0


@pytest.mark.usefixtures("plugin")
def test_refused_inputs() -> None:
    with pytest.raises(InvalidInputError, match="snapshot of chain 5, the watch is of chain 1"):
        chain_watch(1, [(_venue(), Snapshot(_ref(0), (POOL,)))])
    with pytest.raises(InvalidInputError, match="repeat"):
        chain_watch(CHAIN, [(_venue(), Snapshot(_ref(0), (POOL,))), (_venue(), Snapshot(_ref(0), (NEW,)))])
    reader, _ = _reader(FakeNode([]), [])
    with pytest.raises(InvalidInputError, match="block of chain 1"):
        reader.block(_ref(1, chain=1))
    with pytest.raises(InvalidInputError):
        reader.range_blocks(4, 3)
    with pytest.raises(KeyError):
        reader.rewatch(_ref(1), ["nobody"])


def test_every_onchain_venue_declares_its_events() -> None:
    """A new on-chain venue must say which logs change its wallets (or every wallet is re-read every block)."""
    from aggregator.venues import plugins
    from aggregator.venues.plugin import PluginBase

    onchain = [p for p in plugins() if p.onchain]
    assert onchain
    for plugin in onchain:
        assert type(plugin).log_watch is not PluginBase.log_watch, plugin.venue_type
    assert all(type(p).log_watch is PluginBase.log_watch for p in plugins() if not p.onchain)
