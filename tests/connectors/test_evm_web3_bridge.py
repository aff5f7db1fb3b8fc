"""connectors.evm.web3_bridge: web3.py's calls go through the project's RpcClient (its counters, its error
mapping), with web3.py's result formatting."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from connectors.errors import RpcError
from connectors.evm.rpc import RpcClient
from connectors.evm.web3_bridge import RpcClientProvider, web3_for


def client(answers: dict[str, Any]) -> RpcClient:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        out = answers[body["method"]]
        key = "error" if isinstance(out, dict) and "code" in out else "result"
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], key: out})

    return RpcClient("http://node.invalid/KEY", transport=httpx.MockTransport(handler), max_retries=0)


def test_calls_go_through_the_client_and_are_formatted() -> None:
    rpc = client({"eth_chainId": "0x7a69", "eth_getTransactionCount": "0x2a", "eth_blockNumber": "0x10"})
    w3 = web3_for(rpc)
    assert w3.eth.chain_id == 31337
    assert w3.eth.get_transaction_count(w3.to_checksum_address("0x" + "11" * 20), "pending") == 42
    assert rpc.stats.calls_by_method == {"eth_chainId": 1, "eth_getTransactionCount": 1}
    assert isinstance(w3.provider, RpcClientProvider)
    assert w3.is_connected()
    assert "KEY" not in repr(w3.provider)


def test_an_rpc_error_is_the_clients_typed_error() -> None:
    rpc = client({"eth_sendRawTransaction": {"code": -32000, "message": "insufficient funds"}})
    with pytest.raises(RpcError, match="insufficient funds"):
        web3_for(rpc).eth.send_raw_transaction("0x02f8")  # type: ignore[arg-type]
    assert not web3_for(client({"eth_blockNumber": {"code": -32000, "message": "down"}})).is_connected()
