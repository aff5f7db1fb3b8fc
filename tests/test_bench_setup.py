"""The block benchmark's chain (``benchmarks/blockbench_setup.py``): at N = 50 every wallet holds a position on
every venue (Aave, Morpho, Uniswap on chain; Hyperliquid and dYdX accounts in the devnet's perp API), Morpho's
markets have the liquidity for every planned borrow (the benchmark's lender: 1.25x of them), and 30 blocks of
activity (actions of a fifth of the wallets per block, with price moves) mine without a single revert — each
block's receipts are checked — leaving the perp API's accounts equal to the benchmark's own book and every
lending position healthy on chain."""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

import devnet
from aggregator.config import Settings
from aggregator.devnet_cli import devnet_settings
from benchmarks.bench_sync import check_snapshots, onchain_config, read_programs
from benchmarks.blockbench_setup import Bench, full_cycle, setup
from connectors.evm.rpc import RpcClient

pytestmark = [pytest.mark.chain]

N = 50
BLOCKS = 30
FRAC = 0.2  # 10 wallets act in each block (the benchmark's 1 % would be one)


@pytest.fixture(scope="module")
def bench(fresh_devnet: devnet.DevnetInfo) -> Bench:
    return setup(fresh_devnet, N, random.Random(20261206), chunk=20)  # three groups of wallets, and the helpers


def _read_back(bench: Bench) -> dict[str, set[str]]:
    """Each on-chain venue's holders among the wallets, read by the connectors at the head (and asserted against
    the parts' plans by their ``check``)."""
    chain, venues = onchain_config(devnet_settings(bench.info, Settings()))
    with RpcClient(bench.info.rpc_url) as rpc:
        block = rpc.get_block("latest")
    (run,) = read_programs(chain, venues, bench.wallets, block)
    holders = {}
    for name, part in bench.parts.items():
        _, holders[name] = part.check(run.snapshots[name], bench.wallets)
    assert check_snapshots(run.snapshots, bench.parts, bench.wallets).wallets_on_all == len(bench.wallets)
    return holders


def _perp_positions(bench: Bench) -> dict[str, dict[str, dict[str, Decimal]]]:
    """Venue -> wallet -> coin -> signed size, as the perp API answers for each wallet's account."""
    url = bench.info.services["perp_api"]
    out: dict[str, dict[str, dict[str, Decimal]]] = {}
    with httpx.Client(base_url=url, timeout=10) as client:
        for name, book in bench.perps.items():
            out[name] = {}
            for w in bench.wallets:
                account = book.account_of(w)
                if account.startswith("0x"):
                    doc = client.post("/info", json={"type": "clearinghouseState", "user": account}).json()
                    sizes = {p["position"]["coin"]: Decimal(p["position"]["szi"]) for p in doc["assetPositions"]}
                else:
                    resp = client.get(f"/v4/addresses/{account}/subaccountNumber/0")
                    assert resp.status_code == 200, resp.text
                    positions = resp.json()["subaccount"]["openPerpetualPositions"].values()
                    sizes = {p["market"].removesuffix("-USD"): Decimal(p["size"]) for p in positions}
                out[name][w] = sizes
    return out


def _book(bench: Bench) -> dict[str, dict[str, dict[str, Decimal]]]:
    return {name: {w: {c: s for c, (s, _) in book.accounts[w].positions.items()} for w in bench.wallets}
            for name, book in bench.perps.items()}


def test_every_wallet_holds_a_position_on_every_venue(bench: Bench) -> None:
    assert set(bench.parts) == {"aave_v3", "morpho_blue", "uniswap_v3"}
    assert set(bench.perps) == {"hyperliquid", "dydx_v4"}
    holders = _read_back(bench)
    for name, wallets in holders.items():
        assert wallets == set(bench.wallets), f"{name}: {len(wallets)} of {N} wallets hold a position"
    perps = _perp_positions(bench)
    for name, by_wallet in perps.items():
        empty = [w for w, sizes in by_wallet.items() if not sizes]
        assert not empty, f"{name}: {len(empty)} wallets without a perp position"
    assert perps == _book(bench)


def test_todays_full_cycle_reads_every_wallet_on_every_venue(bench: Bench, tmp_path: Path) -> None:
    seconds, report = full_cycle(bench, f"sqlite:///{tmp_path / 'baseline.db'}")
    assert seconds > 0
    seen: dict[str, set[str]] = {}
    for h in report.sync.healths():
        if h.positions:
            seen.setdefault(h.venue, set()).add(h.wallet)
    venues = set(bench.parts) | set(bench.perps)
    assert set(seen) >= venues
    for venue in venues:
        assert set(bench.wallets) <= seen[venue], f"{venue}: {len(set(bench.wallets) & seen[venue])} of {N} read"


def test_morpho_has_the_liquidity_for_every_planned_borrow(bench: Bench) -> None:
    part: object = bench.parts["morpho_blue"]
    legs = getattr(part, "legs")  # noqa: B009 (the part's plan, read as planned)
    lending = getattr(part, "lending")  # noqa: B009
    planned: Counter[str] = Counter()
    for wallet_legs in legs.values():
        for leg in wallet_legs:
            planned[leg.market] += leg.borrow_raw
    assert set(planned) == set(devnet.morpho.market_names(bench.info))
    for market, need in planned.items():
        assert need > 0
        assert lending[market] == need * 5 // 4
        state = devnet.morpho.market_state(bench.info, market)
        # every planned borrow is out (the setup raises on a reverted one), and the lender's extra quarter is left
        assert state.total_borrow_assets >= need
        assert state.total_supply_assets - state.total_borrow_assets >= need // 4


def test_thirty_blocks_of_activity_mine_without_a_revert(bench: Bench) -> None:
    rng = random.Random(7)
    head = int(devnet.rpc(bench.info, "eth_blockNumber"), 16)
    acted: Counter[str] = Counter()
    moved: Counter[str] = Counter()
    for k in range(BLOCKS):
        report = bench.activity(rng, FRAC)  # verify=True: every receipt checked, a revert raises
        assert report.block == head + k + 1, "each activity is exactly one block"
        assert report.wallets == round(FRAC * N)
        assert report.transactions > 0
        acted += report.actions_by_venue
        moved.update(report.prices)
        block = devnet.rpc(bench.info, "eth_getBlockByNumber", [hex(report.block), False])
        assert len(block["transactions"]) == report.transactions
    assert set(acted) == set(bench.parts) | set(bench.perps), acted
    assert {"WETH", "ETH"} <= set(moved)
    # the perp API holds exactly the book the trades left
    assert _perp_positions(bench) == _book(bench)
    # and every position is still there and healthy on chain
    holders = _read_back(bench)
    assert all(w == set(bench.wallets) for w in holders.values())
    for w in bench.wallets:
        assert devnet.account_data(bench.info, w).health_factor_wad > 10**18


# --- the perp API's bulk accounts route (what the setup and the trades use) -----------------------------------------


def _open_interest(api: object) -> dict[str, dict[str, Decimal]]:
    """Each venue's open interest per coin, as its markets route prints it."""
    from devnet.perp_api import PerpApi

    assert isinstance(api, PerpApi)
    with httpx.Client(base_url=api.base_url, timeout=10) as client:
        meta, ctxs = client.post("/info", json={"type": "metaAndAssetCtxs"}).json()
        markets = client.get("/v4/perpetualMarkets").json()["markets"]
    return {"hyperliquid": {u["name"]: Decimal(c["openInterest"]) for u, c in zip(meta["universe"], ctxs,
                                                                                strict=True)},
            "dydx_v4": {t.removesuffix("-USD"): Decimal(m["openInterest"]) for t, m in markets.items()}}


def test_the_perp_apis_bulk_route_adds_and_replaces_accounts_keeping_open_interest_exact() -> None:
    from connectors.dydx_v4.address import bech32_encode
    from devnet.perp_api import PerpApi, PerpPosition, account_document, add_accounts

    rng = random.Random(5)
    wallets = [f"0x{rng.getrandbits(160):040x}" for _ in range(40)]
    with PerpApi() as api:
        info = devnet.DevnetInfo(rpc_url="http://127.0.0.1:1", chain_id=31337, contracts={}, tokens={},
                                 services={"perp_api": api.base_url})
        before = _open_interest(api)
        book: dict[str, dict[str, list[PerpPosition]]] = {"hyperliquid": {}, "dydx_v4": {}}
        for rounds in range(3):  # added, then replaced twice
            for venue, coins in (("hyperliquid", ("BTC", "ETH", "SOL")), ("dydx_v4", ("BTC", "ETH"))):
                docs = []
                for w in wallets:
                    account = w if venue == "hyperliquid" else bech32_encode(bytes.fromhex(w[2:]))
                    positions = [PerpPosition(c, Decimal(rng.randint(-500, 500)) / 100, 1000)
                                 for c in rng.sample(coins, rng.randint(0, 2))]
                    positions = [p for p in positions if p.size]
                    book[venue][account] = positions
                    docs.append(account_document(account, 10_000, positions))
                assert add_accounts(info, venue, docs) == len(wallets)
            oi = _open_interest(api)
            for venue, accounts in book.items():
                for coin, seeded in before[venue].items():
                    ours = sum((abs(Decimal(p.size)) for ps in accounts.values() for p in ps if p.symbol == coin),
                               Decimal(0))
                    assert oi[venue][coin] == seeded + ours, (rounds, venue, coin)
        # a malformed request is refused whole, with a 400 that says why
        resp = httpx.post(f"{api.base_url}/devnet/accounts", json={"venue": "hyperliquid", "accounts": [{}]})
        assert resp.status_code == 400
        assert "bad accounts request" in resp.text
        resp = httpx.post(f"{api.base_url}/devnet/accounts", json={"venue": "nowhere", "accounts": []})
        assert resp.status_code == 400
        assert "unknown venue" in resp.text
        with pytest.raises(httpx.HTTPStatusError):
            add_accounts(info, "nowhere", [account_document(wallets[0], 1, [])])
