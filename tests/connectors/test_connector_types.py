from __future__ import annotations

import pytest
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from connectors.errors import InvalidAddressError
from connectors.types import checksum


@given(st.binary(min_size=20, max_size=20))
def test_checksum_equals_eth_utils(raw: bytes) -> None:
    lower = "0x" + raw.hex()
    expected = to_checksum_address(lower)
    assert checksum(lower) == expected
    assert checksum(lower.upper().replace("0X", "0x")) == expected
    assert checksum(expected) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "0x" + "ab" * 20 + "\n",
        "0x" + "ab" * 19,
        "ab" * 21,
        "0X" + "ab" * 20,
        "0xFB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",  # EIP-55's example with one letter's case flipped
    ],
)
def test_checksum_refuses(bad: str) -> None:
    assert checksum("0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359") == "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359"
    with pytest.raises(InvalidAddressError):
        checksum(bad)
