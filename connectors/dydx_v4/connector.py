"""dYdX v4 connector: subaccounts and the perpetual markets they are margined against, from the indexer.

Read plan of :meth:`DydxConnector.read_accounts` (each a ``GET``)::

    /v4/perpetualMarkets                                   once per read
    /v4/addresses/{address}/subaccountNumber/{n}           once per subaccount (404: unknown → empty)

Accounts are the venue's own ids: bech32 ``dydx1…`` addresses (not EVM addresses), optionally with a
subaccount number, ``dydx1…/N`` (default: the connector's ``subaccount_number``, 0). They are validated
(shape and bech32 checksum) before any request.

Rate limit: the indexer (``comlink``) limits GETs per IP to ``RATE_LIMIT_GET_POINTS`` per
``RATE_LIMIT_GET_DURATION_SECONDS`` (defaults 100 per 10 s, one point per request); a deployment may
configure it otherwise. Declared as 600 per minute in bursts of at most 100 (``capabilities.rate_limit``) and
charged to the client's rate budget before every attempt. The indexer's answers carry no time of their own:
snapshots are stamped with the HTTP ``Date`` header (else this machine's clock), and keep the indexer's block
heights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar, Unpack
from urllib.parse import quote

from connectors.base import Capabilities, RateLimit
from connectors.dydx_v4.address import parse_account
from connectors.dydx_v4.decode import decode_perpetual_markets, decode_subaccount, empty_subaccount
from connectors.dydx_v4.deployments import DYDX_MAINNET
from connectors.dydx_v4.models import DydxMarkets, DydxSnapshot, DydxSubaccount
from connectors.http import HttpVenueConnector, snapshot_time
from connectors.perpcache import PerpMarks
from connectors.ratelimit import RateBudget
from connectors.transport import TransportArgs, TransportOptions

__all__ = ["DydxConnector"]


class DydxConnector(HttpVenueConnector):
    """Reads dYdX v4 subaccounts and perpetual markets from an indexer.

    Parameters
    ----------
    indexer_url:
        The indexer's base URL without ``/v4`` (``https://indexer.dydx.trade``; a local
        :class:`devnet.perp_api.PerpApi` in tests).
    subaccount_number:
        The subaccount read for an account given without ``/N``.
    options, **transport:
        Timeout, retries, backoff, client, transport, sleep: a :class:`~connectors.transport.TransportOptions`,
        its fields as keywords, or both (the keywords win).
    rate_limit, budget:
        See :class:`~connectors.http.HttpVenueConnector`.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(
        venue_type="dydx_v4",
        kind="perp",
        transport="http",
        block_pinned=False,
        batch_wallets=False,
        reports_own_health=True,
        positions=("perp",),
        rate_limit=RateLimit(weight_per_minute=600, weight_per_request=1, burst=100),
    )

    def __init__(
        self,
        indexer_url: str = DYDX_MAINNET.indexer_url,
        *,
        subaccount_number: int = 0,
        clock_ms: Callable[[], int] | None = None,
        options: TransportOptions | None = None,
        rate_limit: RateLimit | None = None,
        budget: RateBudget | None = None,
        **transport: Unpack[TransportArgs],
    ) -> None:
        super().__init__(indexer_url, options=TransportOptions.of(options, **transport), clock_ms=clock_ms,
                         rate_limit=rate_limit, budget=budget)
        self.subaccount_number = subaccount_number

    def read_markets(self) -> DydxMarkets:
        """Every perpetual market: oracle price, margin fractions, open interest and its caps."""
        resp = self.http.get("/v4/perpetualMarkets", name="perpetualMarkets")
        return decode_perpetual_markets(resp.body, *self._time(resp.date_ms))

    def read_marks(self, block: int | None = None) -> PerpMarks:
        """Every market's oracle price for ``block`` from ONE ``/v4/perpetualMarkets`` (the margin fractions ride
        along, for the local recompute)."""
        markets = self.read_markets()
        prices = {m.ticker: m.oracle_price_usd for m in markets.markets if m.oracle_price_usd is not None}
        return PerpMarks(block=block, prices_usd=prices, source="dydx_v4.perpetualMarkets",
                         observed_at_ms=markets.observed_at_ms, observed_at_source=markets.observed_at_source,
                         market=markets)

    def read_subaccount(self, account: str) -> DydxSubaccount:
        """One subaccount (``dydx1…`` or ``dydx1…/N``); one the indexer does not know reads as empty."""
        address, n = parse_account(account, self.subaccount_number)
        resp = self.http.get(
            f"/v4/addresses/{quote(address)}/subaccountNumber/{n}", name="subaccount", allow_status=(404,)
        )
        observed, source = self._time(resp.date_ms)
        if resp.status == 404:
            return empty_subaccount(address, n, observed, source, resp.body)
        return decode_subaccount(resp.body, address, n, observed, source)

    def read_accounts(self, wallets: Sequence[str]) -> DydxSnapshot:
        """The markets, then each subaccount; every account id is validated before any request.

        Raises
        ------
        InvalidAddressError
            An account is not a ``dydx1…`` bech32 address (or has a bad subaccount number), before any I/O.
        RpcTimeoutError, RpcUnavailableError, RateLimitedError
            The indexer did not answer (after retries).
        DecodeError
            An answer did not have the documented shape.
        """
        accounts = list(dict.fromkeys(parse_account(w, self.subaccount_number) for w in wallets))
        markets = self.read_markets()
        subaccounts = tuple(self.read_subaccount(f"{a}/{n}") for a, n in accounts)
        times = [(markets.observed_at_ms, markets.observed_at_source)] + [
            (s.observed_at_ms, s.observed_at_source) for s in subaccounts
        ]
        observed, source = snapshot_time(times)
        return DydxSnapshot(markets=markets, accounts=subaccounts, observed_at_ms=observed, observed_at_source=source)


CONNECTOR = DydxConnector
"""This venue's connector class, found by :mod:`connectors.registry`."""
