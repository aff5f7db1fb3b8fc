"""What a running devnet exposes: its RPC URL, chain id and the addresses of what is deployed on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DevnetInfo"]


@dataclass(frozen=True)
class DevnetInfo:
    """A running devnet.

    ``contracts`` maps names to checksummed addresses: each venue's part names its own contracts after the venue
    (``<venue>.<name>``, e.g. a pool, an oracle, a per-token contract ``<venue>.<name>.<SYM>``; see
    ``devnet/venues/<venue>.py``), next to the devnet's own ``chainlink.<SYM>_USD`` feeds and ``multicall3``.
    ``tokens`` maps the token market's symbols to the token addresses (every venue uses the same tokens).
    ``markets`` maps market names to ids that are not addresses, ``<venue>.<name>`` -> id (hex).
    """

    rpc_url: str
    chain_id: int
    contracts: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    markets: dict[str, str] = field(default_factory=dict)
    services: dict[str, str] = field(default_factory=dict)
    """Off-chain services of the devnet by name, e.g. ``perp_api`` → its base URL (the local venue API: every
    off-chain venue's routes)."""

    def as_json(self, with_markets: bool = False) -> dict[str, Any]:
        """``{"rpc_url", "chain_id", "contracts": {name: address}, "tokens": {symbol: address}}``, plus
        ``"markets": {name: id}`` and ``"services": {name: url}`` when ``with_markets``."""
        data: dict[str, Any] = {
            "rpc_url": self.rpc_url,
            "chain_id": self.chain_id,
            "contracts": dict(self.contracts),
            "tokens": dict(self.tokens),
        }
        if with_markets:
            data["markets"] = dict(self.markets)
            data["services"] = dict(self.services)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DevnetInfo:
        """Inverse of :meth:`as_json` (``"markets"`` optional, other extra keys ignored)."""
        return cls(
            rpc_url=str(data["rpc_url"]),
            chain_id=int(data["chain_id"]),
            contracts={str(k): str(v) for k, v in data["contracts"].items()},
            tokens={str(k): str(v) for k, v in data["tokens"].items()},
            markets={str(k): str(v) for k, v in data.get("markets", {}).items()},
            services={str(k): str(v) for k, v in data.get("services", {}).items()},
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

    def market(self, name: str) -> str:
        """The id of market ``name`` (``<venue>.<name>``); ``KeyError`` lists the known names."""
        try:
            return self.markets[name]
        except KeyError:
            raise KeyError(f"no market {name!r} on this devnet; known: {sorted(self.markets)}") from None
