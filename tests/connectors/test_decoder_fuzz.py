"""Fuzzed decoders: everything that turns outside bytes or JSON into typed values either decodes or raises
:class:`~connectors.errors.DecodeError` — never ``IndexError``, ``KeyError``, ``TypeError``, ``OverflowError``,
``ZeroDivisionError``, ``AttributeError`` or a ``decimal`` exception (the sync pipeline isolates a failing venue on
``ConnectorError`` / ``ValueError``; anything else would abort every venue of the batch), and never hangs.

On-chain: the return data of every function the connectors call (Aave v3, Morpho Blue, Uniswap v3, Chainlink,
ERC-20) through :meth:`Fn.decode` and the venue's own decoder — random bytes, word soups of edge values (uint256
max, negative int256 words, dirty address padding), truncated and extended valid encodings, the empty return —
the Multicall3 ``aggregate3`` result decoder (hostile offsets included), the ``eth_call`` hex answer, revert data.
Valid encodings decode back to exactly the values encoded (and a truncated or extended one decodes to those
values or not at all).

Off-chain: Hyperliquid ``clearinghouseState`` / ``metaAndAssetCtxs`` and dYdX subaccounts / perpetual markets,
seeded with the recorded payloads (``payloads/``) and mutated: numbers as strings and strings as numbers, NaN /
Infinity spellings, huge exponents, missing keys, nulls, nested type changes. A decoded model is a valid model
(it re-validates, its Decimals are finite, its derived figures compute); re-spelled valid payloads decode to the
same values, and every decimal string decodes exactly.

Every test is derandomized and bounded (``derandomize=True``, ``max_examples``).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import astuple
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from eth_abi.abi import encode
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from connectors.aave_v3.connector import (
    BASE_CURRENCY_UNIT,
    GET_ASSET_PRICE,
    GET_EMODE_CATEGORY_DATA,
    GET_RESERVE_DATA,
    GET_RESERVES_LIST,
    GET_SOURCE_OF_ASSET,
    GET_USER_ACCOUNT_DATA,
    GET_USER_CONFIGURATION,
    SCALED_BALANCE_OF,
    SYMBOL_BYTES32,
)
from connectors.aave_v3.decode import decode_reserve_configuration, decode_reserve_data, user_reserve_flags
from connectors.chainlink.reader import DECIMALS as FEED_DECIMALS
from connectors.chainlink.reader import LATEST_ROUND_DATA, decode_feeds, plan_feeds
from connectors.dydx_v4.decode import decode_perpetual_markets, decode_subaccount
from connectors.errors import DecodeError
from connectors.evm.abi import SYMBOL, Fn, decode_revert_reason, decode_symbol, split_types
from connectors.evm.multicall import Call, CallResult, Multicall, decode_aggregate3_result
from connectors.evm.rpc import hex_to_bytes, hex_to_int
from connectors.http import http_date_ms, json_decimal, json_int
from connectors.hyperliquid.decode import decode_clearinghouse_state, decode_meta_and_asset_ctxs
from connectors.morpho_blue import decode as morpho
from connectors.morpho_blue.connector import BORROW_RATE_VIEW, ID_TO_MARKET_PARAMS, MARKET, POSITION, PRICE
from connectors.types import BlockRef, checksum
from connectors.uniswap_v3 import decode as uni

pytestmark = pytest.mark.timeout(300)

FUZZ = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
PER_CASE = settings(FUZZ, max_examples=100)
"""For the tests parametrized over many functions or payloads (each case is a test of its own)."""
FUZZ_FEW = settings(FUZZ, max_examples=50)

PAYLOADS = Path(__file__).parent / "payloads"
HL_WALLET = "0x31ca8395cf837de08b24da3f660e77761dfb974b"
DYDX_ADDRESS = "dydx199tqg4wdlnu4qjlxchpd7seg454937hjrknju4"
BLOCK = BlockRef(chain_id=1, number=100, hash="0x" + "11" * 32, timestamp=1_700_000_000)

REJECTED = object()
"""What :func:`decode_or_reject` returns when the decoder raised :class:`DecodeError`."""


def decode_or_reject(decode: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``decode(*args)``, or :data:`REJECTED` when it raises :class:`DecodeError`; any other exception fails."""
    try:
        return decode(*args, **kwargs)
    except DecodeError:
        return REJECTED


# ======================================================================================================
# ABI values and return data
# ======================================================================================================
_UINT = {f"uint{n}": n for n in range(8, 257, 8)}
_INT = {f"int{n}": n for n in range(8, 257, 8)}


def abi_values(typ: str) -> st.SearchStrategy[Any]:
    """Values of an ABI type, as eth-abi decodes them (addresses lower-case hex, arrays as tuples)."""
    if typ.startswith("(") and typ.endswith(")"):
        return st.tuples(*(abi_values(t) for t in split_types(typ[1:-1])))
    if typ.endswith("[]"):
        return st.lists(abi_values(typ[:-2]), max_size=4).map(tuple)
    if typ == "uint":
        typ = "uint256"
    if typ in _UINT:
        top = 2 ** _UINT[typ] - 1
        return st.one_of(st.integers(0, top), st.sampled_from([0, 1, top]))
    if typ in _INT:
        half = 2 ** (_INT[typ] - 1)
        return st.one_of(st.integers(-half, half - 1), st.sampled_from([-half, -1, 0, half - 1]))
    if typ == "address":
        return st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
    if typ == "bool":
        return st.booleans()
    if typ.startswith("bytes") and typ != "bytes":
        n = int(typ[5:])
        return st.binary(min_size=n, max_size=n)
    if typ == "bytes":
        return st.binary(max_size=70)
    if typ == "string":
        return st.text(max_size=20)
    raise AssertionError(f"no strategy for {typ}")


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big", signed=value < 0)


_EDGES = sorted({0, 1, 2, 0x20, 0x40, 0x60, 2**8 - 1, 2**24 - 1, 2**24, 2**40, 2**80 - 1, 2**80, 2**96, 2**128 - 1,
                 2**128, 2**160 - 1, 2**160, 2**255 - 1, 2**255, 2**256 - 1})
words = st.one_of(
    st.sampled_from(_EDGES).map(_word),
    st.integers(0, 2**256 - 1).map(_word),
    st.integers(-(2**255), -1).map(_word),  # negative int256 words
    st.binary(min_size=20, max_size=20).map(lambda b: bytes(12) + b),  # a clean address word
    st.binary(min_size=32, max_size=32),
)


def return_data(fn: Fn) -> st.SearchStrategy[bytes]:
    """Answers to a call of ``fn``: valid encodings, truncated, extended, word soups, random bytes, nothing."""
    valid = valid_return(fn)
    n = max(len(fn.output_types), 1)
    return st.one_of(
        st.just(b""),
        valid,
        valid.flatmap(lambda b: st.integers(0, max(len(b) - 1, 0)).map(lambda k: b[:k])),  # truncated
        st.tuples(valid, st.binary(min_size=1, max_size=64)).map(lambda t: t[0] + t[1]),  # extra bytes
        st.lists(words, min_size=1, max_size=n + 4).map(b"".join),
        st.binary(max_size=32 * (n + 4)),
    )


def valid_return(fn: Fn) -> st.SearchStrategy[bytes]:
    types = list(fn.output_types)
    return abi_values("(" + ",".join(types) + ")").map(lambda v: encode(types, list(v)))


ONCHAIN: dict[str, tuple[Fn, Callable[[tuple[Any, ...]], Any] | None]] = {
    # name: (function, the venue's decoder of Fn.decode's tuple, or None when the tuple is what the connector uses)
    "aave.getReserveData": (GET_RESERVE_DATA, lambda v: (decode_reserve_data(v[0]),
                                                         decode_reserve_configuration(v[0][0][0]))),
    "aave.getUserAccountData": (GET_USER_ACCOUNT_DATA, None),
    "aave.getUserConfiguration": (GET_USER_CONFIGURATION, lambda v: list(user_reserve_flags(v[0][0]))),
    "aave.getReservesList": (GET_RESERVES_LIST, lambda v: [checksum(a) for a in v[0]]),
    "aave.getEModeCategoryData": (GET_EMODE_CATEGORY_DATA, None),
    "aave.getSourceOfAsset": (GET_SOURCE_OF_ASSET, lambda v: checksum(v[0])),
    "aave.getAssetPrice": (GET_ASSET_PRICE, None),
    "aave.BASE_CURRENCY_UNIT": (BASE_CURRENCY_UNIT, None),
    "aave.scaledBalanceOf": (SCALED_BALANCE_OF, None),
    "erc20.symbol(bytes32)": (SYMBOL_BYTES32, None),
    "morpho.market": (MARKET, lambda v: morpho.decode_market(v)),
    "morpho.idToMarketParams": (ID_TO_MARKET_PARAMS, lambda v: morpho.decode_market_params(v)),
    "morpho.position": (POSITION, lambda v: morpho.decode_position(v)),
    "morpho.price": (PRICE, None),
    "morpho.borrowRateView": (BORROW_RATE_VIEW, None),
    "uniswap.positions": (uni.POSITIONS, lambda v: uni.decode_position(v)),
    "uniswap.slot0": (uni.SLOT0, lambda v: uni.decode_slot0(v)),
    "uniswap.ticks": (uni.TICKS, lambda v: uni.decode_tick(v)),
    "uniswap.pool.positions": (uni.POOL_POSITIONS, lambda v: uni.decode_pool_position(v)),
    "uniswap.balanceOf": (uni.BALANCE_OF, None),
    "uniswap.tokenOfOwnerByIndex": (uni.TOKEN_OF_OWNER_BY_INDEX, None),
    "uniswap.factory": (uni.FACTORY, lambda v: checksum(v[0])),
    "uniswap.getPool": (uni.GET_POOL, lambda v: checksum(v[0])),
    "uniswap.liquidity": (uni.LIQUIDITY, None),
    "uniswap.feeGrowthGlobal0X128": (uni.FEE_GROWTH_GLOBAL0, None),
    "erc20.decimals": (uni.DECIMALS, None),
    "chainlink.latestRoundData": (LATEST_ROUND_DATA, None),
    "chainlink.decimals": (FEED_DECIMALS, None),
}




def _config_word(flags: list[Any]) -> int:
    return sum((int(f.borrowing) << (2 * f.reserve_id)) | (int(f.collateral) << (2 * f.reserve_id + 1)) for f in flags)


REENCODE: dict[str, Callable[[Any], tuple[Any, ...]]] = {
    # name: the venue decoder's output, back to the values ``Fn.decode`` gave it (addresses lower-case again)
    "aave.getReserveData": lambda out: (((out[0].configuration,), *astuple(out[0])[1:]),),
    "aave.getUserConfiguration": lambda flags: ((_config_word(flags),),),
    "aave.getReservesList": lambda addrs: (tuple(a.lower() for a in addrs),),
    "aave.getSourceOfAsset": lambda a: (a.lower(),),
    "uniswap.factory": lambda a: (a.lower(),),
    "uniswap.getPool": lambda a: (a.lower(),),
    "morpho.market": lambda m: m.as_tuple(),
    "morpho.idToMarketParams": lambda m: (*(a.lower() for a in m.as_tuple()[:4]), m.lltv_wad),
    "morpho.position": lambda p: (p.supply_shares, p.borrow_shares, p.collateral),
    "uniswap.positions": lambda p: tuple(v.lower() if isinstance(v, str) else v for v in astuple(p)),
    "uniswap.slot0": astuple,
    "uniswap.pool.positions": tuple,
}


def _cases() -> list[str]:
    """Every function with a decoder of its own, and one function per remaining output signature (the others decode
    through the very same word plan)."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for name, (fn, post) in ONCHAIN.items():
        if post is None and fn.output_types in seen:
            continue
        seen.add(fn.output_types)
        out.append(name)
    return sorted(out)


def _decode_onchain(name: str, data: bytes) -> tuple[tuple[Any, ...], Any]:
    """``(Fn.decode(data), the venue's decoder of it or None)``."""
    fn, post = ONCHAIN[name]
    value = fn.decode(data)
    assert isinstance(value, tuple)
    assert len(value) == len(fn.output_types)
    return value, (None if post is None else post(value))


@pytest.mark.parametrize("name", _cases())
@PER_CASE
@given(data=st.data())
def test_every_return_decodes_or_is_a_decode_error(name: str, data: st.DataObject) -> None:
    fn = ONCHAIN[name][0]
    raw = data.draw(return_data(fn), label="return data")
    decode_or_reject(_decode_onchain, name, raw)
    if not raw:  # the empty return (no contract, no such function) is always a DecodeError
        with pytest.raises(DecodeError):
            fn.decode(raw)


@pytest.mark.parametrize("name", _cases())
@FUZZ_FEW
@given(data=st.data())
def test_valid_returns_decode_to_the_encoded_values(name: str, data: st.DataObject) -> None:
    fn = ONCHAIN[name][0]
    types = list(fn.output_types)
    values = data.draw(abi_values("(" + ",".join(types) + ")"), label="values")
    raw = encode(types, list(values))
    assert fn.decode(raw) == values
    out = decode_or_reject(_decode_onchain, name, raw)
    if out is not REJECTED:  # (the venue's decoder rejects only what the protocol cannot return)
        assert out[0] == values
        if name in REENCODE:  # and its model holds exactly the values encoded
            assert REENCODE[name](out[1]) == values
        if name == "uniswap.ticks":
            assert out[1] == (*values[:4], values[7])
    # a cut or extended answer decodes to the same values, or not at all
    cut = data.draw(st.integers(0, len(raw)), label="cut")
    for variant in (raw[:cut], raw + data.draw(st.binary(min_size=1, max_size=64), label="tail")):
        again = decode_or_reject(fn.decode, variant)
        assert again is REJECTED or again == values


@st.composite
def valid_nft_positions(draw: st.DrawFn) -> tuple[Any, ...]:
    """``positions(tokenId)`` as the NonfungiblePositionManager can return it: sorted tokens, a valid tick range."""
    values = list(draw(abi_values("(" + ",".join(uni.POSITIONS.output_types) + ")")))
    t0, t1 = sorted(draw(st.lists(abi_values("address"), min_size=2, max_size=2, unique=True)))
    lower = draw(st.integers(uni.MIN_TICK, uni.MAX_TICK - 1))
    values[2], values[3], values[5], values[6] = t0, t1, lower, draw(st.integers(lower + 1, uni.MAX_TICK))
    return tuple(values)


@FUZZ
@given(values=valid_nft_positions())
def test_valid_uniswap_positions_decode_to_the_encoded_values(values: tuple[Any, ...]) -> None:
    pos = uni.decode_position(uni.POSITIONS.decode(encode(list(uni.POSITIONS.output_types), list(values))))
    assert REENCODE["uniswap.positions"](pos) == values


def test_reserve_data_fields_round_trip() -> None:
    values = ((7,), 1, 2, 3, 4, 5, 6, 7, "0x" + "01" * 20, "0x" + "02" * 20, "0x" + "03" * 20, "0x" + "04" * 20,
              8, 9, 10)
    rd = decode_reserve_data(GET_RESERVE_DATA.decode(encode([GET_RESERVE_DATA.output_types[0]], [values]))[0])
    assert (rd.configuration, rd.liquidity_index_ray, rd.a_token, rd.isolation_mode_total_debt_raw) == (
        7, 1, "0x" + "01" * 20, 10)


_u128 = abi_values("uint128")
_markets = st.tuples(
    _u128, _u128, _u128, _u128,
    st.one_of(st.integers(0, 2**40), _u128),  # lastUpdate: mostly before the block, sometimes not
    st.one_of(st.integers(0, morpho.MAX_FEE), _u128),  # fee: mostly one the protocol allows, sometimes not
)


@FUZZ
@given(
    values=_markets,
    rate=st.one_of(st.none(), st.integers(0, 10**12), st.integers(0, 2**256 - 1)),
    timestamp=st.integers(0, 2**40),
)
@example(values=(0, 0, 1, 0, 0, 2 * 10**18), rate=10**18, timestamp=1).via(
    "fee 200%: supply - fee amount + 1 was 0 in accrue (ZeroDivisionError) before decode_market checked MAX_FEE")
def test_morpho_accrual_of_any_decoded_market_is_a_market_or_a_decode_error(
    values: tuple[int, ...], rate: int | None, timestamp: int
) -> None:
    totals = decode_or_reject(morpho.decode_market, MARKET.decode(encode(list(MARKET.output_types), list(values))))
    if totals is REJECTED:
        return
    acc = decode_or_reject(morpho.accrue, totals, rate, timestamp)
    if acc is REJECTED:
        return
    for v in (acc.total_supply_assets, acc.total_supply_shares, acc.total_borrow_assets, acc.total_borrow_shares,
              acc.interest, acc.fee_shares):
        assert type(v) is int
        assert 0 <= v <= morpho.UINT128_MAX
    assert acc.total_borrow_assets >= totals.total_borrow_assets
    assert acc.total_supply_shares >= totals.total_supply_shares


def test_morpho_decode_market_refuses_a_fee_above_the_protocols_maximum() -> None:
    """Regression: ``setFee`` caps the fee at 25%; a node answering more made ``accrue`` divide by zero."""
    words = (0, 0, 1, 0, 0, 2 * 10**18)
    with pytest.raises(DecodeError, match="fee"):
        morpho.decode_market(MARKET.decode(encode(list(MARKET.output_types), list(words))))
    assert morpho.decode_market((0, 0, 1, 0, 0, 25 * 10**16)).fee_wad == 25 * 10**16


# --- Chainlink: bytes → FeedRound (a pydantic model) --------------------------------------------------
FEED = "0x" + "5f" * 20


@FUZZ
@given(round_data=return_data(LATEST_ROUND_DATA), decimals=return_data(FEED_DECIMALS))
def test_feed_answers_decode_to_a_valid_round_or_a_decode_error(round_data: bytes, decimals: bytes) -> None:
    calls = plan_feeds([FEED], required=False)
    results = []
    for call, raw in zip(calls, (round_data, decimals), strict=True):
        value = decode_or_reject(call.decode, raw)
        results.append(CallResult(call, True, value, raw) if value is not REJECTED
                       else CallResult(call, False, None, raw, "undecodable", undecodable=True))
    rounds = decode_feeds([FEED], results, BLOCK, required=False)
    if all(r.ok for r in results):
        (feed,) = rounds.values()
        assert feed.answer_raw == results[0].value[1]
        assert 0 <= feed.decimals < 256
        _ = (feed.flags, feed.is_valid, feed.age_s)  # the quality flags compute
        assert type(feed).model_validate(feed.model_dump()) == feed
    else:
        assert rounds == {}


# --- ERC-20 symbol and revert data --------------------------------------------------------------------
@FUZZ
@given(raw=st.one_of(return_data(SYMBOL), return_data(SYMBOL_BYTES32), st.binary(max_size=200)))
def test_symbol_is_a_string_or_a_decode_error(raw: bytes) -> None:
    out = decode_or_reject(decode_symbol, raw)
    assert out is REJECTED or isinstance(out, str)


_ERROR = bytes.fromhex("08c379a0")
_PANIC = bytes.fromhex("4e487b71")


@FUZZ
@given(raw=st.one_of(
    st.binary(max_size=200),
    st.tuples(st.sampled_from([_ERROR, _PANIC]), st.binary(max_size=200)).map(b"".join),
    st.tuples(st.sampled_from([_ERROR, _PANIC]), st.lists(words, max_size=4).map(b"".join)).map(b"".join),
    st.text(max_size=30).map(lambda t: _ERROR + encode(["string"], [t])),
    st.binary(max_size=30).map(lambda b: _ERROR + encode(["bytes"], [b])),  # not UTF-8
))
def test_revert_data_always_has_a_printable_reason(raw: bytes) -> None:
    reason = decode_revert_reason(raw)
    assert reason is None if not raw else isinstance(reason, str)


# --- Multicall3 aggregate3 ----------------------------------------------------------------------------
def _aggregate3(items: Sequence[tuple[bool, bytes]]) -> bytes:
    return encode(["(bool,bytes)[]"], [list(items)])


_results = st.lists(st.tuples(st.booleans(), st.binary(max_size=100)), max_size=6)


@st.composite
def hostile_aggregate3(draw: st.DrawFn) -> bytes:
    """A head, a count and offsets that may point anywhere (overlapping, backwards, past the end)."""
    n = draw(st.integers(0, 12))
    body = draw(st.lists(words, max_size=8))
    total = 64 + 32 * n + 32 * len(body)
    offsets = draw(st.lists(st.one_of(st.integers(0, total), st.sampled_from(_EDGES)), min_size=n, max_size=n))
    count = draw(st.one_of(st.just(n), st.sampled_from(_EDGES)))
    head = draw(st.one_of(st.just(0x20), st.sampled_from(_EDGES), st.integers(0, total)))
    return b"".join([_word(head), _word(count), *map(_word, offsets), *body])


_payloads = st.one_of(st.binary(max_size=40), st.integers(32, 400).map(lambda k: b"\x07" * k))


@st.composite
def shared_aggregate3(draw: st.DrawFn) -> bytes:
    """Well-formed elements, and ``n`` offsets that each point at one of them (possibly the same one)."""
    elements = [_word(int(ok)) + _word(0x40) + _word(len(ret)) + ret + bytes(-len(ret) % 32)
                for ok, ret in draw(st.lists(st.tuples(st.booleans(), _payloads), min_size=1, max_size=3))]
    n = draw(st.integers(1, 12))
    starts = [32 * n + sum(len(e) for e in elements[:i]) for i in range(len(elements))]
    offsets = draw(st.lists(st.sampled_from(starts), min_size=n, max_size=n))
    return b"".join([_word(0x20), _word(n), *map(_word, offsets), *elements])


def _overlapping_aggregate3(n: int, payload: int) -> bytes:
    """``n`` results whose offsets all point at one element holding ``payload`` bytes of return data."""
    elem_at = 32 * n  # relative to the array's first offset word
    element = _word(1) + _word(0x40) + _word(payload) + bytes(payload)
    return b"".join([_word(0x20), _word(n), *([_word(elem_at)] * n), element])


@FUZZ
@given(data=st.one_of(
    _results.map(_aggregate3),
    _results.map(_aggregate3).flatmap(lambda b: st.integers(0, len(b)).map(lambda k: b[:k])),
    st.tuples(_results.map(_aggregate3), st.binary(min_size=1, max_size=64)).map(b"".join),
    hostile_aggregate3(),
    shared_aggregate3(),
    st.lists(words, max_size=12).map(b"".join),
    st.binary(max_size=400),
))
@example(data=_overlapping_aggregate3(200, 4_000)).via(
    "200 results sharing one 4 kB element: 800 kB out of 10 kB in before the fix (quadratic in the answer's size)")
def test_aggregate3_results_decode_or_raise_and_never_outgrow_the_answer(data: bytes) -> None:
    out = decode_or_reject(decode_aggregate3_result, data)
    if out is REJECTED:
        return
    assert all(isinstance(ok, bool) and isinstance(ret, bytes) for ok, ret in out)
    # Solidity encodes each result in its own bytes: the results never hold more than the answer
    assert sum(len(ret) for _, ret in out) <= len(data)


@FUZZ
@given(items=_results, tail=st.binary(max_size=64), cut=st.integers(0, 2000))
def test_valid_aggregate3_results_round_trip(items: list[tuple[bool, bytes]], tail: bytes, cut: int) -> None:
    raw = _aggregate3(items)
    assert decode_aggregate3_result(raw) == items
    assert decode_aggregate3_result(raw + tail) == items
    again = decode_or_reject(decode_aggregate3_result, raw[: min(cut, len(raw))])
    assert again is REJECTED or again == items or cut >= len(raw)


def test_overlapping_aggregate3_results_are_refused() -> None:
    """Regression: offsets that all point at one element made the decoder copy it once per result."""
    raw = _overlapping_aggregate3(2_000, 64_000)  # 128 MB of results from a 128 kB answer
    with pytest.raises(DecodeError, match="overlap"):
        decode_aggregate3_result(raw)


class _StubRpc:
    """Answers every ``eth_call`` of a batch with ``answer``."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def batch(self, requests: Sequence[tuple[str, Sequence[Any]]], *, return_exceptions: bool = False) -> list[Any]:
        return [self.answer for _ in requests]


_CALLS = [Call("0x" + "aa" * 20, MARKET, calldata=MARKET.selector),
          Call("0x" + "bb" * 20, uni.SLOT0, calldata=uni.SLOT0.selector),
          Call("0x" + "cc" * 20, SYMBOL, decoder=decode_symbol)]


def _sub_returns() -> st.SearchStrategy[list[tuple[bool, bytes]]]:
    per_call = [return_data(c.fn) for c in _CALLS]
    return st.tuples(*(st.tuples(st.booleans(), s) for s in per_call)).map(list)


_hex_answers = st.one_of(
    _sub_returns().map(lambda items: "0x" + _aggregate3(items).hex()),
    _sub_returns().map(lambda items: "0x" + _aggregate3(items).hex()[:-1]),  # odd length
    _sub_returns().map(lambda items: "0x" + _aggregate3(items).hex().upper()),
    st.sampled_from(["0x", "0X00", "00", "", "0x0g", "0x 00", "0xzz", "0x-1", "null", "0x١٢"]),
    st.text(max_size=20),
    st.text(alphabet="0123456789abcdefABCDEF", max_size=80).map(lambda t: "0x" + t),
    st.none(), st.integers(), st.booleans(), st.just([]), st.just({}), st.binary(max_size=8),
)


@FUZZ
@given(answer=_hex_answers)
def test_eth_call_answers_decode_per_call_or_raise_a_decode_error(answer: Any) -> None:
    mc = Multicall(cast(Any, _StubRpc(answer)))
    results = decode_or_reject(mc.execute, _CALLS, 100)
    if results is REJECTED:
        return
    assert len(results) == len(_CALLS)
    for res in results:
        if res.ok:
            assert res.value == res.call.decode(res.raw)
        elif res.undecodable:
            with pytest.raises(DecodeError):
                res.call.decode(res.raw)
            with pytest.raises(DecodeError):
                res.unwrap()


@FUZZ
@given(value=_hex_answers)
def test_node_hex_is_bytes_an_int_or_a_decode_error(value: Any) -> None:
    raw = decode_or_reject(hex_to_bytes, value, "eth_call")
    assert raw is REJECTED or isinstance(raw, bytes)
    n = decode_or_reject(hex_to_int, value, "eth_blockNumber")
    assert n is REJECTED or isinstance(n, int)


# ======================================================================================================
# Off-chain JSON payloads
# ======================================================================================================
def _load(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def _meta_with_tables() -> Any:
    """The documented meta (with margin tables) and one context per asset."""
    ctxs = _load("hyperliquid_meta_and_asset_ctxs_docs.json")[1]
    meta = _load("hyperliquid_meta_docs.json")
    return [meta, [*ctxs, ctxs[0]][: len(meta["universe"])]]


SEEDS: dict[str, Any] = {
    "hl.clearinghouseState": _load("hyperliquid_clearinghouse_state_docs.json"),
    "hl.metaAndAssetCtxs": _load("hyperliquid_meta_and_asset_ctxs_docs.json"),
    "hl.meta+tables": _meta_with_tables(),
    "dydx.subaccount.short": _load("dydx_subaccount_btc_short.json"),
    "dydx.subaccount.usdc": _load("dydx_subaccount_docs_usdc_only.json"),
    "dydx.perpetualMarkets": _load("dydx_perpetual_markets_ccxt.json"),
}


def _decode_payload(kind: str, raw: Any) -> BaseModel:
    if kind == "hl.clearinghouseState":
        return decode_clearinghouse_state(raw, HL_WALLET, http_date_ms=1, local_ms=2)
    if kind.startswith("hl.meta"):
        return decode_meta_and_asset_ctxs(raw, 1, "local_clock")
    if kind.startswith("dydx.subaccount"):
        return decode_subaccount(raw, DYDX_ADDRESS, 0, 1, "local_clock")
    return decode_perpetual_markets(raw, 1, "local_clock")


Path_ = tuple[Any, ...]


def _paths(node: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _at(node: Any, path: Path_) -> Any:
    for key in path:
        node = node[key]
    return node


WEIRD_STRINGS = [
    "", " ", "NaN", "nan", "-NaN", "sNaN", "-sNaN", "Infinity", "-Infinity", "inf", "-inf", "Inf",
    "1e999999999", "-1e999999999", "1E+1000000", "-1e1000000", "1e-1000000", "1e-999999999", "9" * 200,
    "0." + "0" * 60 + "1", "1.000000000000000000000000000001", "0x10", "1_000", " 12 ", "١٢", "1e", "--1", "+-1",
    ".5", "5.", "-0", "0E-30", "1e-7", "true", "null", "LONG", "SHORT", "cross", "isolated", "CLOSED", "OPEN",
    "BTC-USD", DYDX_ADDRESS,
]
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 1, 2**53 + 1, 2**63, 2**256, -(2**255), 10**300, 10**400, -(10**400)]),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, -0.0, 0.1, 1e-7, 123.0]),
    st.sampled_from(WEIRD_STRINGS),
    st.text(max_size=8),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
json_values = st.one_of(
    json_scalars,
    st.lists(json_scalars, max_size=3),
    st.dictionaries(st.sampled_from(["", "x", "type", "position", "size", "side"]), json_scalars, max_size=3),
)


@st.composite
def mutated(draw: st.DrawFn, seed: Any) -> Any:
    """The seed with 1–4 mutations: a value replaced (by a number, a string, null, a container…), a key or an
    item removed, a value wrapped in a list or object, a number turned into a string or a string into a number."""
    doc = copy.deepcopy(seed)
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _at(doc, path[:-1]), path[-1]
        op = draw(st.sampled_from(["replace", "replace", "delete", "wrap", "retype"]))
        if op == "delete":
            del parent[key]
        elif op == "wrap":
            parent[key] = draw(st.sampled_from([[parent[key]], {"v": parent[key]}, [], {}]))
        elif op == "retype":
            old = parent[key]
            if isinstance(old, str):
                try:
                    parent[key] = draw(st.sampled_from([float(old), json.loads(old) if old.isdigit() else old]))
                except ValueError:
                    parent[key] = draw(json_scalars)
            elif isinstance(old, int | float) and not isinstance(old, bool):
                as_float = [repr(float(old))] if abs(old) < 1e308 else []
                parent[key] = draw(st.sampled_from([str(old), *as_float, f"{old}e0", [old]]))
            else:
                parent[key] = draw(json_values)
        else:
            parent[key] = draw(json_values)
    return doc


def _decimals_in(value: Any) -> Iterator[Decimal]:
    if isinstance(value, Decimal):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in ("raw", "raw_meta", "raw_ctx"):  # the venue's payload, kept as received
                yield from _decimals_in(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _decimals_in(v)


def _check_model(model: BaseModel) -> None:
    """A decoded model is a valid model: it re-validates to itself, its Decimals are finite, and its derived
    figures compute without raising."""
    assert type(model).model_validate(model.model_dump()) == model
    assert all(d.is_finite() for d in _decimals_in(model.model_dump()))
    for pos in getattr(model, "positions", ()):
        if hasattr(pos, "szi"):  # Hyperliquid
            assert pos.szi != 0
            _ = (pos.mark_px, pos.is_cross)
        else:  # dYdX
            assert (pos.size <= 0) if pos.side == "SHORT" else (pos.size >= 0)
            _ = pos.implied_oracle_usd
    for asset in getattr(model, "asset_positions", ()):
        assert asset.size >= 0
        _ = asset.signed_size
    if hasattr(model, "usdc_usd"):
        _ = model.usdc_usd


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_the_recorded_payloads_decode(kind: str) -> None:
    _check_model(_decode_payload(kind, SEEDS[kind]))


@pytest.mark.parametrize("kind", sorted(SEEDS))
@FUZZ
@given(data=st.data())
def test_mutated_payloads_decode_to_valid_models_or_raise_a_decode_error(kind: str, data: st.DataObject) -> None:
    raw = data.draw(mutated(SEEDS[kind]), label="payload")
    model = decode_or_reject(_decode_payload, kind, raw)
    if model is not REJECTED:
        _check_model(model)


@FUZZ
@given(raw=json_values)
@example(raw=None)
def test_any_json_value_as_a_whole_answer_decodes_or_raises(raw: Any) -> None:
    for kind in SEEDS:
        model = decode_or_reject(_decode_payload, kind, raw)
        if model is not REJECTED:
            _check_model(model)


# --- exactness: valid numbers decode to exactly the Decimal they spell --------------------------------
finite_decimals = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.sampled_from(["1.000000000000000000000000000001", "0.12345678901234567890123456789", "1e-30", "7E+20",
                     "123456789012345678901234567890.5",
                     "1E+400", "-2.5E-330", "1E+1000000", "-1E-1000000"]).map(Decimal),  # beyond a float64
)


def _fits(d: Decimal) -> bool:
    """Whether a float64 holds the magnitude (the decoders refuse the rest)."""
    f = float(d)
    return math.isfinite(f) and (f != 0.0 or d == 0)


def _respell(d: Decimal) -> st.SearchStrategy[str]:
    """Spellings of the same number: plain, scientific, with a plus sign, with trailing zeros."""
    sign, digits, exp = d.as_tuple()
    mant = "".join(map(str, digits))
    sci = f"{'-' if sign else ''}{mant}E{exp}" if isinstance(exp, int) else str(d)
    plain = str(d)
    padded = f"{plain}0" if "." in plain and "E" not in plain.upper() else plain
    return st.sampled_from([plain, sci, ("+" if not sign else "") + plain, padded])


@FUZZ
@given(szi=finite_decimals, entry=finite_decimals, value=finite_decimals, account=finite_decimals, data=st.data())
@example(szi=Decimal("1.000000000000000000000000000001"), entry=Decimal(1), value=Decimal(1), account=Decimal(0),
         data=None)
@example(szi=Decimal("1E+1000000"), entry=Decimal(1), value=Decimal(1), account=Decimal(0), data=None).via(
    "decoded, then mark_px (positionValue / |szi|) raised decimal.Overflow: now out of range, a DecodeError")
@example(szi=Decimal("1E-400"), entry=Decimal(1), value=Decimal(1), account=Decimal(0), data=None)
def test_hyperliquid_numbers_decode_exactly(
    szi: Decimal, entry: Decimal, value: Decimal, account: Decimal, data: st.DataObject | None
) -> None:
    raw = copy.deepcopy(SEEDS["hl.clearinghouseState"])
    pos = raw["assetPositions"][0]["position"]

    def spell(d: Decimal) -> str:
        return str(d) if data is None else data.draw(_respell(d))

    pos["szi"], pos["entryPx"], pos["positionValue"] = spell(szi), spell(entry), spell(value)
    raw["marginSummary"]["accountValue"] = spell(account)
    acct = decode_or_reject(_decode_payload, "hl.clearinghouseState", raw)
    assert (acct is REJECTED) == (not all(_fits(d) for d in (szi, entry, value, account)))
    if acct is REJECTED:
        return
    if szi == 0:  # a closed position is dropped
        assert acct.positions == ()
        return
    (p,) = acct.positions
    assert (p.szi, p.entry_px, p.position_value_usd) == (szi, entry, value)
    assert acct.margin_summary.account_value_usd == account
    _check_model(acct)


@FUZZ
@given(size=finite_decimals, side=st.sampled_from(["LONG", "SHORT"]), usdc=finite_decimals,
       usdc_side=st.sampled_from(["LONG", "SHORT"]), data=st.data())
@example(size=Decimal("0.12345678901234567890123456789"), side="SHORT", usdc=Decimal(1), usdc_side="LONG",
         data=None).via("a SHORT's unsigned size was negated in the default context: rounded to 28 digits")
@example(size=Decimal("1E+1000000"), side="SHORT", usdc=Decimal(1), usdc_side="LONG", data=None).via(
    "negating it raised decimal.Overflow (an ArithmeticError, not a ValueError: it aborted the whole sync)")
@example(size=Decimal(1), side="LONG", usdc=Decimal("-1E+1000000"), usdc_side="SHORT", data=None)
def test_dydx_sizes_decode_exactly_with_the_sign_of_their_side(
    size: Decimal, side: str, usdc: Decimal, usdc_side: str, data: st.DataObject | None
) -> None:
    raw = copy.deepcopy(SEEDS["dydx.subaccount.short"])
    sub = raw["subaccount"]

    def spell(d: Decimal) -> str:
        return str(d) if data is None else data.draw(_respell(d))

    size_text = spell(size)
    sub["openPerpetualPositions"]["BTC-USD"].update(side=side, size=size_text)
    sub["assetPositions"]["USDC"].update(side=usdc_side, size=spell(usdc))
    out = decode_or_reject(_decode_payload, "dydx.subaccount.short", raw)
    long_negative = (side == "LONG" and size < 0) or (usdc_side == "LONG" and usdc < 0)
    assert (out is REJECTED) == (long_negative or not (_fits(size) and _fits(usdc)))
    if out is REJECTED:
        return
    (pos,) = out.positions
    # (``abs`` and unary minus round to the context's precision: compare with the exact copies)
    assert pos.size == (size.copy_abs().copy_negate() if side == "SHORT" else size)
    assert pos.size.as_tuple().digits == Decimal(size_text).as_tuple().digits  # not one digit rounded away
    (asset,) = out.asset_positions
    assert asset.size == usdc.copy_abs()
    _check_model(out)


INTEGER_FIELDS = frozenset({"time", "subaccountNumber", "createdAtHeight", "updatedAtHeight",
                            "latestProcessedBlockHeight", "maxLeverage", "szDecimals", "value", "marginTableId"})
"""The fields read with ``json_int`` (a JSON integer or an integer string); the others' strings are ids or text."""


@pytest.mark.parametrize("kind", sorted(SEEDS))
@FUZZ_FEW
@given(data=st.data())
def test_respelled_payloads_decode_to_the_same_values(kind: str, data: st.DataObject) -> None:
    """Every decimal string of a recorded payload spelled another way, and every integer field as a JSON number
    or an integer string, decodes to the same model."""
    seed = SEEDS[kind]
    doc = copy.deepcopy(seed)
    for path in list(_paths(doc)):
        parent, key = _at(doc, path[:-1]), path[-1]
        v = parent[key]
        if key in INTEGER_FIELDS and isinstance(v, int | str) and not isinstance(v, bool):
            parent[key] = data.draw(st.sampled_from([int(v), str(v)]))
        elif isinstance(v, str) and "." in v and v.lstrip("-").replace(".", "", 1).isdigit():
            parent[key] = data.draw(_respell(Decimal(v)))
    before, after = _decode_payload(kind, seed), _decode_payload(kind, doc)
    assert _strip_raw(before.model_dump()) == _strip_raw(after.model_dump())


def _strip_raw(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_raw(v) for k, v in value.items() if k not in ("raw", "raw_meta", "raw_ctx")}
    if isinstance(value, list | tuple):
        return [_strip_raw(v) for v in value]
    return value


# --- the JSON field readers themselves ----------------------------------------------------------------
@FUZZ
@given(value=json_values)
def test_json_field_readers_return_their_type_or_raise_a_decode_error(value: Any) -> None:
    d = decode_or_reject(json_decimal, {"k": value}, "k", "x")
    assert d is REJECTED or (isinstance(d, Decimal) and d.is_finite())
    n = decode_or_reject(json_int, {"k": value}, "k", "x")
    assert n is REJECTED or (type(n) is int)


@FUZZ
@given(value=st.one_of(st.none(), st.text(max_size=40), st.sampled_from([
    "Tue, 15 Nov 1994 08:12:31 GMT", "Tue, 15 Nov 99999 08:12:31 GMT", "Tue, 15 Nov 1994 08:12:31", "Mon, 32 Jan",
    "Fri, 31 Dec 9999 23:59:59 GMT", "Sat, 01 Jan 0001 00:00:00 GMT", "Sat, 01 Jan 0001 00:00:00 +2359"])))
def test_http_date_is_milliseconds_or_none(value: str | None) -> None:
    out = http_date_ms(value)
    assert out is None or type(out) is int
