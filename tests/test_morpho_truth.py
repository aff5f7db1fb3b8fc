"""Truth: xmargin's Morpho Blue verdicts are Morpho's own, to the unit.

Morpho Blue (``@morpho-org/morpho-blue@1.0.0``, compiled from its source, with its own ``IrmMock`` and
``OracleMock``) runs on the devnet. A utilizer borrows most of each market's liquidity so the IRM's rate is
high (``IrmMock``: APR = utilization) and interest visibly accrues. Then, round after round, randomized
positions are opened near their borrowing limit, oracle prices move a little and time jumps forward
(interest accrues in Morpho only when a transaction touches the market, so every check depends on
replicating ``_accrueInterest``). After each move, at one pinned block B:

* every wallet is read through :class:`MorphoBlueConnector` at B, and each position's verdict computed by
  ``riskcore.venues.morpho_blue.health`` from the *stored* totals, the IRM's rate and B's timestamp;
* Morpho is asked directly, by ``eth_call`` at B (so it accrues to B's timestamp, as we do):
  ``liquidate(position, repaidShares = 1)`` from a funded liquidator succeeds exactly when we say
  unhealthy, and reverts ``"position is healthy"`` exactly when we say healthy;
* the largest extra borrow we compute, ``a``, is the boundary of Morpho's own ``borrow``: ``borrow(a)``
  from the borrower succeeds and ``borrow(a + 1)`` reverts ``"insufficient collateral"``.

Besides, per round: the accrual itself against the chain (``accrueInterest`` mined at a set timestamp,
``market()`` read back — supply, shares with the fee's shares, borrow all equal), and the exact liquidation
price (oracle set to it: healthy; one unit lower: liquidatable). Mutations run inside ``evm_snapshot`` /
``evm_revert`` where they are probes; simulations are ``eth_call`` and change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

import devnet
from connectors.errors import CallRevertedError
from connectors.evm.abi import Fn
from connectors.evm.rpc import RpcClient
from connectors.morpho_blue.connector import MorphoBlueConnector
from connectors.morpho_blue.deployments import MorphoDeployment
from connectors.morpho_blue.models import MorphoMarket, MorphoSnapshot
from riskcore.venues.morpho_blue.health import (
    MorphoMarketState,
    accrue_interest,
    borrowed_assets,
    is_healthy,
    liquidation_price_raw,
    max_borrow_increase,
    position_health,
)

pytestmark = [pytest.mark.chain, pytest.mark.slow]

PARAMS = "(address,address,address,address,uint256)"
LIQUIDATE = Fn(f"liquidate({PARAMS},address,uint256,uint256,bytes)(uint256,uint256)")
BORROW = Fn(f"borrow({PARAMS},uint256,uint256,address,address)(uint256,uint256)")
ACCRUE = f"accrueInterest({PARAMS})"
SET_FEE = f"setFee({PARAMS},uint256)"
MARKET = Fn("market(bytes32)(uint128,uint128,uint128,uint128,uint128,uint128)")
MAX_UINT256 = 2**256 - 1

SEED = 20261122
ROUNDS = 4
NEW_PER_ROUND = 30  # 120 distinct positions, each re-checked after every later move
UTILIZATION = 0.7  # share of each market's liquidity the utilizer borrows: IrmMock rate ≈ 70 % APR
FEE_WAD = 10**17  # 10 % fee on WETH_USDC, so accrual mints fee shares
LIQ_PRICE_PROBES_PER_ROUND = 4


@dataclass
class Tally:
    checks: int = 0
    healthy: int = 0
    liquidatable: int = 0
    borrow_boundaries: int = 0
    borrow_at_boundary_skipped_for_liquidity: int = 0
    max_increase_below_naive: int = 0
    accrual_decides: int = 0
    """Verdicts that the stored (not yet accrued) totals would have got wrong."""
    liq_price_probes: int = 0
    accrual_checks: int = 0
    distinct: set[tuple[str, str]] = field(default_factory=set)
    mismatches: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def chain(fresh_devnet: devnet.DevnetInfo) -> devnet.DevnetInfo:
    return fresh_devnet


def _rpc_call(rpc: RpcClient, sender: str, to: str, data: bytes, block: int) -> str | None:
    """``eth_call`` from ``sender`` at ``block``: None when it succeeds, else the revert reason."""
    tx = {"from": sender, "to": to, "data": "0x" + data.hex(), "gas": hex(30_000_000)}
    try:
        rpc.request("eth_call", [tx, hex(block)])
    except CallRevertedError as exc:
        return exc.reason or str(exc)
    return None


def _simulate_many(rpc: RpcClient, calls: Sequence[tuple[str, str, bytes]], block: int) -> list[str | None]:
    """Many ``eth_call`` simulations in one JSON-RPC batch: None per success, the revert reason otherwise."""
    requests = [
        ("eth_call", [{"from": s, "to": t, "data": "0x" + d.hex(), "gas": hex(30_000_000)}, hex(block)])
        for s, t, d in calls
    ]
    out: list[str | None] = []
    for answer in rpc.batch(requests, return_exceptions=True):
        if isinstance(answer, CallRevertedError):
            out.append(answer.reason or str(answer))
        elif isinstance(answer, BaseException):
            raise answer
        else:
            out.append(None)
    return out


def _state(m: MorphoMarket) -> MorphoMarketState:
    return MorphoMarketState(m.total_supply_assets_raw, m.total_supply_shares, m.total_borrow_assets_raw,
                             m.total_borrow_shares, m.last_update, m.fee_wad)


def _accrued(m: MorphoMarket, timestamp: int) -> MorphoMarketState:
    """riskcore's accrual from the stored totals (not the connector's own accrued fields)."""
    out = accrue_interest(_state(m), m.borrow_rate_wad, timestamp).market
    # the connector's copy of the math says the same
    assert (out.total_supply_assets, out.total_supply_shares, out.total_borrow_assets) == (
        m.accrued_total_supply_assets_raw, m.accrued_total_supply_shares, m.accrued_total_borrow_assets_raw)
    return out


def _params(m: MorphoMarket) -> tuple[str, str, str, str, int]:
    return (m.loan_token, m.collateral_token, m.oracle, m.irm, m.lltv_wad)


class World:
    def __init__(self, info: devnet.DevnetInfo, rpc: RpcClient) -> None:
        self.info = info
        self.rpc = rpc
        self.names = devnet.morpho.market_names(info)
        self.ids = {n: devnet.morpho.market_id(info, n) for n in self.names}
        self.morpho = info.contract("morpho_blue.morpho")
        deployment = MorphoDeployment(name="devnet", chain_id=info.chain_id, morpho=self.morpho,
                                      markets=tuple(self.ids[n] for n in self.names))
        self.connector = MorphoBlueConnector(rpc, deployment)
        self.liquidator = devnet.wallet_address(f"morpho-truth-liquidator-{SEED}")
        self.wallets: list[tuple[str, str]] = []  # (wallet, market name)

    def read(self, wallets: Sequence[str], block: int | None = None) -> MorphoSnapshot:
        return self.connector.read_accounts(list(dict.fromkeys(wallets)), block)

    def setup(self) -> None:
        info = self.info
        snap = self.read([])
        utilizer = devnet.wallet_address(f"morpho-truth-utilizer-{SEED}")
        for m in snap.markets:
            name = self._name(m)
            liquidity = m.total_supply_assets_raw - m.total_borrow_assets_raw
            borrow = int(liquidity * UTILIZATION)
            assert m.price is not None
            assert m.loan_decimals is not None
            assert m.collateral_decimals is not None
            value_loan = borrow / 10**m.loan_decimals
            collateral_tokens = 2 * value_loan / m.price / (m.lltv_wad / 1e18)
            collateral = int(collateral_tokens * 10**m.collateral_decimals)
            devnet.mint_tokens(info, utilizer, m.collateral_symbol, collateral)
            devnet.morpho.supply_collateral(info, utilizer, name, collateral)
            devnet.morpho.borrow(info, utilizer, name, borrow)
            # the liquidator holds plenty of the loan token and has approved Morpho
            devnet.mint_tokens(info, self.liquidator, m.loan_symbol, 10**7 * 10**m.loan_decimals)
            devnet.transact(info, self.liquidator, m.loan_token, "approve(address,uint256)", self.morpho, MAX_UINT256)
        usdc = snap.market(self.ids["WETH_USDC"])
        devnet.transact(info, devnet.ADMIN, self.morpho, SET_FEE, _params(usdc), FEE_WAD)

    def _name(self, m: MorphoMarket) -> str:
        return next(n for n, i in self.ids.items() if i == m.market_id)

    def open_position(self, wallet: str, name: str, rng: np.random.Generator) -> None:
        info = self.info
        m = self.read([]).market(self.ids[name])
        assert m.collateral_decimals is not None
        collateral = int(float(rng.uniform(0.05, 3.0)) * 10**m.collateral_decimals)
        devnet.mint_tokens(info, wallet, m.collateral_symbol, collateral)
        devnet.morpho.supply_collateral(info, wallet, name, collateral)
        snap = self.read([wallet])
        m = snap.market(self.ids[name])
        pos = next(p for p in snap.accounts[0].positions if p.market_id == m.market_id)
        state = _accrued(m, snap.block.timestamp)
        room = max_borrow_increase(pos.collateral_raw, pos.borrow_shares, state, m.price_raw, m.lltv_wad)
        ratio = float(rng.uniform(0.96, 0.9995))
        for _ in range(5):  # the borrow lands a block (and some interest) later: back off if it no longer fits
            try:
                devnet.morpho.borrow(info, wallet, name, max(int(room * ratio), 1))
                break
            except devnet.RevertedError as exc:
                if "insufficient collateral" not in str(exc):
                    raise
                ratio -= 0.002
        self.wallets.append((wallet, name))

    def move(self, rng: np.random.Generator) -> None:
        for name in self.names:
            price = devnet.morpho.oracle_price(self.info, name)
            devnet.morpho.set_oracle_price(self.info, name, int(price * float(rng.uniform(0.985, 1.015))))
        devnet.increase_time(self.info, int(rng.integers(3_600, 20 * 86_400)))

    def check_all(self, tally: Tally) -> None:
        """Every opened position against Morpho itself, at the latest block."""
        rpc = self.rpc
        snap = self.read([w for w, _ in self.wallets])
        block, ts = snap.block.number, snap.block.timestamp
        states = {m.market_id: _accrued(m, ts) for m in snap.markets}
        sims: list[tuple[str, str, bytes]] = []
        expectations: list[tuple[str, str, str]] = []  # (what, expected, wallet/market)
        for wallet, name in self.wallets:
            m = snap.market(self.ids[name])
            pos = next(p for p in snap.account(wallet).positions if p.market_id == m.market_id)
            state = states[m.market_id]
            h = position_health(pos.collateral_raw, pos.borrow_shares, state, m.price_raw, m.lltv_wad)
            assert h.healthy == is_healthy(pos.collateral_raw, pos.borrow_shares, state, m.price_raw, m.lltv_wad)
            assert h.borrowed_raw == pos.borrow_assets_raw == borrowed_assets(pos.borrow_shares, state)
            stale = is_healthy(pos.collateral_raw, pos.borrow_shares, _state(m), m.price_raw, m.lltv_wad)
            tally.accrual_decides += stale != h.healthy
            tag = f"{wallet}@{name} block {block}"
            tally.checks += 1
            tally.distinct.add((wallet, name))
            if h.healthy:
                tally.healthy += 1
            else:
                tally.liquidatable += 1
            sims.append((self.liquidator, self.morpho, LIQUIDATE.encode(_params(m), wallet, 0, 1, b"")))
            expectations.append(("liquidate", "healthy" if h.healthy else "ok", tag))
            a = h.max_borrow_increase_raw
            if a < max(h.max_borrow_raw - h.borrowed_raw, 0):
                tally.max_increase_below_naive += 1
            liquidity = state.total_supply_assets - state.total_borrow_assets
            if a > 0:
                if a <= liquidity:
                    sims.append((wallet, self.morpho, BORROW.encode(_params(m), a, 0, wallet, wallet)))
                    expectations.append(("borrow(a)", "ok", tag))
                else:
                    tally.borrow_at_boundary_skipped_for_liquidity += 1
            sims.append((wallet, self.morpho, BORROW.encode(_params(m), a + 1, 0, wallet, wallet)))
            expectations.append(("borrow(a+1)", "insufficient collateral", tag))
            tally.borrow_boundaries += 1
        results = _simulate_many(rpc, sims, block)
        for (what, expected, tag), got in zip(expectations, results, strict=True):
            if expected == "ok":
                ok = got is None
            elif expected == "healthy":
                ok = got == "position is healthy"
            else:
                ok = got == expected
            if not ok:
                tally.mismatches.append(f"{what} {tag}: expected {expected}, Morpho said {got or 'ok'}")

    def check_accrual_against_chain(self, tally: Tally, rng: np.random.Generator) -> None:
        """Mine ``accrueInterest`` at a set timestamp and compare ``market()`` with riskcore's accrual."""
        snap = self.read([])
        for m in snap.markets:
            target = snap.block.timestamp + int(rng.integers(1, 86_400))
            sid = devnet.snapshot(self.info)
            try:
                devnet.rpc(self.info, "evm_setNextBlockTimestamp", [target])
                devnet.transact(self.info, self.liquidator, self.morpho, ACCRUE, _params(m))
                raw = self.rpc.eth_call(self.morpho, MARKET.encode(bytes.fromhex(m.market_id[2:])), "latest")
                chain_state = MorphoMarketState(*MARKET.decode(raw))
            finally:
                devnet.revert(self.info, sid)
            ours = accrue_interest(_state(m), m.borrow_rate_wad, target).market
            assert ours == chain_state, (m.market_id, ours, chain_state)
            tally.accrual_checks += 1

    def probe_liquidation_prices(self, tally: Tally, rng: np.random.Generator) -> None:
        """Set the oracle to a position's exact liquidation price (healthy), then one unit lower (not)."""
        snap = self.read([w for w, _ in self.wallets])
        picks = rng.choice(len(self.wallets), size=min(LIQ_PRICE_PROBES_PER_ROUND, len(self.wallets)), replace=False)
        for k in picks:
            wallet, name = self.wallets[int(k)]
            m = snap.market(self.ids[name])
            pos = next(p for p in snap.account(wallet).positions if p.market_id == m.market_id)
            if not pos.borrow_shares:
                continue
            t1 = snap.block.timestamp + 5
            state = accrue_interest(_state(m), m.borrow_rate_wad, t1).market
            price = liquidation_price_raw(pos.collateral_raw, borrowed_assets(pos.borrow_shares, state), m.lltv_wad)
            assert price is not None
            sid = devnet.snapshot(self.info)
            try:
                devnet.rpc(self.info, "evm_setNextBlockTimestamp", [t1])
                devnet.morpho.set_oracle_price(self.info, name, price)
                b1 = self.rpc.block_number()
                at = _rpc_call(
                    self.rpc, self.liquidator, self.morpho, LIQUIDATE.encode(_params(m), wallet, 0, 1, b""), b1
                )
                devnet.rpc(self.info, "evm_setNextBlockTimestamp", [t1 + 1])
                devnet.morpho.set_oracle_price(self.info, name, price - 1)
                b2 = self.rpc.block_number()
                below = _rpc_call(
                    self.rpc, self.liquidator, self.morpho, LIQUIDATE.encode(_params(m), wallet, 0, 1, b""), b2
                )
            finally:
                devnet.revert(self.info, sid)
            if at != "position is healthy" or below is not None:
                tally.mismatches.append(f"liquidation price {price} of {wallet}@{name}: at it {at}, one below {below}")
            tally.liq_price_probes += 1


def test_verdicts_and_borrow_boundary_equal_morphos_own(chain: devnet.DevnetInfo) -> None:
    rng = np.random.default_rng(SEED)
    tally = Tally()
    with RpcClient(chain.rpc_url) as rpc:
        world = World(chain, rpc)
        world.setup()
        for round_ in range(ROUNDS):
            for i in range(NEW_PER_ROUND):
                name = world.names[int(rng.integers(len(world.names)))]
                world.open_position(devnet.wallet_address(f"morpho-truth-{SEED}-{round_}-{i}"), name, rng)
            world.check_all(tally)
            world.move(rng)
            world.check_all(tally)
            world.check_accrual_against_chain(tally, rng)
            world.probe_liquidation_prices(tally, rng)
    print(
        f"\nmorpho truth: {len(tally.distinct)} positions, {tally.checks} verdicts "
        f"({tally.healthy} healthy, {tally.liquidatable} liquidatable), {tally.borrow_boundaries} borrow boundaries "
        f"({tally.max_increase_below_naive} one+ unit below maxBorrow − borrowed, "
        f"{tally.borrow_at_boundary_skipped_for_liquidity} borrow(a) skipped for liquidity), "
        f"{tally.accrual_checks} accruals, {tally.liq_price_probes} liquidation-price probes, "
        f"{tally.accrual_decides} verdicts decided by the accrual"
    )
    assert not tally.mismatches, f"{len(tally.mismatches)} mismatches: {tally.mismatches[:5]}"
    assert len(tally.distinct) >= 100
    # the randomized book really straddles the boundary
    assert tally.healthy >= 30
    assert tally.liquidatable >= 30
    assert tally.accrual_checks == 2 * ROUNDS
    assert tally.accrual_decides > 0  # without replicating the accrual some verdicts would be wrong
    assert tally.liq_price_probes >= ROUNDS * 2
