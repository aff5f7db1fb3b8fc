"""Morpho Blue through the conformance kit, against the devnet."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from eth_abi.abi import encode

import devnet
from connectors.evm.multicall import Multicall
from connectors.evm.rpc import RpcClient
from connectors.morpho_blue.connector import MARKET, POSITION, MorphoBlueConnector
from connectors.morpho_blue.decode import decode_market, decode_position
from connectors.morpho_blue.deployments import MorphoDeployment
from connectors.morpho_blue.models import MorphoSnapshot
from tests.connectors.conformance import ConnectorConformance, PayloadCase

pytestmark = pytest.mark.chain


# ``seeded_devnet`` (tests/conftest.py): ``hedged`` borrows on WETH_USDC; the liquidity wallet supplies both markets


def _markets(info: devnet.DevnetInfo) -> tuple[str, ...]:
    return tuple(devnet.morpho.market_id(info, n) for n in devnet.morpho.market_names(info))


class TestMorphoConformance(ConnectorConformance):
    connector_class = MorphoBlueConnector

    @pytest.fixture
    def env(self, seeded_devnet: devnet.DevnetInfo) -> Iterator[devnet.DevnetInfo]:
        self._clients: list[RpcClient] = []
        snap = devnet.snapshot(seeded_devnet)
        yield seeded_devnet
        devnet.revert(seeded_devnet, snap)
        for client in self._clients:
            client.close()

    def _connector(self, info: devnet.DevnetInfo, morpho: str) -> MorphoBlueConnector:
        rpc = RpcClient(info.rpc_url)
        self._clients.append(rpc)
        deployment = MorphoDeployment(name="devnet", chain_id=info.chain_id, morpho=morpho, markets=_markets(info))
        return MorphoBlueConnector(rpc, deployment, Multicall(rpc))

    def connector(self, env: Any) -> MorphoBlueConnector:
        return self._connector(env, env.contract("morpho_blue.morpho"))

    def broken_connector(self, env: Any) -> MorphoBlueConnector:
        return self._connector(env, env.token("DAI"))  # an ERC-20 is no Morpho: market(bytes32) reverts

    def active_wallets(self, env: Any) -> list[str]:
        return [devnet.wallet_address("hedged"), devnet.LIQUIDITY]

    def unused_wallet(self, env: Any) -> str:
        return devnet.wallet_address("conformance-unused")

    def read(self, connector: Any, wallets: Sequence[str], block: int | None = None) -> MorphoSnapshot:
        snapshot: MorphoSnapshot = connector.read_accounts(wallets, block)
        return snapshot

    def account_positions(self, snapshot: Any) -> dict[str, int]:
        return {a.wallet: len(a.open_positions) for a in snapshot.accounts}

    def request_count(self, connector: Any) -> int:
        count: int = connector.rpc.stats.http_requests
        return count

    def mutate(self, env: Any) -> int:
        block = int(devnet.rpc(env, "eth_blockNumber"), 16)
        devnet.morpho.borrow(env, devnet.wallet_address("hedged"), "WETH_USDC", 1_000 * 10**6)
        return block

    def payload_cases(self) -> list[PayloadCase]:
        market = encode(["uint128"] * 6, [10**12, 10**18, 5 * 10**11, 5 * 10**17, 1_700_000_000, 10**17])
        position = encode(["uint256", "uint128", "uint128"], [0, 5 * 10**17, 10**19])

        def check_market(m: Any) -> None:
            assert (m.total_supply_assets, m.total_borrow_shares, m.last_update, m.fee_wad) == (
                10**12, 5 * 10**17, 1_700_000_000, 10**17,
            )

        def check_position(p: Any) -> None:
            assert (p.supply_shares, p.borrow_shares, p.collateral) == (0, 5 * 10**17, 10**19)

        return [
            PayloadCase("market", market, lambda raw: decode_market(MARKET.decode(raw)), check_market),
            PayloadCase("position", position, lambda raw: decode_position(POSITION.decode(raw)), check_position),
            PayloadCase("truncated market", market[:160], lambda raw: decode_market(MARKET.decode(raw)), None),
            PayloadCase(
                "uint128 overflow",
                encode(["uint256"] * 6, [2**128, 0, 0, 0, 0, 0]),
                lambda raw: decode_market(MARKET.decode(raw)),
                None,
            ),
        ]
