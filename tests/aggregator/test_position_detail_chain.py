"""What a trader reads per position is what the venue would do: the limits in each position's ``detail`` are the
protocols' own boundaries, asked of the contracts by ``eth_call`` from the wallet at the synced block.

* Aave v3: ``max_withdraw_raw`` of every supplied asset — where the health rule applies, ``Pool.withdraw(max)``
  succeeds and (when less than the balance) ``withdraw(max + 1)`` reverts; otherwise it is the whole balance
  (the reserve's liquidity, which can cap a lender's withdrawal, is not read); ``available_borrows_usd`` is
  ``getUserAccountData``'s ``availableBorrowsBase``; ``ltv_bps`` is the LTV the protocol applies (e-mode's for the
  e-mode wallet).
* Morpho Blue: ``max_withdraw_raw`` of the collateral — ``withdrawCollateral(max)`` succeeds, ``max + 1`` reverts
  "insufficient collateral"; ``available_borrow_raw`` — ``borrow(a)`` succeeds, ``a + 1`` reverts.
* Uniswap v3: the range's bounds and price are the ticks' prices, quoted as quote token per base token.
* Perps: entry, mark, leverage, unrealized P&L and liquidation price beside each position.

Every seeded wallet is checked, before and after a price move (so the boundaries move too).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import devnet
from aggregator.devnet_cli import devnet_settings
from aggregator.pipeline import sync_once
from aggregator.render import health_document
from db.store import Store

pytestmark = pytest.mark.chain

ACCOUNT_DATA = "getUserAccountData(address)"
MORPHO_PARAMS = "(address,address,address,address,uint256)"


@pytest.fixture(scope="module")
def seeded(seeded_devnet: devnet.DevnetInfo) -> tuple[devnet.DevnetInfo, list[tuple[str, str]]]:
    """The shared seeded devnet and its seeded wallets (seeding a seeded devnet only lists them)."""
    return seeded_devnet, [(w.address, w.label) for w in devnet.seed(seeded_devnet)]


@pytest.fixture
def chain(seeded: tuple[devnet.DevnetInfo, list[tuple[str, str]]]) -> Iterator[devnet.DevnetInfo]:
    info, _ = seeded
    snap = devnet.snapshot(info)
    yield info
    devnet.revert(info, snap)
    devnet.set_price(info, "WETH", 4_000)  # the perp API's marks are not in the chain's snapshot


def _call(info: devnet.DevnetInfo, sender: str, to: str, data: str, block: int) -> str | None:
    """``eth_call`` from ``sender`` at ``block``: None when it succeeds, else why it reverted."""
    try:
        devnet.rpc(info, "eth_call", [{"from": sender, "to": to, "data": data, "gas": hex(30_000_000)}, hex(block)])
    except devnet.RpcError as exc:
        return str(exc) or "reverted"
    return None


def _documents(info: devnet.DevnetInfo, store: Store, wallets: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    report = sync_once(devnet_settings(info), store)
    assert report.ok, [b.error for b in report.batches]
    kinds = {v.name: str(v.kind) for v in store.list_venues()}
    return {label: health_document(address, store.latest_health(address), kinds) for address, label in wallets}


def _check_aave(info: devnet.DevnetInfo, wallet: str, venue: dict[str, Any]) -> int:
    """Every Aave supply's withdrawal boundary; returns how many were strict (less than the balance)."""
    block = venue["block"]
    pool = info.contract("aave_v3.pool")
    available_base = devnet.eth_call(info, pool, ACCOUNT_DATA, [wallet], ["uint256"] * 6, hex(block))[2]
    strict = 0
    for p in venue["positions"]:
        detail = p["detail"]
        assert detail["available_borrows_usd"] == available_base / 1e8, (wallet, p["asset"])
        if p["side"] != "collateral":
            continue
        maximum = int(detail["max_withdraw_raw"])
        balance = int(p["amount_raw"])
        assert 0 <= maximum <= balance
        assert detail["max_withdraw"] == pytest.approx(p["amount"] * maximum / balance, rel=1e-12)

        def withdraw(amount: int, asset: str = p["asset_address"]) -> str | None:
            data = devnet.encode_call("withdraw(address,uint256,address)", asset, amount, wallet)
            return _call(info, wallet, pool, data, block)

        if p["is_collateral"] and venue["debt_usd"]:  # the health rule applies: the boundary is exact
            if maximum > 0:  # (withdraw(0) reverts INVALID_AMOUNT)
                assert withdraw(maximum) is None, (wallet, p["asset"], maximum, "the maximum must be accepted")
            if maximum < balance:
                strict += 1
                assert withdraw(maximum + 1) is not None, (wallet, p["asset"], maximum, "one more must revert")
        else:  # nothing holds it back but the reserve's liquidity (not read, see the adapter)
            assert maximum == balance, (wallet, p["asset"])
    return strict


def _morpho_call(info: devnet.DevnetInfo, wallet: str, params: tuple[Any, ...], block: int, fn: str,
                 *args: Any) -> str | None:
    """``Morpho.<fn>(marketParams, *args, wallet, wallet)`` simulated from the wallet at ``block``."""
    types = {"withdrawCollateral": "uint256", "borrow": "uint256,uint256"}[fn]
    data = devnet.encode_call(f"{fn}({MORPHO_PARAMS},{types},address,address)", params, *args, wallet, wallet)
    return _call(info, wallet, info.contract("morpho_blue.morpho"), data, block)


def _check_morpho(info: devnet.DevnetInfo, wallet: str, venue: dict[str, Any]) -> int:
    block = venue["block"]
    names = {devnet.morpho.market_id(info, n).lower(): n for n in devnet.morpho.market_names(info)}
    checked = 0
    for p in venue["positions"]:
        detail = p["detail"]
        params = devnet.morpho.market_params(info, names[detail["market_id"].lower()]).as_tuple()
        if p["side"] == "collateral":
            maximum = int(detail["max_withdraw_raw"])
            assert 0 < maximum < int(p["amount_raw"])  # the seeded positions borrow
            assert _morpho_call(info, wallet, params, block, "withdrawCollateral", maximum) is None
            reason = _morpho_call(info, wallet, params, block, "withdrawCollateral", maximum + 1)
            assert reason is not None
            assert "insufficient collateral" in reason, reason
            checked += 1
        if p["side"] == "debt":
            available = int(detail["available_borrow_raw"])
            assert available < int(detail["market_liquidity_raw"])  # the collateral binds, not the market
            assert _morpho_call(info, wallet, params, block, "borrow", available, 0) is None
            reason = _morpho_call(info, wallet, params, block, "borrow", available + 1, 0)
            assert reason is not None
            assert "insufficient collateral" in reason, reason
            checked += 1
    return checked


def _check_uniswap(venue: dict[str, Any]) -> int:
    for p in venue["positions"]:
        d = p["detail"]
        assert (d["range_base"], d["range_quote"]) == ("WETH", "USDC")  # the pricier token is the base
        assert d["range_lower"] < d["range_upper"]
        assert d["in_range"] == (d["range_lower"] <= d["range_price"] < d["range_upper"])
        # The pool's price is the oracle's on the devnet (set_price moves both).
        weth = next(q["price_usd"] for q in venue["positions"] if q["asset"] == "WETH")
        assert d["range_price"] == pytest.approx(weth, rel=2e-3)
        assert d["fees_usd"] == pytest.approx(d["fees"] * p["price_usd"])
    return len(venue["positions"])


def _check_perp(venue: dict[str, Any]) -> int:
    for p in venue["positions"]:
        d = p["detail"]
        assert float(d["entry_px"]) > 0
        assert d["mark_px"] == p["price_usd"]
        assert d["notional_usd"] == pytest.approx(p["amount"] * p["price_usd"])
        equity = venue["equity_usd"]
        assert d["effective_leverage"] == pytest.approx(abs(d["notional_usd"]) / equity)
        assert d["liquidation_px"] == venue["liquidation_price"][p["asset"]]
        # The venue's own P&L: size × (mark − entry).
        assert float(d["unrealized_pnl_usd"]) == pytest.approx(p["amount"] * (p["price_usd"] - float(d["entry_px"])))
    return len(venue["positions"])


def test_position_limits_are_the_protocols_own_boundaries(
    seeded: tuple[devnet.DevnetInfo, list[tuple[str, str]]], chain: devnet.DevnetInfo, tmp_path: Path
) -> None:
    _, wallets = seeded
    counts = {"aave_strict": 0, "morpho": 0, "uniswap": 0, "perp": 0}
    with Store.open(f"sqlite:///{tmp_path / 'x.db'}") as store:
        store.add_wallets(wallets)
        for price in (None, 3_300):
            if price is not None:
                devnet.set_price(chain, "WETH", price)
            docs = _documents(chain, store, wallets)
            for label, doc in docs.items():
                address = doc["wallet"]
                for venue in doc["venues"]:
                    if not venue["positions"]:
                        continue
                    if venue["venue"] == "aave_v3":
                        counts["aave_strict"] += _check_aave(chain, address, venue)
                        if label == "emode":
                            stable = devnet.emode_category(chain, devnet.user_emode(chain, address))
                            assert {p["detail"]["ltv_bps"] for p in venue["positions"]} == {stable.ltv_bps}
                    elif venue["venue"] == "morpho_blue":
                        counts["morpho"] += _check_morpho(chain, address, venue)
                    elif venue["venue"] == "uniswap_v3":
                        counts["uniswap"] += _check_uniswap(venue)
                    elif venue["kind"] == "perp":
                        counts["perp"] += _check_perp(venue)
    # Each kind was really exercised: collateral that debt holds back, Morpho limits, LP ranges and perps.
    assert counts["aave_strict"] >= 6, counts
    assert counts["morpho"] >= 2, counts
    assert counts["uniswap"] >= 2, counts
    assert counts["perp"] >= 2, counts
