"""Uniswap v3 through the conformance kit, against the devnet (its pools and the seeded ``hedged`` LP)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from eth_abi import encode

import devnet
from connectors.evm.multicall import Multicall
from connectors.evm.rpc import RpcClient
from connectors.uniswap_v3.connector import UniswapV3Connector
from connectors.uniswap_v3.decode import POSITIONS, PositionData, decode_position
from connectors.uniswap_v3.deployments import UniswapV3Deployment
from connectors.uniswap_v3.models import UniswapSnapshot
from tests.connectors.conformance import ConnectorConformance, PayloadCase

pytestmark = pytest.mark.chain


def decode_positions_bytes(raw: bytes) -> PositionData:
    return decode_position(POSITIONS.decode(raw))


class TestUniswapConformance(ConnectorConformance):
    connector_class = UniswapV3Connector

    @pytest.fixture
    def env(self, seeded_devnet: devnet.DevnetInfo) -> Iterator[devnet.DevnetInfo]:
        self._clients: list[RpcClient] = []
        snap = devnet.snapshot(seeded_devnet)
        yield seeded_devnet
        devnet.revert(seeded_devnet, snap)
        for client in self._clients:  # close every client the hooks opened (unclosed sockets warn → error)
            client.close()

    def _connector(self, info: devnet.DevnetInfo, position_manager: str) -> UniswapV3Connector:
        rpc = RpcClient(info.rpc_url)
        self._clients.append(rpc)
        deployment = UniswapV3Deployment(
            name="uniswap_v3", chain_id=info.chain_id, position_manager=position_manager,
            factory=info.contract("uniswap_v3.factory"),
        )
        return UniswapV3Connector(rpc, deployment, Multicall(rpc))

    def connector(self, env: Any) -> UniswapV3Connector:
        return self._connector(env, env.contract("uniswap_v3.position_manager"))

    def broken_connector(self, env: Any) -> UniswapV3Connector:
        return self._connector(env, env.token("DAI"))  # an ERC-20 is no position manager

    def active_wallets(self, env: Any) -> list[str]:
        return [devnet.wallet_address("hedged"), devnet.LIQUIDITY]

    def unused_wallet(self, env: Any) -> str:
        return devnet.wallet_address("conformance-unused")

    def read(self, connector: Any, wallets: Sequence[str], block: int | None = None) -> UniswapSnapshot:
        snapshot: UniswapSnapshot = connector.read_accounts(wallets, block)
        return snapshot

    def account_positions(self, snapshot: Any) -> dict[str, int]:
        return {a.wallet: len(a.positions) for a in snapshot.accounts}

    def request_count(self, connector: Any) -> int:
        count: int = connector.rpc.stats.http_requests
        return count

    def mutate(self, env: Any) -> int:
        block = int(devnet.rpc(env, "eth_blockNumber"), 16)
        devnet.uniswap.swap_to_price(env, "WETH_USDC_500", 3_700)  # moves the price, accrues fees
        return block

    def payload_cases(self) -> list[PayloadCase]:
        t0, t1, op = "0x" + "11" * 20, "0x" + "22" * 20, "0x" + "00" * 20
        values = [3, op, t0, t1, 500, -887270, 887270, 10**20, 2**255 + 1, 7, 11, 13]
        raw = encode(list(POSITIONS.output_types), values)
        swapped = encode(list(POSITIONS.output_types), [3, op, t1, t0, *values[4:]])

        def check(data: Any) -> None:
            assert (data.nonce, data.fee, data.tick_lower, data.tick_upper) == (3, 500, -887270, 887270)
            assert data.token0.lower() == t0
            assert (data.liquidity, data.fee_growth_inside0_last_x128, data.tokens_owed1) == (10**20, 2**255 + 1, 13)

        return [
            PayloadCase("positions", raw, decode_positions_bytes, check),
            PayloadCase("truncated positions", raw[:200], decode_positions_bytes, None),
            PayloadCase("unsorted tokens", swapped, decode_positions_bytes, None),
        ]
