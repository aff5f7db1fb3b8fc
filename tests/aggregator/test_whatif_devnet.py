"""What-if against the chain: the what-if computed from the stored snapshots equals what the protocols themselves
report after the same change is made for real on the devnet.

For each case the chain is snapshotted (``evm_snapshot``), the what-if's prices are set with the devnet's price
setter (feed, Morpho oracles, Uniswap pools, the local perp API's marks) and its changes are sent as real
transactions from the wallet (anvil auto-impersonates it), in the same order; then the protocols are read and the
chain reverted:

* Aave: ``Pool.getUserAccountData`` — health factor, total collateral and total debt equal to the last unit;
* Morpho Blue: ``position`` / ``market`` / the oracle's ``price()`` after ``accrueInterest`` — the health (same
  roundings, ``devnet.morpho.health_factor_wad``) equal to the last unit, so the healthy verdict is equal;
* the perps: the local perp API's own figures (Hyperliquid ``accountValue``, ``crossMaintenanceMarginUsed``,
  ``liquidationPx``; dYdX ``equity``) within the venues' printed precision;
* an action the what-if says the protocol would refuse reverts on the chain, at the same step, and one it accepts
  does not.

Time: interest accrues with block time, between the snapshot's block and the block a change lands in. The devnet's
clock is frozen for the module — ``anvil_setBlockTimestampInterval(0)`` (anvil accepts a block whose timestamp
equals its parent's) — before the sync, so every transaction of a case lands in a block with the sync block's
timestamp: Aave's indexes and Morpho's accrued totals are then those the sync read, and the what-if (which replays
at the snapshot's timestamp) can be compared exactly. The alternative, computing the what-if at the landing block's
timestamp, would need each reserve's rates and Morpho's IRM answer at that time, which the sync does not store.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

import devnet
from aggregator.devnet_cli import devnet_settings
from aggregator.pipeline import sync_once
from aggregator.whatif import Change, Scenario, whatif
from connectors.dydx_v4.connector import DydxConnector
from connectors.hyperliquid.connector import HyperliquidConnector
from db.rows import PositionSide
from db.store import Store
from devnet import aave, morpho
from devnet.evm import RevertedError, rpc, transact
from devnet.perp_api import dydx_address
from devnet.perp_api import set_mark as set_perp_mark

pytestmark = pytest.mark.chain

HEDGED = devnet.wallet_address("hedged")
WALLETS = {label: devnet.wallet_address(label) for label in ("hedged", "emode", "multi", "safe")}
SEED = 20_260_112
CASES = 30
PERP_MARKS = {"ETH": 4_000}
"""The perp API's seeded marks of the coins the cases move (its state is not in the chain's snapshot)."""


@dataclass
class Synced:
    info: devnet.DevnetInfo
    store: Store
    block: int
    timestamp: int


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory, seeded_devnet: devnet.DevnetInfo) -> Iterator[Synced]:
    info = seeded_devnet
    rpc(info, "anvil_setBlockTimestampInterval", [0])  # from here on, every block keeps this timestamp
    devnet.mine(info)
    db = tmp_path_factory.mktemp("whatif") / "x.db"
    with Store.open(f"sqlite:///{db}") as store:
        store.add_wallets([(address, label) for label, address in WALLETS.items()])
        report = sync_once(devnet_settings(info), store)
        assert report.ok, [b.error for b in report.batches]
        block = rpc(info, "eth_getBlockByNumber", ["latest", False])
        yield Synced(info, store, int(block["number"], 16), int(block["timestamp"], 16))
    rpc(info, "anvil_removeBlockTimestampInterval")  # the shared devnet's clock runs again


@dataclass
class Reading:
    """What the protocols report after the change (or the step at which the chain reverted)."""

    aave: devnet.AccountData
    morpho: dict[str, tuple[int, int]]
    """Market id → (health WAD from Morpho's own reads, borrowed assets)."""
    hyperliquid: dict[str, Any] | None
    dydx_equity_usd: float | None
    reverted_at: int | None
    reason: str | None
    timestamps: set[int]


def _venue(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in doc["venues"] if v["venue"] == name)


def _debt_mode(store: Store, wallet: str, symbol: str) -> aave.RateMode:
    """The debt a what-if repay targets: variable when the wallet has any, else stable (from the stored detail)."""
    item = next(i for i in store.latest_health(wallet) if i.venue == "aave_v3")
    for p in item.snapshot.positions:
        if p.asset.symbol == symbol and p.side is PositionSide.DEBT:
            return aave.RateMode.VARIABLE if int(str(p.extra["scaled_raw"])) else aave.RateMode.STABLE
    return aave.RateMode.VARIABLE


def _send(info: devnet.DevnetInfo, store: Store, wallet: str, step: dict[str, Any]) -> None:
    """One what-if change, as the wallet's own transaction(s) (funding it first where it pays)."""
    raw = int(step["amount_raw"])
    action, asset = step["action"], step["asset"]
    if step["venue"] == "aave_v3":
        if action == "supply":
            aave.fund(info, wallet, asset, raw)
            aave.supply(info, wallet, asset, raw)
        elif action == "withdraw":
            aave.withdraw(info, wallet, asset, raw)
        elif action == "borrow":
            aave.borrow(info, wallet, asset, raw)
        else:
            aave.fund(info, wallet, asset, raw)
            aave.repay(info, wallet, asset, raw, _debt_mode(store, wallet, asset))
        return
    market = step["market_id"]
    params = morpho.market_params(info, market)
    is_collateral = asset == _symbol(info, params.collateral_token) and action in ("supply", "withdraw")
    if action == "supply":
        aave.fund(info, wallet, asset, raw)
        if is_collateral:
            morpho.supply_collateral(info, wallet, market, raw)
        else:
            morpho.supply(info, wallet, market, raw)
    elif action == "withdraw":
        if is_collateral:
            morpho.withdraw_collateral(info, wallet, market, raw)
        else:
            _accrue(info, market)
            pos, state = morpho.position(info, market, wallet), morpho.market_state(info, market)
            claim = pos.supply_shares * (state.total_supply_assets + 1) // (state.total_supply_shares + 10**6)
            if raw == claim:  # the what-if withdraws every share when asked for the whole claim
                morpho.withdraw(info, wallet, market, 0, pos.supply_shares)
            else:
                morpho.withdraw(info, wallet, market, raw)
    elif action == "borrow":
        morpho.borrow(info, wallet, market, raw)
    else:
        _accrue(info, market)
        owed = morpho.borrow_assets(info, market, wallet)
        aave.fund(info, wallet, asset, raw)
        if raw == owed:  # the what-if repays every share when asked for the whole debt
            morpho.repay(info, wallet, market, 0, morpho.position(info, market, wallet).borrow_shares)
        else:
            morpho.repay(info, wallet, market, raw)


def _symbol(info: devnet.DevnetInfo, token: str) -> str:
    return next(s for s, a in info.tokens.items() if a.lower() == token.lower())


def _accrue(info: devnet.DevnetInfo, market: str) -> None:
    params = morpho.market_params(info, market)
    transact(info, devnet.ADMIN, info.contract("morpho_blue.morpho"),
             "accrueInterest((address,address,address,address,uint256))", params.as_tuple())


def _read(info: devnet.DevnetInfo, wallet: str) -> tuple[devnet.AccountData, dict[str, tuple[int, int]]]:
    out = {}
    for name in morpho.market_names(info):
        mid = morpho.market_id(info, name)
        _accrue(info, mid)  # the stored totals are then those every health check of this block uses
        out[mid] = (morpho.health_factor_wad(info, mid, wallet), morpho.borrow_assets(info, mid, wallet))
    return aave.account_data(info, wallet), out


def _for_real(s: Synced, wallet: str, doc: dict[str, Any]) -> Reading:
    """Apply the what-if's prices and changes on the chain, read every protocol, revert."""
    info = s.info
    snap = devnet.snapshot(info)
    reverted_at = reason = None
    try:
        for p in doc["prices"]:
            devnet.set_price(info, p["asset"], Decimal(p["price"]))
        for step in doc["changes"]:
            try:
                _send(info, s.store, wallet, step)
            except RevertedError as exc:
                reverted_at, reason = step["step"], exc.reason
                break
        aave_data, morpho_data = _read(info, wallet)
        hl = dx = None
        url = info.services["perp_api"]
        if wallet == HEDGED:
            hl_conn, dx_conn = HyperliquidConnector(url), DydxConnector(url)
            try:
                hl = hl_conn.read_accounts([wallet]).health_inputs(wallet)
                dx_snap = dx_conn.read_accounts([dydx_address("hedged")])
                dx = dx_snap.health_inputs(dx_snap.accounts[0].account_id)["reported_equity_usd"]
            finally:
                hl_conn.close()
                dx_conn.close()
        blocks = int(rpc(info, "eth_blockNumber", []), 16)
        stamps = {int(rpc(info, "eth_getBlockByNumber", [hex(n), False])["timestamp"], 16)
                  for n in range(s.block, blocks + 1)}
        return Reading(aave_data, morpho_data, hl, dx, reverted_at, reason, stamps)
    finally:
        devnet.revert(info, snap)
        for coin, usd in PERP_MARKS.items():
            set_perp_mark(info, coin, usd)


def _assert_equal(s: Synced, wallet: str, doc: dict[str, Any], real: Reading) -> None:
    assert real.timestamps == {s.timestamp}, "a change landed in a block with another timestamp"
    a = _venue(doc, "aave_v3")["after"]
    got = (int(a["total_collateral_base_raw"]), int(a["total_debt_base_raw"]),
           int(a["health_factor_raw"]) if a["health_factor_raw"] is not None else devnet.MAX_UINT256)
    chain = (real.aave.total_collateral_base, real.aave.total_debt_base, real.aave.health_factor_wad)
    assert got == chain, f"aave_v3: what-if {got} != getUserAccountData {chain}"
    assert a["healthy"] == (real.aave.health_factor_wad >= 10**18)
    markets = {m["market_id"]: m for m in _venue(doc, "morpho_blue")["after"]["markets"]}
    for mid, (health_wad, borrowed) in real.morpho.items():
        m = markets.get(mid)
        if m is None:  # the what-if holds nothing there: neither does the chain
            assert borrowed == 0, mid
            assert health_wad == devnet.MAX_UINT256, mid
            continue
        ours = int(m["health_factor_raw"]) if m["health_factor_raw"] is not None else devnet.MAX_UINT256
        assert (ours, int(m["borrowed_raw"])) == (health_wad, borrowed), f"morpho {m['pair']}"
        assert m["healthy"] == (health_wad >= 10**18)
    if real.hyperliquid is not None:
        hl = _venue(doc, "hyperliquid")["after"]
        assert hl["equity_usd"] == pytest.approx(real.hyperliquid["reported_cross_account_value_usd"], abs=1e-5)
        assert hl["maintenance_margin_usd"] == pytest.approx(real.hyperliquid["reported_cross_maintenance_usd"],
                                                             abs=1e-5)
        for coin, px in zip(real.hyperliquid["coin"], real.hyperliquid["reported_liquidation_px"], strict=True):
            assert hl["liquidation_price"][coin] == pytest.approx(float(px), rel=1e-7)
    if real.dydx_equity_usd is not None:
        assert _venue(doc, "dydx_v4")["after"]["equity_usd"] == pytest.approx(real.dydx_equity_usd, abs=1e-5)


def _check(s: Synced, wallet: str, scenario: Scenario) -> dict[str, Any]:
    """The what-if of ``scenario`` against the chain; returns the what-if document."""
    doc = whatif(s.store, wallet, scenario)
    real = _for_real(s, wallet, doc)
    refused = next((c["step"] for c in doc["changes"] if c["refused"]), None)
    assert real.reverted_at == refused, (
        f"the chain reverted at step {real.reverted_at} ({real.reason}); the what-if refused step {refused}: "
        f"{doc['changes']}")
    if refused is not None:  # compare the state the chain did reach: the changes before the refused one
        prefix = Scenario(scenario.prices, scenario.changes[: refused - 1])
        doc = whatif(s.store, wallet, prefix)
        real = _for_real(s, wallet, doc)
        assert real.reverted_at is None
    _assert_equal(s, wallet, doc, real)
    return doc


def test_replaying_the_stored_snapshots_gives_the_syncs_own_health(synced: Synced) -> None:
    for wallet in WALLETS.values():
        doc = whatif(synced.store, wallet, Scenario())
        for v in doc["venues"]:
            assert v["matches_sync"] in (True, None), v["venue"]
            assert v["before"] == v["after"]
        assert doc["unified"]["before"] == doc["unified"]["after"]


def test_the_issue_example_on_the_hedged_wallet_equals_the_chain(synced: Synced) -> None:
    scenario = Scenario({"WETH": Decimal(3000)}, (
        Change("repay", "aave_v3", "USDC", Decimal(5000)),
        Change("supply", "morpho_blue", "WETH", Decimal(2)),
    ))
    doc = _check(synced, HEDGED, scenario)
    aave_v, morpho_v = _venue(doc, "aave_v3"), _venue(doc, "morpho_blue")
    assert aave_v["after"]["health_factor"] < aave_v["before"]["health_factor"]  # WETH −25 % outweighs the repay
    assert [m["pair"] for m in morpho_v["after"]["markets"]] == ["WETH/USDC"]
    assert doc["feasible"] is True
    assert doc["unified"]["after"]["unified_health"] != doc["unified"]["before"]["unified_health"]


def test_a_refused_withdrawal_reverts_on_chain_too(synced: Synced) -> None:
    # Withdrawing 15 of the 20 WETH behind 40k USDC leaves Aave's health under 1: the pool reverts.
    doc = _check(synced, HEDGED, Scenario({}, (Change("withdraw", "aave_v3", "WETH", Decimal(15)),)))
    assert doc["changes"] == []  # what was compared: the state before the refused step (the prefix)
    full = whatif(synced.store, HEDGED, Scenario({}, (Change("withdraw", "aave_v3", "WETH", Decimal(15)),)))
    assert full["feasible"] is False
    assert "HEALTH_FACTOR_LOWER_THAN_LIQUIDATION_THRESHOLD" in full["changes"][0]["refused"]
    assert _venue(full, "aave_v3")["after"]["healthy"] is False


def test_every_morpho_action_equals_the_chain(synced: Synced) -> None:
    base = whatif(synced.store, HEDGED, Scenario())
    owed = next(m for m in _venue(base, "morpho_blue")["before"]["markets"] if m["pair"] == "WETH/USDC")
    debt = Decimal(int(owed["borrowed_raw"])).scaleb(-6)
    cases = {
        "collateral out, more borrowed": ((Change("withdraw", "morpho_blue", "WETH", Decimal(3)),
                                           Change("borrow", "morpho_blue", "USDC", Decimal(1000))), True),
        "lent, then part of it back": ((Change("supply", "morpho_blue", "USDC", Decimal(5000), "WETH/USDC"),
                                        Change("withdraw", "morpho_blue", "USDC", Decimal(2500), "WETH/USDC")), True),
        "too much collateral out": ((Change("withdraw", "morpho_blue", "WETH", Decimal(9)),), False),
        "too much borrowed": ((Change("borrow", "morpho_blue", "USDC", Decimal(15_000)),), False),
        "repaid in full, everything out": ((Change("repay", "morpho_blue", "USDC", debt),
                                            Change("withdraw", "morpho_blue", "WETH", Decimal(10))), True),
    }
    for name, (changes, feasible) in cases.items():
        full = whatif(synced.store, HEDGED, Scenario({}, changes))
        assert full["feasible"] is feasible, name
        _check(synced, HEDGED, Scenario({}, changes))
    emptied = whatif(synced.store, HEDGED, Scenario({}, cases["repaid in full, everything out"][0]))
    assert _venue(emptied, "morpho_blue")["after"]["markets"] == []


def _amount(rng: random.Random, raw: int, decimals: int, *, whole: bool = False) -> Decimal:
    """A random part of ``raw`` (all of it when ``whole``) as a token amount."""
    part = raw if whole else max(1, int(raw * rng.uniform(0.01, 0.9)))
    return Decimal(part).scaleb(-decimals)


def _random_changes(rng: random.Random, doc: dict[str, Any], wallet: str) -> list[Change]:
    """Random changes within the wallet's limits, from its current positions (and a few new ones)."""
    decimals = {"WETH": 18, "USDC": 6, "DAI": 18, "LINK": 18, "AAVE": 18}
    options: list[Change] = []
    for v in doc["venues"]:
        if v["venue"] not in ("aave_v3", "morpho_blue"):
            continue
        for p in v["before"]["positions"]:
            sym, raw, dec = p["asset"], int(p["amount_raw"]), decimals[p["asset"]]
            market = p["market"] if v["venue"] == "morpho_blue" else None
            if p["side"] in ("collateral", "supply"):
                options.append(Change("withdraw", v["venue"], sym, _amount(rng, raw, dec, whole=rng.random() < 0.15),
                                      market))
                options.append(Change("supply", v["venue"], sym, _amount(rng, raw, dec), market))
            elif p["side"] == "debt":
                options.append(Change("repay", v["venue"], sym, _amount(rng, raw, dec, whole=rng.random() < 0.25),
                                      market))
                options.append(Change("borrow", v["venue"], sym, _amount(rng, raw, dec), market))
    if wallet == HEDGED:  # new positions: a reserve and a Morpho market the wallet does not hold yet
        options += [
            Change("supply", "aave_v3", "DAI", Decimal(rng.randint(100, 20_000))),
            Change("borrow", "aave_v3", "DAI", Decimal(rng.randint(100, 5_000))),
            Change("supply", "morpho_blue", "USDC", Decimal(rng.randint(100, 10_000)), "WETH/USDC"),
            Change("supply", "morpho_blue", "WETH", Decimal(rng.randint(1, 4)), "WETH/DAI"),
        ]
    picked = rng.sample(options, k=min(len(options), rng.randint(1, 4)))
    if any(c.market == "WETH/DAI" for c in picked) and rng.random() < 0.7:
        picked.append(Change("borrow", "morpho_blue", "DAI", Decimal(rng.randint(100, 3_000))))
    return picked


def _random_prices(rng: random.Random, wallet: str) -> dict[str, Decimal]:
    prices: dict[str, Decimal] = {}
    if rng.random() < 0.7:
        prices["WETH"] = Decimal(rng.randint(280_000, 520_000)).scaleb(-2)
    for stable in ("USDC", "DAI"):
        if rng.random() < 0.3:
            prices[stable] = Decimal(rng.randint(9_600, 10_300)).scaleb(-4)
    return prices


def test_random_changes_equal_the_chain(synced: Synced) -> None:
    rng = random.Random(SEED)
    labels = ["hedged"] * 4 + ["emode", "multi", "safe"]
    refused = feasible = 0
    for case in range(CASES):
        wallet = WALLETS[rng.choice(labels)]
        base = whatif(synced.store, wallet, Scenario())
        changes = _random_changes(rng, base, wallet)
        scenario = Scenario(_random_prices(rng, wallet), tuple(changes))
        try:
            doc = _check(synced, wallet, scenario)
        except AssertionError as exc:
            raise AssertionError(f"case {case} ({wallet}, {scenario}): {exc}") from exc
        full = whatif(synced.store, wallet, scenario)
        refused += not full["feasible"]
        feasible += full["feasible"]
        assert doc["block"] == synced.block
    assert feasible >= CASES // 2  # most cases go through; the others checked the refusal and the prefix
    assert refused >= 1  # and the refusal path was taken too
