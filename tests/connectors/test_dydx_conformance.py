"""dYdX v4 through the conformance kit, against the devnet's local perp API (``devnet.perp_api``)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from connectors.dydx_v4 import DydxConnector, DydxSnapshot
from connectors.dydx_v4.decode import decode_perpetual_markets, decode_subaccount
from devnet.perp_api import HEDGED_LABEL, PerpApi, dydx_address
from tests.connectors.conformance import ConnectorConformance, PayloadCase

PAYLOADS = Path(__file__).parent / "payloads"
ADDR = "dydx199tqg4wdlnu4qjlxchpd7seg454937hjrknju4"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestDydxConformance(ConnectorConformance):
    connector_class = DydxConnector

    @pytest.fixture
    def env(self) -> Iterator[PerpApi]:
        self._opened: list[DydxConnector] = []
        with PerpApi() as api:
            yield api
            for c in self._opened:
                c.close()

    def _keep(self, c: DydxConnector) -> DydxConnector:
        self._opened.append(c)
        return c

    def connector(self, env: Any) -> DydxConnector:
        return self._keep(DydxConnector(env.base_url, max_retries=0, timeout_s=5))

    def broken_connector(self, env: Any) -> DydxConnector:
        return self._keep(DydxConnector(f"http://127.0.0.1:{_free_port()}", max_retries=0, timeout_s=2))

    def active_wallets(self, env: Any) -> list[str]:
        return [f"{dydx_address(HEDGED_LABEL)}/0", f"{dydx_address('perp_isolated')}/0"]

    def unused_wallet(self, env: Any) -> str:
        return f"{dydx_address('conformance-unused')}/0"

    def read(self, connector: Any, wallets: Sequence[str], block: int | None = None) -> DydxSnapshot:
        assert block is None
        return connector.read_accounts(wallets)  # type: ignore[no-any-return]

    def account_positions(self, snapshot: Any) -> dict[str, int]:
        return {a.account_id: len(a.positions) for a in snapshot.accounts}

    def payload_cases(self) -> list[PayloadCase]:
        markets = json.loads((PAYLOADS / "dydx_perpetual_markets_ccxt.json").read_text())
        sub = json.loads((PAYLOADS / "dydx_subaccount_btc_short.json").read_text())

        def check_markets(m: Any) -> None:
            assert str(m.market("BTC-USD").maintenance_margin_fraction) == "0.012"

        def check_sub(s: Any) -> None:
            assert [str(p.size) for p in s.positions] == ["-0.407"]

        return [
            PayloadCase(
                "perpetualMarkets (ccxt)", markets, lambda r: decode_perpetual_markets(r, 0, "http_date"), check_markets
            ),
            PayloadCase("subaccount", sub, lambda r: decode_subaccount(r, ADDR, 0, 0, "http_date"), check_sub),
            PayloadCase(
                "subaccount without equity",
                {"subaccount": {k: v for k, v in sub["subaccount"].items() if k != "equity"}},
                lambda r: decode_subaccount(r, ADDR, 0, 0, "http_date"),
                None,
            ),
            PayloadCase("markets as a list", [markets], lambda r: decode_perpetual_markets(r, 0, "http_date"), None),
        ]

    def invalid_wallet(self) -> str:
        return "0x31ca8395cf837de08b24da3f660e77761dfb974b"  # an EVM address is no dYdX account

    def request_count(self, connector: Any) -> int:
        return int(connector.stats.http_requests)

    def snapshot_time(self, snapshot: Any) -> int:
        return int(snapshot.observed_at_ms)
