from __future__ import annotations

from typing import Any

import pytest
from eth_abi import decode, encode
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.errors import CallRevertedError, DecodeError, InvalidAddressError, InvalidInputError, RpcError
from connectors.evm.abi import PANIC_SELECTOR, Fn
from connectors.evm.multicall import (
    AGGREGATE3,
    Call,
    Multicall,
    Plan,
    decode_aggregate3_result,
    encode_aggregate3,
)
from connectors.evm.rpc import RpcClient

BALANCE_OF = Fn("balanceOf(address)(uint256)")
NAME = Fn("name()(string)")
TOKEN = "0x" + "aa" * 20
HOLDER = "0x" + "bb" * 20


def holders(n: int) -> list[str]:
    return ["0x" + i.to_bytes(20, "big").hex() for i in range(1, n + 1)]


@pytest.fixture
def token(node: Any) -> Any:
    node.on(TOKEN, BALANCE_OF, lambda who: (int(who, 16) * 10,))
    node.constant(TOKEN, NAME, "Token")
    return node


# --- wire format ---------------------------------------------------------------------------------------
_addr = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_addr, st.binary(max_size=100)), max_size=12))
def test_encode_aggregate3_equals_eth_abi(items: list[tuple[str, bytes]]) -> None:
    calls = [Call(t, BALANCE_OF, calldata=d) for t, d in items]
    ours = encode_aggregate3(calls)
    ref = AGGREGATE3.selector + encode(["(address,bool,bytes)[]"], [[(t, True, d) for t, d in items]])
    assert ours == ref


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=130)), max_size=12))
def test_decode_aggregate3_result_equals_eth_abi(items: list[tuple[bool, bytes]]) -> None:
    data = encode(["(bool,bytes)[]"], [items])
    ours = decode_aggregate3_result(data)
    (ref,) = decode(["(bool,bytes)[]"], data)
    assert ours == [tuple(x) for x in ref]
    assert ours == items


@pytest.mark.parametrize(
    ("cut", "match"),
    [
        (lambda d: d[:40], "returned 40 bytes"),
        (lambda d: d[:-40], "past the end|truncated"),
        (lambda d: d[:64] + (10**6).to_bytes(32, "big") + d[96:], "past the end|truncated|announces"),
        (lambda d: d[:32] + (1000).to_bytes(32, "big") + d[64:], "announces 1000"),
    ],
)
def test_decode_aggregate3_result_refuses_truncated_or_corrupt(cut: Any, match: str) -> None:
    data = encode(["(bool,bytes)[]"], [[(True, b"\x01" * 40), (False, b"\x02" * 8)]])
    with pytest.raises(DecodeError, match=match):
        decode_aggregate3_result(cut(data))


def test_decode_aggregate3_result_refuses_bad_bool() -> None:
    data = bytearray(encode(["(bool,bytes)[]"], [[(True, b"")]]))
    # layout: offset, length, element offset, then the element: success word
    data[96 + 31] = 2
    with pytest.raises(DecodeError, match="success word is 2"):
        decode_aggregate3_result(bytes(data))


def test_call_validates_target() -> None:
    with pytest.raises(InvalidAddressError):
        Call("0x1234", BALANCE_OF, (HOLDER,))


# --- execution -----------------------------------------------------------------------------------------
def test_2500_calls_make_three_aggregates_in_one_http_request(rpc: RpcClient, token: Any) -> None:
    mc = Multicall(rpc, max_calls=1000, max_request_bytes=2_000_000)
    who = holders(2500)
    results = mc.execute([Call(TOKEN, BALANCE_OF, (h,)) for h in who], 777)
    assert token.http_requests == 1
    assert token.aggregate_sizes == [1000, 1000, 500]
    assert rpc.stats.calls_by_method == {"eth_call": 3}
    assert token.call_blocks == ["0x309"] * 3
    assert [r.value[0] for r in results] == [int(h, 16) * 10 for h in who]
    assert all(r.ok for r in results)


def test_out_of_gas_halves_the_chunk(rpc: RpcClient, token: Any) -> None:
    token.max_subcalls = 300
    mc = Multicall(rpc, max_calls=1000)
    who = holders(1000)
    results = mc.execute([Call(TOKEN, BALANCE_OF, (h,)) for h in who], 5)
    assert [r.value[0] for r in results] == [int(h, 16) * 10 for h in who]
    # 1000 refused → 500 + 500 refused → 4 × 250 accepted
    assert token.aggregate_sizes == [1000, 500, 500, 250, 250, 250, 250]
    assert mc.stats.halvings == 3
    # the retried halves travel together: 1 + 1 + 1 HTTP requests
    assert token.http_requests == 3


def test_a_single_call_out_of_gas_raises(rpc: RpcClient, token: Any) -> None:
    token.max_subcalls = 0
    with pytest.raises(RpcError, match="single call"):
        Multicall(rpc).execute([Call(TOKEN, BALANCE_OF, (HOLDER,))], 5)


def test_byte_cap_splits_into_several_http_requests(rpc: RpcClient, token: Any) -> None:
    mc = Multicall(rpc, max_calls=100, max_request_bytes=60_000)
    who = holders(300)
    results = mc.execute([Call(TOKEN, BALANCE_OF, (h,)) for h in who], 5)
    assert len(results) == 300
    assert token.http_requests > 1
    assert max(token.body_sizes) <= 60_000
    assert sum(token.aggregate_sizes) == 300
    assert [r.value[0] for r in results] == [int(h, 16) * 10 for h in who]


def test_http_413_splits_the_request_then_the_chunk(rpc: RpcClient, token: Any) -> None:
    token.max_body_bytes = 40_000
    mc = Multicall(rpc, max_calls=200, max_request_bytes=1_000_000)
    who = holders(400)
    results = mc.execute([Call(TOKEN, BALANCE_OF, (h,)) for h in who], 5)
    assert [r.value[0] for r in results] == [int(h, 16) * 10 for h in who]
    assert max(s for s in token.body_sizes if s <= 40_000) <= 40_000
    assert mc.stats.halvings >= 1


def test_failures_allowed_and_required(rpc: RpcClient, node: Any) -> None:
    def boom(_who: str) -> tuple[int]:
        raise node.Revert(node.error_string("no balance for you"))

    node.on(TOKEN, BALANCE_OF, boom)
    node.on(HOLDER, BALANCE_OF, lambda _w: (1,))
    mc = Multicall(rpc)
    eoa = "0x" + "cc" * 20
    res = mc.execute(
        [Call(TOKEN, BALANCE_OF, (HOLDER,)), Call(HOLDER, BALANCE_OF, (HOLDER,)), Call(eoa, BALANCE_OF, (HOLDER,))],
        5,
    )
    assert [r.ok for r in res] == [False, True, False]
    assert res[0].error == "no balance for you"
    assert "returned no data" in (res[2].error or "")
    with pytest.raises(CallRevertedError, match="no balance for you") as info:
        res[0].unwrap()
    assert info.value.target == TOKEN

    with pytest.raises(CallRevertedError) as info2:
        mc.execute([Call(HOLDER, BALANCE_OF, (HOLDER,)), Call(TOKEN, BALANCE_OF, (HOLDER,), allow_failure=False)], 5)
    msg = str(info2.value)
    assert "balanceOf(address)" in msg
    assert TOKEN in msg
    assert info2.value.reason == "no balance for you"
    with pytest.raises(DecodeError, match="returned no data"):
        mc.execute([Call(eoa, BALANCE_OF, (HOLDER,), allow_failure=False)], 5)


def test_panic_reason_in_sub_call(rpc: RpcClient, node: Any) -> None:
    def panic(_who: str) -> tuple[int]:
        raise node.Revert(PANIC_SELECTOR + encode(["uint256"], [0x11]))

    node.on(TOKEN, BALANCE_OF, panic)
    (res,) = Multicall(rpc).execute([Call(TOKEN, BALANCE_OF, (HOLDER,))], 5)
    assert res.error == "Panic(0x11: arithmetic overflow or underflow)"


def test_custom_decoder_and_dynamic_returns(rpc: RpcClient, token: Any) -> None:
    res = Multicall(rpc).execute(
        [Call(TOKEN, NAME), Call(TOKEN, BALANCE_OF, (HOLDER,), decoder=lambda b: int.from_bytes(b, "big") + 1)], 5
    )
    assert res[0].value == ("Token",)
    assert res[1].value == int(HOLDER, 16) * 10 + 1


def test_blocks_must_be_numbers(rpc: RpcClient, token: Any) -> None:
    mc = Multicall(rpc)
    for bad in ("latest", -1, True):
        with pytest.raises(InvalidInputError):
            mc.execute([Call(TOKEN, NAME)], bad)  # type: ignore[arg-type]
    assert token.http_requests == 0
    assert mc.execute([], 5) == []
    assert token.http_requests == 0


def test_no_multicall_deployed_is_a_decode_error(rpc: RpcClient, token: Any) -> None:
    mc = Multicall(rpc, address="0x" + "dd" * 20)
    with pytest.raises(DecodeError, match="is Multicall3 deployed"):
        mc.execute([Call(TOKEN, NAME)], 5)


def test_run_many_shares_one_round_trip(rpc: RpcClient, token: Any) -> None:
    p1 = Plan([Call(TOKEN, NAME)], lambda rs: rs[0].value[0].upper())
    p2 = Plan([Call(TOKEN, BALANCE_OF, (h,)) for h in holders(3)], lambda rs: sum(r.value[0] for r in rs))
    mc = Multicall(rpc)
    assert mc.run_many([p1, p2], 9) == ["TOKEN", 60]
    assert mc.run(p1, 9) == "TOKEN"
    assert token.http_requests == 2
    assert token.aggregate_sizes == [4, 1]


def test_chunk_respects_both_caps(rpc: RpcClient) -> None:
    mc = Multicall(rpc, max_calls=10, max_request_bytes=8192)
    small = [Call(TOKEN, BALANCE_OF, (h,)) for h in holders(25)]
    assert [len(r) for r in mc.chunk(small)] == [10, 10, 5]
    big = [Call(TOKEN, BALANCE_OF, calldata=b"\x00" * 900) for _ in range(6)]  # ~2.2 kB of hex each
    ranges = mc.chunk(big)
    assert [len(r) for r in ranges] == [3, 3]
    assert sum(len(r) for r in ranges) == 6
