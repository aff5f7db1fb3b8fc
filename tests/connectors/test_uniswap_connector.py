"""The Uniswap v3 connector end to end against a scripted node (no chain): read plan, decoding, errors, and the
snapshot feeding ``riskcore.venues.uniswap_v3.position``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_abi.packed import encode_packed
from eth_hash.auto import keccak

from connectors.errors import DecodeError, InvalidAddressError, InvalidInputError
from connectors.evm.abi import Fn
from connectors.evm.multicall import Multicall
from connectors.evm.program import run_programs
from connectors.evm.rpc import RpcClient
from connectors.types import checksum
from connectors.uniswap_v3 import decode as d
from connectors.uniswap_v3.connector import UniswapV3Connector
from connectors.uniswap_v3.deployments import (
    DEPLOYMENTS,
    POOL_INIT_CODE_HASH,
    UNISWAP_V3_ETHEREUM,
    UniswapV3Deployment,
    get_deployment,
)
from connectors.uniswap_v3.models import UniswapSnapshot
from riskcore.venues.uniswap_v3.position import (
    Q128,
    PoolPositionParams,
    TickFeeGrowth,
    UniswapV3PoolParams,
    UniswapV3PositionParams,
    amounts_for_burn,
    get_sqrt_ratio_at_tick,
    position_amounts,
)

CHAIN_ID = 31337
HEAD = 1000
ROOT = Path(__file__).resolve().parents[2]


def addr(tag: int) -> str:
    return checksum("0x" + f"{tag:040x}")


NPM, FACTORY = addr(0xA1), addr(0xA2)
TOKEN_A, TOKEN_B, TOKEN_C = addr(0x1000), addr(0x2000), addr(0x3000)  # sorted: A < B < C
W1, W2, W3 = addr(0x5001), addr(0x5002), addr(0x5003)
OPERATOR = addr(0x77)
DEPLOYMENT = UniswapV3Deployment(name="fake", chain_id=CHAIN_ID, position_manager=NPM, factory=FACTORY)
POOL_AB = d.compute_pool_address(FACTORY, TOKEN_A, TOKEN_B, 500, POOL_INIT_CODE_HASH)
POOL_BC = d.compute_pool_address(FACTORY, TOKEN_B, TOKEN_C, 3000, POOL_INIT_CODE_HASH)

TOKENS = {TOKEN_A: ("AAA", 18), TOKEN_B: ("BBB", 6), TOKEN_C: (b"MKR".ljust(32, b"\0"), 18)}
# token id -> (owner, token0, token1, fee, lower, upper, liquidity, fg0 last, fg1 last, owed0, owed1)
POSITIONS: dict[int, tuple[Any, ...]] = {
    7: (W1, TOKEN_A, TOKEN_B, 500, -600, 600, 10**18, 3 * Q128, Q128, 5, 6),
    9: (W1, TOKEN_B, TOKEN_C, 3000, 60, 1200, 4 * 10**17, 0, 0, 0, 0),
    12: (W2, TOKEN_A, TOKEN_B, 500, -600, 600, 2 * 10**18, 4 * Q128, 2 * Q128, 0, 0),  # same range as 7
    13: (W2, TOKEN_A, TOKEN_B, 500, -1000, -700, 0, 0, 0, 70, 80),  # closed, fees left
}
OWNED = {W1: [7, 9], W2: [12, 13], W3: []}
POOLS: dict[str, dict[str, Any]] = {
    POOL_AB: {"slot0": (get_sqrt_ratio_at_tick(100) + 5, 100), "liq": 3 * 10**18, "fg": (10 * Q128, 5 * Q128)},
    POOL_BC: {"slot0": (get_sqrt_ratio_at_tick(-50), -50), "liq": 0, "fg": (Q128 // 3, 7)},
}
TICKS = {  # (pool, tick) -> (gross, net, out0, out1, initialized)
    (POOL_AB, -600): (3 * 10**18, 3 * 10**18, 2 * Q128, Q128, True),
    (POOL_AB, 600): (3 * 10**18, -(3 * 10**18), 3 * Q128, Q128 // 2, True),
    (POOL_AB, -1000): (0, 0, 0, 0, False),
    (POOL_AB, -700): (0, 0, 0, 0, False),
    (POOL_BC, 60): (4 * 10**17, 4 * 10**17, Q128 // 7, 3, True),
    (POOL_BC, 1200): (4 * 10**17, -(4 * 10**17), 0, 0, True),
}


def install(node: Any, *, factory: str = FACTORY, bytes32_symbol: bool = True) -> None:
    node.constant(NPM, d.FACTORY, factory)
    node.on(NPM, d.BALANCE_OF, lambda w: (len(OWNED.get(checksum(w), [])),))

    def token_of(w: str, i: int) -> tuple[int]:
        ids = OWNED.get(checksum(w), [])
        if i >= len(ids):
            raise node.Revert(node.error_string("EnumerableSet: index out of bounds"))
        return (ids[i],)

    node.on(NPM, d.TOKEN_OF_OWNER_BY_INDEX, token_of)

    def positions(tid: int) -> tuple[Any, ...]:
        if tid not in POSITIONS:
            raise node.Revert(node.error_string("Invalid token ID"))
        _, t0, t1, fee, lo, hi, liq, g0, g1, o0, o1 = POSITIONS[tid]
        return (tid, OPERATOR, t0, t1, fee, lo, hi, liq, g0, g1, o0, o1)

    node.on(NPM, d.POSITIONS, positions)
    for pool, st in POOLS.items():
        sqrt_p, tick = st["slot0"]
        node.constant(pool, d.SLOT0, sqrt_p, tick, 0, 1, 1, 0, True)
        node.constant(pool, d.LIQUIDITY, st["liq"])
        node.constant(pool, d.FEE_GROWTH_GLOBAL0, st["fg"][0])
        node.constant(pool, d.FEE_GROWTH_GLOBAL1, st["fg"][1])

        def ticks(t: int, pool: str = pool) -> tuple[Any, ...]:
            gross, net, o0, o1, init = TICKS.get((pool, t), (0, 0, 0, 0, False))
            return (gross, net, o0, o1, 0, 0, 0, init)

        node.on(pool, d.TICKS, ticks)

        def pool_positions(key: bytes, pool: str = pool) -> tuple[Any, ...]:
            # The manager's aggregate: sum of the NFTs' liquidity over the range, snapshot = the first NFT's.
            for lo, hi in {(p[4], p[5]) for p in POSITIONS.values()}:
                if d.position_key(NPM, lo, hi) == key:
                    nfts = [p for p in POSITIONS.values() if (p[4], p[5]) == (lo, hi)]
                    return (sum(p[6] for p in nfts), nfts[0][7], nfts[0][8], 1000, 1000)
            return (0, 0, 0, 0, 0)

        node.on(pool, d.POOL_POSITIONS, pool_positions)
    for token, (sym, dec) in TOKENS.items():
        node.constant(token, d.DECIMALS, dec)
        if isinstance(sym, bytes):
            if bytes32_symbol:
                node.constant(token, Fn("symbol()(bytes32)"), sym)
        else:
            node.constant(token, d.SYMBOL, sym)


@pytest.fixture
def chain(node: Any) -> Any:
    install(node)
    return node


def test_read_accounts_full_snapshot(rpc: RpcClient, chain: Any) -> None:
    conn = UniswapV3Connector(rpc, DEPLOYMENT)
    snap = conn.read_accounts([W1, W2.lower(), W3, W1])
    assert snap.block.number == HEAD
    assert set(chain.call_blocks) == {hex(HEAD)}
    assert (snap.deployment, snap.position_manager, snap.factory) == ("fake", NPM, FACTORY)
    assert [a.wallet for a in snap.accounts] == [W1, W2, W3]
    a1, a2, a3 = snap.accounts
    assert [p.token_id for p in a1.positions] == [7, 9]
    assert [p.token_id for p in a2.positions] == [12, 13]
    assert a3.positions == ()
    p7 = a1.positions[0]
    assert (p7.owner, p7.pool, p7.token0, p7.token1, p7.fee) == (W1, POOL_AB, TOKEN_A, TOKEN_B, 500)
    assert (p7.token0_symbol, p7.token1_symbol, p7.token0_decimals, p7.token1_decimals) == ("AAA", "BBB", 18, 6)
    assert (p7.tick_lower, p7.tick_upper, p7.liquidity) == (-600, 600, 10**18)
    assert (p7.fee_growth_inside0_last_x128, p7.fee_growth_inside1_last_x128) == (3 * Q128, Q128)
    assert (p7.tokens_owed0, p7.tokens_owed1, p7.nonce, p7.operator) == (5, 6, 7, OPERATOR)
    p9 = a1.positions[1]
    assert (p9.pool, p9.token1_symbol, p9.token1_decimals) == (POOL_BC, "MKR", 18)
    # pools: one entry each, the bounds of every range read, the manager's pool positions per range
    assert [p.address for p in snap.pools] == [POOL_AB, POOL_BC]
    ab = snap.pool(POOL_AB.lower())
    assert (ab.sqrt_price_x96, ab.tick, ab.liquidity) == (get_sqrt_ratio_at_tick(100) + 5, 100, 3 * 10**18)
    assert (ab.fee_growth_global0_x128, ab.fee_growth_global1_x128) == (10 * Q128, 5 * Q128)
    assert [t.tick for t in ab.ticks] == [-1000, -700, -600, 600]
    assert ab.tick_state(-600).fee_growth_outside0_x128 == 2 * Q128
    assert ab.tick_state(-600).initialized
    assert not ab.tick_state(-700).initialized
    assert ab.position_state(-600, 600).liquidity == 3 * 10**18
    assert ab.position_state(-1000, -700).liquidity == 0
    with pytest.raises(KeyError):
        ab.tick_state(5)
    with pytest.raises(KeyError):
        snap.pool(W1)
    assert {t.address: (t.symbol, t.decimals) for t in snap.tokens} == {
        TOKEN_A: ("AAA", 18), TOKEN_B: ("BBB", 6), TOKEN_C: ("MKR", 18)
    }
    # the snapshot survives a JSON round trip (raw ints beyond 2**64 included)
    assert UniswapSnapshot.model_validate_json(snap.model_dump_json()) == snap


def test_read_plan_is_four_round_trips(rpc: RpcClient, chain: Any) -> None:
    conn = UniswapV3Connector(rpc, DEPLOYMENT)
    conn.read_accounts([W1, W2, W3])
    # chainId, getBlock, then rounds 1–4: balances, token ids, positions, pools + tokens
    assert rpc.stats.calls_by_method == {"eth_chainId": 1, "eth_getBlockByNumber": 1, "eth_call": 4}
    # round 1: factory + 3 balances; 2: 4 ids; 3: 4 positions;
    # 4: 3 tokens × 2 + AB (4 + 4 ticks + 2 ranges) + BC (4 + 2 ticks + 1 range)
    assert chain.aggregate_sizes == [4, 4, 4, 6 + 10 + 7]


def test_wallets_without_positions_cost_one_round_trip(rpc: RpcClient, chain: Any) -> None:
    conn = UniswapV3Connector(rpc, DEPLOYMENT)
    snap = conn.read_accounts([W3, addr(0x9999)], block=HEAD - 3)
    assert [a.positions for a in snap.accounts] == [(), ()]
    assert (snap.pools, snap.tokens) == ((), ())
    assert chain.aggregate_sizes == [3]
    assert chain.call_blocks == [hex(HEAD - 3)]


def test_the_snapshot_gives_riskcore_exact_amounts_and_fees(rpc: RpcClient, chain: Any) -> None:
    snap = UniswapV3Connector(rpc, DEPLOYMENT).read_accounts([W1])
    p = snap.accounts[0].positions[0]
    pool = snap.pool(p.pool)
    out = position_amounts(
        UniswapV3PositionParams(p.tick_lower, p.tick_upper, p.liquidity, p.fee_growth_inside0_last_x128,
                                p.fee_growth_inside1_last_x128, p.tokens_owed0, p.tokens_owed1),
        UniswapV3PoolParams(pool.sqrt_price_x96, pool.tick, pool.fee_growth_global0_x128,
                            pool.fee_growth_global1_x128),
        TickFeeGrowth(pool.tick_state(p.tick_lower).fee_growth_outside0_x128,
                      pool.tick_state(p.tick_lower).fee_growth_outside1_x128),
        TickFeeGrowth(pool.tick_state(p.tick_upper).fee_growth_outside0_x128,
                      pool.tick_state(p.tick_upper).fee_growth_outside1_x128),
        PoolPositionParams(**pool.position_state(p.tick_lower, p.tick_upper).model_dump(
            exclude={"tick_lower", "tick_upper"})),
    )
    # in range: inside0 = 10 - 2 - 3 = 5 (Q128), last 3 → 2 per unit × 1e18, plus 5 owed
    assert out.owed0_raw == 5 + 2 * 10**18
    assert out.owed1_raw == 6 + (5 * Q128 - Q128 - Q128 // 2 - Q128) * 10**18 // Q128
    assert (out.amount0_raw, out.amount1_raw) == amounts_for_burn(pool.sqrt_price_x96, 100, -600, 600, 10**18)


def test_a_position_whose_pool_does_not_exist_is_a_clear_error(rpc: RpcClient, node: Any) -> None:
    install(node)
    ghost = d.compute_pool_address(FACTORY, TOKEN_A, TOKEN_C, 100, POOL_INIT_CODE_HASH)
    POSITIONS[99] = (W3, TOKEN_A, TOKEN_C, 100, -10, 10, 5, 0, 0, 0, 0)
    OWNED[W3] = [99]
    try:
        with pytest.raises(DecodeError, match=rf"position 99 of {W3}.*no Uniswap v3 pool at {ghost}"):
            UniswapV3Connector(rpc, DEPLOYMENT).read_accounts([W1, W3])
    finally:
        del POSITIONS[99]
        OWNED[W3] = []


def test_get_pool_mode_reads_pools_through_the_factory(rpc: RpcClient, node: Any) -> None:
    install(node)
    pools = {(TOKEN_A.lower(), TOKEN_B.lower(), 500): POOL_AB, (TOKEN_B.lower(), TOKEN_C.lower(), 3000): POOL_BC}
    node.on(FACTORY, d.GET_POOL, lambda a, b, fee: (pools.get((a, b, fee), "0x" + "00" * 20),))
    deployment = DEPLOYMENT.model_copy(update={"pool_init_code_hash": None})
    conn = UniswapV3Connector(rpc, deployment)
    snap = conn.read_accounts([W1, W2])
    assert [p.address for p in snap.pools] == [POOL_AB, POOL_BC]
    assert rpc.stats.calls_by_method["eth_call"] == 5
    # getPool answering the zero address fails the read naming the position
    POSITIONS[99] = (W3, TOKEN_A, TOKEN_C, 100, -10, 10, 5, 0, 0, 0, 0)
    OWNED[W3] = [99]
    try:
        with pytest.raises(DecodeError, match=r"position 99 .*getPool returned the zero address"):
            conn.read_accounts([W3])
    finally:
        del POSITIONS[99]
        OWNED[W3] = []


def test_a_factory_mismatch_is_refused(rpc: RpcClient, node: Any) -> None:
    install(node, factory=addr(0xBAD))
    with pytest.raises(DecodeError, match="reports factory"):
        UniswapV3Connector(rpc, DEPLOYMENT).read_accounts([W3])


def test_a_token_without_symbol_reads_as_empty(rpc: RpcClient, node: Any) -> None:
    install(node, bytes32_symbol=False)
    snap = UniswapV3Connector(rpc, DEPLOYMENT).read_accounts([W1])
    assert snap.accounts[0].positions[1].token1_symbol == ""


def test_a_reverting_positions_call_names_the_call(rpc: RpcClient, node: Any) -> None:
    install(node)
    OWNED[W3] = [12345]
    try:
        with pytest.raises(Exception, match="Invalid token ID") as info:
            UniswapV3Connector(rpc, DEPLOYMENT).read_accounts([W3])
        assert "positions(uint256)" in str(info.value)
    finally:
        OWNED[W3] = []


def test_invalid_input_is_refused_before_any_io(rpc: RpcClient, node: Any) -> None:
    conn = UniswapV3Connector(rpc, DEPLOYMENT)
    with pytest.raises(InvalidAddressError):
        conn.read_accounts([W1, "0x1234"])
    with pytest.raises(InvalidInputError, match="sequence"):
        conn.read_accounts(W1)
    assert node.http_requests == 0
    other_chain = UniswapV3Connector(rpc, UNISWAP_V3_ETHEREUM)
    with pytest.raises(InvalidInputError, match="chain"):
        other_chain.read_accounts([W1])


def test_runs_in_shared_round_trips_with_other_programs(rpc: RpcClient, chain: Any) -> None:
    conn = UniswapV3Connector(rpc, DEPLOYMENT)
    block = rpc.get_block("latest")
    out = run_programs(Multicall(rpc), {"a": conn.program([W1], block), "b": conn.program([W2, W3], block)}, block)
    assert isinstance(out["a"], UniswapSnapshot)
    assert isinstance(out["b"], UniswapSnapshot)
    assert len(chain.aggregate_sizes) == 4  # both programs share the four rounds
    assert [p.token_id for p in out["b"].accounts[0].positions] == [12, 13]


# --- decoding and derived addresses --------------------------------------------------------------------------
def test_decode_position_checks_consistency() -> None:
    good = (1, OPERATOR, TOKEN_A, TOKEN_B, 500, -10, 10, 5, 1, 2, 3, 4)
    out = d.decode_position(d.POSITIONS.decode(encode(list(d.POSITIONS.output_types), list(good))))
    assert (out.token0, out.tick_lower, out.tick_upper, out.tokens_owed1) == (TOKEN_A, -10, 10, 4)
    with pytest.raises(DecodeError, match="not sorted"):
        d.decode_position((1, OPERATOR, TOKEN_B, TOKEN_A, 500, -10, 10, 5, 1, 2, 3, 4))
    with pytest.raises(DecodeError, match="tick range"):
        d.decode_position((1, OPERATOR, TOKEN_A, TOKEN_B, 500, 10, 10, 5, 1, 2, 3, 4))
    with pytest.raises(DecodeError, match="12 fields"):
        d.decode_position(good[:11])
    with pytest.raises(DecodeError):
        d.POSITIONS.decode(encode(list(d.POSITIONS.output_types), list(good))[:300])
    with pytest.raises(DecodeError, match="not initialized"):
        d.decode_slot0((0, 0, 0, 0, 0, 0, True))


def test_pool_addresses_match_mainnet() -> None:
    usdc, weth = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
    factory = UNISWAP_V3_ETHEREUM.factory
    assert d.compute_pool_address(factory, usdc, weth, 500, POOL_INIT_CODE_HASH) == (
        "0x88e6A0c2dDD26FEEb64F039a2c41296FcB3f5640"
    )
    assert d.compute_pool_address(factory, usdc, weth, 3000, POOL_INIT_CODE_HASH) == (
        "0x8ad599c3A0ff1De082011EFDDc58f1908eb6e6D8"
    )
    with pytest.raises(InvalidInputError, match="sorted"):
        d.compute_pool_address(factory, weth, usdc, 500, POOL_INIT_CODE_HASH)


def test_init_code_hash_is_the_pool_artifacts() -> None:
    artifact = ROOT / "devnet/node_modules/@uniswap/v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json"
    if not artifact.exists():
        pytest.skip("devnet npm packages not installed")
    bytecode = json.loads(artifact.read_text())["bytecode"]
    assert "0x" + keccak(bytes.fromhex(bytecode[2:])).hex() == POOL_INIT_CODE_HASH


def test_position_key_is_abi_encode_packed() -> None:
    for lo, hi in ((-887272, 887272), (-1, 1), (0, 60)):
        assert d.position_key(NPM, lo, hi) == keccak(encode_packed(["address", "int24", "int24"], [NPM, lo, hi]))


def test_deployments() -> None:
    assert get_deployment("uniswap_v3_ethereum") is UNISWAP_V3_ETHEREUM
    assert UNISWAP_V3_ETHEREUM.position_manager == "0xC36442b4a4522E871399CD717aBDD847Ab11FE88"
    assert UNISWAP_V3_ETHEREUM.factory == "0x1F98431c8aD98523631AE4a59f267346ea31F984"
    assert all(dep.pool_init_code_hash == POOL_INIT_CODE_HASH for dep in DEPLOYMENTS.values())
    with pytest.raises(InvalidInputError, match="known"):
        get_deployment("sushi")
    with pytest.raises(ValueError, match="64 hex"):
        UniswapV3Deployment(name="x", chain_id=1, position_manager=NPM, factory=FACTORY, pool_init_code_hash="0x12")


def test_capabilities() -> None:
    caps = UniswapV3Connector.capabilities
    assert (caps.venue_type, caps.kind, caps.transport, caps.positions) == ("uniswap_v3", "lp", "evm", ("lp",))
    assert caps.block_pinned
    assert caps.batch_wallets
