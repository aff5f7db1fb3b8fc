"""Per-block dirty sets on the devnet: the wallets a block's logs name are exactly the wallets whose position changed.

Random actions — Aave supply / borrow / repay / withdraw, Morpho supply / collateral / borrow / repay / withdraw,
Uniswap mint / increase / decrease / collect / transfer, several wallets' actions mined in one block, price moves
(feeds, Morpho oracles, pool swaps) and time jumps — on randomized wallets over many blocks. After every block:

* one ``eth_getLogs`` (one HTTP request) for all three venues;
* per venue, the dirty wallets equal the set of tracked wallets whose position state (``account_state`` of the
  venue's events module: what only the wallet's own events change) differs between full reads at ``block - 1``
  and ``block`` — no wallet missing, no untouched wallet dirty;
* a new NFT of a tracked wallet rebuilds the Uniswap watch (and later logs of that position are seen).

Then a second reader built from the same starting snapshots reads the whole range at once: its per-block dirty
sets equal the block reads, and the range's union equals their union.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import devnet
from aggregator.devnet_cli import devnet_settings
from aggregator.dirty import ChainWatch, DirtyReader, chain_watch
from aggregator.pipeline import ChainContext
from aggregator.venues import OnchainVenue
from connectors.aave_v3.events import account_state as aave_state
from connectors.evm.logs import DirtySet
from connectors.evm.rpc import RpcClient
from connectors.morpho_blue.events import account_state as morpho_state
from connectors.types import BlockRef, checksum
from connectors.uniswap_v3.events import OwnerBook
from connectors.uniswap_v3.events import account_state as uniswap_state
from devnet import aave, morpho, uniswap

pytestmark = [pytest.mark.chain, pytest.mark.slow]

SEED = 20261206
WALLETS = 6
STEPS = 70
DEADLINE = 2**256 - 1
UINT128_MAX = 2**128 - 1
INCREASE = "increaseLiquidity((uint256,uint256,uint256,uint256,uint256,uint256))"
DECREASE = "decreaseLiquidity((uint256,uint128,uint256,uint256,uint256))"
COLLECT = "collect((uint256,address,uint128,uint128))"
POOL = "WETH_USDC_500"
STATE: dict[str, Callable[[Any], tuple[object, ...]]] = {
    "aave_v3": aave_state, "morpho_blue": morpho_state, "uniswap_v3": uniswap_state,
}


@pytest.fixture(scope="module")
def chain(seeded_devnet: devnet.DevnetInfo) -> devnet.DevnetInfo:
    return seeded_devnet  # the seed's lender gives Aave's stablecoins liquidity


@pytest.fixture(autouse=True)
def _isolated(chain: devnet.DevnetInfo) -> Iterator[None]:
    """Each test's chain changes (fees, reserve factor, oracle sources, prices) are undone after it."""
    snapshot_id = devnet.snapshot(chain)
    yield
    devnet.revert(chain, snapshot_id)


@pytest.fixture(scope="module")
def ctx(chain: devnet.DevnetInfo) -> Iterator[ChainContext]:
    settings = devnet_settings(chain)
    context = ChainContext.open(settings, settings.chains[0])
    yield context
    context.close()


class Book:
    """The test's own view of who holds what (to pick actions that can succeed)."""

    def __init__(self, info: devnet.DevnetInfo, wallets: list[str]) -> None:
        self.info = info
        self.wallets = wallets
        self.nfts: dict[int, str] = {}
        self.aave_debt: set[tuple[str, str]] = set()
        self.morpho_debt: set[tuple[str, str]] = set()


def _setup(info: devnet.DevnetInfo, wallets: list[str], rng: np.random.Generator) -> Book:
    book = Book(info, wallets)
    manager = info.contract("uniswap_v3.position_manager")
    morpho_at = info.contract("morpho_blue.morpho")
    pool_at = info.contract("aave_v3.pool")
    tokens = uniswap.pool_tokens(info, POOL)
    for i, wallet in enumerate(wallets):
        for symbol, amount in (("WETH", 200 * 10**18), ("USDC", 2_000_000 * 10**6), ("DAI", 2_000_000 * 10**18)):
            devnet.mint_tokens(info, wallet, symbol, amount)
            for spender in (manager, morpho_at, pool_at):
                devnet.transact(info, wallet, info.token(symbol), "approve(address,uint256)", spender, 2**256 - 1)
        aave.supply(info, wallet, "WETH", int(rng.uniform(5, 20) * 10**18))
        morpho.supply_collateral(info, wallet, "WETH_USDC", int(rng.uniform(2, 10) * 10**18))
        if i % 2 == 0:
            _mint(book, wallet, rng, tokens)
    return book


def _mint(book: Book, wallet: str, rng: np.random.Generator, tokens: Any) -> None:
    info = book.info
    tick = uniswap.pool_state(info, POOL).tick
    spacing = tokens.tick_spacing
    lower = (tick // spacing - int(rng.integers(1, 50))) * spacing
    upper = (tick // spacing + int(rng.integers(1, 50))) * spacing
    weth = int(rng.uniform(0.5, 3) * 10**18)
    usdc = int(weth / 10**18 * 4000 * 10**6)
    amount0, amount1 = (weth, usdc) if tokens.base_is_token0 else (usdc, weth)
    token_id = uniswap.mint_position(info, wallet, POOL, lower, upper, amount0, amount1)
    book.nfts[token_id] = wallet


def _actions(book: Book, rng: np.random.Generator) -> dict[str, Callable[[], object]]:
    info = book.info
    manager = info.contract("uniswap_v3.position_manager")
    wallet = book.wallets[int(rng.integers(0, len(book.wallets)))]
    other = next(w for w in rng.permutation(book.wallets) if w != wallet)
    mine = [t for t, owner in book.nfts.items() if owner == wallet]
    tokens = uniswap.pool_tokens(info, POOL)

    def aave_supply() -> None:
        if rng.random() < 0.5:
            aave.supply(info, wallet, "WETH", int(rng.uniform(0.1, 2) * 10**18))
        else:
            aave.supply(info, wallet, "USDC", int(rng.uniform(10, 5_000)) * 10**6)

    def aave_borrow() -> None:
        symbol = str(rng.choice(["USDC", "DAI"]))
        aave.borrow(info, wallet, symbol, int(rng.uniform(50, 2_000)) * 10 ** aave.decimals(info, symbol))
        book.aave_debt.add((wallet, symbol))

    def aave_repay() -> None:
        debts = sorted(s for w, s in book.aave_debt if w == wallet)
        if not debts:
            return aave_borrow()
        symbol = debts[int(rng.integers(0, len(debts)))]
        aave.repay(info, wallet, symbol, 10 * 10 ** aave.decimals(info, symbol))
        return None

    def morpho_borrow() -> None:
        morpho.borrow(info, wallet, "WETH_USDC", int(rng.uniform(50, 2_000)) * 10**6)
        book.morpho_debt.add((wallet, "WETH_USDC"))

    def morpho_repay() -> None:
        if (wallet, "WETH_USDC") not in book.morpho_debt:
            return morpho_borrow()
        morpho.repay(info, wallet, "WETH_USDC", 10 * 10**6)
        return None

    def lp_mint() -> None:
        _mint(book, wallet, rng, tokens)

    def lp_increase() -> None:
        if not mine:
            return lp_mint()
        token_id = mine[0]
        amount = int(rng.uniform(0.1, 1) * 10**18)
        quote = amount * 4000 // 10**12
        a0, a1 = (amount, quote) if tokens.base_is_token0 else (quote, amount)
        for token in (tokens.token0, tokens.token1):  # a mint approves exactly what it spends
            devnet.transact(info, wallet, token, "approve(address,uint256)", manager, 2**256 - 1)
        devnet.transact(info, wallet, manager, INCREASE, (token_id, a0, a1, 0, 0, DEADLINE))
        return None

    def lp_decrease() -> None:
        if not mine:
            return lp_mint()
        token_id = mine[-1]
        liquidity = uniswap.lp_position(info, token_id).liquidity
        if liquidity == 0:
            return lp_collect()
        devnet.transact(info, wallet, manager, DECREASE, (token_id, liquidity // 3 or 1, 0, 0, DEADLINE))
        return None

    def lp_collect() -> None:
        if not mine:
            return lp_mint()
        devnet.transact(info, wallet, manager, COLLECT, (mine[0], wallet, UINT128_MAX, UINT128_MAX))
        return None

    def lp_transfer() -> None:
        if not mine:
            return lp_mint()
        token_id = mine[int(rng.integers(0, len(mine)))]
        devnet.transact(info, wallet, manager, "transferFrom(address,address,uint256)", wallet, other, token_id)
        book.nfts[token_id] = other
        return None

    def move_price() -> None:
        weth = float(devnet.latest_round(info, "WETH").price_usd)
        devnet.set_price(info, "WETH", round(weth * float(rng.uniform(0.97, 1.03)), 2))

    def one_block_many_wallets() -> None:
        """Aave supplies and Morpho collateral of several wallets mined in one block."""
        pool_at = info.contract("aave_v3.pool")
        morpho_at = info.contract("morpho_blue.morpho")
        params = morpho.market_params(info, "WETH_USDC").as_tuple()
        chosen = [str(w) for w in rng.choice(book.wallets, size=3, replace=False)]
        devnet.rpc(info, "evm_setAutomine", [False])
        try:
            for i, w in enumerate(chosen):
                if i % 2 == 0:
                    data = devnet.encode_call("supply(address,uint256,address,uint16)", info.token("USDC"),
                                              int(rng.uniform(10, 500)) * 10**6, w, 0)
                    to = pool_at
                else:
                    data = devnet.encode_call("supplyCollateral((address,address,address,address,uint256),"
                                              "uint256,address,bytes)", params, 10**17, w, b"")
                    to = morpho_at
                devnet.rpc(info, "eth_sendTransaction", [{"from": w, "to": to, "data": data, "gas": hex(1_500_000)}])
            devnet.mine(info)
        finally:
            devnet.rpc(info, "evm_setAutomine", [True])

    return {
        "aave_supply": aave_supply,
        "aave_withdraw": lambda: aave.withdraw(info, wallet, "WETH", int(rng.uniform(0.01, 0.5) * 10**18)),
        "aave_borrow": aave_borrow,
        "aave_repay": aave_repay,
        "morpho_supply": lambda: morpho.supply(info, wallet, "WETH_USDC", int(rng.uniform(10, 900)) * 10**6),
        "morpho_collateral": lambda: morpho.supply_collateral(info, wallet, "WETH_USDC", 10**17),
        "morpho_withdraw_collateral": lambda: morpho.withdraw_collateral(info, wallet, "WETH_USDC", 10**16),
        "morpho_borrow": morpho_borrow,
        "morpho_repay": morpho_repay,
        "lp_mint": lp_mint,
        "lp_increase": lp_increase,
        "lp_decrease": lp_decrease,
        "lp_collect": lp_collect,
        "lp_transfer": lp_transfer,
        "move_price": move_price,
        "time_jump": lambda: devnet.increase_time(info, int(rng.integers(60, 86_400))),
        "many_in_one_block": one_block_many_wallets,
    }


def _positions(venues: list[OnchainVenue], wallets: list[str], block: BlockRef) -> dict[str, dict[str, object]]:
    """Per venue, per wallet: its position state at ``block`` (a full read)."""
    out: dict[str, dict[str, object]] = {}
    for venue in venues:
        snapshot = venue.connector.read_accounts(wallets, block)
        state = STATE[venue.config.type]
        out[venue.config.name] = {a.wallet: state(a) for a in snapshot.accounts}
    return out


class Follower:
    """Reads each new block's dirty set through ``reader`` and checks it against full reads of every venue at
    the block and the one before: one eth_getLogs per block; per venue, the tracked dirty wallets are exactly
    the tracked wallets that changed, and every other dirty address (a treasury) changed too."""

    def __init__(self, rpc: RpcClient, reader: DirtyReader, venues: list[OnchainVenue], wallets: list[str],
                 start: BlockRef) -> None:
        self.rpc, self.reader, self.venues, self.wallets = rpc, reader, venues, wallets
        self.before = _positions(venues, wallets, start)
        self.head = start.number
        self.per_block: list[DirtySet] = []
        self.seen: dict[str, set[str]] = {v.config.name: set() for v in venues}
        self.multi = 0
        self.untracked: set[str] = set()
        """Dirty wallets outside the tracked ones (each checked to have changed)."""

    def catch_up(self, what: str) -> list[DirtySet]:
        """Every block mined since the last call, checked; their dirty sets."""
        out: list[DirtySet] = []
        latest = self.rpc.block_number()
        for number in range(self.head + 1, latest + 1):
            block = self.rpc.get_block(number)
            stats = self.rpc.stats.copy()
            dirty = self.reader.block(block)
            spent = self.rpc.stats.copy() - stats
            assert spent.calls_by_method == {"eth_getLogs": 1}, (number, spent.calls_by_method)
            assert spent.http_requests == 1
            out.append(dirty)
            after = _positions(self.venues, self.wallets, block)
            for venue_name, states in after.items():
                changed = {w for w, state in states.items() if self.before[venue_name][w] != state}
                got = dirty.venue(venue_name)
                assert not got.needs_full_read, got.errors
                tracked = got.wallets & set(self.wallets)
                assert tracked == changed, (number, venue_name, what, sorted(got.wallets), sorted(changed))
                extra = sorted(got.wallets - tracked)  # e.g. a treasury: its change is checked the same way
                if extra:
                    venue = next(v for v in self.venues if v.config.name == venue_name)
                    was = _positions([venue], extra, self.rpc.get_block(number - 1))[venue_name]
                    now = _positions([venue], extra, block)[venue_name]
                    assert all(was[w] != now[w] for w in extra), (number, venue_name, what, extra)
                    self.untracked |= set(extra)
                self.seen[venue_name] |= changed
            self.multi += len(dirty.wallets) > 1
            self.before = after
        self.head = latest
        self.per_block += out
        return out


def _start(info: devnet.DevnetInfo, ctx: ChainContext, wallets: list[str], request: pytest.FixtureRequest
           ) -> tuple[Follower, list[tuple[OnchainVenue, Any]], BlockRef]:
    venues = [v for v in ctx.onchain if v.config.type in STATE]
    assert sorted(v.config.type for v in venues) == sorted(STATE)
    rpc = RpcClient(info.rpc_url)
    request.addfinalizer(rpc.close)
    start = rpc.get_block("latest")
    snapshots = [(v, v.connector.read_accounts(wallets, start)) for v in venues]
    watch: ChainWatch = chain_watch(info.chain_id, snapshots)
    assert watch.unwatched == ()
    return Follower(rpc, DirtyReader(rpc, watch), venues, wallets, start), snapshots, start


def test_each_blocks_dirty_set_is_exactly_the_wallets_whose_position_changed(
        chain: devnet.DevnetInfo, ctx: ChainContext, request: pytest.FixtureRequest) -> None:
    info = chain
    rng = np.random.default_rng(SEED)
    wallets = [checksum(devnet.wallet_address(f"dirty-{SEED}-{i}")) for i in range(WALLETS)]
    book = _setup(info, wallets, rng)
    follower, snapshots, start = _start(info, ctx, wallets, request)
    reader = follower.reader
    names = {v.config.type: v.config.name for v in follower.venues}
    for _ in range(STEPS):
        actions = _actions(book, rng)
        name = str(rng.choice(sorted(actions)))
        try:
            actions[name]()
        except devnet.RevertedError:
            name += " (reverted)"
        follower.catch_up(name)
    head, per_block = follower.head, follower.per_block
    assert head - start.number >= STEPS  # every action mined at least one block
    for venue_name, touched in follower.seen.items():
        assert len(touched) >= 3, f"{venue_name}: too few wallets changed to say anything ({sorted(touched)})"
    assert follower.multi > 0, "no block changed more than one wallet"
    lp_venue = names["uniswap_v3"]
    assert any(r.venue == lp_venue for r in reader.rebuilds), "no new position rebuilt the watch"
    owners = reader.watch.venue(lp_venue).watch
    assert owners is not None
    assert isinstance(owners.state, OwnerBook)
    assert {t: o for t, o in owners.state.owners.items() if t in book.nfts} == book.nfts
    assert any(d.venue(lp_venue).market_changed for d in per_block), "no pool swap seen as a market change"
    assert any(d.venue(names["aave_v3"]).market_changed for d in per_block), "no reserve update seen"

    # the same range read at once, from the same starting snapshots: equal block by block, and the union
    clients = [RpcClient(info.rpc_url), RpcClient(info.rpc_url)]
    for client in clients:
        request.addfinalizer(client.close)
    second = DirtyReader(clients[0], chain_watch(info.chain_id, snapshots))
    blocks = second.range_blocks(start.number + 1, head)
    assert [(d.first_block, {n: (v.wallets, set(v.market_reasons)) for n, v in d.venues.items()}) for d in blocks] \
        == [(d.first_block, {n: (v.wallets, set(v.market_reasons)) for n, v in d.venues.items()}) for d in per_block]
    assert [r.block for r in second.rebuilds] == [r.block for r in reader.rebuilds]
    union = per_block[0]
    for dirty in per_block[1:]:
        union = union | dirty
    third = DirtyReader(clients[1], chain_watch(info.chain_id, snapshots)).range(start.number + 1, head)
    for venue_name in names.values():
        assert third.venue(venue_name).wallets == union.venue(venue_name).wallets
        assert set(third.venue(venue_name).market_reasons) == set(union.venue(venue_name).market_reasons)
    assert (third.first_block, third.last_block) == (start.number + 1, head)


def test_parameter_changes_are_market_reasons_fee_shares_dirty_the_recipient_and_new_sources_rebuild(
        chain: devnet.DevnetInfo, ctx: ChainContext, request: pytest.FixtureRequest) -> None:
    """Morpho's fee shares are minted to the fee recipient without a Supply event: the watch knows the recipient
    (rebuilt when it changes) and dirties it. Aave's configuration changes are market reasons; a new oracle source
    rebuilds the watch, which then listens to the new feed."""
    info = chain
    wallets = [checksum(devnet.wallet_address(f"dirty-gov-{SEED}-{i}")) for i in range(3)]
    recipient, borrower, lender = wallets
    morpho_at = info.contract("morpho_blue.morpho")
    params = morpho.market_params(info, "WETH_USDC").as_tuple()
    for wallet in wallets:
        devnet.mint_tokens(info, wallet, "WETH", 50 * 10**18)
        devnet.mint_tokens(info, wallet, "USDC", 1_000_000 * 10**6)
    morpho.supply(info, lender, "WETH_USDC", 100_000 * 10**6)
    morpho.supply_collateral(info, borrower, "WETH_USDC", 20 * 10**18)
    morpho.borrow(info, borrower, "WETH_USDC", 30_000 * 10**6)
    aave.supply(info, lender, "WETH", 5 * 10**18)
    follower, _, _ = _start(info, ctx, wallets, request)
    reader = follower.reader
    names = {v.config.type: v.config.name for v in follower.venues}
    lending, isolated = names["aave_v3"], names["morpho_blue"]

    devnet.transact(info, devnet.ADMIN, morpho_at, "setFeeRecipient(address)", recipient)
    (block,) = follower.catch_up("setFeeRecipient")
    assert block.venue(isolated).rewatch == (f"SetFeeRecipient {recipient}",)
    assert reader.rebuilds[-1].venue == isolated
    devnet.transact(info, devnet.ADMIN, morpho_at, "setFee((address,address,address,address,uint256),uint256)",
                    params, 10**17)
    (block,) = follower.catch_up("setFee")
    assert any(r.startswith("SetFee ") for r in block.venue(isolated).market_reasons)
    devnet.increase_time(info, 30 * 86_400)
    morpho.repay(info, borrower, "WETH_USDC", 1_000 * 10**6)
    *_, block = follower.catch_up("repay after a month of interest, with a fee")
    assert block.venue(isolated).wallets == {recipient, borrower}  # the recipient by its fee shares alone
    assert not block.venue(lending).wallets

    configurator = info.contract("aave_v3.pool_configurator")
    devnet.transact(info, devnet.ADMIN, configurator, "setReserveFactor(address,uint256)", info.token("USDC"), 1_234)
    (block,) = follower.catch_up("setReserveFactor")
    assert any(r.startswith("ReserveFactorChanged") for r in block.venue(lending).market_reasons)
    assert not block.wallets

    oracle = info.contract("aave_v3.oracle")
    old_feed = info.contract(devnet.feed_name("WETH"))
    answer = devnet.latest_round(info, "WETH").answer_raw
    bytecode = str(devnet.install.artifact("MockV3Aggregator")["bytecode"])
    new_feed = devnet.evm.deploy_contract(info, devnet.ADMIN, bytecode, ["uint8", "int256"], [8, answer])
    assert new_feed not in reader.watch.query.addresses
    devnet.transact(info, devnet.ADMIN, oracle, "setAssetSources(address[],address[])", [info.token("WETH")],
                    [new_feed])
    *_, block = follower.catch_up("setAssetSources")
    assert block.venue(lending).rewatch
    assert reader.rebuilds[-1].venue == lending
    assert new_feed in reader.watch.query.addresses
    devnet.transact(info, devnet.ADMIN, oracle, "setAssetSources(address[],address[])", [info.token("WETH")],
                    [old_feed])
    follower.catch_up("setAssetSources back")
    assert new_feed not in reader.watch.query.addresses


def test_liquidations_dirty_the_borrower_and_a_liquidator_only_when_its_position_changes(
        chain: devnet.DevnetInfo, ctx: ChainContext, request: pytest.FixtureRequest) -> None:
    info = chain
    wallets = [checksum(devnet.wallet_address(f"dirty-liq-{SEED}-{i}")) for i in range(3)]
    isolated_borrower, pooled_borrower, liquidator = wallets
    for wallet in wallets:
        devnet.mint_tokens(info, wallet, "WETH", 50 * 10**18)
        devnet.mint_tokens(info, wallet, "USDC", 1_000_000 * 10**6)
    price = morpho.oracle_price(info, "WETH_USDC")
    morpho.supply_collateral(info, isolated_borrower, "WETH_USDC", 10 * 10**18)
    lltv = morpho.market_params(info, "WETH_USDC").lltv
    morpho.borrow(info, isolated_borrower, "WETH_USDC", 10 * 10**18 * price // 10**36 * lltv // 10**18 * 9 // 10)
    aave.supply(info, pooled_borrower, "WETH", 10 * 10**18)
    available = aave.account_data(info, pooled_borrower).available_borrows_base  # 8 decimals, USD
    aave.borrow(info, pooled_borrower, "USDC", available * 99 // 100 // 100)  # USDC has 6 decimals
    follower, _, _ = _start(info, ctx, wallets, request)
    names = {v.config.type: v.config.name for v in follower.venues}
    lending, isolated = names["aave_v3"], names["morpho_blue"]

    weth = devnet.latest_round(info, "WETH").price_usd
    morpho.set_oracle_price(info, "WETH_USDC", price * 7 // 10)
    follower.catch_up("Morpho oracle down 30 %")
    morpho.liquidate(info, liquidator, isolated_borrower, "WETH_USDC", seized_assets=10**18)
    *_, block = follower.catch_up("Morpho liquidation")
    assert block.venue(isolated).wallets == {isolated_borrower}  # the liquidator's seized collateral is not a position

    devnet.set_price(info, "WETH", weth * 8 / 10)
    follower.catch_up("WETH down 20 %")
    assert aave.account_data(info, pooled_borrower).health_factor_wad < 10**18
    aave.liquidate(info, liquidator, pooled_borrower, "WETH", "USDC", aave.MAX_UINT256, receive_a_token=True)
    *_, block = follower.catch_up("Aave liquidation taking aTokens")
    treasury = block.venue(lending).wallets - {pooled_borrower, liquidator}
    assert block.venue(lending).wallets >= {pooled_borrower, liquidator}
    assert treasury <= follower.untracked  # the protocol's fee, paid in aTokens: checked to have changed
    assert any(r.startswith("ReserveDataUpdated") for r in block.venue(lending).market_reasons)
    devnet.set_price(info, "WETH", weth)
    follower.catch_up("WETH back")
