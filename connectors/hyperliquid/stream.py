"""Hyperliquid's user channel over WebSocket (docs, *WebSocket → Subscriptions*), into the account cache.

Subscription (one per user)::

    {"method": "subscribe", "subscription": {"type": "clearinghouseState", "user": "0x…"}}
    ← {"channel": "subscriptionResponse", "data": {"method": "subscribe", "subscription": {…}}}
    ← {"channel": "clearinghouseState", "data": {"dex": "", "user": "0x…", "clearinghouseState": {…}}}   (each change)

``webData2`` messages (``{"channel": "webData2", "data": {"clearinghouseState": {…}, "user", …}}``) are read the same
way. The venue tracks at most 10 distinct users across user subscriptions per IP (docs, *Rate limits*): a stream
carries at most :attr:`HyperliquidStream.max_accounts`; the others are polled.
"""

from __future__ import annotations

import logging
from typing import Any

from connectors.errors import DecodeError
from connectors.hyperliquid.decode import decode_clearinghouse_state
from connectors.stream import AccountStream
from connectors.types import HEX40, checksum

__all__ = ["WS_MAX_USERS", "HyperliquidStream"]

log = logging.getLogger(__name__)

WS_MAX_USERS = 10
"""Distinct users across user-specific subscriptions, per IP (docs, *Rate limits*)."""


class HyperliquidStream(AccountStream):
    """``clearinghouseState`` of each followed wallet (checksummed addresses), pushed on every change."""

    max_accounts = WS_MAX_USERS

    def subscribe_message(self, account: str) -> dict[str, Any]:
        return {"method": "subscribe", "subscription": {"type": "clearinghouseState", "user": account.lower()}}

    def handle(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        channel, data = message.get("channel"), message.get("data")
        if channel == "subscriptionResponse" and isinstance(data, dict):
            user = (data.get("subscription") or {}).get("user")
            if isinstance(user, str) and HEX40.fullmatch(user):
                self.mark_subscribed(checksum(user))
        elif channel in ("clearinghouseState", "webData2") and isinstance(data, dict):
            user = data.get("user")
            if not isinstance(user, str) or not HEX40.fullmatch(user):
                raise DecodeError(f"{channel}: no user in the message")
            account = decode_clearinghouse_state(data.get("clearinghouseState"), user, local_ms=self.now_ms())
            self.mark_subscribed(account.wallet)
            self.put(account.wallet, account, account.observed_at_ms)
        elif channel == "error":
            self.last_error = str(data)
            log.warning("hyperliquid stream: %s", data)
