"""What a running devnet exposes: its RPC URL, chain id and the addresses of what is deployed on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DevnetInfo"]


@dataclass(frozen=True)
class DevnetInfo:
    """A running devnet.

    ``contracts`` maps names to checksummed addresses: ``aave_v3.pool``, ``aave_v3.oracle``,
    ``aave_v3.pool_addresses_provider``, ``aave_v3.pool_data_provider``, ``aave_v3.pool_configurator``,
    ``aave_v3.acl_manager``, ``aave_v3.faucet``, ``aave_v3.a_token.<SYM>``,
    ``aave_v3.variable_debt_token.<SYM>``, ``aave_v3.stable_debt_token.<SYM>``, ``chainlink.<SYM>_USD``,
    ``multicall3`` and a few more. ``tokens`` maps reserve symbols to the underlying token addresses.
    """

    rpc_url: str
    chain_id: int
    contracts: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """``{"rpc_url", "chain_id", "contracts": {name: address}, "tokens": {symbol: address}}``."""
        return {
            "rpc_url": self.rpc_url,
            "chain_id": self.chain_id,
            "contracts": dict(self.contracts),
            "tokens": dict(self.tokens),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DevnetInfo:
        """Inverse of :meth:`as_json` (extra keys are ignored)."""
        return cls(
            rpc_url=str(data["rpc_url"]),
            chain_id=int(data["chain_id"]),
            contracts={str(k): str(v) for k, v in data["contracts"].items()},
            tokens={str(k): str(v) for k, v in data["tokens"].items()},
        )

    def contract(self, name: str) -> str:
        """The address of contract ``name``; ``KeyError`` lists the known names when it is missing."""
        try:
            return self.contracts[name]
        except KeyError:
            raise KeyError(f"no contract {name!r} on this devnet; known: {sorted(self.contracts)}") from None

    def token(self, symbol: str) -> str:
        """The address of reserve token ``symbol``; ``KeyError`` lists the known symbols when it is missing."""
        try:
            return self.tokens[symbol]
        except KeyError:
            raise KeyError(f"no token {symbol!r} on this devnet; known: {sorted(self.tokens)}") from None
