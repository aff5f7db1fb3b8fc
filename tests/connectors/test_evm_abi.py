from __future__ import annotations

import pytest
from eth_abi import decode, encode
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.errors import DecodeError, InvalidInputError
from connectors.evm.abi import ERROR_SELECTOR, PANIC_SELECTOR, Fn, decode_revert_reason, split_types


@pytest.mark.parametrize(
    ("signature", "selector"),
    [
        ("balanceOf(address)(uint256)", "70a08231"),
        ("getUserAccountData(address)(uint256,uint256,uint256,uint256,uint256,uint256)", "bf92857c"),
        ("aggregate3((address,bool,bytes)[])((bool,bytes)[])", "82ad56cb"),
        ("latestRoundData()(uint80,int256,uint256,uint256,uint80)", "feaf968c"),
        ("decimals() returns (uint8)", "313ce567"),
        ("transfer(address, uint256)", "a9059cbb"),
    ],
)
def test_selector_matches_known_values(signature: str, selector: str) -> None:
    assert Fn(signature).selector.hex() == selector


def test_parses_inputs_outputs_and_canonical_signature() -> None:
    fn = Fn("getEModeCategoryData(uint8)((uint16,uint16,uint16,address,string))")
    assert fn.name == "getEModeCategoryData"
    assert fn.input_types == ("uint8",)
    assert fn.output_types == ("(uint16,uint16,uint16,address,string)",)
    assert fn.signature == "getEModeCategoryData(uint8)"
    assert not fn.static_return
    assert Fn("f()").output_types == ()


@pytest.mark.parametrize("bad", ["", "noparens", "f(uint256", "f(uint256))(", "f(,)", "1f()"])
def test_bad_signatures_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        Fn(bad)


def test_split_types_top_level_only() -> None:
    assert split_types("uint256, (address,(bool,bytes)[]) ,bytes32") == [
        "uint256",
        "(address,(bool,bytes)[])",
        "bytes32",
    ]


def test_encode_matches_eth_abi_and_checks_arity() -> None:
    fn = Fn("transfer(address,uint256)(bool)")
    to = "0x" + "ab" * 20
    assert fn.encode(to, 5) == bytes.fromhex("a9059cbb") + encode(["address", "uint256"], [to, 5])
    with pytest.raises(InvalidInputError, match="takes 2 arguments"):
        fn.encode(to)
    with pytest.raises(InvalidInputError, match="cannot encode"):
        fn.encode("not an address", 5)


_STATIC = "(uint256,int256,uint8,int8,address,bool,bytes4,(uint128,uint40,address))"


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(
        st.integers(0, 2**256 - 1),
        st.integers(-(2**255), 2**255 - 1),
        st.integers(0, 255),
        st.integers(-128, 127),
        st.binary(min_size=20, max_size=20),
        st.booleans(),
        st.binary(min_size=4, max_size=4),
        st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 2**40 - 1), st.binary(min_size=20, max_size=20)),
    )
)
def test_static_fast_path_equals_eth_abi(values: tuple) -> None:
    a, b, c, d, addr, flag, b4, (x, y, addr2) = values
    py = (a, b, c, d, "0x" + addr.hex(), flag, b4, (x, y, "0x" + addr2.hex()))
    types = split_types(_STATIC[1:-1])
    data = encode(types, list(py))
    fn = Fn(f"f(){_STATIC}")
    assert fn.static_return
    assert fn.decode(data) == tuple(decode(types, data))


def test_dynamic_return_goes_through_eth_abi() -> None:
    fn = Fn("getReservesList()(address[])")
    addrs = ["0x" + "01" * 20, "0x" + "02" * 20]
    assert fn.decode(encode(["address[]"], [addrs])) == (tuple(addrs),)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "returned no data"),
        (b"\x00" * 31, "returned 31 bytes"),
        ((2).to_bytes(32, "big") + bytes(32), "bool word is 2"),
        (bytes(32) + (1 << 200).to_bytes(32, "big"), "out of range for uint128"),
    ],
)
def test_static_decode_errors_name_the_function(data: bytes, match: str) -> None:
    fn = Fn("status(address)(bool,uint128)")
    with pytest.raises(DecodeError, match=match) as info:
        fn.decode(data)
    assert "status(address)" in str(info.value)


def test_address_with_dirty_padding_is_refused() -> None:
    with pytest.raises(DecodeError, match="padding"):
        Fn("owner()(address)").decode(b"\x01" + bytes(31))


def test_dynamic_decode_error_is_decode_error() -> None:
    with pytest.raises(DecodeError, match=r"symbol\(\)"):
        Fn("symbol()(string)").decode((32).to_bytes(32, "big") + (1000).to_bytes(32, "big"))


def test_decode_one() -> None:
    assert Fn("decimals()(uint8)").decode_one((18).to_bytes(32, "big")) == 18
    with pytest.raises(DecodeError, match="2 outputs"):
        Fn("f()(uint8,uint8)").decode_one(bytes(64))


def test_revert_reasons() -> None:
    assert decode_revert_reason(ERROR_SELECTOR + encode(["string"], ["35"])) == "35"
    assert decode_revert_reason(PANIC_SELECTOR + encode(["uint256"], [0x11])) == (
        "Panic(0x11: arithmetic overflow or underflow)"
    )
    assert decode_revert_reason(PANIC_SELECTOR + encode(["uint256"], [0x99])) == "Panic(0x99: unknown panic code)"
    assert decode_revert_reason(bytes.fromhex("deadbeef")) == "custom error 0xdeadbeef"
    assert decode_revert_reason(b"") is None
    assert decode_revert_reason(ERROR_SELECTOR + b"\x01").startswith("Error(<undecodable")


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex()),
    st.integers(0, 2**256 - 1),
    st.integers(-(2**127), 2**127 - 1),
    st.booleans(),
    st.integers(0, 255),
)
def test_static_encode_fast_path_equals_eth_abi(a: str, u: int, i: int, flag: bool, small: int) -> None:
    fn = Fn("f(address,uint256,int128,bool,uint8)")
    types = ["address", "uint256", "int128", "bool", "uint8"]
    assert fn.encode(a, u, i, flag, small) == fn.selector + encode(types, [a, u, i, flag, small])


@pytest.mark.parametrize(
    "args",
    [
        ("0x" + "ab" * 20 + "\n", 1, 1, True, 1),
        ("0x" + "ab" * 20, -1, 1, True, 1),
        ("0x" + "ab" * 20, 1, 2**127, True, 1),
        ("0x" + "ab" * 20, 1, 1, 1, 1),
        ("0x" + "ab" * 20, 1, 1, True, 256),
        ("0x" + "ab" * 20, True, 1, True, 1),
    ],
)
def test_static_encode_fast_path_refuses_what_eth_abi_refuses(args: tuple) -> None:
    with pytest.raises(InvalidInputError):
        Fn("f(address,uint256,int128,bool,uint8)").encode(*args)
