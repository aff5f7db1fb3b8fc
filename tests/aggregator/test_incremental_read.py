"""The incremental read's composition (``aggregator.venues.incremental``) without a chain: the cache merge, one
venue's failure isolated from the others, and a combine that refuses an account read after the market's block."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest

from aggregator.venues.incremental import VenueBlock, read_block, refreshed
from aggregator.venues.morpho_blue.incremental import MorphoAccountState, MorphoMarketState, combine
from aggregator.venues.plugin import Incremental
from connectors.errors import ConnectorError, InvalidInputError
from connectors.evm.multicall import Multicall
from connectors.evm.program import ReadProgram
from connectors.types import BlockRef
from riskcore.venues.morpho_blue.recompute import MorphoCachedPosition

A, B, C = ("0x" + c * 40 for c in "abc")
MORPHO = "0x" + "d" * 40


def _block(number: int) -> BlockRef:
    return BlockRef(chain_id=31337, number=number, hash="0x" + f"{number:064x}", timestamp=1_700_000_000 + number)


def test_refreshed_replaces_by_wallet_and_appends_new_ones() -> None:
    cached = [(A, 1), (B, 1)]
    out = refreshed(cached, [(B.upper().replace("0X", "0x"), 2), (C, 2)], lambda s: s[0])
    assert out == [(A, 1), (B.upper().replace("0X", "0x"), 2), (C, 2)]


def _market(block: BlockRef, cached: Sequence[Any]) -> ReadProgram[Any]:
    return ("market", block.number, len(cached))
    yield []  # a generator that needs no round


def _accounts(wallets: Sequence[str], block: BlockRef, market: Any) -> ReadProgram[Sequence[Any]]:
    if "bad" in wallets:
        raise InvalidInputError("bad wallet")
    return [(w, block.number) for w in wallets]
    yield []


def test_one_venues_failure_leaves_the_others() -> None:
    inc = Incremental(market_program=_market, account_program=_accounts, combine=lambda m, a: (m, a),
                      wallet_of=lambda s: s[0])
    out = read_block(cast(Multicall, None), {
        "one": VenueBlock(inc, [(A, 1)], ["bad"]),
        "two": VenueBlock(inc, [(A, 1), (B, 1)], [C]),
    }, _block(5))
    assert not out["one"].ok
    assert isinstance(out["one"].accounts, ConnectorError)
    assert out["one"].market == ("market", 5, 1)
    assert out["two"].ok
    assert out["two"].market == ("market", 5, 2)
    assert out["two"].accounts == [(C, 5)]


def test_combine_refuses_an_account_read_after_the_market_block() -> None:
    market = MorphoMarketState(_block(10), MORPHO, ())
    empty = MorphoAccountState(A, _block(9), ())
    assert combine(market, [empty]).accounts[0].positions == ()
    later = MorphoAccountState(A, _block(11), ())
    with pytest.raises(InvalidInputError, match="cannot be valued at block 10"):
        combine(market, [later])
    unknown = MorphoAccountState(A, _block(9), (("0x" + "1" * 64, MorphoCachedPosition(1, 0, 0)),))
    with pytest.raises(InvalidInputError, match="not watched"):
        combine(market, [unknown])
