"""The keeper's transaction layer: calldata (decoded back), approvals, signing keys, and, on the devnet,
simulate → sign → send → wait against real Aave v3 and Morpho Blue.

The exact comparisons of simulated and executed state rely on executing the signed transactions in one block
mined at the simulated block's timestamp (automine off, ``evm_setNextBlockTimestamp``): interest accrual then
sees the same ``block.timestamp`` as the simulation, so the results must be equal to the wei, not merely close.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_abi.abi import decode
from eth_account import Account
from eth_hash.auto import keccak

import devnet
from aggregator.keeper.chain import (
    GasCapError,
    GasPolicy,
    KeeperChainError,
    Read,
    Receipt,
    ReceiptTimeoutError,
    SendError,
    SignedTx,
    Signer,
    SignerError,
    SimulationError,
    SimulationResult,
    SimulationUnsupportedError,
    gas_limit_for,
    get_receipt,
    send_raw,
    sign_calls,
    simulate,
    wait_receipt,
)
from aggregator.keeper.txs import (
    ALLOWANCE,
    MAX_UINT256,
    ActionSpec,
    Call,
    action_call,
    allowance_call_data,
    approval_call,
    build_calls,
)
from connectors.evm.abi import Fn
from connectors.evm.rpc import RpcClient
from connectors.morpho_blue.calls import MarketParams
from connectors.types import checksum
from devnet.wallets import wallet_key

WALLET = checksum("0x" + "11" * 20)
POOL = checksum("0x" + "22" * 20)
MORPHO = checksum("0x" + "33" * 20)
DAI = checksum("0x" + "44" * 20)
USDC = checksum("0x" + "55" * 20)
WETH = checksum("0x" + "66" * 20)
MARKET = MarketParams(USDC, WETH, checksum("0x" + "77" * 20), checksum("0x" + "88" * 20), 86 * 10**16)
MARKET_TYPES = "(address,address,address,address,uint256)"

ACCOUNT_DATA = Fn("getUserAccountData(address)(uint256,uint256,uint256,uint256,uint256,uint256)")
MORPHO_POSITION = Fn("position(bytes32,address)(uint256,uint128,uint128)")
BALANCE_OF = Fn("balanceOf(address)(uint256)")

POLICY = GasPolicy(max_fee_per_gas_wei=200 * 10**9, max_priority_fee_per_gas_wei=10**9, max_gas_per_tx=2_000_000)
KEY_ENV = "XMARGIN_TEST_KEEPER_KEY"


def selector(signature: str) -> bytes:
    return bytes(keccak(signature.encode()))[:4]


def args(call: Call, types: Sequence[str]) -> tuple[Any, ...]:
    data = bytes.fromhex(call.data[2:])
    return tuple(decode(list(types), data[4:]))


def aave(kind: str, token: str, symbol: str, decimals: int, amount: int, **kw: Any) -> ActionSpec:
    return ActionSpec(kind, "aave_v3", "Aave v3", WALLET, token, symbol, decimals, amount, POOL, **kw)  # type: ignore[arg-type]


def morpho(kind: str, token: str, symbol: str, decimals: int, amount: int, **kw: Any) -> ActionSpec:
    kw.setdefault("market", MARKET)
    return ActionSpec(kind, "morpho_blue", "Morpho Blue", WALLET, token, symbol, decimals, amount, MORPHO, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- calldata
def test_aave_calls_decode_back_to_their_inputs() -> None:
    repay = action_call(aave("repay", DAI, "DAI", 18, 5_000 * 10**18))
    assert repay.to == POOL
    assert repay.data[:10] == "0x" + selector("repay(address,uint256,uint256,address)").hex() == "0x573ade81"
    assert args(repay, ["address", "uint256", "uint256", "address"]) == (DAI, 5_000 * 10**18, 2, WALLET)
    assert repay.description == f"repay 5,000 DAI variable debt on Aave v3 for {WALLET}"

    stable = action_call(aave("repay", USDC, "USDC", 6, 7, interest_rate_mode=1))
    assert args(stable, ["address", "uint256", "uint256", "address"]) == (USDC, 7, 1, WALLET)

    supply = action_call(aave("supply", WETH, "WETH", 18, 15 * 10**17))
    assert supply.data[:10] == "0x" + selector("supply(address,uint256,address,uint16)").hex() == "0x617ba037"
    assert args(supply, ["address", "uint256", "address", "uint16"]) == (WETH, 15 * 10**17, WALLET, 0)
    assert "1.5 WETH" in supply.description

    withdraw = action_call(aave("withdraw", USDC, "USDC", 6, 1_234_500_000))
    assert withdraw.data[:10] == "0x" + selector("withdraw(address,uint256,address)").hex() == "0x69328dec"
    assert args(withdraw, ["address", "uint256", "address"]) == (USDC, 1_234_500_000, WALLET)
    assert "1,234.5 USDC" in withdraw.description
    assert {repay.value, supply.value, withdraw.value} == {0}


def test_morpho_calls_decode_back_to_their_inputs() -> None:
    market = (MARKET.loan_token, MARKET.collateral_token, MARKET.oracle, MARKET.irm, MARKET.lltv_wad)

    repay = action_call(morpho("repay", USDC, "USDC", 6, 1_000 * 10**6))
    sig = f"repay({MARKET_TYPES},uint256,uint256,address,bytes)"
    assert repay.to == MORPHO
    assert repay.data[:10] == "0x" + selector(sig).hex()
    assert args(repay, [MARKET_TYPES, "uint256", "uint256", "address", "bytes"]) == (
        market, 1_000 * 10**6, 0, WALLET, b""
    )

    supply = action_call(morpho("supply", WETH, "WETH", 18, 2 * 10**18))
    sig = f"supplyCollateral({MARKET_TYPES},uint256,address,bytes)"
    assert supply.data[:10] == "0x" + selector(sig).hex()
    assert args(supply, [MARKET_TYPES, "uint256", "address", "bytes"]) == (market, 2 * 10**18, WALLET, b"")

    withdraw = action_call(morpho("withdraw", WETH, "WETH", 18, 10**18))
    sig = f"withdrawCollateral({MARKET_TYPES},uint256,address,address)"
    assert withdraw.data[:10] == "0x" + selector(sig).hex()
    assert args(withdraw, [MARKET_TYPES, "uint256", "address", "address"]) == (market, 10**18, WALLET, WALLET)


def test_approval_and_allowance_encodings() -> None:
    call = approval_call(USDC, "USDC", 6, POOL, 1_234_500_000, "Aave Pool")
    assert call.to == USDC
    assert call.data[:10] == "0x" + selector("approve(address,uint256)").hex() == "0x095ea7b3"
    assert args(call, ["address", "uint256"]) == (POOL, 1_234_500_000)
    assert call.description == "approve 1,234.5 USDC to Aave Pool"

    data = allowance_call_data(WALLET, POOL)
    assert data[:4] == selector("allowance(address,address)")
    assert tuple(decode(["address", "address"], data[4:])) == (WALLET, POOL)
    assert ALLOWANCE.decode_one((123).to_bytes(32, "big")) == 123


def test_build_calls_approves_each_token_and_spender_once_with_the_plan_total() -> None:
    plan = [
        aave("withdraw", USDC, "USDC", 6, 10**6),
        aave("repay", DAI, "DAI", 18, 100 * 10**18),
        aave("supply", WETH, "WETH", 18, 10**18),
        morpho("supply", WETH, "WETH", 18, 2 * 10**18),
        aave("repay", DAI, "DAI", 18, 50 * 10**18),
    ]
    calls = build_calls(plan, {})
    approves = [c for c in calls if c.data.startswith("0x095ea7b3")]
    assert [(c.to, *args(c, ["address", "uint256"])) for c in approves] == [
        (DAI, POOL, 150 * 10**18),
        (WETH, POOL, 10**18),
        (WETH, MORPHO, 2 * 10**18),
    ]
    # each approve right before the first action pulling that token into that spender; withdraw unapproved
    assert [c.data[:10] for c in calls] == [
        "0x69328dec",  # withdraw: no approval
        "0x095ea7b3", "0x573ade81",  # approve DAI 150 → Pool, repay 100
        "0x095ea7b3", "0x617ba037",  # approve WETH → Pool, supply
        "0x095ea7b3", action_call(plan[3]).data[:10],  # approve WETH → Morpho, supplyCollateral
        "0x573ade81",  # repay 50: covered by the first approve
    ]
    assert calls[1].description == "approve 150 DAI to Aave v3 Pool"
    assert calls[5].description == "approve 2 WETH to Morpho Blue"

    # allowances that cover the plan's totals (keys in any case) suppress the approvals; one short does not
    enough = {(DAI.lower(), POOL.lower()): 150 * 10**18, (WETH, POOL): 10**18, (WETH, MORPHO): 10**30}
    assert not [c for c in build_calls(plan, enough) if c.data.startswith("0x095ea7b3")]
    short = {**enough, (DAI.lower(), POOL.lower()): 150 * 10**18 - 1}
    again = [c for c in build_calls(plan, short) if c.data.startswith("0x095ea7b3")]
    assert [(c.to, *args(c, ["address", "uint256"])) for c in again] == [(DAI, POOL, 150 * 10**18)]

    only_withdrawals = build_calls([aave("withdraw", WETH, "WETH", 18, MAX_UINT256)], {})
    assert len(only_withdrawals) == 1
    assert "withdraw all WETH" in only_withdrawals[0].description
    # repay-all plus another repay: the approval is capped at uint256 max
    capped = build_calls([aave("repay", DAI, "DAI", 18, MAX_UINT256), aave("repay", DAI, "DAI", 18, 1)], {})
    assert args(capped[0], ["address", "uint256"]) == (POOL, MAX_UINT256)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (lambda: aave("repay", DAI, "DAI", 18, 0), "positive"),
        (lambda: aave("supply", DAI, "DAI", 18, -5), "positive"),
        (lambda: aave("withdraw", DAI, "DAI", 18, 2**256), "uint256"),
        (lambda: aave("repay", DAI, "DAI", 18, 1, interest_rate_mode=3), "interest_rate_mode"),
        (lambda: morpho("repay", USDC, "USDC", 6, 1, market=None), "market"),
        (lambda: morpho("repay", WETH, "WETH", 18, 1), "loan token"),
        (lambda: morpho("supply", USDC, "USDC", 6, 1), "collateral token"),
        (lambda: aave("repay", "0x1234", "DAI", 18, 1), "not an address"),
    ],
)
def test_bad_actions_raise_value_error(spec: Callable[[], ActionSpec], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        action_call(spec())
    with pytest.raises(ValueError, match=message):
        build_calls([aave("repay", DAI, "DAI", 18, 1), spec()], {})


def test_bad_approval_amount_raises() -> None:
    with pytest.raises(ValueError, match="positive"):
        approval_call(USDC, "USDC", 6, POOL, 0, "Aave Pool")


# ---------------------------------------------------------------------------------------------- signer
def test_signer_from_env_and_its_errors_never_show_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    key = wallet_key("near_liquidation")
    monkeypatch.setenv(KEY_ENV, key)
    signer = Signer.from_env(KEY_ENV)
    assert signer.address == devnet.wallet_address("near_liquidation")
    for text in (repr(signer), str(signer), f"{signer}"):
        assert text == f"Signer({signer.address})"
        assert key[2:] not in text.lower()
    monkeypatch.setenv(KEY_ENV, key[2:])  # without 0x
    assert Signer.from_env(KEY_ENV).address == signer.address

    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(SignerError, match=f"{KEY_ENV} is not set"):
        Signer.from_env(KEY_ENV)
    for bad in (key[:-2], key[:-2] + "zz", "0x" + "00" * 32, key + "00"):
        monkeypatch.setenv(KEY_ENV, bad)
        with pytest.raises(SignerError) as info:
            Signer.from_env(KEY_ENV)
        assert KEY_ENV in str(info.value)
        assert bad[2:12] not in str(info.value)
        assert info.value.__cause__ is None
        assert info.value.__suppress_context__


def test_signer_from_keystore_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = wallet_key("hedged")
    keystore = Account.encrypt(bytes.fromhex(key[2:]), "correct horse", kdf="scrypt", iterations=2**10)
    path = tmp_path / "keeper.json"
    path.write_text(json.dumps(keystore))
    monkeypatch.setenv("XMARGIN_TEST_KEYSTORE_PW", "correct horse")
    signer = Signer.from_keystore(path, "XMARGIN_TEST_KEYSTORE_PW")
    assert signer.address == devnet.wallet_address("hedged")
    assert key[2:] not in repr(signer).lower()

    monkeypatch.setenv("XMARGIN_TEST_KEYSTORE_PW", "wrong horse")
    with pytest.raises(SignerError, match="wrong password") as info:
        Signer.from_keystore(path, "XMARGIN_TEST_KEYSTORE_PW")
    assert "horse" not in str(info.value)
    monkeypatch.delenv("XMARGIN_TEST_KEYSTORE_PW")
    with pytest.raises(SignerError, match="XMARGIN_TEST_KEYSTORE_PW is not set"):
        Signer.from_keystore(path, "XMARGIN_TEST_KEYSTORE_PW")
    monkeypatch.setenv("XMARGIN_TEST_KEYSTORE_PW", "correct horse")
    with pytest.raises(SignerError, match="cannot read keystore"):
        Signer.from_keystore(tmp_path / "missing.json", "XMARGIN_TEST_KEYSTORE_PW")
    (tmp_path / "not.json").write_text("{")
    with pytest.raises(SignerError, match="not JSON"):
        Signer.from_keystore(tmp_path / "not.json", "XMARGIN_TEST_KEYSTORE_PW")


def test_gas_policy_and_limits() -> None:
    assert gas_limit_for(100_000, 1.25) == 150_000
    assert gas_limit_for(100_001, 1.25) == 150_002  # ceil(125,001.25) + 25,000
    assert gas_limit_for(100_000, 1.1) == 135_000  # 1.1 as written, not its binary float
    with pytest.raises(ValueError, match="gas_margin"):
        GasPolicy(10, 1, 100, gas_margin=0.9)
    with pytest.raises(ValueError, match="priority"):
        GasPolicy(10, 11, 100)


# -------------------------------------------------------------------------------- RPC answers, mocked
URL = "http://node.invalid/rpc"


def mock_rpc(answers: dict[str, Callable[[list[Any]], Any]]) -> RpcClient:
    """A client whose node answers each method with ``answers[method](params)``: a result, or an error dict
    ``{"error": {...}}``."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        out = answers[body["method"]](body["params"])
        if isinstance(out, dict) and set(out) == {"error"}:
            return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], **out})
        return httpx.Response(200, json={"jsonrpc": "2.0", "id": body["id"], "result": out})

    return RpcClient(URL, transport=httpx.MockTransport(handler), max_retries=0)


SIGNED = SignedTx(0, "approve 1 DAI to Aave Pool", POOL, 7, 60_000, 10**9, "0x02f8", "0x" + "ab" * 32)
RECEIPT = {"status": "0x1", "blockNumber": "0x10", "gasUsed": "0x5208", "transactionHash": SIGNED.tx_hash}


def test_simulate_on_a_node_without_eth_simulate_v1() -> None:
    call = approval_call(DAI, "DAI", 18, POOL, 1, "Pool")
    unsupported = {"eth_simulateV1": lambda _p: {"error": {"code": -32601, "message": "Method not found"}}}
    with mock_rpc(unsupported) as rpc, pytest.raises(SimulationUnsupportedError, match="does not support"):
        simulate(rpc, WALLET, [call])
    with mock_rpc({"eth_simulateV1": lambda _p: [{"calls": []}]}) as rpc, pytest.raises(
        SimulationError, match="expected 1 call results"
    ):
        simulate(rpc, WALLET, [call])
    assert issubclass(SimulationUnsupportedError, KeeperChainError)


@pytest.mark.parametrize(
    ("message", "receipt", "pending", "ok"),
    [
        ("already known", None, {"hash": SIGNED.tx_hash}, True),  # in the node's pool
        ("already known", RECEIPT, None, True),
        ("nonce too low: next nonce 9, tx nonce 7", RECEIPT, None, True),  # mined before a restart
        ("nonce too low: next nonce 9, tx nonce 7", None, None, False),  # the nonce went to another tx
        ("insufficient funds for gas * price + value", None, None, False),
    ],
)
def test_send_raw_is_idempotent_only_for_this_very_transaction(
    message: str, receipt: dict[str, str] | None, pending: dict[str, str] | None, ok: bool
) -> None:
    answers: dict[str, Callable[[list[Any]], Any]] = {
        "eth_sendRawTransaction": lambda _p: {"error": {"code": -32000, "message": message}},
        "eth_getTransactionReceipt": lambda _p: receipt,
        "eth_getTransactionByHash": lambda _p: pending,
    }
    with mock_rpc(answers) as rpc:
        if ok:
            assert send_raw(rpc, SIGNED) == SIGNED.tx_hash
        else:
            with pytest.raises(SendError, match="nonce 7") as info:
                send_raw(rpc, SIGNED)
            assert info.value.tx_hash == SIGNED.tx_hash
    other_hash = {"eth_sendRawTransaction": lambda _p: "0x" + "cd" * 32}
    with mock_rpc(other_hash) as rpc, pytest.raises(SendError, match="answered hash"):
        send_raw(rpc, SIGNED)


def test_wait_receipt_polls_until_a_receipt_or_the_deadline() -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    polls = iter([None, None, {"blockNumber": None}, RECEIPT])
    with mock_rpc({"eth_getTransactionReceipt": lambda _p: next(polls)}) as rpc:
        got = wait_receipt(rpc, SIGNED.tx_hash, timeout_s=5, poll_s=0.5, sleep=sleep, clock=lambda: now[0])
    assert got == Receipt(SIGNED.tx_hash, 1, 16, 21_000)
    assert sleeps == [0.5, 0.5, 0.5]

    now[0], sleeps[:] = 0.0, []
    with mock_rpc({"eth_getTransactionReceipt": lambda _p: None}) as rpc:
        with pytest.raises(ReceiptTimeoutError, match="no receipt"):
            wait_receipt(rpc, SIGNED.tx_hash, timeout_s=1, poll_s=0.3, sleep=sleep, clock=lambda: now[0])
        assert get_receipt(rpc, SIGNED.tx_hash) is None
    assert sum(sleeps) == pytest.approx(1.0)
    assert len(sleeps) == 4  # 0.3, 0.3, 0.3, 0.1


# ---------------------------------------------------------------------------------------------- devnet
@pytest.fixture
def chain(seeded_devnet: devnet.DevnetInfo) -> Iterator[devnet.DevnetInfo]:
    snap = devnet.snapshot(seeded_devnet)
    yield seeded_devnet
    devnet.revert(seeded_devnet, snap)


@pytest.fixture
def rpc(chain: devnet.DevnetInfo) -> Iterator[RpcClient]:
    with RpcClient(chain.rpc_url) as client:
        yield client


def signer_for(label: str, monkeypatch: pytest.MonkeyPatch) -> Signer:
    monkeypatch.setenv(KEY_ENV, wallet_key(label))
    return Signer.from_env(KEY_ENV)


def dai_repay(info: devnet.DevnetInfo, wallet: str, amount: int) -> ActionSpec:
    return ActionSpec(
        "repay", "aave_v3", "Aave v3", wallet, info.token("DAI"), "DAI", 18, amount, info.contract("aave_v3.pool")
    )


def allowances(rpc: RpcClient, wallet: str, actions: Sequence[ActionSpec]) -> dict[tuple[str, str], int]:
    pairs = {(a.token, a.target) for a in actions}
    return {(t, s): ALLOWANCE.decode_one(rpc.eth_call(t, allowance_call_data(wallet, s), "latest")) for t, s in pairs}


def nonce(rpc: RpcClient, wallet: str, tag: str = "latest") -> int:
    return int(rpc.request("eth_getTransactionCount", [wallet, tag]), 16)


def execute_at(rpc: RpcClient, signed: Sequence[SignedTx], timestamp: int) -> list[Receipt]:
    """Mine ``signed`` in one block at ``timestamp`` (the simulated block's), as the simulation ran them.

    Each is sent twice: the second send, while the first waits in the pool, must be accepted as a no-op
    (anvil answers "transaction already imported")."""
    rpc.request("evm_setAutomine", [False])
    try:
        for tx in signed:
            assert send_raw(rpc, tx) == tx.tx_hash
            assert send_raw(rpc, tx) == tx.tx_hash
        rpc.request("evm_setNextBlockTimestamp", [timestamp])
        rpc.request("evm_mine", [])
    finally:
        rpc.request("evm_setAutomine", [True])
    receipts = [wait_receipt(rpc, tx.tx_hash, timeout_s=10) for tx in signed]
    block = rpc.request("eth_getBlockByNumber", [hex(receipts[0].block_number), False])
    assert block["transactions"] == [tx.tx_hash for tx in signed]
    assert int(block["timestamp"], 16) == timestamp
    return receipts


@pytest.mark.chain
def test_simulated_aave_repay_raises_health_exactly_as_executing_it(
    rpc: RpcClient, chain: devnet.DevnetInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    wallet = devnet.wallet_address("near_liquidation")
    pool, dai = chain.contract("aave_v3.pool"), chain.token("DAI")
    amount = 5_000 * 10**18
    if devnet.balance_of(chain, "DAI", wallet) < amount:
        devnet.fund(chain, wallet, "DAI", amount)
    actions = [dai_repay(chain, wallet, amount)]
    calls = build_calls(actions, allowances(rpc, wallet, actions))
    assert [c.to for c in calls] == [dai, pool]  # approve, repay

    before = devnet.account_data(chain, wallet)
    balance, head = devnet.balance_of(chain, "DAI", wallet), rpc.block_number()
    sim = simulate(rpc, wallet, calls, [Read(pool, ACCOUNT_DATA.encode(wallet)), Read(dai, BALANCE_OF.encode(wallet))])
    assert sim.ok, sim.error
    assert (sim.failed_index, sim.error, len(sim.gas_used)) == (None, None, 2)
    simulated = ACCOUNT_DATA.decode(sim.reads[0])
    assert simulated[5] > before.health_factor_wad
    assert simulated[1] < before.total_debt_base
    assert BALANCE_OF.decode_one(sim.reads[1]) == balance - amount
    # the simulation changed nothing
    assert devnet.account_data(chain, wallet) == before
    assert (devnet.balance_of(chain, "DAI", wallet), rpc.block_number()) == (balance, head)
    assert allowances(rpc, wallet, actions) == {(dai, pool): 0}

    signed = sign_calls(signer_for("near_liquidation", monkeypatch), rpc, calls, sim.gas_used, POLICY)
    assert sim.timestamp is not None
    receipts = execute_at(rpc, signed, sim.timestamp)
    assert [r.status for r in receipts] == [1, 1]
    assert len({r.block_number for r in receipts}) == 1
    after = devnet.account_data(chain, wallet)
    assert tuple(vars(after).values()) == simulated  # to the wei: same state, same block timestamp
    assert devnet.balance_of(chain, "DAI", wallet) == balance - amount
    # gas: the node's simulated gas is what the receipts charge (net of refunds, intrinsic gas included)
    assert [r.gas_used for r in receipts] == list(sim.gas_used)
    assert all(r.gas_used < tx.gas_limit for r, tx in zip(receipts, signed, strict=True))


@pytest.mark.chain
def test_simulated_failure_names_the_failing_call_and_its_reason(rpc: RpcClient, chain: devnet.DevnetInfo) -> None:
    wallet = devnet.wallet_address("near_liquidation")
    pool = chain.contract("aave_v3.pool")
    before = devnet.account_data(chain, wallet)
    withdraw_all = ActionSpec(
        "withdraw", "aave_v3", "Aave v3", wallet, chain.token("WETH"), "WETH", 18, MAX_UINT256, pool
    )
    calls = build_calls([dai_repay(chain, wallet, 1_000 * 10**18), withdraw_all], {})
    reads = [Read(pool, ACCOUNT_DATA.encode(wallet))]
    sim = simulate(rpc, wallet, calls, reads)
    assert not sim.ok
    assert sim.failed_index == 2
    assert sim.error == "35"  # Aave v3: HEALTH_FACTOR_LOWER_THAN_LIQUIDATION_THRESHOLD
    assert len(sim.gas_used) == 3
    assert all(g > 21_000 for g in sim.gas_used)
    assert sim.reads == ()
    assert devnet.account_data(chain, wallet) == before

    # a Morpho Error(string) at the first call
    hedged = devnet.wallet_address("hedged")
    params = devnet.morpho.market_params(chain, "WETH_USDC")
    market = MarketParams(params.loan_token, params.collateral_token, params.oracle, params.irm, params.lltv)
    too_much = ActionSpec(
        "withdraw", "morpho_blue", "Morpho Blue", hedged, params.collateral_token, "WETH", 18, 10 * 10**18,
        chain.contract("morpho_blue.morpho"), market,
    )
    sim = simulate(rpc, hedged, [action_call(too_much)])
    assert (sim.ok, sim.failed_index, sim.error, len(sim.gas_used)) == (False, 0, "insufficient collateral", 1)

    # a reverting read is the caller's bug, not a failed plan
    with pytest.raises(SimulationError, match="read 0"):
        simulate(rpc, wallet, calls[:2], [Read(pool, bytes.fromhex(calls[2].data[2:]))])


@pytest.mark.chain
def test_sign_send_wait_then_resend_is_idempotent(
    rpc: RpcClient, chain: devnet.DevnetInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    wallet = devnet.wallet_address("near_liquidation")
    signer = signer_for("near_liquidation", monkeypatch)
    assert signer.address == wallet
    devnet.set_balance(chain, wallet, 10**18)
    actions = [dai_repay(chain, wallet, 2_000 * 10**18)]
    calls = build_calls(actions, allowances(rpc, wallet, actions))
    sim = simulate(rpc, wallet, calls)
    assert sim.ok, sim.error
    before = devnet.account_data(chain, wallet).health_factor_wad

    first = nonce(rpc, wallet, "pending")
    base_fee = int(rpc.request("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
    signed = sign_calls(signer, rpc, calls, sim.gas_used, POLICY)
    assert [t.nonce for t in signed] == [first, first + 1]
    assert [t.seq for t in signed] == [0, 1]
    assert [t.description for t in signed] == [c.description for c in calls]
    assert {t.max_fee_per_gas for t in signed} == {min(POLICY.max_fee_per_gas_wei, 2 * base_fee + 10**9)}
    assert [t.gas_limit for t in signed] == [gas_limit_for(g, 1.25) for g in sim.gas_used]
    assert len({t.tx_hash for t in signed}) == 2

    for tx in signed:
        assert send_raw(rpc, tx) == tx.tx_hash
    receipts = [wait_receipt(rpc, tx.tx_hash, timeout_s=10, poll_s=0.05) for tx in signed]
    assert [r.status for r in receipts] == [1, 1]
    assert [r.tx_hash for r in receipts] == [t.tx_hash for t in signed]
    assert nonce(rpc, wallet) == first + 2
    assert devnet.account_data(chain, wallet).health_factor_wad > before
    # the node agrees the signed tx is what we think it is
    mined = rpc.request("eth_getTransactionByHash", [signed[1].tx_hash])
    assert (int(mined["nonce"], 16), int(mined["type"], 16), mined["to"].lower()) == (
        first + 1, 2, calls[1].to.lower()
    )
    assert int(mined["gas"], 16) == signed[1].gas_limit

    # a keeper restarted after the txs were mined re-sends them: no error, same hashes, nothing new mined
    head = rpc.block_number()
    for tx in signed:
        assert send_raw(rpc, tx) == tx.tx_hash
    assert (nonce(rpc, wallet), rpc.block_number()) == (first + 2, head)
    assert get_receipt(rpc, signed[0].tx_hash) == receipts[0]

    # an explicit nonce is used as given
    more = sign_calls(signer, rpc, calls[1:], sim.gas_used[1:], POLICY, nonce=first + 2)
    assert [t.nonce for t in more] == [first + 2]


@pytest.mark.chain
def test_gas_caps_stop_signing(rpc: RpcClient, chain: devnet.DevnetInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    wallet = devnet.wallet_address("near_liquidation")
    signer = signer_for("near_liquidation", monkeypatch)
    calls = build_calls([dai_repay(chain, wallet, 10**18)], {})
    sim = simulate(rpc, wallet, calls)
    assert sim.ok, sim.error

    tight = GasPolicy(POLICY.max_fee_per_gas_wei, POLICY.max_priority_fee_per_gas_wei, max_gas_per_tx=100_000)
    with pytest.raises(GasCapError, match="over the cap of 100,000 per transaction") as info:
        sign_calls(signer, rpc, calls, sim.gas_used, tight)
    assert str(info.value).startswith("repay 1 DAI")  # the approve (~83k with margin) is under the cap

    rpc.request("anvil_setNextBlockBaseFeePerGas", [hex(50 * 10**9)])
    rpc.request("evm_mine", [])
    cheap = GasPolicy(40 * 10**9, 10**9, POLICY.max_gas_per_tx)
    with pytest.raises(GasCapError, match="base fee 50,000,000,000 wei"):
        sign_calls(signer, rpc, calls, sim.gas_used, cheap)
    # under the cap: maxFeePerGas = min(cap, 2 · base fee + priority)
    base_fee = int(rpc.request("eth_getBlockByNumber", ["latest", False])["baseFeePerGas"], 16)
    assert base_fee >= 40 * 10**9
    roomy = GasPolicy(base_fee + 2 * 10**9, 10**9, POLICY.max_gas_per_tx)
    assert {t.max_fee_per_gas for t in sign_calls(signer, rpc, calls, sim.gas_used, roomy)} == {base_fee + 2 * 10**9}
    wide = GasPolicy(10**12, 10**9, POLICY.max_gas_per_tx)
    assert {t.max_fee_per_gas for t in sign_calls(signer, rpc, calls, sim.gas_used, wide)} == {2 * base_fee + 10**9}


@pytest.mark.chain
def test_morpho_supply_collateral_and_repay_simulated_then_executed(
    rpc: RpcClient, chain: devnet.DevnetInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    wallet = devnet.wallet_address("hedged")
    morpho_address = chain.contract("morpho_blue.morpho")
    params = devnet.morpho.market_params(chain, "WETH_USDC")
    market = MarketParams(params.loan_token, params.collateral_token, params.oracle, params.irm, params.lltv)
    weth, usdc = 2 * 10**18, 1_000 * 10**6
    devnet.fund(chain, wallet, "WETH", weth)
    devnet.fund(chain, wallet, "USDC", usdc)
    devnet.set_balance(chain, wallet, 10**18)
    actions = [
        ActionSpec("supply", "morpho_blue", "Morpho Blue", wallet, params.collateral_token, "WETH", 18, weth,
                   morpho_address, market),
        ActionSpec("repay", "morpho_blue", "Morpho Blue", wallet, params.loan_token, "USDC", 6, usdc,
                   morpho_address, market),
    ]
    calls = build_calls(actions, allowances(rpc, wallet, actions))
    assert [c.to for c in calls] == [params.collateral_token, morpho_address, params.loan_token, morpho_address]

    market_id = bytes.fromhex(params.id[2:])
    before = devnet.morpho.position(chain, "WETH_USDC", wallet)
    health_before = devnet.morpho.health_factor_wad(chain, "WETH_USDC", wallet)
    sim = simulate(rpc, wallet, calls, [Read(morpho_address, MORPHO_POSITION.encode(market_id, wallet))])
    assert sim.ok, sim.error
    _, borrow_shares, collateral = MORPHO_POSITION.decode(sim.reads[0])
    assert collateral == before.collateral + weth
    assert borrow_shares < before.borrow_shares
    assert devnet.morpho.position(chain, "WETH_USDC", wallet) == before  # unchanged by simulating

    signed = sign_calls(signer_for("hedged", monkeypatch), rpc, calls, sim.gas_used, POLICY)
    assert sim.timestamp is not None
    receipts = execute_at(rpc, signed, sim.timestamp)
    assert [r.status for r in receipts] == [1, 1, 1, 1]
    after = devnet.morpho.position(chain, "WETH_USDC", wallet)
    assert (after.borrow_shares, after.collateral) == (borrow_shares, collateral)
    assert devnet.morpho.health_factor_wad(chain, "WETH_USDC", wallet) > health_before
    assert [r.gas_used for r in receipts] == list(sim.gas_used)


def test_simulation_result_defaults() -> None:
    result = SimulationResult(True, (1,), None, None, ())
    assert (result.block_number, result.timestamp) == (None, None)
