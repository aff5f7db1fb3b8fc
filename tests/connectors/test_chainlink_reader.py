from __future__ import annotations

from typing import Any

import pytest

from connectors.chainlink.models import FeedRound
from connectors.chainlink.reader import DECIMALS, LATEST_ROUND_DATA, decode_feeds, plan_feeds, read_feeds
from connectors.errors import CallRevertedError, DecodeError, InvalidAddressError
from connectors.evm.multicall import Multicall
from connectors.evm.rpc import RpcClient
from connectors.types import BlockRef, checksum

FEED_A = checksum("0x" + "a1" * 20)
FEED_B = checksum("0x" + "b2" * 20)
BLOCK = BlockRef(chain_id=31337, number=1000, hash="0x" + (1000).to_bytes(32, "big").hex(), timestamp=1_700_000_000)


def feed(node: Any, addr: str, answer: int, updated_at: int, *, round_id: int = 7, answered: int = 7) -> None:
    node.constant(addr, LATEST_ROUND_DATA, round_id, answer, updated_at - 1, updated_at, answered)
    node.constant(addr, DECIMALS, 8)


def make_round(**kw: Any) -> FeedRound:
    base: dict[str, Any] = {
        "feed": FEED_A,
        "round_id": 10,
        "answer_raw": 2000 * 10**8,
        "decimals": 8,
        "started_at": 990,
        "updated_at": 1000,
        "answered_in_round": 10,
        "block_timestamp": 1500,
        "heartbeat_s": 3600,
    }
    return FeedRound(**{**base, **kw})


@pytest.mark.parametrize(
    ("kw", "flags"),
    [
        ({}, ()),
        ({"answer_raw": 0}, ("zero",)),
        ({"answer_raw": -5}, ("negative",)),
        ({"block_timestamp": 1000 + 3601}, ("stale",)),
        ({"block_timestamp": 1000 + 3600}, ()),
        ({"answered_in_round": 9}, ("old_round",)),
        ({"answer_raw": 0, "block_timestamp": 10**6}, ("zero", "stale")),
    ],
)
def test_feed_flags(kw: dict[str, Any], flags: tuple[str, ...]) -> None:
    r = make_round(**kw)
    assert r.flags == flags
    assert r.is_valid == (flags == ())


def test_age_is_measured_against_the_block_not_the_clock() -> None:
    assert make_round(block_timestamp=1600).age_s == 600
    assert make_round(block_timestamp=900).age_s == 0


def test_read_feeds_one_round_trip_with_flags(rpc: RpcClient, node: Any) -> None:
    feed(node, FEED_A, 2000 * 10**8, BLOCK.timestamp - 60)
    feed(node, FEED_B, -1, BLOCK.timestamp - 7200, round_id=9, answered=8)
    out = read_feeds(Multicall(rpc), [FEED_A.lower(), FEED_B], BLOCK, heartbeat_s={FEED_B.lower(): 86_400})
    assert node.http_requests == 1
    assert node.call_blocks == [hex(BLOCK.number)]
    assert set(out) == {FEED_A, FEED_B}
    a, b = out[FEED_A], out[FEED_B]
    assert (a.answer_raw, a.decimals, a.age_s, a.heartbeat_s, a.flags) == (2000 * 10**8, 8, 60, 3600, ())
    assert b.heartbeat_s == 86_400
    assert b.flags == ("negative", "old_round")  # answeredInRound < roundId: an old round, though recent


def test_unreadable_feed_raises_or_is_omitted(rpc: RpcClient, node: Any) -> None:
    feed(node, FEED_A, 1, BLOCK.timestamp)
    node.constant(FEED_B, DECIMALS, 8)  # a contract without latestRoundData: that call reverts
    eoa = checksum("0x" + "c3" * 20)  # no code at all: the call "succeeds" with no data
    mc = Multicall(rpc)
    with pytest.raises(CallRevertedError, match=FEED_B):
        read_feeds(mc, [FEED_A, FEED_B], BLOCK)
    with pytest.raises(DecodeError, match=eoa):
        read_feeds(mc, [FEED_A, eoa], BLOCK)
    results = mc.execute(plan_feeds([FEED_A, FEED_B], required=False), BLOCK)
    assert set(decode_feeds([FEED_A, FEED_B], results, BLOCK, required=False)) == {FEED_A}


def test_bad_feed_address_fails_before_io(rpc: RpcClient, node: Any) -> None:
    with pytest.raises(InvalidAddressError):
        read_feeds(Multicall(rpc), ["0xnope"], BLOCK)
    assert node.http_requests == 0
