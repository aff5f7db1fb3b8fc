"""Wallet CRUD; addresses match case-insensitively and are stored checksummed."""

from __future__ import annotations

import pytest

from db import InvalidAddressError, Store, canonical_address

ADDR = "0x52908400098527886E0F7030069857D2E4169EE7"  # EIP-55 test vector
ADDR2 = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"  # lower case of 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed


def test_add_and_get_wallets(store: Store) -> None:
    assert store.add_wallets([(ADDR, "main"), (ADDR2, None)]) == 2
    wallets = store.list_wallets()
    assert [w.address for w in wallets] == [ADDR, canonical_address(ADDR2)]
    assert canonical_address(ADDR2) != ADDR2  # stored checksummed, not as given in lower case
    assert wallets[0].label == "main"
    assert wallets[1].label is None
    assert all(w.active for w in wallets)
    assert wallets[0].created_at.tzinfo is not None
    assert store.get_wallet(ADDR) == wallets[0]


def test_addresses_are_checksummed_and_match_in_any_case(store: Store) -> None:
    store.add_wallets([(ADDR.lower(), "main")])
    wallet = store.get_wallet(ADDR.upper().replace("0X", "0x"))
    assert wallet is not None
    assert wallet.address == ADDR
    assert store.get_wallet(ADDR.lower()) == wallet
    # the same wallet spelled differently is not a second wallet
    assert store.add_wallets([(ADDR, None)]) == 0
    assert len(store.list_wallets()) == 1


def test_add_wallets_is_idempotent_and_updates_labels(store: Store) -> None:
    assert store.add_wallets([(ADDR, "a")]) == 1
    assert store.add_wallets([(ADDR, "a")]) == 0
    assert store.add_wallets([(ADDR, None)]) == 0  # None keeps the label
    assert store.get_wallet(ADDR).label == "a"  # type: ignore[union-attr]
    assert store.add_wallets([(ADDR, "b")]) == 1
    assert store.get_wallet(ADDR).label == "b"  # type: ignore[union-attr]
    # duplicates in one call: the last spelling wins
    assert store.add_wallets([(ADDR.lower(), "c"), (ADDR, "d")]) == 1
    assert store.get_wallet(ADDR).label == "d"  # type: ignore[union-attr]


def test_remove_wallet_deactivates_and_add_reactivates(store: Store) -> None:
    store.add_wallets([(ADDR, "a"), (ADDR2, "b")])
    assert store.remove_wallet(ADDR.lower()) is True
    assert store.remove_wallet(ADDR) is False  # already inactive
    assert [w.label for w in store.list_wallets()] == ["b"]
    assert [w.label for w in store.list_wallets(active_only=False)] == ["a", "b"]
    removed = store.get_wallet(ADDR)
    assert removed is not None
    assert removed.active is False
    assert store.add_wallets([(ADDR, None)]) == 1
    assert [w.label for w in store.list_wallets()] == ["a", "b"]


def test_unknown_and_invalid_addresses(store: Store) -> None:
    assert store.get_wallet(ADDR) is None
    assert store.remove_wallet(ADDR) is False
    for bad in ["", "0x123", "52908400098527886E0F7030069857D2E4169EE7", "0x" + "g" * 40]:
        with pytest.raises(InvalidAddressError):
            store.add_wallets([(bad, None)])
        with pytest.raises(ValueError, match="not an address"):
            store.get_wallet(bad)
    assert store.add_wallets([]) == 0


def test_one_address_rule_a_mixed_case_typo_is_refused(store: Store) -> None:
    from connectors.types import checksum

    i = max(j for j, c in enumerate(ADDR) if j > 1 and c.isalpha())  # flip the case of one letter
    typo = ADDR[:i] + ADDR[i].swapcase() + ADDR[i + 1:]
    assert typo != ADDR
    assert typo.lower() == ADDR.lower()
    assert canonical_address(ADDR.lower()) == checksum(ADDR.lower()) == ADDR
    with pytest.raises(InvalidAddressError, match="checksum"):
        store.add_wallets([(typo, None)])
