"""Health rows store their ``extra`` as the changes from their version's first (``db.jsondelta``): what the store
gives back is what was written, at every block, on both backends, and a store migrated either way keeps it."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from hypothesis import given, settings
from hypothesis import strategies as st

from db import Store, jsondelta
from db.engine import make_engine
from db.migrate import alembic_config, upgrade
from tests.db import db_testdata as td

# --- the delta itself ---------------------------------------------------------------------------------------------
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.text(max_size=6),
                     st.floats(allow_nan=True, allow_infinity=False))
_json = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=4), inner, max_size=4)),
                     max_leaves=25)


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values: by type, NaN equal to NaN, -0.0 apart from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if a == b:
            return math.copysign(1.0, a) == math.copysign(1.0, b)  # -0.0 is written as such
        return math.isnan(a) and math.isnan(b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _mutate(value: Any, rng: random.Random) -> Any:
    """A value like ``value``: some leaves changed, keys added or removed, types switched, lists resized."""
    if isinstance(value, dict):
        out = {k: _mutate(v, rng) if rng.random() < 0.4 else v for k, v in value.items() if rng.random() > 0.1}
        if rng.random() < 0.2:
            out[f"new{rng.randrange(3)}"] = rng.choice([None, 1, 1.0, True, "x", [1], {"a": None}])
        return out
    if isinstance(value, list):
        if rng.random() < 0.2:
            return [*value, 0] if rng.random() < 0.5 else value[:-1]
        return [_mutate(v, rng) if rng.random() < 0.4 else v for v in value]
    return rng.choice([value, None, 0, 0.0, False, "", 1, 1.0, True, float("nan"), [value], {"v": value}])


@settings(max_examples=300, deadline=None)
@given(base=_json, seed=st.integers(0, 2**32))
def test_a_delta_gives_back_exactly_the_value_and_leaves_the_base(base: Any, seed: int) -> None:
    new = _mutate(base, random.Random(seed))
    before = json.dumps(base)
    delta = json.loads(json.dumps(jsondelta.diff(base, new)))  # stored as JSON: it must survive that
    assert _same(jsondelta.apply(base, delta), new)
    assert json.dumps(base) == before  # the base is not touched
    assert (delta == {}) == _same(base, new)


def test_a_delta_holds_only_what_moved() -> None:
    base = {"markets": [{"id": "0x93be", "lltv": 0.915, "hf": 4.72, "tokens": ["0x9a9f", "0x3aa5"]}], "net": 1.0}
    new = {"markets": [{"id": "0x93be", "lltv": 0.915, "hf": 4.70, "tokens": ["0x9a9f", "0x3aa5"]}], "net": 1.0}
    assert jsondelta.diff(base, new) == {"s": [[["markets", 0, "hf"], 4.70]]}
    assert jsondelta.diff(base, {"net": 1}) == {"s": [[["net"], 1]], "d": [["markets"]]}  # 1 is not 1.0
    assert jsondelta.diff([1, 2], [1, 2, 3]) == {"s": [[[], [1, 2, 3]]]}
    assert jsondelta.apply(base, {}) is base
    signed = jsondelta.apply({"a": 0.0, "b": [0.0]}, jsondelta.diff({"a": 0.0, "b": [0.0]}, {"a": -0.0, "b": [-0.0]}))
    assert [math.copysign(1.0, signed["a"]), math.copysign(1.0, signed["b"][0])] == [-1.0, -1.0]  # written as -0.0


# --- the store ----------------------------------------------------------------------------------------------------
def _extra(block: int, rng: random.Random) -> dict[str, Any]:
    """A detail shaped like a Morpho one: mostly the same from block to block, a few figures moving."""
    markets = [{"market_id": f"0x{i:064x}", "lltv": 0.915, "loan_symbol": "DAI", "collateral_decimals": 18,
                "health_factor": round(1.5 + rng.random(), 6), "total_borrow_raw": str(10**24 + block * 997),
                "block": block, "liquidation_price": None if rng.random() < 0.3 else rng.random() * 1000}
               for i in range(1 + (block // 7) % 2)]
    out: dict[str, Any] = {"markets": markets, "net_worth_usd": rng.choice([1.0, 1, rng.random()])}
    if rng.random() < 0.3:
        out["note"] = rng.choice(["a", None, {"nested": [1, 2.5]}])
    return out


def _write_blocks(store: Store, wallets: list[str], blocks: range, rng: random.Random) -> dict[tuple[str, int], Any]:
    """One batch per block, every wallet's health detail changing; a wallet's positions change now and then (a new
    version, a new base). Returns the detail written per (wallet, block)."""
    written: dict[tuple[str, int], Any] = {}
    for block in blocks:
        snaps = []
        for w in wallets:
            s = td.snapshot(w, block)
            if rng.random() < 0.8:  # positions held: the same version (td.snapshot's amounts move with the block)
                s = dataclasses.replace(s, positions=td.snapshot(w, blocks.start).positions)
            extra = _extra(block, rng)
            assert s.health is not None
            snaps.append(dataclasses.replace(s, health=dataclasses.replace(
                s.health, extra=extra, health_factor_raw=(s.health.health_factor_raw or 0) + rng.randrange(10**17))))
            written[(w, block)] = json.loads(json.dumps(extra))
        store.write_changes(dataclasses.replace(td.batch(wallets, block), snapshots=tuple(snaps)))
    return written


def _read_back(store: Store, wallets: list[str]) -> dict[tuple[str, int], Any]:
    out = {}
    for w in wallets:
        for point in store.history(w):
            assert point.health is not None
            out[(w, point.block_number)] = point.health.extra
    return out


def _stored_extras(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return [json.loads(x) if isinstance(x, str) else x
                for x in conn.execute(sa.text("SELECT extra FROM health_results ORDER BY id")).scalars()]


def test_the_store_gives_back_every_detail_as_written(store: Store) -> None:
    rng = random.Random(7)
    wallets = td.setup(store, 4)
    written = _write_blocks(store, wallets, range(100, 130), rng)
    back = _read_back(store, wallets)
    assert back == {k: written[k] for k in back}
    assert len(back) > len(written) // 2  # the health moved at most blocks: rows were written
    for w in wallets:  # the newest, as the API reads it
        (latest,) = store.latest_health(w)
        assert latest.snapshot.health is not None
        newest = max(b for (x, b) in back if x == w)
        assert latest.snapshot.health.extra == written[(w, newest)]
    # what is stored is the changes: far less than the details whole
    stored = sum(len(json.dumps(x)) for x in _stored_extras(store.engine))
    whole = sum(len(json.dumps(written[k])) for k in back)
    assert stored < 0.6 * whole, (stored, whole)


@pytest.mark.real_migrations
def test_a_store_migrated_down_and_up_again_keeps_every_detail(db_url: str) -> None:
    """Down to 0013 the rows get their detail whole again; back up, those versions have no base and are read as
    they are (a store made before 0014 is such a store)."""
    rng = random.Random(11)
    engine = make_engine(db_url)
    try:
        with Store.open(db_url) as store:
            wallets = td.setup(store, 3)
            _write_blocks(store, wallets, range(200, 215), rng)
            before = _read_back(store, wallets)
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0013")
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT s.wallet_id, h.block_number, h.extra FROM health_results h "
                                        "JOIN position_snapshots s ON s.id = h.snapshot_id")).all()
            ids = dict(conn.execute(sa.text("SELECT id, address FROM wallets")).all())
        whole = {(ids[w], b): json.loads(x) if isinstance(x, str) else x for w, b, x in rows}
        assert whole == before
        upgrade(engine)
        with Store.open(db_url) as store:
            assert _read_back(store, wallets) == before
            _write_blocks(store, wallets, range(215, 220), rng)  # and writes on: held versions without a base
            assert {k: v for k, v in _read_back(store, wallets).items() if k[1] < 215} == before
    finally:
        engine.dispose()



def test_a_version_another_writer_replaced_is_not_diffed_against_a_kept_base(tmp_path: Any) -> None:
    """Another process rewrites a reorganised block at the same height: the version there is deleted and written
    again, and SQLite may give the new one the old one's id. A store that kept the old version (and its base) in
    memory must not write its next rows as changes from that base: replacing superseded snapshots counts as a purge
    (``chains.purges``), which makes every store forget what it kept of the chain."""
    url = f"sqlite:///{tmp_path / 'two.db'}"
    with Store.open(url) as mine, Store.open(url) as other:
        (wallet,) = td.setup(mine, 1)

        def write(store: Store, block: int, extra: dict[str, Any], block_hash: str | None = None,
                  health_factor: float = 2.0) -> None:
            s = td.snapshot(wallet, block)
            assert s.health is not None
            s = dataclasses.replace(s, positions=td.snapshot(wallet, 100).positions, health=dataclasses.replace(
                s.health, extra=extra, health_factor=health_factor, health_factor_raw=None,
                onchain_health_factor_raw=None, debt_usd=1000.0))
            block_hash = block_hash or f"0x{block:064x}"
            store.write_changes(dataclasses.replace(td.batch([wallet], block), snapshots=(
                dataclasses.replace(s, block_hash=block_hash),), block_hash=block_hash))

        write(mine, 100, {"a": 1, "b": "old"})
        write(mine, 101, {"a": 1, "b": "old"})  # nothing moved: the version's newest health row stays block 100's
        write(other, 100, {"a": 1, "b": "new"}, "0x" + "ab" * 32)  # block 100 reorganised, read again elsewhere
        write(mine, 102, {"a": 2, "b": "old"}, health_factor=3.0)
        assert {p.block_number: p.health.extra for p in mine.history(wallet) if p.health is not None}[102] == \
            {"a": 2, "b": "old"}
