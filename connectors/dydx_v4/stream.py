"""dYdX v4's ``v4_subaccounts`` channel over the indexer's WebSocket, into the account cache.

Messages (indexer ``socks``)::

    ← {"type": "connected", "connection_id", "message_id": 0}
    {"type": "subscribe", "channel": "v4_subaccounts", "id": "dydx1…/N"}
    ← {"type": "subscribed", "channel": "v4_subaccounts", "id", "contents": {"subaccount": {…REST shape…}, "orders"}}
    ← {"type": "channel_data", "channel": "v4_subaccounts", "id", "version",
       "contents": {"perpetualPositions": [...], "assetPositions": [...], "orders"?, "fills"?, "transfers"?}}

``subscribed`` carries the whole subaccount; each ``channel_data`` carries the positions that changed, applied to the
cached state (:func:`~connectors.dydx_v4.decode.apply_subaccount_update`). Oracle moves push nothing on this channel:
prices come from one ``/v4/perpetualMarkets`` per block.
"""

from __future__ import annotations

import logging
from typing import Any

from connectors.dydx_v4.address import parse_account
from connectors.dydx_v4.decode import apply_subaccount_update, decode_subaccount
from connectors.errors import DecodeError
from connectors.stream import AccountStream

__all__ = ["DydxStream"]

log = logging.getLogger(__name__)


class DydxStream(AccountStream):
    """``v4_subaccounts`` of each followed subaccount (``dydx1…/N``)."""

    def subscribe_message(self, account: str) -> dict[str, Any]:
        return {"type": "subscribe", "channel": "v4_subaccounts", "id": account}

    def handle(self, message: Any) -> None:
        if not isinstance(message, dict):
            return
        kind = message.get("type")
        if kind == "error":
            self.last_error = str(message.get("message"))
            log.warning("dydx stream: %s", self.last_error)
            return
        if message.get("channel") != "v4_subaccounts" or kind not in ("subscribed", "channel_data"):
            return
        sub_id = message.get("id")
        if not isinstance(sub_id, str):
            raise DecodeError("v4_subaccounts: no id in the message")
        address, n = parse_account(sub_id)
        account = f"{address}/{n}"
        contents = message.get("contents")
        now = self.now_ms()
        if kind == "subscribed":
            if not isinstance(contents, dict):
                raise DecodeError("v4_subaccounts subscribed: no contents")
            state = decode_subaccount({"subaccount": contents.get("subaccount")}, address, n, now, "local_clock")
            self.mark_subscribed(account)
            self.put(account, state, now)
            return
        cached = self.cache.get(account)
        if cached is None:  # an update before any full state: the poller reads it whole
            return
        self.put(account, apply_subaccount_update(cached.state, contents, now, "local_clock"), now)
