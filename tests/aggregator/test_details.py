"""What a venue's sync stores is what its typed detail models declare: the seeded devnet synced into a store, every
stored ``extra`` of every position and health, and every stored market's ``params``, parses with its venue's model
(``STORED`` in ``aggregator/venues/<venue>/detail.py``) with no undeclared key, and the model gives back exactly
the stored JSON (same keys in the same order, same values, same JSON types). A sync that writes a key its model
does not declare fails here.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

import devnet
from aggregator.devnet_cli import devnet_settings
from aggregator.pipeline import sync_once
from aggregator.venues.detail import Detail, StoredDetails, parse
from connectors.registry import VENUES, venue_module
from db.store import Store
from devnet import aave, morpho

pytestmark = pytest.mark.chain


def stored_models(venue_type: str) -> StoredDetails:
    models = importlib.import_module(venue_module("aggregator", venue_type, "detail")).STORED
    assert isinstance(models, StoredDetails)
    return models


def check(model: type[Detail], raw: Mapping[str, Any], what: str) -> None:
    detail = parse(model, raw)
    assert detail.undeclared() == [], (what, model.__name__, detail.undeclared())
    # …and the model is the stored JSON: dumped again, byte for byte (key order and JSON types included)
    assert json.dumps(detail.stored()) == json.dumps(dict(raw)), (what, model.__name__)


@pytest.fixture(scope="module")
def synced(
    seeded_devnet: devnet.DevnetInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Store, dict[str, str], list[str]]]:
    """Every seeded wallet synced once on every venue of the devnet, one of them also lending on a Morpho market
    (the seed has no supply position); (store, venue type by name, wallets). The shared devnet's next module
    starts from the seeded state again (tests/shared_devnet.py)."""
    path: Path = tmp_path_factory.mktemp("details") / "xmargin.db"
    info = seeded_devnet
    wallets = [(w.address, w.label) for w in devnet.seed(info)]  # already seeded: the wallets, nothing sent
    lends = wallets[0][0]
    aave.fund(info, lends, "USDC", 1_000 * 10**6)
    morpho.supply(info, lends, "WETH_USDC", 1_000 * 10**6)
    settings = devnet_settings(info)
    with Store.open(f"sqlite:///{path}") as store:
        store.add_wallets(wallets)
        report = sync_once(settings, store)
        assert report.ok, [b.error for b in report.batches]
        yield store, {v.name: v.type for v in settings.venues}, [address for address, _ in wallets]


def test_every_stored_position_and_health_detail_is_declared_by_its_venue_model(
    synced: tuple[Store, dict[str, str], list[str]],
) -> None:
    store, types, wallets = synced
    seen: dict[str, set[str]] = {}
    for wallet in wallets:
        for item in store.latest_health(wallet):
            models = stored_models(types[item.venue])
            snap = item.snapshot
            sides = seen.setdefault(types[item.venue], set())
            for p in snap.positions:
                side = str(p.side)
                assert side in models.positions, (item.venue, side)
                check(models.positions[side], p.extra, f"{item.venue} {p.asset.symbol} {side} of {wallet}")
                sides.add(side)
            assert snap.health is not None
            check(models.health, snap.health.extra, f"{item.venue} health of {wallet}")
            sides.add("health")
    # the seeded wallets hold every venue's every kind of stored detail the test can see
    assert set(seen) == set(VENUES), seen
    for venue_type, sides in seen.items():
        assert sides == {*stored_models(venue_type).positions, "health"}, (venue_type, sides)


def test_every_stored_market_is_declared_by_its_venue_model(synced: tuple[Store, dict[str, str], list[str]]) -> None:
    store, types, _ = synced
    for name, venue_type in types.items():
        markets = store.market_params(name)
        assert markets, name
        model = stored_models(venue_type).markets
        for key, params in markets.items():
            if model is None:
                assert params == {}, (name, key)  # a venue without a market model stores none
            else:
                check(model, params, f"{name} market {key}")
