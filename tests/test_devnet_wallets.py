"""The devnet's wallets: each label's address is its key's, as eth_account (which signs with the key) derives it."""

from __future__ import annotations

from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

import devnet
from devnet.wallets import wallet_key


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_a_wallets_address_is_the_one_its_key_signs_as(label: str) -> None:
    assert devnet.wallet_address(label) == Account.from_key(wallet_key(label)).address


def test_the_seeded_wallets_keep_their_addresses() -> None:
    """Addresses the seeded devnet, its docs and stored configs name: derived the same way as before."""
    for label in ("near_liquidation", "hedged"):
        assert devnet.wallet_address(label) == Account.from_key(wallet_key(label)).address
    assert devnet.wallet_address("hedged") == "0x4b27f0dae121fa7b2A28fc2B273CB388550D22B8"
