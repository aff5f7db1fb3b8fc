"""web3.py on top of the project's :class:`~connectors.evm.rpc.RpcClient`.

:func:`web3_for` gives a :class:`web3.Web3` whose provider sends every request through the client, so web3.py's
methods (fees, nonces, sending, receipts, ENS) keep the client's retries, error mapping
(:mod:`connectors.errors`: a JSON-RPC error raises :class:`~connectors.errors.RpcError` as it does for the
batched read path), counters and URL redaction. No middleware is installed: answers are web3.py's formatted
results (ints, ``HexBytes``), without attribute dicts, ENS name rewriting or gas-price strategies.
"""

from __future__ import annotations

import itertools
from typing import Any

from web3 import Web3
from web3.providers.base import JSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from connectors.errors import ConnectorError
from connectors.evm.rpc import RpcClient

__all__ = ["RpcClientProvider", "web3_for"]


class RpcClientProvider(JSONBaseProvider):
    """A web3.py provider that sends each request through an :class:`RpcClient`."""

    def __init__(self, rpc: RpcClient) -> None:
        super().__init__()
        self.rpc = rpc
        self._ids = itertools.count(1)

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        result = self.rpc.request(str(method), list(params or ()))
        return {"jsonrpc": "2.0", "id": next(self._ids), "result": result}

    def is_connected(self, show_traceback: bool = False) -> bool:
        try:
            self.rpc.block_number()
        except ConnectorError:
            if show_traceback:
                raise
            return False
        return True

    def __repr__(self) -> str:
        return f"RpcClientProvider({self.rpc!r})"


def web3_for(rpc: RpcClient) -> Web3:
    """A :class:`Web3` talking through ``rpc`` (no middleware)."""
    return Web3(RpcClientProvider(rpc), middleware=[])
