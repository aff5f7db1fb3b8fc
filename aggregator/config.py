"""Configuration: a TOML file plus environment variables (the environment wins).

Resolution order for the file: ``--config`` option, ``XMARGIN_CONFIG``, ``$XMARGIN_HOME/config.toml``
(if present). With no file at all, xmargin runs on embedded defaults: a SQLite store under
``XMARGIN_HOME`` and no chains (a chain comes from the file, or ``XMARGIN_RPC_URL`` plus the variables a
venue's plugin reads to configure one market without a file; the README lists them).

Secrets never live in the file: a chain names the *environment variable* holding its RPC URL
(``rpc_url_env``) when the URL carries an API key. Example::

    db_url = "postgresql+psycopg://xmargin@db/xmargin"   # or env XMARGIN_DB_URL
    interval_s = 30

    [[chains]]
    name = "ethereum"
    chain_id = 1
    rpc_url_env = "ETH_RPC_URL"           # the URL itself stays in the environment
    fallback_rpc_url_envs = []

    [[venues]]
    name = "main_market"                   # the venue's name in the store and the output
    type = "<venue>"                       # a registered venue (connectors.registry.VENUES)
    chain = "ethereum"
    # … and the keys of that venue's own table (its plugin's config model; the README lists them)
"""

from __future__ import annotations

import importlib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from connectors.types import Address
from db.changes import WRITE_CACHE_SIZE, ChangePolicy, RetentionPolicy

__all__ = [
    "AlertsConfig",
    "ApiConfig",
    "ChainConfig",
    "ConfigError",
    "KeeperConfig",
    "OffchainVenueConfig",
    "Settings",
    "StoreConfig",
    "TargetConfig",
    "VenueConfig",
    "WebhookConfig",
    "load_settings",
    "venue_config",
    "write_settings_toml",
    "xmargin_home",
]


class ConfigError(ValueError):
    """The configuration is missing, unreadable or inconsistent."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChainConfig(_Model):
    """One EVM chain and how to reach it."""

    name: str
    chain_id: int
    rpc_url: str | None = None
    """Plain URL, for keyless local nodes only; prefer ``rpc_url_env``."""
    rpc_url_env: str | None = None
    fallback_rpc_urls: tuple[str, ...] = ()
    """Keyless fallback endpoints, tried in order when the primary fails (prefer ``fallback_rpc_url_envs``)."""
    fallback_rpc_url_envs: tuple[str, ...] = ()
    timeout_s: Annotated[float, Field(gt=0)] = 10.0
    max_retries: Annotated[int, Field(ge=0)] = 3
    """Retries of a transient fault on one endpoint before the next endpoint is tried."""
    breaker_failures: Annotated[int, Field(ge=1)] = 3
    """Consecutive failed requests that open an endpoint's circuit breaker."""
    breaker_reset_s: Annotated[float, Field(gt=0)] = 30.0
    """How long an open breaker keeps requests away before one trial (doubling while it keeps failing)."""
    max_price_jump: Annotated[float, Field(gt=0)] | None = 0.5
    """An oracle price that moved more than this fraction since the previous sync is flagged ``jump`` (and the
    healths that use it ``bad_oracle``); ``None`` turns the check off."""
    max_reorg_depth: Annotated[int, Field(ge=1)] = 64
    """The deepest reorganisation treated as one; when the blocks stored from the chain are no longer on the node's
    chain within it, the node serves another chain (a reset devnet, a fork) and the old data is kept apart."""
    ws_url: str | None = None
    """The chain's WebSocket endpoint, for keyless local nodes (prefer ``ws_url_env``). In block mode
    (``sync_mode = "block"``) a sync starts as each new head is announced on it (``eth_subscribe("newHeads")``),
    not at the next tick; the interval stays the fallback."""
    ws_url_env: str | None = None

    @model_validator(mode="after")
    def _one_url_source(self) -> ChainConfig:
        if (self.rpc_url is None) == (self.rpc_url_env is None):
            raise ValueError(f"chain {self.name!r}: give exactly one of rpc_url, rpc_url_env")
        if self.ws_url is not None and self.ws_url_env is not None:
            raise ValueError(f"chain {self.name!r}: give at most one of ws_url, ws_url_env")
        return self

    def resolve_ws_url(self) -> str | None:
        """The WebSocket URL (read from the environment when configured so); None without one."""
        if self.ws_url_env is None:
            return self.ws_url
        url = os.environ.get(self.ws_url_env)
        if not url:
            raise ConfigError(f"chain {self.name!r}: environment variable {self.ws_url_env} is not set")
        return url

    def resolve_rpc_urls(self) -> list[str]:
        """The primary RPC URL and the fallbacks, in the order they are tried."""
        urls = [self.resolve_rpc_url(), *self.fallback_rpc_urls]
        for env in self.fallback_rpc_url_envs:
            url = os.environ.get(env)
            if not url:
                raise ConfigError(f"chain {self.name!r}: environment variable {env} is not set")
            urls.append(url)
        return urls

    def resolve_rpc_url(self) -> str:
        """The RPC URL, read from the environment when configured so."""
        if self.rpc_url is not None:
            return self.rpc_url
        assert self.rpc_url_env is not None
        url = os.environ.get(self.rpc_url_env)
        if not url:
            raise ConfigError(f"chain {self.name!r}: environment variable {self.rpc_url_env} is not set")
        return url


class VenueConfig(_Model):
    """What every venue's table has: its name in the store and the output, its ``type``, its chain.

    ``[[venues]]`` is a union discriminated by ``type``: each venue's plugin
    (``aggregator/venues/<type>/__init__.py``) defines its model, a subclass of this one with ``type`` a
    ``Literal`` and the fields that venue reads; :func:`venue_config` validates a table into it. Off-chain
    venues are read in the same sync as ``chain``'s venues and stored against that chain's block, with their
    own timestamp beside it.
    """

    name: str
    type: str
    chain: str
    timeout_s: Annotated[float, Field(gt=0)] = 10.0

    @property
    def onchain(self) -> bool:
        """Read at a chain block (from the venue's connector capabilities)."""
        from connectors.registry import capabilities

        return capabilities(self.type).transport == "evm"


class OffchainVenueConfig(VenueConfig):
    """What an off-chain (HTTP) venue's table adds: ``rate_limit_per_minute``, the request weight per minute its
    client may spend when that is not the venue's published limit (a private or local API server: the devnet's
    own perp API sets it). Unset, the connector's declared limit applies; the weights of the requests are the
    venue's own either way."""

    rate_limit_per_minute: Annotated[int, Field(gt=0)] | None = None
    ws_url: str | None = None
    """The venue's WebSocket URL for account streams (``PluginBase.open_live``); None: accounts are polled only."""


def _plugin(venue_type: str) -> Any:
    """The plugin of ``venue_type``, found by name through the one registry (:mod:`connectors.registry`): the
    configuration sits below the plugins (they derive their models from :class:`VenueConfig`) and never imports
    them, nor their loader :mod:`aggregator.venues`."""
    from connectors.registry import venue_module

    return importlib.import_module(venue_module("aggregator", venue_type)).PLUGIN


def venue_config(table: Mapping[str, Any] | VenueConfig) -> VenueConfig:
    """One ``[[venues]]`` table validated by its venue's own model (chosen by ``type``).

    Errors name the venue by its ``name``: ``venue 'x' (type): <field>: <problem>``; an unknown ``type`` lists
    the known ones.
    """
    if isinstance(table, VenueConfig):
        return table
    from connectors.registry import VENUES, UnknownVenueError

    name = table.get("name", "?")
    kind = table.get("type")
    try:
        plugin = _plugin(str(kind))
    except UnknownVenueError:
        raise ValueError(f"venue {name!r}: unknown type {kind!r} (known: {', '.join(VENUES)})") from None
    model: type[VenueConfig] = plugin.config_model
    try:
        return model.model_validate(dict(table))
    except ValidationError as exc:
        errors = exc.errors()
        missing = [".".join(str(p) for p in e["loc"]) for e in errors if e["type"] == "missing"]
        if missing:
            raise ValueError(f"venue {name!r} ({kind}) needs {', '.join(missing)}") from None
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) + ': ' if e['loc'] else ''}"
            f"{e['ctx']['error'] if e['type'] == 'value_error' else e['msg']}" for e in errors
        )
        raise ValueError(f"venue {name!r} ({kind}): {problems}") from None


class WebhookConfig(_Model):
    """A webhook that receives every alert, signed with HMAC-SHA256 (see :mod:`aggregator.alerts.sinks`).

    The URL may carry a token: give it inline (``url``) only when it does not, else name its environment
    variable (``url_env``). The signing secret always comes from the environment (``secret_env``).
    """

    name: str = "webhook"
    url: str | None = None
    url_env: str | None = None
    secret_env: str
    timeout_s: Annotated[float, Field(gt=0)] = 5.0
    max_attempts: Annotated[int, Field(ge=1)] = 4

    @model_validator(mode="after")
    def _one_url_source(self) -> WebhookConfig:
        if (self.url is None) == (self.url_env is None):
            raise ValueError(f"webhook {self.name!r}: give exactly one of url, url_env")
        return self

    def resolve(self) -> tuple[str, str]:
        """(URL, secret) from the configuration and the environment."""
        url = self.url if self.url is not None else os.environ.get(self.url_env or "")
        if not url:
            raise ConfigError(f"webhook {self.name!r}: environment variable {self.url_env} is not set")
        secret = os.environ.get(self.secret_env)
        if not secret:
            raise ConfigError(f"webhook {self.name!r}: environment variable {self.secret_env} is not set")
        return url, secret


class AlertsConfig(_Model):
    """Where alerts go: the log (always, unless turned off) and any webhooks."""

    log: bool = True
    webhooks: tuple[WebhookConfig, ...] = ()
    retry_for_s: Annotated[float, Field(ge=0)] = 3_600.0
    """An alert a sink could not take is tried again every run for this long after it fired."""


class TargetConfig(_Model):
    """A venue's target health and offset, as DeFi Saver's automation defines them: the keeper acts when the
    health is below ``target - offset`` and brings it back to at least ``target`` (and no more than
    ``target + offset`` on the venues it repairs)."""

    target: Annotated[float, Field(gt=1.0)] = 1.5
    offset: Annotated[float, Field(ge=0.0)] = 0.1

    @model_validator(mode="after")
    def _trigger_above_one(self) -> TargetConfig:
        if self.target - self.offset <= 1.0:
            raise ValueError("target - offset must stay above 1.0 (the liquidation line)")
        return self


class KeeperConfig(_Model):
    """The keeper: plans cross-venue rebalances after every sync, simulates them, and executes them only with
    an explicitly configured signer and ``execute = true``. Dry-run is the default.

    The signer's key comes from the environment (``signer_key_env``) or an encrypted keystore file
    (``keystore`` + ``keystore_password_env``), never from this file. The keeper only signs for the wallets in
    ``wallets`` whose address is the signer's (withdrawals must come from the owner); the others are planned
    and simulated only.
    """

    enabled: bool = False
    execute: bool = False
    wallets: tuple[Address, ...] = ()
    """Wallets the keeper manages (plans for); empty: none."""
    signer_key_env: str | None = None
    keystore: str | None = None
    keystore_password_env: str | None = None
    targets: dict[str, TargetConfig] = {}
    """Per venue name; venues not listed use ``default_target``."""
    default_target: TargetConfig = TargetConfig()
    max_action_usd: Annotated[float, Field(gt=0)] = 50_000.0
    max_daily_usd: Annotated[float, Field(gt=0)] = 200_000.0
    max_fee_gwei: Annotated[float, Field(gt=0)] = 200.0
    max_priority_fee_gwei: Annotated[float, Field(ge=0)] = 2.0
    max_gas_per_tx: Annotated[int, Field(gt=21_000)] = 1_500_000
    buffer: Annotated[float, Field(ge=0, lt=0.1)] = 0.002
    """Plans aim this fraction above the target, for interest accrued and rounding between plan and block."""
    receipt_timeout_s: Annotated[float, Field(gt=0)] = 120.0
    resend_window_s: Annotated[float, Field(gt=0)] = 120.0
    """A stored transaction the chain never saw is (re-)sent only this long after its plan started."""
    max_state_age_s: Annotated[float, Field(gt=0)] = 300.0
    """No plan from a sync whose block is older than this behind the chain's head."""

    @model_validator(mode="after")
    def _one_signer(self) -> KeeperConfig:
        if self.signer_key_env is not None and self.keystore is not None:
            raise ValueError("keeper: give at most one of signer_key_env, keystore")
        if self.keystore is not None and self.keystore_password_env is None:
            raise ValueError("keeper: a keystore needs keystore_password_env")
        if self.execute and self.signer_key_env is None and self.keystore is None:
            raise ValueError("keeper: execute = true needs a signer (signer_key_env or keystore)")
        return self

    def target(self, venue: str) -> TargetConfig:
        return self.targets.get(venue, self.default_target)


class ApiConfig(_Model):
    """The HTTP API and dashboard that ``xmargin run`` and ``xmargin serve`` serve.

    Writes (adding and removing wallets, alert rules) always need an API key of scope ``write``
    (``xmargin apikey create NAME --scope write``). Reads: see ``public_reads``. Bind to a non-loopback ``host``
    only behind TLS.
    """

    enabled: bool = True
    """Serve the API from ``xmargin run``."""
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65_535)] = 8_700
    """0: any free port (printed at start)."""
    public_reads: bool | None = None
    """Reads without an API key. Unset: public on a loopback ``host`` (only this machine reaches it), keyed on
    any other interface. ``true`` makes them public on any interface (a warning says so at start), ``false``
    keyed everywhere. Env ``XMARGIN_API_PUBLIC_READS``; ``--public-reads`` / ``--keyed-reads`` on the command."""


class StoreConfig(_Model):
    """The change-only store (``[store]``): when a value counts as changed, and what compaction keeps.

    A health or risk value is written again when it moved by more than ``rel_tolerance`` or its last row is
    ``max_age_blocks`` old; positions when their content changed. ``xmargin run`` compacts every
    ``compact_every_s`` (0: never; ``xmargin store compact`` does it by hand): every row of the last ``keep_full_days``
    days, then the first and the last per ``bucket_s`` window.
    """

    rel_tolerance: Annotated[float, Field(ge=0)] = 1e-4
    max_age_blocks: Annotated[int, Field(ge=1)] = 300
    keep_full_days: Annotated[float, Field(ge=0)] = 7.0
    bucket_s: Annotated[int, Field(ge=1)] = 3_600
    compact_every_s: Annotated[float, Field(ge=0)] = 3_600.0
    change_only: bool = True
    """``false``: every snapshot, health and risk result is written at every block (the layout before the
    change-only store: one snapshot per run, wallet and venue)."""
    write_cache_size: Annotated[int, Field(ge=0)] = WRITE_CACHE_SIZE
    """(wallet, venue) pairs whose current version, positions and newest health row the store keeps in memory
    between writes instead of reading them back (about 2 KiB each; 0: none)."""

    def change_policy(self) -> ChangePolicy:
        """The store's change policy."""
        return ChangePolicy(rel_tolerance=self.rel_tolerance, max_age_blocks=self.max_age_blocks)

    def retention_policy(self) -> RetentionPolicy:
        """What compaction keeps."""
        return RetentionPolicy(full_days=self.keep_full_days, bucket_s=self.bucket_s)


class Settings(_Model):
    """Everything xmargin needs to run; build it with :func:`load_settings`."""

    db_url: str | None = None
    """None: the embedded SQLite file under ``XMARGIN_HOME``."""
    interval_s: Annotated[float, Field(gt=0)] = 15.0
    stale_after_s: Annotated[float, Field(gt=0)] | None = None
    """Data older than this (seconds since the sync that read it) is shown as stale; default 3 × ``interval_s``."""
    wallet_batch_size: Annotated[int, Field(gt=0)] = 1_000
    sync_mode: Literal["cycle", "block"] = "block"
    """``block`` (the default): every tick processes each block since the last in order — its logs name the wallets
    to re-read, the others are recomputed from their cached state — and writes only what changed
    (:mod:`aggregator.blockrun`), so its cost follows what changed. ``cycle``: every tick reads every wallet in full
    at the head."""
    max_backfill_blocks: Annotated[int, Field(ge=1)] = 64
    """Block mode: the most blocks one tick steps through; a longer gap is a full sweep at the head."""
    reconcile_every_blocks: Annotated[int, Field(ge=0)] = 300
    """Block mode: every wallet is re-read and compared with its cached state once in this many blocks, a slice of
    the wallets at each block (in the block's one Multicall3 run: no request more, and no block pays for all of it);
    each disagreement is a log line and counts in ``xmargin_reconcile_mismatches_total`` (0: never)."""
    chains: tuple[ChainConfig, ...] = ()
    venues: tuple[SerializeAsAny[VenueConfig], ...] = ()
    """Each a venue's own model (:func:`venue_config`): a union discriminated by ``type``."""
    alerts: AlertsConfig = AlertsConfig()
    keeper: KeeperConfig = KeeperConfig()
    api: ApiConfig = ApiConfig()
    store: StoreConfig = StoreConfig()
    source: str | None = None
    """The file these settings came from (for messages)."""

    @field_validator("venues", mode="before")
    @classmethod
    def _each_venue_by_its_type(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return tuple(venue_config(v) if isinstance(v, (Mapping, VenueConfig)) else v for v in value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        chains = [c.name for c in self.chains]
        if len(set(chains)) != len(chains):
            raise ValueError("chain names must be unique")
        ids = [c.chain_id for c in self.chains]
        if len(set(ids)) != len(ids):
            raise ValueError("chain ids must be unique (one configured chain per chain id)")
        names = [v.name for v in self.venues]
        if len(set(names)) != len(names):
            raise ValueError("venue names must be unique")
        for venue in self.venues:
            if venue.chain not in chains:
                raise ValueError(f"venue {venue.name!r} is on chain {venue.chain!r}, which is not configured")
        unknown = sorted(set(self.keeper.targets) - set(names))
        if unknown:
            raise ValueError(f"keeper targets name unknown venue(s): {', '.join(unknown)}")
        return self

    @property
    def stale_bound_s(self) -> float:
        """Seconds after which data is shown as stale: ``stale_after_s``, default 3 × ``interval_s``."""
        return self.stale_after_s if self.stale_after_s is not None else 3 * self.interval_s

    def chain(self, name: str) -> ChainConfig:
        for chain in self.chains:
            if chain.name == name:
                return chain
        raise ConfigError(f"unknown chain {name!r}")


def xmargin_home() -> Path:
    """``XMARGIN_HOME`` or ``~/.local/share/xmargin``."""
    return Path(os.environ.get("XMARGIN_HOME") or Path.home() / ".local" / "share" / "xmargin")


def _config_path(explicit: str | Path | None) -> Path | None:
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path
    env = os.environ.get("XMARGIN_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"XMARGIN_CONFIG points at a missing file: {path}")
        return path
    default = xmargin_home() / "config.toml"
    return default if default.is_file() else None


def load_settings(path: str | Path | None = None) -> Settings:
    """Read the config file (if any) and apply environment overrides.

    Environment: ``XMARGIN_DB_URL``, ``XMARGIN_INTERVAL_S``, ``XMARGIN_STALE_AFTER_S``, ``XMARGIN_API_HOST``,
    ``XMARGIN_API_PORT``, ``XMARGIN_API_PUBLIC_READS``; and, for a one-market setup without a
    file, ``XMARGIN_RPC_URL`` (chain id read from ``XMARGIN_CHAIN_ID``, default 1) with the venues the
    environment configures alone (each plugin's ``env_venue``, e.g. the lending market of a provider address).
    """
    file = _config_path(path)
    data: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {file}: {exc}") from exc
        data["source"] = str(file)
    if os.environ.get("XMARGIN_DB_URL"):
        data["db_url"] = os.environ["XMARGIN_DB_URL"]
    if os.environ.get("XMARGIN_INTERVAL_S"):
        data["interval_s"] = os.environ["XMARGIN_INTERVAL_S"]
    if os.environ.get("XMARGIN_STALE_AFTER_S"):
        data["stale_after_s"] = os.environ["XMARGIN_STALE_AFTER_S"]
    api = {k: os.environ[f"XMARGIN_API_{k.upper()}"] for k in ("host", "port", "public_reads")
           if os.environ.get(f"XMARGIN_API_{k.upper()}")}
    if api:
        data["api"] = {**data.get("api", {}), **api}
    if os.environ.get("XMARGIN_RPC_URL") and not data.get("chains"):
        data["chains"] = [{"name": "default", "chain_id": int(os.environ.get("XMARGIN_CHAIN_ID", "1")),
                           "rpc_url_env": "XMARGIN_RPC_URL"}]
        from connectors.registry import VENUES

        if venues := [t for v in VENUES if (t := _plugin(v).env_venue("default")) is not None]:
            data["venues"] = venues
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        where = f" in {file}" if file else ""
        raise ConfigError(f"invalid configuration{where}: {exc}") from exc


def write_settings_toml(settings: Settings, path: Path) -> None:
    """Write ``settings`` as a config file (used by ``xmargin devnet up`` for the local chain)."""
    lines: list[str] = []
    if settings.db_url:
        lines.append(f"db_url = {_toml_str(settings.db_url)}")
    lines.append(f"interval_s = {settings.interval_s}")
    for chain in settings.chains:
        lines += ["", "[[chains]]", f"name = {_toml_str(chain.name)}", f"chain_id = {chain.chain_id}"]
        if chain.rpc_url is not None:
            lines.append(f"rpc_url = {_toml_str(chain.rpc_url)}")
        if chain.rpc_url_env is not None:
            lines.append(f"rpc_url_env = {_toml_str(chain.rpc_url_env)}")
        if chain.ws_url is not None:
            lines.append(f"ws_url = {_toml_str(chain.ws_url)}")
        if chain.ws_url_env is not None:
            lines.append(f"ws_url_env = {_toml_str(chain.ws_url_env)}")
    for venue in settings.venues:
        lines += ["", "[[venues]]"]
        fields = venue.model_dump(exclude_defaults=True)
        lines += [f"{key} = {_toml_value(value)}" for key, value in fields.items() if not isinstance(value, dict)]
        for key, table in fields.items():
            if isinstance(table, dict) and table:
                lines.append(f"[venues.{key}]")
                lines += [f"{_toml_str(str(k))} = {_toml_value(v)}" for k, v in table.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _toml_value(value: object) -> str:
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
