"""The Morpho Blue connector end to end against a scripted node (no chain): plan, pinning, decoding, accrual, errors."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.errors import CallRevertedError, DecodeError, InvalidAddressError, InvalidInputError
from connectors.evm.multicall import Multicall
from connectors.evm.program import run_programs
from connectors.evm.rpc import RpcClient
from connectors.morpho_blue import connector as c
from connectors.morpho_blue.connector import MorphoBlueConnector
from connectors.morpho_blue.decode import market_id
from connectors.morpho_blue.deployments import MorphoDeployment
from connectors.types import checksum

CHAIN_ID = 31337  # the fake node's (conftest.FakeNode)
HEAD = 1000
HEAD_TIMESTAMP = 1_700_000_000
WAD = 10**18
ZERO = "0x" + "00" * 20


def addr(tag: int) -> str:
    return checksum("0x" + f"{tag:040x}")


MORPHO, ORACLE_A, ORACLE_B, IRM, USDC, WETH, MOCK, DAI = (addr(0xB0 + i) for i in range(8))
W1, W2, W3 = (addr(0x1000 + i) for i in range(3))

# Market A: USDC loan (6 dec) / WETH collateral (18), LLTV 86%, an IRM, fee 10%, last touched 1e6 s before head.
PARAMS_A = (USDC, WETH, ORACLE_A, IRM, 86 * 10**16)
TOTALS_A = [4 * WAD, 4 * WAD * 10**6, 2 * WAD, 2 * WAD * 10**6, HEAD_TIMESTAMP - 1_000_000, 10**17]
RATE_A = 10**9  # per second
PRICE_A = 2_000 * 10**6 * 10**36 // 10**18  # $2,000 per WETH in USDC raw units per WETH raw unit × 1e36
# Market B: DAI loan / a token without decimals() and symbol(), no IRM, LLTV 94.5%.
PARAMS_B = (DAI, MOCK, ORACLE_B, ZERO, 945 * 10**15)
TOTALS_B = [10**21, 10**27, 5 * 10**20, 5 * 10**26 + 3, HEAD_TIMESTAMP - 50, 0]
PRICE_B = 10**36
ID_A, ID_B = market_id(*PARAMS_A), market_id(*PARAMS_B)

# wallet -> market id -> (supplyShares, borrowShares, collateral)
POSITIONS: dict[str, dict[str, tuple[int, int, int]]] = {
    W1: {ID_A: (0, 10**12 + 1, 10**18), ID_B: (7 * 10**6 - 1, 0, 0)},
    W2: {ID_B: (0, 3, 5)},
}


def install_morpho(node: Any, *, totals_a: list[int] | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {
        "totals": {ID_A: totals_a or TOTALS_A, ID_B: TOTALS_B},
        "params": {ID_A: PARAMS_A, ID_B: PARAMS_B},
        "rate_calls": [],
    }
    node.on(MORPHO, c.MARKET, lambda i: tuple(state["totals"].get("0x" + i.hex(), [0] * 6)))
    node.on(MORPHO, c.ID_TO_MARKET_PARAMS, lambda i: state["params"].get("0x" + i.hex(), (ZERO, ZERO, ZERO, ZERO, 0)))
    node.on(
        MORPHO,
        c.POSITION,
        lambda i, w: POSITIONS.get(checksum(w), {}).get("0x" + i.hex(), (0, 0, 0)),
    )
    node.constant(ORACLE_A, c.PRICE, PRICE_A)
    node.constant(ORACLE_B, c.PRICE, PRICE_B)

    def rate(params: Any, market: Any) -> tuple[int]:
        state["rate_calls"].append((params, market))
        return (RATE_A,)

    node.on(IRM, c.BORROW_RATE_VIEW, rate)
    for token, sym, dec in ((USDC, "USDC", 6), (WETH, "WETH", 18), (DAI, "DAI", 18)):
        node.constant(token, c.SYMBOL, sym)
        node.constant(token, c.DECIMALS, dec)
    return state


DEPLOYMENT = MorphoDeployment(name="fake", chain_id=CHAIN_ID, morpho=MORPHO, markets=(ID_A, ID_B))


@pytest.fixture
def morpho(node: Any) -> dict[str, Any]:
    return install_morpho(node)


def expected_accrual_a() -> tuple[int, int, int]:
    """Hand-worked ``_accrueInterest`` of market A: rate 1e9/s over 1e6 s, 2 borrowed of 4 supplied, fee 10%."""
    first = 10**15  # 1e9 × 1e6
    second = 5 * 10**11  # first² / 2e18
    third = 166_666_666  # second × first / 3e18 = 166,666,666.67 → 166,666,666
    growth = first + second + third
    assert growth == 1_000_500_166_666_666
    interest = 2 * WAD * growth // WAD
    assert interest == 2_001_000_333_333_332
    fee_amount = interest // 10  # wMulDown(interest, 0.1e18)
    supply = 4 * WAD + interest
    fee_shares = fee_amount * (4 * WAD * 10**6 + 10**6) // (supply - fee_amount + 1)
    return interest, fee_amount, fee_shares


def test_read_accounts_full_snapshot(rpc: RpcClient, node: Any, morpho: dict[str, Any]) -> None:
    conn = MorphoBlueConnector(rpc, DEPLOYMENT)
    snap = conn.read_accounts([W1, W2.lower(), W3, W1])
    assert snap.block.number == HEAD
    assert set(node.call_blocks) == {hex(HEAD)}
    assert snap.morpho == MORPHO
    a, b = snap.markets
    assert (a.market_id, b.market_id) == (ID_A, ID_B)
    assert (a.loan_token, a.collateral_token, a.oracle, a.irm, a.lltv_wad) == PARAMS_A
    assert (a.loan_symbol, a.loan_decimals, a.collateral_symbol, a.collateral_decimals) == ("USDC", 6, "WETH", 18)
    assert (b.collateral_symbol, b.collateral_decimals) == ("", None)
    assert b.price is None
    assert a.price == pytest.approx(2_000.0)
    assert [a.total_supply_assets_raw, a.total_supply_shares, a.total_borrow_assets_raw, a.total_borrow_shares,
            a.last_update, a.fee_wad] == TOTALS_A
    assert (a.price_raw, b.price_raw) == (PRICE_A, PRICE_B)
    # accrual of A to the head's timestamp, with the IRM's rate for the stored market
    interest, _, fee_shares = expected_accrual_a()
    assert (a.borrow_rate_wad, a.accrued_to, a.pending_interest_raw) == (RATE_A, HEAD_TIMESTAMP, interest)
    assert a.accrued_total_borrow_assets_raw == 2 * WAD + interest
    assert a.accrued_total_supply_assets_raw == 4 * WAD + interest
    assert a.accrued_total_supply_shares == 4 * WAD * 10**6 + fee_shares
    assert a.accrued_total_borrow_shares == a.total_borrow_shares
    ((params, market),) = morpho["rate_calls"]
    assert tuple(checksum(x) if isinstance(x, str) else x for x in params) == PARAMS_A
    assert list(market) == TOTALS_A
    # B has no IRM: no call, nothing accrues, totals unchanged
    assert b.borrow_rate_wad is None
    assert (b.accrued_total_borrow_assets_raw, b.pending_interest_raw) == (TOTALS_B[2], 0)
    # accounts: de-duplicated, order kept, one position per watched market
    assert [x.wallet for x in snap.accounts] == [W1, W2, W3]
    p1a, p1b = snap.accounts[0].positions
    assert (p1a.market_id, p1a.supply_shares, p1a.borrow_shares, p1a.collateral_raw) == (ID_A, 0, 10**12 + 1, 10**18)
    # toAssetsUp on the accrued totals: (1e12 + 1) × (2e18 + interest + 1) / (2e24 + 1e6), rounded up
    num, den = (10**12 + 1) * (2 * WAD + interest + 1), 2 * WAD * 10**6 + 10**6
    assert p1a.borrow_assets_raw == -(-num // den)
    assert p1b.supply_assets_raw == (7 * 10**6 - 1) * (10**21 + 1) // (10**27 + 10**6)  # toAssetsDown
    assert p1b.supply_assets_raw == 6  # 6.999999… rounds down
    (w2a, w2b) = snap.accounts[1].positions
    assert w2a.is_empty
    assert (w2b.borrow_shares, w2b.collateral_raw, w2b.borrow_assets_raw) == (3, 5, 1)  # 3 shares round up to 1
    assert snap.accounts[1].open_positions == (w2b,)
    assert snap.account(W2.lower()) is snap.accounts[1]
    assert snap.market(ID_A.upper().replace("0X", "0x")) is a


def test_an_unused_wallet_has_a_position_of_zeros_in_every_market(rpc: RpcClient, morpho: dict[str, Any]) -> None:
    snap = MorphoBlueConnector(rpc, DEPLOYMENT).read_accounts([W3])
    (acct,) = snap.accounts
    assert [(p.market_id, p.supply_shares, p.borrow_shares, p.collateral_raw, p.supply_assets_raw,
             p.borrow_assets_raw) for p in acct.positions] == [(ID_A, 0, 0, 0, 0, 0), (ID_B, 0, 0, 0, 0, 0)]
    assert acct.open_positions == ()


def test_read_plan_costs_two_round_trips_at_any_wallet_count(rpc: RpcClient, node: Any, morpho: dict[str, Any]) -> None:
    conn = MorphoBlueConnector(rpc, DEPLOYMENT)
    conn.read_accounts([W1])
    # chainId, getBlock, round 1, round 2
    assert node.http_requests == 4
    assert rpc.stats.calls_by_method == {"eth_chainId": 1, "eth_getBlockByNumber": 1, "eth_call": 2}
    # round 1: 2 markets + 2 params + 2 positions; round 2: 2 prices + 1 rate + 4 tokens × (decimals, symbol)
    assert node.aggregate_sizes == [6, 11]
    wallets = [addr(0x5000 + i) for i in range(50)]
    before = node.http_requests
    conn.read_accounts(wallets, block=HEAD - 1)
    # getBlock + 2 rounds; params, symbols and decimals cached: round 1 = 2 + 2×50, round 2 = 2 prices + 1 rate
    assert node.http_requests - before == 3
    assert node.aggregate_sizes[-2:] == [102, 3]
    assert node.call_blocks[-1] == hex(HEAD - 1)


def test_program_runs_with_other_venues_in_shared_round_trips(
    rpc: RpcClient, node: Any, morpho: dict[str, Any]
) -> None:
    conn = MorphoBlueConnector(rpc, DEPLOYMENT)
    other = MorphoBlueConnector(rpc, MorphoDeployment(name="only-b", chain_id=CHAIN_ID, morpho=MORPHO, markets=(ID_B,)))
    block = rpc.get_block("latest")
    before = node.http_requests
    out = run_programs(Multicall(rpc), {"a": conn.program([W1], block), "b": other.program([W2], block)}, block)
    assert node.http_requests - before == 2
    assert out["a"].accounts[0].positions[0].borrow_shares == 10**12 + 1
    assert out["b"].accounts[0].positions[0].collateral_raw == 5


def test_read_markets_alone(rpc: RpcClient, morpho: dict[str, Any]) -> None:
    markets = MorphoBlueConnector(rpc, DEPLOYMENT).read_markets(HEAD)
    assert [m.market_id for m in markets] == [ID_A, ID_B]


def test_no_elapsed_time_no_accrual(rpc: RpcClient, node: Any) -> None:
    install_morpho(node, totals_a=[*TOTALS_A[:4], HEAD_TIMESTAMP, TOTALS_A[5]])
    (a, _) = MorphoBlueConnector(rpc, DEPLOYMENT).read_markets()
    assert a.borrow_rate_wad == RATE_A
    assert (a.pending_interest_raw, a.accrued_total_borrow_assets_raw) == (0, TOTALS_A[2])


def test_a_reverting_market_call_is_named(rpc: RpcClient, node: Any, morpho: dict[str, Any]) -> None:
    def boom(_: bytes) -> Any:
        raise node.Revert(node.error_string("paused"))

    node.on(MORPHO, c.MARKET, boom)
    with pytest.raises(CallRevertedError) as info:
        MorphoBlueConnector(rpc, DEPLOYMENT).read_accounts([W1])
    assert "market(bytes32)" in str(info.value)
    assert MORPHO in str(info.value)
    assert "paused" in str(info.value)


def test_a_reverting_oracle_and_irm_are_named(rpc: RpcClient, node: Any, morpho: dict[str, Any]) -> None:
    def boom(*_: Any) -> Any:
        raise node.Revert(b"")

    node.on(ORACLE_A, c.PRICE, boom)
    with pytest.raises(CallRevertedError, match=rf"price\(\) on {ORACLE_A}"):
        MorphoBlueConnector(rpc, DEPLOYMENT).read_accounts([W1])
    node.constant(ORACLE_A, c.PRICE, PRICE_A)
    node.on(IRM, c.BORROW_RATE_VIEW, boom)
    with pytest.raises(CallRevertedError, match=r"borrowRateView\(\(address"):
        MorphoBlueConnector(rpc, DEPLOYMENT).read_accounts([W1])


def test_a_market_not_created_is_a_clear_error(rpc: RpcClient, morpho: dict[str, Any]) -> None:
    ghost = "0x" + "ab" * 32
    dep = MorphoDeployment(name="fake", chain_id=CHAIN_ID, morpho=MORPHO, markets=(ID_A, ghost))
    with pytest.raises(InvalidInputError, match=f"market {ghost} is not created"):
        MorphoBlueConnector(rpc, dep).read_accounts([W1])


def test_params_that_do_not_hash_to_the_id_are_refused(rpc: RpcClient, morpho: dict[str, Any]) -> None:
    morpho["params"][ID_A] = (USDC, WETH, ORACLE_A, IRM, 85 * 10**16)
    with pytest.raises(DecodeError, match="hashes to"):
        MorphoBlueConnector(rpc, DEPLOYMENT).read_accounts([W1])


def test_no_contract_at_the_morpho_address(rpc: RpcClient, morpho: dict[str, Any]) -> None:
    dep = MorphoDeployment(name="fake", chain_id=CHAIN_ID, morpho=addr(0xDEAD), markets=(ID_A,))
    with pytest.raises(DecodeError, match="returned no data"):
        MorphoBlueConnector(rpc, dep).read_accounts([W1])


def test_invalid_wallet_fails_before_any_io(rpc: RpcClient, node: Any, morpho: dict[str, Any]) -> None:
    conn = MorphoBlueConnector(rpc, DEPLOYMENT)
    with pytest.raises(InvalidAddressError):
        conn.read_accounts([W1, "0x1234"])
    with pytest.raises(InvalidAddressError):
        conn.read_accounts([W1, "0xbBBBBbbBBb9cC5e90e3b3Af64bdAF62C37EEFFCb"])  # one letter's case flipped
    with pytest.raises(InvalidInputError):
        conn.read_accounts(W1)
    with pytest.raises(InvalidInputError):
        conn.program(W1, rpc.get_block("latest"))
    assert node.rpc_calls.count("eth_call") == 0


def test_wrong_chain_is_refused(rpc: RpcClient, morpho: dict[str, Any]) -> None:
    conn = MorphoBlueConnector(rpc, MorphoDeployment(name="main", chain_id=1, morpho=MORPHO, markets=(ID_A,)))
    with pytest.raises(InvalidInputError, match="chain 1"):
        conn.read_accounts([W1])


def test_capabilities() -> None:
    caps = MorphoBlueConnector.capabilities
    assert (caps.venue_type, caps.kind, caps.transport) == ("morpho_blue", "lending", "evm")
    assert caps.block_pinned
    assert caps.batch_wallets
    assert not caps.reports_own_health
