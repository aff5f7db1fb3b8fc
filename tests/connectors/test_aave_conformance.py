"""Aave v3 through the conformance kit, against the devnet."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from eth_abi import encode

import devnet
from connectors.aave_v3.connector import AaveV3Connector
from connectors.aave_v3.decode import RESERVE_DATA_TYPE, decode_reserve_data
from connectors.aave_v3.deployments import AaveDeployment
from connectors.aave_v3.models import AaveSnapshot
from connectors.evm.multicall import Multicall
from connectors.evm.rpc import RpcClient
from tests.connectors.conformance import ConnectorConformance, PayloadCase

pytestmark = pytest.mark.chain


class TestAaveConformance(ConnectorConformance):
    connector_class = AaveV3Connector

    @pytest.fixture
    def env(self, seeded_devnet: devnet.DevnetInfo) -> Iterator[devnet.DevnetInfo]:
        snap = devnet.snapshot(seeded_devnet)
        self._clients: list[RpcClient] = []
        yield seeded_devnet
        for client in self._clients:
            client.close()
        devnet.revert(seeded_devnet, snap)

    def _connector(self, info: devnet.DevnetInfo, provider: str) -> AaveV3Connector:
        rpc = RpcClient(info.rpc_url)
        self._clients.append(rpc)
        deployment = AaveDeployment(name="aave_v3", chain_id=info.chain_id, pool_addresses_provider=provider)
        return AaveV3Connector(rpc, deployment, Multicall(rpc))

    def connector(self, env: Any) -> AaveV3Connector:
        return self._connector(env, env.contract("aave_v3.pool_addresses_provider"))

    def broken_connector(self, env: Any) -> AaveV3Connector:
        return self._connector(env, env.token("DAI"))  # an ERC-20 is no PoolAddressesProvider

    def active_wallets(self, env: Any) -> list[str]:
        return [devnet.wallet_address(label) for label in ("safe", "near_liquidation", "multi")]

    def unused_wallet(self, env: Any) -> str:
        return devnet.wallet_address("conformance-unused")

    def read(self, connector: Any, wallets: Sequence[str], block: int | None = None) -> AaveSnapshot:
        snapshot: AaveSnapshot = connector.read_accounts(wallets, block)
        return snapshot

    def account_positions(self, snapshot: Any) -> dict[str, int]:
        return {a.wallet: len(a.reserves) for a in snapshot.accounts}

    def request_count(self, connector: Any) -> int:
        count: int = connector.rpc.stats.http_requests
        return count

    def mutate(self, env: Any) -> int:
        block = int(devnet.rpc(env, "eth_blockNumber"), 16)
        devnet.set_price(env, "WETH", 3_500)
        devnet.borrow(env, devnet.wallet_address("safe"), "DAI", 10**21)
        return block

    def payload_cases(self) -> list[PayloadCase]:
        addr = ["0x" + f"{i:02x}" * 20 for i in range(1, 5)]
        config = 8_000 | (8_250 << 16) | (10_500 << 32) | (18 << 48) | (1 << 56)
        values = ((config,), 10**27, 0, 10**27, 0, 0, 1_700_000_000, 3, addr[0], addr[1], addr[2], addr[3], 0, 0, 0)
        raw = encode([RESERVE_DATA_TYPE], [values])

        def check(data: Any) -> None:
            assert data.id == 3
            assert data.configuration == config
            assert data.a_token.lower() == addr[0]

        return [
            PayloadCase("getReserveData", raw, decode_reserve_data_bytes, check),
            PayloadCase("truncated getReserveData", raw[:100], decode_reserve_data_bytes, None),
        ]


def decode_reserve_data_bytes(raw: bytes) -> Any:
    from connectors.aave_v3.connector import GET_RESERVE_DATA

    return decode_reserve_data(GET_RESERVE_DATA.decode(raw)[0])
