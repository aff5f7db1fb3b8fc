"""Hyperliquid connector: wallets' perp accounts and the markets they are margined against, over HTTP.

Read plan of :meth:`HyperliquidConnector.read_accounts` (each a ``POST {base_url}/info``)::

    {"type": "metaAndAssetCtxs"}                   once per read   (weight 20)
    {"type": "clearinghouseState", "user": ADDR}    once per wallet (weight 2)

Hyperliquid has no multi-user account query, so requests grow with the wallet count
(``batch_wallets=False``). Rate limit (docs, *Rate limits*): 1,200 weight per minute per IP;
``clearinghouseState`` weighs 2, ``metaAndAssetCtxs`` 20 (:data:`REQUEST_WEIGHTS`; any other info request 20),
declared in ``capabilities.rate_limit`` and charged to the client's rate budget before every attempt.

Every snapshot is stamped with the venue's own time: ``clearinghouseState.time`` (ms) when present, else the
HTTP ``Date`` header, else (neither present) this machine's clock, and says which (``observed_at_source``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Unpack

from connectors.base import Capabilities, RateLimit
from connectors.http import HttpVenueConnector, snapshot_time
from connectors.hyperliquid.decode import decode_clearinghouse_state, decode_meta_and_asset_ctxs
from connectors.hyperliquid.deployments import HYPERLIQUID_MAINNET
from connectors.hyperliquid.models import HyperliquidAccount, HyperliquidMarket, HyperliquidSnapshot
from connectors.perpcache import PerpMarks
from connectors.ratelimit import RateBudget
from connectors.transport import TransportArgs, TransportOptions
from connectors.types import checksum

__all__ = ["REQUEST_WEIGHTS", "HyperliquidConnector", "snapshot_time"]

REQUEST_WEIGHTS = {"clearinghouseState": 2, "metaAndAssetCtxs": 20, "allMids": 2}
"""IP rate-limit weight of each info request the connector makes (docs, *Rate limits*); any other info request
weighs 20."""


class HyperliquidConnector(HttpVenueConnector):
    """Reads Hyperliquid perp accounts (``clearinghouseState``) and markets (``metaAndAssetCtxs``).

    Parameters
    ----------
    base_url:
        The API server (``https://api.hyperliquid.xyz``; a local :class:`devnet.perp_api.PerpApi` in tests).
    options, **transport:
        Timeout, retries, backoff, client, transport, sleep: a :class:`~connectors.transport.TransportOptions`,
        its fields as keywords, or both (the keywords win).
    rate_limit, budget:
        See :class:`~connectors.http.HttpVenueConnector`: by default every request (retries included) is charged
        its weight (:data:`REQUEST_WEIGHTS`) to a budget of 1,200 weight per minute.
    dex:
        Perp dex name (HIP-3); ``""`` is the first perp dex.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        venue_type="hyperliquid",
        kind="perp",
        transport="http",
        block_pinned=False,
        batch_wallets=False,
        reports_own_health=True,
        positions=("perp",),
        rate_limit=RateLimit(weight_per_minute=1200, weight_per_request=20, request_weights=REQUEST_WEIGHTS),
    )

    def __init__(
        self,
        base_url: str = HYPERLIQUID_MAINNET.base_url,
        *,
        dex: str = "",
        clock_ms: Callable[[], int] | None = None,
        options: TransportOptions | None = None,
        rate_limit: RateLimit | None = None,
        budget: RateBudget | None = None,
        **transport: Unpack[TransportArgs],
    ) -> None:
        super().__init__(base_url, options=TransportOptions.of(options, **transport), clock_ms=clock_ms,
                         rate_limit=rate_limit, budget=budget)
        self.dex = dex

    @property
    def weight_used(self) -> int:
        """Rate-limit weight of the requests made so far (retries included), as charged to the budget."""
        return self.http.stats.weight

    # --- requests ------------------------------------------------------------------------------------
    def _info(self, payload: dict[str, Any]) -> tuple[Any, int | None]:
        kind = str(payload["type"])
        if self.dex:
            payload = {**payload, "dex": self.dex}
        resp = self.http.post("/info", payload, name=kind)  # charged REQUEST_WEIGHTS[kind] per attempt
        return resp.body, resp.date_ms

    def read_market(self) -> HyperliquidMarket:
        """Every perpetual's mark/oracle price and margin tiers (one ``metaAndAssetCtxs``)."""
        body, date_ms = self._info({"type": "metaAndAssetCtxs"})
        return decode_meta_and_asset_ctxs(body, *self._time(date_ms))

    def read_marks(self, block: int | None = None) -> PerpMarks:
        """Every perpetual's mark price for ``block`` from ONE ``metaAndAssetCtxs`` (weight 20): the price the margin
        rule values positions at (``allMids``, weight 2, would be cheaper but gives mid prices, not marks). The
        decoded market (margin tiers) rides along for the local recompute."""
        market = self.read_market()
        prices = {a.name: a.mark_px for a in market.assets if a.mark_px is not None}
        return PerpMarks(block=block, prices_usd=prices, source="hyperliquid.metaAndAssetCtxs",
                         observed_at_ms=market.observed_at_ms, observed_at_source=market.observed_at_source,
                         market=market)

    def read_account(self, wallet: str) -> HyperliquidAccount:
        """One wallet's ``clearinghouseState`` (an unknown wallet: an empty account)."""
        address = checksum(wallet)
        body, date_ms = self._info({"type": "clearinghouseState", "user": address.lower()})
        return decode_clearinghouse_state(body, address, http_date_ms=date_ms, local_ms=self._clock_ms())

    def read_accounts(self, wallets: Sequence[str]) -> HyperliquidSnapshot:
        """The market, then each wallet's account; every address is validated before any request.

        Raises
        ------
        InvalidAddressError
            A wallet is not a 20-byte hex address (before any I/O).
        RpcTimeoutError, RpcUnavailableError, RateLimitedError
            The venue did not answer (after retries).
        DecodeError
            An answer did not have the documented shape.
        """
        addresses = list(dict.fromkeys(checksum(w) for w in wallets))
        market = self.read_market()
        accounts = tuple(self.read_account(a) for a in addresses)
        times = [(market.observed_at_ms, market.observed_at_source)] + [
            (a.observed_at_ms, a.observed_at_source) for a in accounts
        ]
        observed_at_ms, source = snapshot_time(times)
        return HyperliquidSnapshot(
            market=market, accounts=accounts, observed_at_ms=observed_at_ms, observed_at_source=source
        )



CONNECTOR = HyperliquidConnector
"""This venue's connector class, found by :mod:`connectors.registry`."""
