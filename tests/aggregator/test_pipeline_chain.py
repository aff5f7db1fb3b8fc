"""The sync pipeline against the devnet, on both store backends: read → compute → store → show."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

import devnet
from aggregator.config import ChainConfig, Settings
from aggregator.devnet_cli import devnet_settings as all_venues
from aggregator.pipeline import sync_once
from aggregator.render import health_document
from aggregator.venues.aave_v3 import AaveV3Config
from db.rows import SyncStatus
from db.store import Store

pytestmark = pytest.mark.chain


def devnet_settings(info: devnet.DevnetInfo) -> Settings:
    """The devnet's Aave market alone: these tests are about the pipeline (the hedged wallet's test covers
    every venue together)."""
    settings = all_venues(info)
    return settings.model_copy(update={"venues": tuple(v for v in settings.venues if v.type == "aave_v3")})


@pytest.fixture
def chain(seeded_devnet: devnet.DevnetInfo) -> Iterator[devnet.DevnetInfo]:
    snap = devnet.snapshot(seeded_devnet)
    yield seeded_devnet
    devnet.revert(seeded_devnet, snap)


@pytest.fixture
def seeded() -> dict[str, str]:
    return {devnet.wallet_address(label): label for label in devnet.SEED_LABELS if label != "lender"}


@pytest.fixture
def store(db_url: str, seeded: dict[str, str]) -> Iterator[Store]:
    with Store.open(db_url) as s:
        s.add_wallets(list(seeded.items()))
        yield s


def _counts(store: Store) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("sync_runs", "position_snapshots", "positions", "prices", "health_results")}


def test_sync_stores_exact_health_for_every_seeded_wallet(
    chain: devnet.DevnetInfo, store: Store, seeded: dict[str, str]
) -> None:
    settings = devnet_settings(chain)
    report = sync_once(settings, store)
    assert report.ok, [b.error for b in report.batches]
    healths = {h.wallet: h for h in report.healths()}
    assert set(healths) == set(seeded)
    for wallet, h in healths.items():
        assert h.matches_onchain, (seeded[wallet], h)
        onchain = devnet.account_data(chain, wallet)
        assert h.health_factor_raw == onchain.health_factor_wad
    near = healths[devnet.wallet_address("near_liquidation")]
    assert near.health_factor is not None
    assert 1.0 < near.health_factor < 1.1

    block = report.batches[0].block
    assert block is not None
    latest = store.latest_health(devnet.wallet_address("multi"))
    doc = health_document(devnet.wallet_address("multi"), latest, {"aave_v3": "lending"})
    assert doc["block"] == block.number
    assert doc["chain_id"] == chain.chain_id
    (venue,) = doc["venues"]
    assert venue["venue"] == "aave_v3"
    assert venue["kind"] == "lending"
    onchain = devnet.account_data(chain, devnet.wallet_address("multi"))
    assert int(venue["health_factor_raw"]) == onchain.health_factor_wad
    sides = {(p["asset"], p["side"]) for p in venue["positions"]}
    assert {("WETH", "collateral"), ("LINK", "collateral"), ("AAVE", "collateral"),
            ("DAI", "debt"), ("USDC", "debt"), ("LINK", "debt")} <= sides
    total_coll = sum(p["value_usd"] for p in venue["positions"] if p["side"] == "collateral" and p["is_collateral"])
    assert total_coll == pytest.approx(venue["collateral_usd"], rel=1e-9)
    assert all(p["price_source"] == "aave_v3.oracle" and p["price_age_s"] is not None for p in venue["positions"])


def test_a_price_move_shows_up_in_the_next_sync(chain: devnet.DevnetInfo, store: Store) -> None:
    settings = devnet_settings(chain)
    near = devnet.wallet_address("near_liquidation")
    first = {h.wallet: h for h in sync_once(settings, store).healths()}[near]
    devnet.set_price(chain, "WETH", 3_700)
    second_report = sync_once(settings, store)
    second = {h.wallet: h for h in second_report.healths()}[near]
    assert first.health_factor is not None
    assert second.health_factor is not None
    assert second.health_factor < 1.0 < first.health_factor
    assert second.matches_onchain
    history = store.history(near)
    assert len(history) == 2
    assert history[0].block_number != history[1].block_number


def test_wallet_without_aave_position_has_no_debt_and_null_health(chain: devnet.DevnetInfo, store: Store) -> None:
    fresh = devnet.wallet_address("never-used-aave")
    store.add_wallets([(fresh, "fresh")])
    report = sync_once(devnet_settings(chain), store)
    h = {x.wallet: x for x in report.healths()}[fresh]
    assert h.health_factor is None
    assert h.health_factor_raw is None
    assert h.positions == ()
    assert (h.collateral_usd, h.debt_usd) == (0.0, 0.0)
    doc = health_document(fresh, store.latest_health(fresh), {})
    assert doc["venues"][0]["health_factor"] is None


def test_one_failing_venue_does_not_block_the_other(chain: devnet.DevnetInfo, store: Store) -> None:
    good = devnet_settings(chain)
    broken = AaveV3Config(name="broken_fork", type="aave_v3", chain="devnet",
                         pool_addresses_provider=chain.token("DAI"))  # an ERC-20, not a provider
    settings = good.model_copy(update={"venues": (*good.venues, broken)})
    report = sync_once(settings, store)
    (batch,) = report.batches
    assert batch.status is SyncStatus.PARTIAL
    assert "broken_fork" in (batch.error or "")
    ok = next(r for r in batch.readings if r.venue == "aave_v3")
    assert ok.error is None
    assert all(h.matches_onchain for h in ok.healths)
    wallet = devnet.wallet_address("safe")
    by_venue = {v.venue: v for v in store.latest_health(wallet)}
    assert by_venue["aave_v3"].snapshot.health is not None
    assert str(by_venue["broken_fork"].snapshot.status) == "error"
    assert by_venue["broken_fork"].snapshot.positions == ()
    assert by_venue["broken_fork"].snapshot.health is None


def test_unreachable_node_writes_no_data_but_records_the_failed_attempt(store: Store) -> None:
    settings = Settings(
        chains=(ChainConfig(name="down", chain_id=31337, rpc_url="http://127.0.0.1:9", timeout_s=0.5, max_retries=1),),
        venues=(AaveV3Config(name="aave_v3", type="aave_v3", chain="down",
                            pool_addresses_provider="0x" + "11" * 20),),
    )
    before = _counts(store)
    report = sync_once(settings, store)
    (batch,) = report.batches
    assert batch.status is SyncStatus.FAILED
    assert batch.block is None
    assert "127.0.0.1" in (batch.error or "")
    after = _counts(store)
    # No data, only the record of the attempt, so that every view can say that syncing fails and why.
    assert after == {**before, "sync_runs": before["sync_runs"] + 1}
    [status] = store.sync_status({31337})
    assert status.last_attempt_status is SyncStatus.FAILED
    assert status.last_ok_at is None
    assert status.failing_since is not None
    assert "Connection refused" in (status.last_error or "")
    assert batch.sync_run_id is not None


def test_wrong_chain_id_is_refused_before_reading(chain: devnet.DevnetInfo, store: Store) -> None:
    settings = devnet_settings(chain)
    wrong = settings.model_copy(update={"chains": (settings.chains[0].model_copy(update={"chain_id": 1}),)})
    before = _counts(store)
    (batch,) = sync_once(wrong, store).batches
    assert batch.status is SyncStatus.FAILED
    assert "chain id 1" in (batch.error or "")
    assert _counts(store) == {**before, "sync_runs": before["sync_runs"] + 1}  # the failed attempt, no data
    [status] = store.sync_status({1})
    assert "chain id 1" in (status.last_error or "")


def test_store_failure_mid_write_leaves_nothing(
    chain: devnet.DevnetInfo, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _counts(store)

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full (injected)")

    monkeypatch.setattr(store, "_insert_positions", boom)
    (batch,) = sync_once(devnet_settings(chain), store).batches
    assert batch.status is SyncStatus.FAILED
    assert "injected" in (batch.error or "")
    after = _counts(store)
    # Only the record of the failed run itself is added, in its own transaction.
    assert after == {**before, "sync_runs": before["sync_runs"] + 1}
    with store.engine.connect() as conn:
        status = conn.execute(sa.text("SELECT status FROM sync_runs WHERE id = :i"), {"i": batch.sync_run_id})
        assert status.scalar_one() == "failed"


def test_sync_is_a_function_of_wallet_batch_and_block(
    chain: devnet.DevnetInfo, store: Store, seeded: dict[str, str]
) -> None:
    settings = devnet_settings(chain).model_copy(update={"wallet_batch_size": 2})
    block = devnet.rpc(chain, "eth_blockNumber")
    devnet.set_price(chain, "WETH", 3_900)  # a later block; the pinned read must not see it
    report = sync_once(settings, store, block_number=int(block, 16))
    assert len(report.batches) == (len(seeded) + 1) // 2  # batches of 2 wallets, all at the same block
    assert {b.block.number for b in report.batches if b.block} == {int(block, 16)}
    near = {h.wallet: h for h in report.healths()}[devnet.wallet_address("near_liquidation")]
    assert next(p for p in near.positions if p.asset == "WETH").price_usd == 4_000.0


class _SilentNode:
    """A TCP server on loopback that accepts connections and never answers (a hung node)."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
            except OSError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self.conns:
            conn.close()
        self.sock.close()


def test_a_hung_node_times_out_with_a_clear_error_and_writes_nothing(store: Store) -> None:
    node = _SilentNode()
    try:
        settings = Settings(
            chains=(ChainConfig(name="hung", chain_id=31337, rpc_url=f"http://127.0.0.1:{node.port}/key-abc123",
                                timeout_s=0.3, max_retries=1),),
            venues=(AaveV3Config(name="aave_v3", type="aave_v3", chain="hung",
                                pool_addresses_provider="0x" + "22" * 20),),
        )
        before = _counts(store)
        (batch,) = sync_once(settings, store).batches
    finally:
        node.close()
    assert batch.status is SyncStatus.FAILED
    assert "timed out" in (batch.error or "").lower()
    assert "key-abc123" not in (batch.error or "")  # the URL's secret part never reaches messages
    assert _counts(store) == {**before, "sync_runs": before["sync_runs"] + 1}  # the failed attempt, no data
    [status] = store.sync_status({31337})
    assert "timed out" in (status.last_error or "")
    assert "key-abc123" not in (status.last_error or "")


def test_a_venue_that_reverts_is_reported_by_name(chain: devnet.DevnetInfo, store: Store) -> None:
    # The pool addresses provider points at a contract whose getPool() reverts / does not exist.
    settings = devnet_settings(chain)
    wrong = settings.venues[0].model_copy(update={"pool_addresses_provider": chain.contract("aave_v3.pool")})
    (batch,) = sync_once(settings.model_copy(update={"venues": (wrong,)}), store).batches
    assert batch.status is SyncStatus.FAILED
    error = batch.error or ""
    assert "aave_v3" in error
    assert "getPool" in error or "revert" in error.lower()
    assert all(r.healths == () for r in batch.readings)


def test_xmargin_run_syncs_on_its_schedule_until_stopped(chain: devnet.DevnetInfo, db_url: str,
                                                         seeded: dict[str, str]) -> None:
    import io
    import threading

    from rich.console import Console

    from aggregator.scheduler import run_forever

    with Store.open(db_url) as s:
        s.add_wallets(list(seeded.items()))
    settings = devnet_settings(chain).model_copy(update={"db_url": db_url, "interval_s": 0.2})
    stop = threading.Event()
    out = io.StringIO()
    thread = threading.Thread(target=run_forever, args=(settings, Console(file=out, width=120), stop))
    thread.start()
    safe = devnet.wallet_address("safe")
    try:
        with Store.open(db_url) as s:
            # Two scheduled syncs of two blocks: the store's newest block moves on and the wallet is served at it
            # (its history holds only its changes: nothing changed for it, so no new point is required).
            first = None
            for _ in range(200):
                newest = s.latest_block(chain.chain_id)
                if first is None and newest is not None:
                    first = newest
                if first is not None and newest is not None and newest > first:
                    break
                devnet.mine(chain)  # a new block for each run (the same block twice is stored once)
                threading.Event().wait(0.05)
            newest = s.latest_block(chain.chain_id)
            assert first is not None
            assert newest is not None
            assert newest > first
            served = s.latest_health(safe)
            assert served
            assert all(v.as_of_block >= newest for v in served), [(v.venue, v.as_of_block) for v in served]
            assert len(s.history(safe)) >= 1
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert "syncing every 0.2 s" in out.getvalue()
    assert "exact" in out.getvalue()


def test_venues_of_a_chain_share_round_trips_and_one_block(
    chain: devnet.DevnetInfo, store: Store, seeded: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two venues cost the round trips of one: their read programs run in lock-step in shared batches."""
    from aggregator import pipeline

    contexts: list[pipeline.ChainContext] = []
    original = pipeline.ChainContext.open

    def spy(settings: Settings, chain_cfg: ChainConfig) -> pipeline.ChainContext:
        ctx = original(settings, chain_cfg)
        contexts.append(ctx)
        return ctx

    monkeypatch.setattr(pipeline.ChainContext, "open", staticmethod(spy))
    one = devnet_settings(chain)
    second = one.venues[0].model_copy(update={"name": "aave_v3_again"})
    two = one.model_copy(update={"venues": (*one.venues, second)})
    sync_once(one, store)
    devnet.mine(chain)
    sync_once(two, store)
    single, double = (c.rpc.stats for c in contexts)
    assert double.http_requests == single.http_requests
    assert double.calls_by_method["eth_call"] == single.calls_by_method["eth_call"]
    wallet = devnet.wallet_address("multi")
    latest = {v.venue: v.snapshot for v in store.latest_health(wallet)}
    assert latest["aave_v3"].block_number == latest["aave_v3_again"].block_number
    first, again = latest["aave_v3"].health, latest["aave_v3_again"].health
    assert first is not None
    assert again is not None
    assert first.health_factor_raw == again.health_factor_raw


def test_a_venue_whose_numbers_overflow_is_stale_and_the_others_are_stored(
    chain: devnet.DevnetInfo, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ArithmeticError from a venue's evaluation (numbers out of range) costs that venue only."""
    from aggregator.venues.morpho_blue import sync as morpho

    def overflow(*_args: object, **_kwargs: object) -> None:
        raise OverflowError("int too large to convert to float (injected)")

    monkeypatch.setattr(morpho, "evaluate", overflow)
    (batch,) = sync_once(all_venues(chain), store).batches
    assert batch.status is SyncStatus.PARTIAL
    by_venue = {r.venue: r for r in batch.readings}
    assert "injected" in (by_venue["morpho_blue"].error or "")
    assert all(r.error is None for name, r in by_venue.items() if name != "morpho_blue")
    latest = {v.venue: v.snapshot for v in store.latest_health(devnet.wallet_address("hedged"))}
    assert latest["morpho_blue"].error is not None
    assert latest["aave_v3"].health is not None


def test_a_bug_inside_a_venue_propagates_while_bad_venue_data_fails_only_that_venue(
    chain: devnet.DevnetInfo, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the connector error tree and arithmetic on out-of-range numbers are a venue's fault; a ``TypeError``
    (a bug) is not swallowed as one."""
    from aggregator.venues.morpho_blue import sync as morpho_sync
    from connectors.errors import OracleError

    settings = all_venues(chain)

    def bug(*_args: object) -> None:
        raise TypeError("unsupported operand type(s)")

    monkeypatch.setattr(morpho_sync, "evaluate", bug)
    with pytest.raises(TypeError, match="unsupported operand"):
        sync_once(settings, store)

    def bad_price(*_args: object) -> None:
        raise OracleError("no USD price for the loan token")

    monkeypatch.setattr(morpho_sync, "evaluate", bad_price)
    report = sync_once(settings, store)
    (batch,) = report.batches
    assert batch.status is SyncStatus.PARTIAL
    by_venue = {r.venue: r for r in batch.readings}
    assert "no USD price" in (by_venue["morpho_blue"].error or "")
    assert by_venue["aave_v3"].error is None
