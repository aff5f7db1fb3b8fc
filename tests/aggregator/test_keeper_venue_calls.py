"""Each venue's keeper part builds the venue's own calls: its calldata is the eth-abi encoding of the venue's
function, its health reads decode back to the protocol's health, and a venue without actions refuses to act.

The encodings are checked against eth-abi directly (not against the product's own :class:`~connectors.evm.abi.Fn`),
for random amounts and addresses.
"""

from __future__ import annotations

import random
import types
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_hash.auto import keccak

from aggregator.keeper.plugin import ActionSpec, ActionTarget, NoActions, PlannedVenue, venue_keeper
from aggregator.keeper.txs import MAX_UINT256, action_call, build_calls
from aggregator.venues.morpho_blue import MorphoBlueConfig
from aggregator.venues.plugin import ChainLink
from connectors.evm import erc20
from connectors.morpho_blue.calls import MarketParams
from connectors.registry import VENUES, capabilities
from connectors.types import checksum
from riskcore.venues.morpho_blue.health import health_factor_raw

MARKET_TYPES = "(address,address,address,address,uint256)"
SEEDS = range(5)


def selector(signature: str) -> bytes:
    return bytes(keccak(signature.encode()))[:4]


def abi(signature: str, *args: Any) -> bytes:
    """``signature``'s calldata as eth-abi encodes it."""
    types_ = signature[signature.index("(") + 1 : -1]
    depth, parts, start = 0, [], 0
    for i, ch in enumerate(types_):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(types_[start:i])
            start = i + 1
    parts.append(types_[start:])
    return selector(signature) + encode(parts, list(args))


def address(rng: random.Random) -> str:
    return checksum("0x" + rng.randbytes(20).hex())


def amount(rng: random.Random) -> int:
    return rng.choice([1, rng.randrange(1, 10**30), rng.randrange(1, 2**256), MAX_UINT256])


def test_the_abi_helper_splits_tuples() -> None:
    assert abi(f"f({MARKET_TYPES},uint256)", ("0x" + "11" * 20,) * 4 + (5,), 7)[4:] == encode(
        [MARKET_TYPES, "uint256"], [("0x" + "11" * 20,) * 4 + (5,), 7]
    )


# ------------------------------------------------------------------------------------------------ aave v3
@pytest.mark.parametrize("seed", SEEDS)
def test_aave_calldata_is_the_pools_abi_encoding(seed: int) -> None:
    rng = random.Random(seed)
    keeper = venue_keeper("aave_v3")
    wallet, token, pool, value = address(rng), address(rng), address(rng), amount(rng)
    mode = rng.choice([1, 2])

    def spec(kind: Any) -> ActionSpec:
        return ActionSpec(kind, "aave_v3", "Aave v3", wallet, token, "TOK", 18, value, pool, interest_rate_mode=mode)

    expected = {
        "repay": abi("repay(address,uint256,uint256,address)", token, value, mode, wallet),
        "supply": abi("supply(address,uint256,address,uint16)", token, value, wallet, 0),
        "withdraw": abi("withdraw(address,uint256,address)", token, value, wallet),
    }
    for kind, data in expected.items():
        assert keeper.call(spec(kind)).data == data
        call = action_call(spec(kind))
        assert (call.to, call.data, call.value) == (pool, "0x" + data.hex(), 0)
    assert keeper.spender_name(spec("repay")) == "Aave v3 Pool"


def test_aave_health_reads_are_the_pools_account_data() -> None:
    keeper = venue_keeper("aave_v3")
    wallet, pool = checksum("0x" + "11" * 20), checksum("0x" + "22" * 20)
    planned = PlannedVenue(venue="aave", protocol="aave_v3", market_key=None)
    reads = keeper.health_reads(planned, ActionTarget(to=pool), wallet)
    assert [(r.to, r.data) for r in reads.reads] == [(pool, abi("getUserAccountData(address)", wallet))]
    answer = encode(["uint256"] * 6, [10, 5, 0, 8_000, 7_500, 1_234_500_000_000_000_000])
    assert reads.health([answer]) == 1.2345
    no_debt = encode(["uint256"] * 6, [10, 0, 0, 8_000, 7_500, 2**256 - 1])
    assert reads.health([no_debt]) is None


# -------------------------------------------------------------------------------------------- morpho blue
@pytest.mark.parametrize("seed", SEEDS)
def test_morpho_calldata_is_the_contracts_abi_encoding(seed: int) -> None:
    rng = random.Random(seed)
    keeper = venue_keeper("morpho_blue")
    wallet, morpho, value = address(rng), address(rng), amount(rng)
    market = MarketParams(address(rng), address(rng), address(rng), address(rng), rng.randrange(0, 10**18))
    params = market.as_tuple()

    def spec(kind: Any, token: str) -> ActionSpec:
        return ActionSpec(kind, "morpho_blue", "Morpho Blue", wallet, token, "TOK", 6, value, morpho, market)

    cases = {
        ("repay", market.loan_token): abi(f"repay({MARKET_TYPES},uint256,uint256,address,bytes)", params, value, 0,
                                          wallet, b""),
        ("supply", market.collateral_token): abi(f"supplyCollateral({MARKET_TYPES},uint256,address,bytes)", params,
                                                 value, wallet, b""),
        ("withdraw", market.collateral_token): abi(f"withdrawCollateral({MARKET_TYPES},uint256,address,address)",
                                                   params, value, wallet, wallet),
    }
    for (kind, token), data in cases.items():
        assert keeper.call(spec(kind, token)).data == data
        call = action_call(spec(kind, token))
        assert (call.to, call.data) == (morpho, "0x" + data.hex())
    assert keeper.spender_name(spec("repay", market.loan_token)) == "Morpho Blue"


def test_morpho_health_reads_give_the_protocols_health() -> None:
    keeper = venue_keeper("morpho_blue")
    wallet, morpho, oracle = (checksum("0x" + b * 20) for b in ("11", "22", "33"))
    market = MarketParams(checksum("0x" + "44" * 20), checksum("0x" + "55" * 20), oracle,
                          checksum("0x" + "66" * 20), 86 * 10**16)
    market_id = "0x" + "ab" * 32
    planned = PlannedVenue(venue="morpho", protocol="morpho_blue", market_key=market_id)
    reads = keeper.health_reads(planned, ActionTarget(to=morpho, market=market), wallet)
    ident = bytes.fromhex("ab" * 32)
    assert [(r.to, r.data) for r in reads.reads] == [
        (morpho, abi("position(bytes32,address)", ident, wallet)),
        (morpho, abi("market(bytes32)", ident)),
        (oracle, selector("price()")),
    ]
    totals = [10**12, 10**18, 6 * 10**11, 5 * 10**17, 1_700_000_000, 0]
    price = 4_000 * 10**36 * 10**6 // 10**18
    answers = [encode(["uint256", "uint128", "uint128"], [0, 10**15, 2 * 10**18]),
               encode(["uint128"] * 6, totals), encode(["uint256"], [price])]
    expected = float(health_factor_raw(2 * 10**18, 10**15, totals[2], totals[3], price, market.lltv_wad))
    assert reads.health(answers) == expected
    assert 1 < expected < 10
    answers[0] = encode(["uint256", "uint128", "uint128"], [0, 0, 2 * 10**18])
    assert reads.health(answers) is None


def test_morpho_target_reads_the_markets_params() -> None:
    morpho = checksum("0x" + "22" * 20)
    market = MarketParams(*(checksum("0x" + b * 20) for b in ("44", "55", "33", "66")), 86 * 10**16)
    seen: list[tuple[str, bytes, str]] = []

    def eth_call(to: str, data: bytes, block: str) -> bytes:
        seen.append((to, data, block))
        return encode(["address"] * 4 + ["uint256"], list(market.as_tuple()))

    link = ChainLink(chain=None, rpc=types.SimpleNamespace(eth_call=eth_call), multicall=None)  # type: ignore[arg-type]
    cfg = MorphoBlueConfig(name="m", type="morpho_blue", chain="c", morpho=morpho)
    planned = PlannedVenue(venue="m", protocol="morpho_blue", market_key="0x" + "ab" * 32)
    target = venue_keeper("morpho_blue").target(cfg, planned, link)
    assert target == ActionTarget(to=morpho, market=market)
    assert seen == [(morpho, abi("idToMarketParams(bytes32)", bytes.fromhex("ab" * 32)), "latest")]


def test_a_morpho_action_needs_a_morpho_market() -> None:
    spec = ActionSpec("repay", "morpho_blue", "m", "0x" + "11" * 20, "0x" + "44" * 20, "T", 6, 1, "0x" + "22" * 20,
                      market=("not", "params"))
    with pytest.raises(ValueError, match="not a Morpho Blue MarketParams"):
        action_call(spec)


# ------------------------------------------------------------------------------------------------- erc-20
@pytest.mark.parametrize("seed", SEEDS)
def test_erc20_calldata_is_the_abi_encoding(seed: int) -> None:
    rng = random.Random(seed)
    owner, spender, value = address(rng), address(rng), amount(rng)
    assert erc20.approve_call(spender, value) == abi("approve(address,uint256)", spender, value)
    assert erc20.allowance_call(owner, spender) == abi("allowance(address,address)", owner, spender)
    assert erc20.balance_of_call(owner) == abi("balanceOf(address)", owner)
    assert erc20.allowance_answer(encode(["uint256"], [value])) == value
    assert erc20.balance_of_answer(encode(["uint256"], [value])) == value


# ------------------------------------------------------------------------------------ venues without actions
@pytest.mark.parametrize("venue", [v for v in VENUES if not capabilities(v).actions])
def test_a_venue_without_actions_is_never_acted_on(venue: str) -> None:
    keeper = venue_keeper(venue)
    assert isinstance(keeper, NoActions)
    spec = ActionSpec("repay", venue, "v", "0x" + "11" * 20, "0x" + "44" * 20, "T", 6, 1, "0x" + "22" * 20)
    with pytest.raises(ValueError, match=f"{venue} declares no repay action"):
        action_call(spec)
    with pytest.raises(ValueError, match="declares no actions"):
        keeper.validate(spec)
    planned = PlannedVenue(venue="v", protocol=venue, market_key=None)
    with pytest.raises(ValueError, match="cannot execute"):
        keeper.health_reads(planned, ActionTarget(to="0x" + "22" * 20), "0x" + "11" * 20)


def test_an_unregistered_protocol_is_refused() -> None:
    spec = ActionSpec("supply", "compound_v3", "c", "0x" + "11" * 20, "0x" + "44" * 20, "T", 6, 1, "0x" + "22" * 20)
    with pytest.raises(ValueError, match="unknown protocol 'compound_v3'"):
        build_calls([spec], {})
