"""A venue is a plugin: every registered venue has its part in every layer, each part behaves as its layer's
interface says, and outside a venue's own modules no product file names a venue.

The completeness check is product code (:func:`aggregator.venues.parts.missing_parts`); here it runs for every
venue of :data:`connectors.registry.VENUES`, and on a deliberately incomplete venue to show it can fail.
"""

from __future__ import annotations

import importlib
import re
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.config import Settings, VenueConfig, venue_config
from aggregator.venues import kind_of, plugin_of, plugins
from aggregator.venues.detail import Detail, StoredDetails, parse
from aggregator.venues.parts import missing_parts
from aggregator.venues.plugin import PluginBase, VenuePlugin
from connectors import registry
from connectors.registry import VENUES, UnknownVenueError, capabilities, venue_module
from db.rows import PositionSide
from tests.db import db_testdata as td

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("venue", VENUES)
def test_every_registered_venue_is_complete(venue: str) -> None:
    assert missing_parts(venue) == []


def test_a_venue_missing_a_part_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test-only venue registered with a connector and a plugin but no riskcore rules, sync or risk lines."""
    fake = "fake_v1"
    monkeypatch.setattr(registry, "VENUES", (*VENUES, fake))
    connector = types.ModuleType(f"connectors.{fake}.connector")
    caps = capabilities("aave_v3").model_copy(update={"venue_type": fake})
    connector.CONNECTOR = type("FakeConnector", (), {"capabilities": caps})  # type: ignore[attr-defined]

    class FakeConfig(VenueConfig):
        type: typing.Literal["fake_v1"]

    class FakePlugin(PluginBase):
        venue_type = fake
        config_model = FakeConfig

    package = types.ModuleType(f"aggregator.venues.{fake}")
    package.PLUGIN = FakePlugin()  # type: ignore[attr-defined]
    for name, module in ((f"connectors.{fake}", types.ModuleType(f"connectors.{fake}")),
                         (f"connectors.{fake}.connector", connector), (f"aggregator.venues.{fake}", package)):
        monkeypatch.setitem(sys.modules, name, module)
    missing = missing_parts(fake)
    assert missing == [f"riskcore/venues/{fake}: missing", f"aggregator/venues/{fake}/sync: missing",
                       f"aggregator/venues/{fake}/risk: missing", f"aggregator/venues/{fake}/detail: missing",
                       f"aggregator/venues/{fake}/keeper: missing",
                       f"aggregator/venues/{fake}/whatif: missing", f"devnet/venues/{fake}: missing"], missing
    # …and a plugin whose config model is another venue's is malformed.
    package.PLUGIN = type("Wrong", (PluginBase,), {"venue_type": fake,  # type: ignore[attr-defined]
                                                   "config_model": plugin_of("aave_v3").config_model})()
    assert f"aggregator/venues/{fake}: the config model's type is not Literal['fake_v1']" in missing_parts(fake)


def test_a_keeper_part_that_cannot_say_how_to_act_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """A keeper part with the planner's venues but not the action part of the keeper's protocol."""
    name = "aggregator.venues.uniswap_v3.keeper"
    module = types.ModuleType(name)
    module.KEEPER = type("PlansOnly", (), {"lending": False,  # type: ignore[attr-defined]
                                           "planner_venues": lambda self, item, cfg, tokens: []})()
    monkeypatch.setitem(sys.modules, name, module)
    assert missing_parts("uniswap_v3") == [
        "aggregator/venues/uniswap_v3/keeper.py: KEEPER has no target, validate, call, spender_name, health_reads"
    ]


def test_an_unregistered_venue_is_an_error_not_a_silent_skip() -> None:
    assert missing_parts("compound_v3") == ["compound_v3: not in connectors.registry.VENUES"]
    with pytest.raises(UnknownVenueError, match="compound_v3"):
        plugin_of("compound_v3")


# --- conformance: each layer's interface, for every plugin ---------------------------------------------------
@pytest.mark.parametrize("venue", VENUES)
def test_the_plugin_is_what_its_connector_declares(venue: str) -> None:
    plugin = plugin_of(venue)
    assert isinstance(plugin, VenuePlugin)
    caps = capabilities(venue)
    assert plugin.capabilities == caps
    assert plugin.kind == caps.kind == kind_of(venue)
    assert plugin.onchain is (caps.transport == "evm")
    # an on-chain plugin opens on a chain, an off-chain one over HTTP; the other way is a clear error
    cfg = VenueConfig(name="x", type=venue, chain="c")
    wrong_way = plugin.open_offchain if plugin.onchain else lambda c: plugin.open_onchain(c, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"venue 'x': type '{venue}' has no (off|on)-chain connector"):
        wrong_way(cfg)


@pytest.mark.parametrize("venue", VENUES)
def test_the_config_model_takes_its_table_and_names_the_venue_in_errors(venue: str) -> None:
    model = plugin_of(venue).config_model
    assert issubclass(model, VenueConfig)
    required = sorted(n for n, f in model.model_fields.items()
                      if f.is_required() and n not in ("name", "type", "chain"))
    with pytest.raises(ValueError, match=f"^venue 'my_venue' \\({venue}\\)") as info:
        venue_config({"name": "my_venue", "type": venue, "chain": "c", "bogus_key": 1})
    assert str(info.value).startswith(f"venue 'my_venue' ({venue})")
    if required:
        assert all(field in str(info.value) for field in required)


def test_a_settings_file_round_trips_every_venue_through_its_own_model(tmp_path: Path) -> None:
    from aggregator.config import load_settings, write_settings_toml

    addr = "0x" + "11" * 20
    tables: list[dict[str, typing.Any]] = [
        {"name": "a", "type": "aave_v3", "chain": "c", "pool_addresses_provider": addr},
        {"name": "m", "type": "morpho_blue", "chain": "c", "morpho": addr, "markets": ["0x" + "22" * 32]},
        {"name": "u", "type": "uniswap_v3", "chain": "c", "position_manager": addr, "factory": addr},
        {"name": "h", "type": "hyperliquid", "chain": "c", "base_url": "http://127.0.0.1:1"},
        {"name": "d", "type": "dydx_v4", "chain": "c", "base_url": "http://127.0.0.1:1",
         "accounts": {addr: "dydx1abc/0"}},
    ]
    assert sorted(t["type"] for t in tables) == sorted(VENUES)  # a new venue adds its table here
    settings = Settings.model_validate({"chains": [{"name": "c", "chain_id": 1, "rpc_url": "http://x"}],
                                        "venues": tables})
    assert [type(v) for v in settings.venues] == [plugin_of(str(t["type"])).config_model for t in tables]
    path = tmp_path / "config.toml"
    write_settings_toml(settings, path)
    again = load_settings(path)
    assert again.venues == settings.venues


@pytest.mark.parametrize("venue", VENUES)
def test_risk_lines_of_a_wallet_without_positions_hold_no_underlying(venue: str) -> None:
    import importlib

    lines = importlib.import_module(venue_module("aggregator", venue, "risk"))
    snap = td.snapshot(td.wallet(0), 100, venue=venue, n_positions=0)
    assert snap.health is not None
    seen: list[str] = []

    def factor(symbol: str, price_usd: float | None) -> str:
        seen.append(symbol)
        return symbol

    accounts = lines.accounts(snap, factor)
    assert isinstance(accounts, list)
    assert seen == []  # no position, no underlying asked for


@pytest.mark.parametrize("venue", VENUES)
def test_the_keeper_part_plans_by_what_the_venue_declares(venue: str) -> None:
    from aggregator.config import KeeperConfig
    from aggregator.keeper.plugin import venue_actions, venue_keeper

    keeper = venue_keeper(venue)
    caps = capabilities(venue)
    assert venue_actions(venue) == caps.actions
    assert keeper.lending is (caps.kind == "lending")  # lending positions fix the plan's block; others do not
    snap = td.snapshot(td.wallet(0), 100, venue=venue, n_positions=0)
    item = types.SimpleNamespace(venue=venue, snapshot=snap, health=snap.health)
    tokens: dict[str, typing.Any] = {}
    pairs = keeper.planner_venues(item, KeeperConfig(), tokens)  # type: ignore[arg-type]
    # without positions, nothing to plan: no line in any planner venue, no token noted
    assert all(not getattr(v, "collateral", ()) and not getattr(v, "debt", ()) and not getattr(v, "positions", ())
               for v, _ in pairs)
    assert all(planned.protocol == venue for _, planned in pairs)
    assert tokens == {}


def test_the_keeper_acts_only_where_the_connector_declares_actions() -> None:
    acting = sorted(v for v in VENUES if capabilities(v).actions)
    assert acting == ["aave_v3", "morpho_blue"]
    assert all(set(capabilities(v).actions) <= {"repay", "supply", "withdraw"} for v in acting)


@pytest.mark.parametrize("venue", VENUES)
def test_the_whatif_part_takes_what_it_declares(venue: str) -> None:
    from aggregator.venues.whatif import ACTIONS, WhatIfError, venue_whatif, whatif_parts
    from aggregator.whatif import parse_change

    part = venue_whatif(venue)
    assert set(part.actions) <= set(ACTIONS)
    assert bool(part.actions) is (capabilities(venue).kind == "lending")  # the lending venues take the changes
    assert (venue, part) in whatif_parts()
    for action, example in part.cli_examples.items():  # the help's examples are changes the venue takes
        assert action in part.actions
        assert parse_change(action, f"{venue}:{example}").venue == venue
    assert part.api_market_doc is None or part.actions  # only a venue that takes changes has markets to pick
    shared = {"health_factor", "health_factor_raw", "healthy", "collateral_usd", "debt_usd", "positions"}
    assert not shared & set(part.api_state_fields)  # its own figures beside the shared ones, never instead
    # A snapshot without the detail the venue's replay reads opens, or is refused naming what it lacks.
    snap = td.snapshot(td.wallet(0), 100, venue=venue, n_positions=0)
    item = types.SimpleNamespace(venue=venue, snapshot=snap, health=snap.health, prices=())
    ctx = types.SimpleNamespace(markets=lambda venue: {}, usd_raw=lambda *a: None)
    try:
        state = part.open(item, ctx)  # type: ignore[arg-type]
    except WhatIfError as exc:
        refused: str | None = str(exc)
    else:
        refused = None
        assert state.symbols() == set()
        assert state.state()["positions"] == []
    assert refused is None or "lacks the detail a what-if replays" in refused


def _nested_models(model: type[Detail]) -> Iterator[type[Detail]]:
    """``model`` and every detail model its fields hold (``X | None``, ``list[X]``, ``dict[str, X]``…)."""
    yield model
    for f in model.model_fields.values():
        todo: list[object] = [f.annotation]
        while todo:
            t = todo.pop()
            if isinstance(t, type) and issubclass(t, Detail):
                yield from _nested_models(t)
            todo += typing.get_args(t)


@pytest.mark.parametrize("venue", VENUES)
def test_the_detail_models_declare_what_the_sync_stores_each_field_documented(venue: str) -> None:
    """The models of ``STORED`` (which ``tests/aggregator/test_details.py`` checks against a synced devnet): every
    field has its one-line docstring (units in the name or the text), and a position side is a real one."""
    stored = importlib.import_module(venue_module("aggregator", venue, "detail")).STORED
    assert isinstance(stored, StoredDetails)
    assert set(stored.positions) <= {str(s) for s in PositionSide}
    models = [*stored.positions.values(), stored.health, *([stored.markets] if stored.markets else [])]
    for model in {m for top in models for m in _nested_models(top)}:
        for name, f in model.model_fields.items():
            assert f.description, (model.__name__, name)
            assert "\n" not in f.description.strip(), (model.__name__, name)


def test_a_detail_names_the_keys_its_model_does_not_declare() -> None:
    class Inner(Detail):
        a: int
        """A."""

    class Outer(Detail):
        inner: list[Inner]
        """Inners."""

    detail = parse(Outer, {"inner": [{"a": 1}, {"a": 2, "b": 3}], "c": 4})
    assert detail.undeclared() == ["c", "inner[1].b"]
    assert parse(Outer, {"inner": [{"a": 1}]}).undeclared() == []


@pytest.mark.parametrize("venue", VENUES)
def test_the_devnet_part_is_what_the_connector_declares(venue: str) -> None:
    """An on-chain venue is deployed on the devnet's chain (its packages installed), an off-chain one answers in
    the local venue API."""
    import json

    from devnet.parts import ApiPart, DevnetPart
    from devnet.venues import part_of

    part = part_of(venue)
    onchain = capabilities(venue).transport == "evm"
    assert isinstance(part, DevnetPart if onchain else ApiPart)
    assert part.venue == venue
    if isinstance(part, DevnetPart):
        dependencies = json.loads((ROOT / "devnet" / "package.json").read_text())["dependencies"]
        assert set(part.npm_packages) <= set(dependencies)
        assert part.deploy is not None or part.market is not None  # something of it is on the chain


def test_plugins_are_in_registry_order() -> None:
    assert tuple(p.venue_type for p in plugins()) == VENUES


# --- the venue-name audit ---------------------------------------------------------------------------------------
VENUE_WORDS = re.compile(r"aave|morpho|uniswap|hyperliquid|dydx", re.IGNORECASE)
PRODUCT = ("connectors", "riskcore", "db", "aggregator", "devnet", "benchmarks")
VENUE_MODULES = re.compile(
    r"^(connectors/(?P<a>[a-z0-9_]+)/|riskcore/venues/(?P<b>[a-z0-9_]+)/|aggregator/venues/(?P<c>[a-z0-9_]+)/"
    r"|devnet/venues/(?P<d>[a-z0-9_]+)\.[a-z.]+$|benchmarks/venues/(?P<e>[a-z0-9_]+)\.py$)"
)
NOT_YET_CONVERTED: frozenset[str] = frozenset()
"""Product files that still name a venue while issue 13 converts them: this list may only shrink (it is empty:
keep it so). A file leaves it when its venue parts move into the venues' own modules; the test fails when a listed
file no longer names a venue (take it off the list)."""


AUDITED = (".py", ".js", ".html", ".css")
"""The product's code: Python, the dashboard's scripts, pages and styles, the devnet's build scripts. Not audited:
the npm manifests (``devnet/package.json`` and its lock list the packages the venues' devnet parts install, by
their npm names) and the READMEs."""


def _naming_venues() -> dict[str, list[str]]:
    """Product code files outside the venues' own modules and the registry that name a venue: file → lines."""
    hits: dict[str, list[str]] = {}
    for package in PRODUCT:
        for path in sorted(p for p in (ROOT / package).rglob("*") if p.suffix in AUDITED and p.is_file()):
            rel = path.relative_to(ROOT).as_posix()
            if "node_modules" in rel or rel.startswith("devnet/vendor/") or rel == "connectors/registry.py":
                continue
            m = VENUE_MODULES.match(rel)
            if m and next(m.group(k) for k in "abcde" if m.group(k)) in VENUES:
                continue
            lines = [f"{i}: {line.strip()}" for i, line in enumerate(path.read_text().splitlines(), 1)
                     if VENUE_WORDS.search(line)]
            if lines:
                hits[rel] = lines
    return hits


def test_no_product_file_names_a_venue_outside_the_venues_own_modules() -> None:
    hits = _naming_venues()
    leaks = {f: lines[:3] for f, lines in hits.items() if f not in NOT_YET_CONVERTED}
    assert not leaks, f"venue names outside the venues' own modules: {leaks}"
    converted = sorted(NOT_YET_CONVERTED - set(hits))
    assert not converted, f"these files no longer name a venue: take them off NOT_YET_CONVERTED: {converted}"


def test_the_audit_sees_a_venue_name(tmp_path: Path) -> None:
    assert VENUE_WORDS.search("# read the Morpho market")
    assert VENUE_WORDS.search("X = 'DYDX'")
    assert not VENUE_WORDS.search("a lending market")
    assert VENUE_MODULES.match("aggregator/venues/aave_v3/risk.py")
    assert not VENUE_MODULES.match("aggregator/venues/perp.py")
    assert VENUE_MODULES.match("benchmarks/venues/morpho_blue.py")
    assert VENUE_MODULES.match("devnet/venues/aave_v3.hardhat.config.js")
    assert not VENUE_MODULES.match("devnet/compile.js")


# --- the README's "Adding a venue" table is true ----------------------------------------------------------------------
_README_ROW = re.compile(r"^\| `(?P<path>[^`]+)`(?P<note>[^|]*)\|", re.M)


def _adding_a_venue_rows() -> list[tuple[str, str]]:
    """(path pattern, note) of each row of the README's "Adding a venue" table."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Adding a venue\n", 1)[1].split("\n## ", 1)[0]
    return [(m["path"], m["note"].strip()) for m in _README_ROW.finditer(section)]


def _venue_file(pattern: str, venue: str) -> Path:
    """The file (or folder) ``pattern`` names for ``venue`` (``<venue>``; ``<name>``: the venue up to its first
    ``_``)."""
    return ROOT / pattern.replace("<venue>", venue).replace("<name>", venue.split("_")[0])


@pytest.mark.parametrize("venue", VENUES)
def test_every_file_the_readme_lists_exists_for_every_venue(venue: str) -> None:
    """A row is a file (or a folder, ``…/``) each venue has, unless the row says when it applies: optional, or a
    venue with actions (the connector's ``Capabilities.actions``), or a venue that replays changes (its what-if
    part takes actions)."""
    rows = _adding_a_venue_rows()
    assert len(rows) >= 12, rows
    for pattern, note in rows:
        if "<venue>" not in pattern and "<name>" not in pattern:
            assert (ROOT / pattern).is_file(), pattern  # the registry
            continue
        needed = True
        if "optional" in note:
            needed = False
        if "with actions" in note:
            needed = bool(capabilities(venue).actions)
        path = _venue_file(pattern, venue)
        if needed:
            assert path.exists(), f"README lists {pattern}, but {path.relative_to(ROOT)} is missing"
        if "(+ `" in note:  # a second file, for a venue that replays changes
            extra = note.split("(+ `", 1)[1].split("`", 1)[0]
            whatif = importlib.import_module(venue_module("aggregator", venue, "whatif")).WHATIF
            if whatif.actions:
                assert (ROOT / extra.replace("<venue>", venue)).is_file(), extra


def test_the_readme_names_every_part_the_completeness_test_requires() -> None:
    """Each module missing_parts checks in a venue's own folders is a row of the table (so the table is complete)."""
    listed = {pattern for pattern, _ in _adding_a_venue_rows()}
    listed |= {note.split("(+ `", 1)[1].split("`", 1)[0] for _, note in _adding_a_venue_rows() if "(+ `" in note}
    text = "\n".join(listed)
    for part in ("sync", "risk", "detail", "keeper", "whatif"):
        assert f"aggregator/venues/<venue>/{part}.py" in text, part
    assert "aggregator/venues/<venue>/__init__.py" in text
    assert "devnet/venues/<venue>.py" in text
    assert any(p.startswith("connectors/<venue>/") for p in listed)
    assert any(p.startswith("riskcore/venues/<venue>/") for p in listed)
    assert "connectors/registry.py" in text
