"""Hyperliquid through the conformance kit, against the devnet's local perp API (``devnet.perp_api``)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from connectors.hyperliquid import HyperliquidConnector, HyperliquidSnapshot
from connectors.hyperliquid.decode import decode_clearinghouse_state, decode_meta_and_asset_ctxs
from devnet.perp_api import HEDGED_LABEL, PerpApi
from devnet.seed import wallet_address
from tests.connectors.conformance import ConnectorConformance, PayloadCase

PAYLOADS = Path(__file__).parent / "payloads"
WALLET = "0x31ca8395cf837de08b24da3f660e77761dfb974b"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestHyperliquidConformance(ConnectorConformance):
    connector_class = HyperliquidConnector

    @pytest.fixture
    def env(self) -> Iterator[PerpApi]:
        self._opened: list[HyperliquidConnector] = []
        with PerpApi() as api:
            yield api
            for c in self._opened:
                c.close()

    def _keep(self, c: HyperliquidConnector) -> HyperliquidConnector:
        self._opened.append(c)
        return c

    def connector(self, env: Any) -> HyperliquidConnector:
        return self._keep(HyperliquidConnector(env.base_url, max_retries=0, timeout_s=5))

    def broken_connector(self, env: Any) -> HyperliquidConnector:
        return self._keep(HyperliquidConnector(f"http://127.0.0.1:{_free_port()}", max_retries=0, timeout_s=2))

    def active_wallets(self, env: Any) -> list[str]:
        return [wallet_address(HEDGED_LABEL), wallet_address("perp_isolated")]

    def unused_wallet(self, env: Any) -> str:
        return wallet_address("conformance-unused")

    def read(self, connector: Any, wallets: Sequence[str], block: int | None = None) -> HyperliquidSnapshot:
        assert block is None
        return connector.read_accounts(wallets)  # type: ignore[no-any-return]

    def account_positions(self, snapshot: Any) -> dict[str, int]:
        return {a.wallet: len(a.positions) for a in snapshot.accounts}

    def payload_cases(self) -> list[PayloadCase]:
        state = json.loads((PAYLOADS / "hyperliquid_clearinghouse_state_docs.json").read_text())
        meta = json.loads((PAYLOADS / "hyperliquid_meta_and_asset_ctxs_docs.json").read_text())

        def check_state(acct: Any) -> None:
            assert [str(p.liquidation_px) for p in acct.positions] == ["2866.26936529"]

        def check_meta(market: Any) -> None:
            assert [a.name for a in market.assets] == ["BTC", "ETH", "HPOS"]

        return [
            PayloadCase(
                "clearinghouseState (docs)", state, lambda r: decode_clearinghouse_state(r, WALLET), check_state
            ),
            PayloadCase(
                "metaAndAssetCtxs (docs)", meta, lambda r: decode_meta_and_asset_ctxs(r, 0, "venue"), check_meta
            ),
            PayloadCase(
                "clearinghouseState without marginSummary",
                {k: v for k, v in state.items() if k != "marginSummary"},
                lambda r: decode_clearinghouse_state(r, WALLET),
                None,
            ),
            PayloadCase(
                "metaAndAssetCtxs misaligned",
                [meta[0], meta[1][:2]],
                lambda r: decode_meta_and_asset_ctxs(r, 0, "venue"),
                None,
            ),
        ]

    def request_count(self, connector: Any) -> int:
        return int(connector.stats.http_requests)

    def snapshot_time(self, snapshot: Any) -> int:
        return int(snapshot.observed_at_ms)
