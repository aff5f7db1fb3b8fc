"""The connector conformance kit: one abstract suite that every venue subclasses.

Adding a venue means one folder of the same shape under ``connectors/`` plus one subclass of
:class:`ConnectorConformance` filling in its hooks (a fixture ``env`` and the methods marked abstract).
The suite then checks, for every venue alike:

* capabilities are declared as data on the connector class;
* the venue's raw payloads (ABI return data, JSON) decode into its models, and malformed ones fail
  with :class:`~connectors.errors.DecodeError`, never a bare ``KeyError``/``IndexError``;
* errors map onto the connector error tree (invalid address before any I/O, an unreachable or
  broken venue as a :class:`~connectors.errors.ConnectorError`);
* block pinning (on-chain venues: a read at block N is the same after the chain moved on), or the
  venue's own timestamp on the snapshot (off-chain venues);
* an unused wallet comes back as an empty account;
* many wallets are read in one pass (for batching venues, without more requests than for one wallet).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from connectors.base import Capabilities
from connectors.errors import ConnectorError, DecodeError, InvalidAddressError, InvalidInputError


@dataclass(frozen=True)
class PayloadCase:
    """A raw payload and what decoding it must give (``check`` asserts on the decoded value).

    ``check`` is None for a malformed payload, which must raise :class:`DecodeError`.
    """

    name: str
    raw: Any
    decode: Callable[[Any], Any]
    check: Callable[[Any], None] | None


class ConnectorConformance(ABC):
    """Subclass per venue. Provide a pytest fixture named ``env`` (whatever the hooks need: a devnet,
    a local API server…) and implement the hooks below."""

    connector_class: type

    # --- hooks ---------------------------------------------------------------------------------------
    @abstractmethod
    def connector(self, env: Any) -> Any:
        """A working connector for ``env``."""

    @abstractmethod
    def broken_connector(self, env: Any) -> Any:
        """A connector whose reads fail at the venue (unreachable URL, wrong contract…)."""

    @abstractmethod
    def active_wallets(self, env: Any) -> list[str]:
        """Wallets (or venue accounts) holding positions in ``env``; at least two."""

    @abstractmethod
    def unused_wallet(self, env: Any) -> str:
        """A valid account that has never used the venue."""

    @abstractmethod
    def read(self, connector: Any, wallets: Sequence[str], block: int | None = None) -> Any:
        """One read of ``wallets`` (at ``block`` for on-chain venues)."""

    @abstractmethod
    def account_positions(self, snapshot: Any) -> dict[str, int]:
        """Per wallet of the snapshot: how many positions it holds."""

    @abstractmethod
    def payload_cases(self) -> list[PayloadCase]:
        """Raw payloads of the venue and their expected decoding; include at least one malformed case."""

    @abstractmethod
    def request_count(self, connector: Any) -> int:
        """HTTP requests made so far by ``connector``."""

    def invalid_wallet(self) -> str:
        return "0x1234"

    def mutate(self, env: Any) -> int:
        """On-chain venues: change the wallets' state in a new block; return the block number before it."""
        raise NotImplementedError

    def snapshot_time(self, snapshot: Any) -> int:
        """Off-chain venues: the venue's own timestamp on the snapshot (unix ms or s)."""
        raise NotImplementedError

    # --- the suite -----------------------------------------------------------------------------------
    def test_capabilities_are_declared_as_data(self) -> None:
        caps = self.connector_class.capabilities  # type: ignore[attr-defined]
        assert isinstance(caps, Capabilities)
        assert Capabilities.model_validate_json(caps.model_dump_json()) == caps
        assert caps.block_pinned == (caps.transport == "evm")
        assert caps.positions

    def test_raw_payloads_decode_and_malformed_ones_fail_cleanly(self) -> None:
        cases = self.payload_cases()
        assert any(c.check is None for c in cases), "give at least one malformed payload"
        assert any(c.check is not None for c in cases), "give at least one well-formed payload"
        for case in cases:
            if case.check is None:
                with pytest.raises(DecodeError):
                    case.decode(case.raw)
            else:
                case.check(case.decode(case.raw))

    def test_an_invalid_address_is_refused_before_any_io(self, env: Any) -> None:
        connector = self.connector(env)
        before = self.request_count(connector)
        with pytest.raises(InvalidInputError):
            self.read(connector, [self.active_wallets(env)[0], self.invalid_wallet()])
        assert self.request_count(connector) == before

    def test_a_broken_venue_raises_a_connector_error(self, env: Any) -> None:
        with pytest.raises(ConnectorError) as info:
            self.read(self.broken_connector(env), self.active_wallets(env)[:1])
        assert not isinstance(info.value, InvalidAddressError)
        assert str(info.value)

    def test_an_unused_wallet_is_an_empty_account(self, env: Any) -> None:
        wallet = self.unused_wallet(env)
        counts = self.account_positions(self.read(self.connector(env), [wallet]))
        assert counts == {wallet: 0}

    def test_many_wallets_in_one_pass(self, env: Any) -> None:
        wallets = [*self.active_wallets(env), self.unused_wallet(env)]
        connector = self.connector(env)
        self.read(connector, wallets[:1])  # warm up discovery caches
        start = self.request_count(connector)
        self.read(connector, wallets[:1])
        one = self.request_count(connector) - start
        start = self.request_count(connector)
        counts = self.account_positions(self.read(connector, wallets))
        many = self.request_count(connector) - start
        assert set(counts) == set(wallets)
        assert all(counts[w] > 0 for w in self.active_wallets(env))
        caps = self.connector_class.capabilities  # type: ignore[attr-defined]
        if caps.batch_wallets:
            assert many == one, f"{len(wallets)} wallets took {many} requests, one wallet {one}"
        else:
            assert many <= one * len(wallets) + 1

    def test_reads_are_pinned_to_a_block_or_stamped_with_venue_time(self, env: Any) -> None:
        caps = self.connector_class.capabilities  # type: ignore[attr-defined]
        connector = self.connector(env)
        wallets = self.active_wallets(env)
        if not caps.block_pinned:
            assert self.snapshot_time(self.read(connector, wallets)) > 0
            return
        block = self.mutate(env)
        first = self.read(connector, wallets, block)
        later = self.read(connector, wallets)
        again = self.read(connector, wallets, block)
        assert again == first
        assert later != first, "mutate() must change what the wallets hold"
