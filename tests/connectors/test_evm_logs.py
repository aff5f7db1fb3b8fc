"""Event logs: decoding against eth-abi, the declared events against the venues' own published ABIs, the one
merged filter, block-hash pinned reads, range halving on the providers' "too large" answers, and dirty sets."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from eth_abi.abi import encode
from eth_hash.auto import keccak

from connectors.aave_v3 import events as aave_events
from connectors.chainlink import events as chainlink_events
from connectors.errors import DecodeError, InvalidInputError, RateLimitedError, RequestTooLargeError
from connectors.evm.logs import (
    ZERO_ADDRESS,
    Effect,
    Event,
    Log,
    LogQuery,
    LogReader,
    LogWatch,
    dirty_sets,
    market_reason,
    merge_query,
    wallets_of,
    watched,
)
from connectors.evm.rpc import RpcClient, map_rpc_error
from connectors.morpho_blue import events as morpho_events
from connectors.types import BlockRef, checksum
from connectors.uniswap_v3 import events as uniswap_events

NODE_MODULES = Path(__file__).resolve().parents[2] / "devnet" / "node_modules"
POOL = checksum("0x" + "11" * 20)
TOKEN = checksum("0x" + "22" * 20)
ALICE = checksum("0x" + "a1" * 20)
BOB = checksum("0x" + "b2" * 20)
BLOCK_HASH = "0x" + "ab" * 32

SUPPLY = Event("Supply(address indexed reserve, address user, address indexed onBehalfOf, uint256 amount, "
               "uint16 indexed referralCode)")
TRANSFER = Event("Transfer(address indexed from, address indexed to, uint256 value)")


def _word(typ: str, value: Any) -> str:
    return "0x" + encode([typ], [value]).hex()


def _log(address: str, topics: list[str], data: bytes = b"", *, block: int = 7, index: int = 0,
         block_hash: str = BLOCK_HASH) -> dict[str, Any]:
    return {"address": address.lower(), "topics": topics, "data": "0x" + data.hex(), "blockNumber": hex(block),
            "blockHash": block_hash, "transactionHash": "0x" + "cd" * 32, "logIndex": hex(index), "removed": False}


def _supply_log(on_behalf: str, amount: int, **kw: Any) -> dict[str, Any]:
    topics = [SUPPLY.topic0, _word("address", TOKEN), _word("address", on_behalf), _word("uint16", 7)]
    return _log(POOL, topics, encode(["address", "uint256"], [BOB, amount]), **kw)


# --- events ---------------------------------------------------------------------------------------------------------
def test_an_event_decodes_topics_and_data_as_eth_abi_encodes_them() -> None:
    assert SUPPLY.canonical == "Supply(address,address,address,uint256,uint16)"
    assert SUPPLY.topic0 == "0x" + keccak(b"Supply(address,address,address,uint256,uint16)").hex()
    decoded = SUPPLY.decode(Log.from_rpc(_supply_log(ALICE, 12345)))
    assert dict(decoded.args) == {"reserve": TOKEN, "user": BOB, "onBehalfOf": ALICE, "amount": 12345,
                                  "referralCode": 7}


def test_signed_tuple_and_dynamic_indexed_arguments() -> None:
    event = Event("X(int24 indexed tick, string indexed label, (address,uint256) pair, int256 delta)")
    topics = [event.topic0, _word("int24", -887220), "0x" + keccak(b"stable").hex()]
    log = Log.from_rpc(_log(POOL, topics, encode(["(address,uint256)", "int256"], [(ALICE, 5), -3])))
    args = event.decode(log).args
    assert args["tick"] == -887220
    assert args["label"] == keccak(b"stable")  # only the hash of an indexed string is on chain
    assert args["pair"] == (ALICE.lower(), 5)
    assert args["delta"] == -3


def test_a_log_of_another_shape_is_a_decode_error() -> None:
    # an ERC-721 Transfer (three indexed topics) is not the ERC-20 layout of the same topic0
    erc721 = _log(TOKEN, [TRANSFER.topic0, _word("address", ALICE), _word("address", BOB), _word("uint256", 9)])
    with pytest.raises(DecodeError, match="3 indexed topics, the event declares 2"):
        TRANSFER.decode(Log.from_rpc(erc721))
    truncated = _log(TOKEN, [TRANSFER.topic0, _word("address", ALICE), _word("address", BOB)], b"\x01")
    with pytest.raises(DecodeError, match="cannot decode"):
        TRANSFER.decode(Log.from_rpc(truncated))


@pytest.mark.parametrize("bad", ["Supply", "Supply(address indexed a b c)", "X(uint a, uint a)",
                                 "X(uint indexed a, uint indexed b, uint indexed c, uint indexed d)", "X(,)"])
def test_a_malformed_declaration_is_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        Event(bad)


def test_malformed_logs_are_decode_errors() -> None:
    good = _supply_log(ALICE, 1)
    for field, value in (("address", "0x12"), ("topics", ["0x12"]), ("blockHash", None), ("data", "zz"),
                         ("logIndex", None)):
        with pytest.raises(DecodeError):
            Log.from_rpc({**good, field: value})
    with pytest.raises(DecodeError):
        Log.from_rpc([good])


def _abi_topics(relative: str) -> set[str]:
    path = NODE_MODULES / relative
    if not path.exists():
        pytest.skip(f"devnet packages not installed ({relative})")
    out = set()
    for item in json.loads(path.read_text())["abi"]:
        if item["type"] == "event":
            types = ",".join("(" + ",".join(c["type"] for c in i["components"]) + ")" + i["type"][5:]
                             if i["type"].startswith("tuple") else i["type"] for i in item["inputs"])
            out.add("0x" + keccak(f"{item['name']}({types})".encode()).hex())
    return out


def test_the_declared_events_are_the_published_contracts_events() -> None:
    """Every declared topic0 is one the contract's own published ABI declares (a typo changes the hash)."""
    core = "@aave/core-v3/artifacts/contracts"
    pool = _abi_topics(f"{core}/interfaces/IPool.sol/IPool.json")
    assert {e.topic0 for e, _ in aave_events.POOL_WALLET_EVENTS} <= pool
    assert {e.topic0 for e, _ in aave_events.POOL_MARKET_EVENTS} <= pool
    configurator = _abi_topics(f"{core}/interfaces/IPoolConfigurator.sol/IPoolConfigurator.json")
    assert {e.topic0 for e in aave_events.CONFIGURATOR_EVENTS} == configurator  # all of them
    assert {e.topic0 for e in aave_events.ORACLE_EVENTS} == _abi_topics(
        f"{core}/interfaces/IAaveOracle.sol/IAaveOracle.json")
    assert {e.topic0 for e in aave_events.PROVIDER_EVENTS} <= _abi_topics(
        f"{core}/interfaces/IPoolAddressesProvider.sol/IPoolAddressesProvider.json")
    for token in ("AToken", "VariableDebtToken", "StableDebtToken"):
        artifact = f"{core}/protocol/tokenization/{token}.sol/{token}.json"
        assert aave_events.TOKEN_TRANSFER.topic0 in _abi_topics(artifact)
    manager = _abi_topics("@uniswap/v3-periphery/artifacts/contracts/NonfungiblePositionManager.sol/"
                          "NonfungiblePositionManager.json")
    assert {e.topic0 for e in (*uniswap_events.TOKEN_ID_EVENTS, uniswap_events.MANAGER_TRANSFER,
                               uniswap_events.MANAGER_APPROVAL)} <= manager
    assert {e.topic0 for e in uniswap_events.POOL_EVENTS} <= _abi_topics(
        "@uniswap/v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json")
    lib = NODE_MODULES / "@morpho-org/morpho-blue/src/libraries/EventsLib.sol"
    if not lib.exists():
        pytest.skip("devnet packages not installed (morpho-blue)")
    source = " ".join(lib.read_text().split())
    for event in (*(e for e, _ in morpho_events.POSITION_EVENTS), morpho_events.ACCRUE_INTEREST,
                  morpho_events.SET_FEE, morpho_events.SET_FEE_RECIPIENT):
        # EventsLib declares ``Id indexed id``; Id is bytes32
        names = ", ".join(f"{'Id' if p.name == 'id' else p.type}{' indexed' if p.indexed else ''} {p.name}"
                          for p in event.params)
        assert f"event {event.name}({names});" in source.replace("( ", "(").replace(" )", ")"), event


def test_chainlink_events_are_the_aggregator_interface() -> None:
    iface = NODE_MODULES.parent / "vendor"
    files = list(iface.glob("chainlink-contracts-*/src/v0.8/shared/interfaces/AggregatorInterface.sol"))
    if not files:
        pytest.skip("chainlink contracts not vendored")
    text = files[0].read_text()
    assert "event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);" in text
    assert "event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);" in text
    assert chainlink_events.ANSWER_UPDATED.canonical == "AnswerUpdated(int256,uint256,uint256)"
    mock = files[0].parents[1] / "mocks" / "MockV3Aggregator.sol"
    assert "emit " not in mock.read_text()  # the devnet's feeds emit nothing: prices are re-read every block


# --- query and reads --------------------------------------------------------------------------------------------------
def _watch(venue: str = "lend") -> LogWatch:
    return LogWatch(venue, (watched([POOL], SUPPLY, wallets_of("onBehalfOf")),
                            watched([TOKEN], TRANSFER, wallets_of("from", "to"))))


def test_merge_query_is_one_filter_for_every_watch() -> None:
    other = LogWatch("dex", (watched([TOKEN, BOB], TRANSFER, market_reason()),))
    query = merge_query([_watch(), other])
    assert query.addresses == tuple(sorted({POOL, TOKEN, BOB}, key=str.lower))
    assert query.topics0 == tuple(sorted({SUPPLY.topic0, TRANSFER.topic0}))
    assert query.filter(blockHash=BLOCK_HASH) == {"blockHash": BLOCK_HASH, "address": list(query.addresses),
                                                  "topics": [list(query.topics0)]}
    assert merge_query([]).empty


class FakeNode:
    """eth_getLogs over a list of raw logs; refuses ranges wider than ``max_range`` with ``message``."""

    def __init__(self, logs: list[dict[str, Any]], max_range: int | None = None,
                 message: str = "query returned more than 10000 results", code: int = -32005) -> None:
        self.logs = logs
        self.max_range = max_range
        self.message = message
        self.code = code
        self.requests: list[dict[str, Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["method"] == "eth_getLogs"
        (flt,) = body["params"]
        self.requests.append(flt)
        wanted = {a.lower() for a in flt["address"]}
        topics = set(flt["topics"][0])
        if "blockHash" in flt:
            hits = [lg for lg in self.logs if lg["blockHash"] == flt["blockHash"]]
        else:
            lo, hi = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
            if self.max_range is not None and hi - lo + 1 > self.max_range:
                error = {"code": self.code, "message": self.message}
                return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "error": error})
            hits = [lg for lg in self.logs if lo <= int(lg["blockNumber"], 16) <= hi]
        hits = [lg for lg in hits if lg["address"] in wanted and lg["topics"][0] in topics]
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": hits})

    def client(self) -> RpcClient:
        return RpcClient("http://node.test", transport=httpx.MockTransport(self.handle), max_retries=0)


def _ref(number: int, block_hash: str = BLOCK_HASH) -> BlockRef:
    return BlockRef(chain_id=1, number=number, hash=block_hash, timestamp=0)


def test_block_logs_is_one_request_pinned_by_hash() -> None:
    other_hash = "0x" + "ef" * 32
    node = FakeNode([_supply_log(ALICE, 1, index=3), _supply_log(BOB, 2, index=1),
                     _supply_log(BOB, 3, index=0, block=8, block_hash=other_hash)])
    rpc = node.client()
    logs = LogReader(rpc).block_logs(merge_query([_watch()]), _ref(7))
    assert [lg.log_index for lg in logs] == [1, 3]
    assert rpc.stats.calls_by_method == {"eth_getLogs": 1}
    assert rpc.stats.http_requests == 1
    assert node.requests[0]["blockHash"] == BLOCK_HASH
    assert "fromBlock" not in node.requests[0]


def test_block_logs_refuses_a_log_of_another_block() -> None:
    node = FakeNode([_supply_log(ALICE, 1, block=9)])
    with pytest.raises(DecodeError, match="answered a log of block 9"):
        LogReader(node.client()).block_logs(merge_query([_watch()]), _ref(7))


def test_an_empty_query_sends_nothing() -> None:
    node = FakeNode([])
    assert LogReader(node.client()).block_logs(LogQuery((), ()), _ref(7)) == []
    assert LogReader(node.client()).range_logs(LogQuery((), ()), 1, 5) == []
    assert node.requests == []


@pytest.mark.parametrize(("message", "code"), [
    ("query returned more than 10000 results. Try with this block range [0x10, 0x20].", -32005),  # Infura
    ("Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range", -32602),  # Alchemy
    ("block range is too wide", -32600),  # Ankr
    ("exceed maximum block range: 5000", -32000),  # erigon-style
    ("eth_getLogs is limited to a 10,000 range", -32614),  # QuickNode
])
def test_range_logs_halves_a_range_the_node_says_is_too_large(message: str, code: int) -> None:
    raw = [_supply_log(ALICE if n % 2 else BOB, n, block=n, index=0, block_hash=f"0x{n:064x}")
           for n in range(1, 41)]
    node = FakeNode(raw, max_range=6, message=message, code=code)
    reader = LogReader(node.client())
    logs = reader.range_logs(merge_query([_watch()]), 1, 40)
    assert [lg.block_number for lg in logs] == list(range(1, 41))
    assert reader.splits > 0
    spans = [(int(f["fromBlock"], 16), int(f["toBlock"], 16)) for f in node.requests]
    answered = [s for s in spans if s[1] - s[0] + 1 <= 6]
    assert sorted(b for lo, hi in answered for b in range(lo, hi + 1)) == list(range(1, 41))  # each block once
    assert spans[0] == (1, 40)
    assert len(spans) == 2 * reader.splits + 1


def test_a_single_block_still_too_large_raises() -> None:
    node = FakeNode([_supply_log(ALICE, 1)], max_range=0)
    with pytest.raises(RequestTooLargeError):
        LogReader(node.client()).range_logs(merge_query([_watch()]), 5, 8)


def test_range_bounds_are_checked() -> None:
    with pytest.raises(InvalidInputError):
        LogReader(FakeNode([]).client()).range_logs(merge_query([_watch()]), 5, 4)


def test_the_too_large_messages_map_to_request_too_large_and_not_to_rate_limits() -> None:
    for message in ("query returned more than 10000 results", "Log response size exceeded.",
                    "block range is too large", "Requested range exceeds maximum range limit"):
        assert isinstance(map_rpc_error({"code": -32005, "message": message}, "eth_getLogs"), RequestTooLargeError)
    limited = {"code": -32005, "message": "daily request count exceeded, request rate limited"}
    assert not isinstance(map_rpc_error(limited, "eth_getLogs"), RequestTooLargeError)
    node = FakeNode([])

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "error": limited})

    rpc = RpcClient("http://node.test", transport=httpx.MockTransport(handle), max_retries=0)
    with pytest.raises(RateLimitedError):
        LogReader(rpc).range_logs(merge_query([_watch()]), 1, 2)
    del node


# --- dirty sets -------------------------------------------------------------------------------------------------------
def test_dirty_sets_name_the_wallets_and_skip_what_no_watch_declared() -> None:
    transfer = _log(TOKEN, [TRANSFER.topic0, _word("address", ZERO_ADDRESS), _word("address", BOB)],
                    encode(["uint256"], [5]), index=2)
    stray = _log(POOL, [TRANSFER.topic0, _word("address", ALICE), _word("address", ALICE)],
                 encode(["uint256"], [5]), index=3)  # Transfer at the pool: matches the filter, declared by no one
    logs = [Log.from_rpc(x) for x in (_supply_log(ALICE, 1), transfer, stray)]
    dirty = dirty_sets(logs, [_watch(), LogWatch("idle", ())])
    lend = dirty.venue("lend")
    assert lend.wallets == {ALICE, BOB}
    assert lend.logs == 2
    assert not lend.market_changed
    assert dirty.venue("idle").wallets == frozenset()
    assert set(dirty.venues) == {"lend", "idle"}
    assert (dirty.first_block, dirty.last_block) == (7, 7)


def test_an_undecodable_declared_log_asks_for_a_full_read_of_that_venue_only() -> None:
    bad = _log(TOKEN, [TRANSFER.topic0, _word("address", ALICE), _word("address", BOB), _word("uint256", 1)])
    logs = [Log.from_rpc(bad), Log.from_rpc(_supply_log(ALICE, 1, index=1))]
    other = LogWatch("other", (watched([POOL], SUPPLY, lambda d: Effect(market_reason="supply")),))
    dirty = dirty_sets(logs, [_watch(), other])
    assert dirty.venue("lend").needs_full_read
    assert dirty.venue("lend").wallets == {ALICE}
    assert not dirty.venue("other").needs_full_read
    assert dirty.venue("other").market_reasons == ("supply",)


def test_removed_logs_are_skipped_and_the_union_merges() -> None:
    removed = {**_supply_log(BOB, 1), "removed": True}
    first = dirty_sets([Log.from_rpc(removed), Log.from_rpc(_supply_log(ALICE, 1))], [_watch()])
    assert first.venue("lend").wallets == {ALICE}
    second = dirty_sets([Log.from_rpc(_supply_log(BOB, 1, block=9))], [_watch()])
    union = first | second
    assert union.venue("lend").wallets == {ALICE, BOB}
    assert (union.first_block, union.last_block) == (7, 9)


# --- venue watches over synthetic logs --------------------------------------------------------------------------------
def test_feed_answers_are_market_reasons() -> None:
    feed = checksum("0x" + "fe" * 20)
    watch = LogWatch("lend", chainlink_events.feed_entries([feed, feed]))
    answer = _log(feed, [chainlink_events.ANSWER_UPDATED.topic0, _word("int256", -5), _word("uint256", 9)],
                  encode(["uint256"], [123]))
    dirty = dirty_sets([Log.from_rpc(answer)], [watch]).venue("lend")
    assert dirty.market_reasons == (f"AnswerUpdated {feed}",)
    assert dirty.wallets == frozenset()
    assert chainlink_events.ANSWER_UPDATED.decode(Log.from_rpc(answer))["current"] == -5
    assert chainlink_events.feed_entries([]) == ()


def test_the_owner_book_follows_transfers_and_forgets_untracked_owners() -> None:
    manager = checksum("0x" + "44" * 20)
    carol = checksum("0x" + "c3" * 20)
    book = uniswap_events.OwnerBook([ALICE, BOB], {1: ALICE})
    snapshot = SimpleNamespace(position_manager=manager, pools=(), accounts=())
    watch = uniswap_events.uniswap_watch("lp", snapshot)  # type: ignore[arg-type]
    assert isinstance(watch.state, uniswap_events.OwnerBook)
    watch.state.tracked = book.tracked
    watch.state.owners.update(book.owners)

    def transfer(frm: str, to: str, token_id: int, index: int) -> Log:
        topics = [uniswap_events.MANAGER_TRANSFER.topic0, _word("address", frm), _word("address", to),
                  _word("uint256", token_id)]
        return Log.from_rpc(_log(manager, topics, index=index))

    def increase(token_id: int, index: int) -> Log:
        topics = [uniswap_events.TOKEN_ID_EVENTS[0].topic0, _word("uint256", token_id)]
        return Log.from_rpc(_log(manager, topics, encode(["uint128", "uint256", "uint256"], [1, 2, 3]), index=index))

    dirty = dirty_sets([increase(1, 0), transfer(ALICE, BOB, 1, 1), increase(1, 2)], [watch]).venue("lp")
    assert dirty.wallets == {ALICE, BOB}
    assert dirty.rewatch == (f"position 1 to {BOB}",)  # a tracked wallet received a position
    assert watch.state.owner(1) == BOB
    dirty = dirty_sets([transfer(BOB, carol, 1, 0), increase(1, 1), increase(7, 2)], [watch]).venue("lp")
    assert dirty.wallets == {BOB, carol}  # after it left the tracked wallets its liquidity events name no one
    assert dirty.rewatch == ()
    assert watch.state.owner(1) is None
    minted = dirty_sets([transfer(ZERO_ADDRESS, ALICE, 8, 0), increase(8, 1)], [watch]).venue("lp")
    assert minted.wallets == {ALICE}


def test_the_aggregator_behind_a_proxy_feed_is_found_and_a_mock_is_left_alone() -> None:
    proxy, mock = checksum("0x" + "aa" * 20), checksum("0x" + "bb" * 20)
    behind = checksum("0x" + "cc" * 20)
    seen: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)
        seen.append(len(items))
        out = []
        for item in items:
            to = item["params"][0]["to"].lower()
            if to == proxy.lower():
                out.append({"jsonrpc": "2.0", "id": item["id"], "result": _word("address", behind)})
            else:  # MockV3Aggregator has no aggregator(): the call reverts
                out.append({"jsonrpc": "2.0", "id": item["id"], "error": {"code": 3, "message": "execution reverted"}})
        return httpx.Response(200, json=out)

    rpc = RpcClient("http://node.test", transport=httpx.MockTransport(handle), max_retries=0)
    found = chainlink_events.underlying_aggregators(rpc, [proxy, mock], _ref(3))
    assert found == {proxy: behind}
    assert seen == [2]  # one batched request
    assert chainlink_events.underlying_aggregators(rpc, [], _ref(3)) == {}
