"""The keeper's transaction layer: simulate a plan's calls, sign them as EIP-1559 transactions, send them, and
wait for their receipts.

- :func:`simulate`: one ``eth_simulateV1`` request running the calls (and trailing :class:`Read` calls, in the
  state after them) from the sender in one simulated block, without validation (no nonce, balance or fee
  checks) and without changing chain state; per call its status, gas used and decoded revert reason.
- :class:`Signer`: a private key from an environment variable or an Ethereum V3 keystore file. The key is never
  put in a message, a repr or an exception chain.
- :func:`sign_calls`: type-2 transactions with consecutive nonces, gas limits from the simulated gas, and fees
  under a :class:`GasPolicy`'s hard caps (:class:`GasCapError` before anything is signed).
- :func:`send_raw`, :func:`get_receipt`, :func:`wait_receipt`. Re-sending a transaction the node already has or
  has mined is not an error, so a keeper that stored its signed transactions can re-send them after a restart.

Errors::

    KeeperChainError (RuntimeError)
    ├── SimulationError               the node refused or garbled the simulation, or a Read reverted
    │   └── SimulationUnsupportedError    the node has no eth_simulateV1
    ├── SignerError                   no key, a malformed key, an unreadable or undecryptable keystore
    ├── GasCapError                   a gas limit or the network's fee is over the policy's cap
    ├── SendError                     the node rejected a transaction
    └── ReceiptTimeoutError (TimeoutError)   no receipt in time

Fees, nonces, the chain id, sending and receipts go through web3.py (:func:`connectors.evm.web3_bridge.web3_for`,
over the same :class:`RpcClient`, so its retries and error mapping apply); signing is eth-account's
:class:`LocalAccount`; the simulation is one ``eth_simulateV1`` request on the same client (web3.py 7 has no
typed wrapper for it that keeps the raw per-call results).

Transient RPC faults (:class:`~connectors.errors.TransientError`) propagate as they are, after the client's
retries: whether a transaction was sent is then unknown, and re-sending it is safe.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_typing import ChecksumAddress, HexAddress, HexStr

from aggregator.keeper.plugin import Read
from aggregator.keeper.txs import Call
from connectors.errors import DecodeError, RpcError
from connectors.evm.abi import decode_revert_reason
from connectors.evm.rpc import RpcClient, block_param, hex_to_bytes, hex_to_int
from connectors.types import checksum

if TYPE_CHECKING:  # web3.py and eth-account are imported where a key is loaded or a transaction sent
    from eth_account.signers.local import LocalAccount
    from web3 import Web3

__all__ = [
    "GasCapError",
    "GasPolicy",
    "KeeperChainError",
    "Read",
    "Receipt",
    "ReceiptTimeoutError",
    "SendError",
    "SignedTx",
    "Signer",
    "SignerError",
    "SimulationError",
    "SimulationResult",
    "SimulationUnsupportedError",
    "gas_limit_for",
    "get_receipt",
    "send_raw",
    "sign_calls",
    "simulate",
    "wait_receipt",
]

GAS_LIMIT_PAD = 25_000
"""Added to ``ceil(simulated gas · margin)``: the 63/64 rule of nested calls needs more gas available than
used, and the transaction may run in a later block than simulated (interest accrued, other state moved)."""

_UNSUPPORTED_MARKERS = ("method not found", "not supported", "unsupported", "does not exist", "not available")
_KNOWN_MARKERS = ("already known", "known transaction", "already imported", "alreadyknown")
_NONCE_TOO_LOW_MARKERS = ("nonce too low", "noncetoolow", "nonce is too low")


class KeeperChainError(RuntimeError):
    """Base of the keeper transaction layer's errors."""


class SimulationError(KeeperChainError):
    """The simulation could not be run or its answer could not be used (a reverting call is not an error:
    see :attr:`SimulationResult.ok`)."""


class SimulationUnsupportedError(SimulationError):
    """The node does not support ``eth_simulateV1``."""


class SignerError(KeeperChainError):
    """A signing key could not be loaded. Messages never contain the key or the password."""


class GasCapError(KeeperChainError):
    """A transaction would exceed the :class:`GasPolicy`'s gas or fee cap; nothing was signed."""


class SendError(KeeperChainError):
    """The node rejected a transaction (other than as already known / already mined)."""

    def __init__(self, message: str, tx_hash: str | None = None) -> None:
        super().__init__(message)
        self.tx_hash = tx_hash


class ReceiptTimeoutError(KeeperChainError, TimeoutError):
    """No receipt before the deadline: the transaction is still pending, dropped, or replaced."""


# ------------------------------------------------------------------------------------------- simulate
@dataclass(frozen=True)
class SimulationResult:
    """What a simulation found.

    ``gas_used`` holds one entry per call up to and including the failing one (all of them when ``ok``);
    as the node reports it, i.e. after refunds, intrinsic gas included. ``error`` is the failing call's decoded
    revert reason (``Error(string)``, ``Panic``, ``custom error 0x<selector>``) or the node's message.
    ``reads`` has one return per :class:`Read` when ``ok``, and is empty when a call failed (the state after a
    failed plan is not the plan's). ``block_number`` and ``timestamp`` are those of the simulated block.
    """

    ok: bool
    gas_used: tuple[int, ...]
    failed_index: int | None
    error: str | None
    reads: tuple[bytes, ...]
    block_number: int | None = None
    timestamp: int | None = None


def simulate(
    rpc: RpcClient,
    sender: str,
    calls: Sequence[Call],
    reads: Sequence[Read] = (),
    block: int | str = "latest",
) -> SimulationResult:
    """Run ``calls`` then ``reads`` from ``sender`` on top of ``block`` in one ``eth_simulateV1`` request.

    Nothing is validated by the node (``"validation": false``: no nonce, balance or base-fee checks) and the
    chain is not changed. Raises :class:`SimulationUnsupportedError` when the node has no ``eth_simulateV1``,
    :class:`SimulationError` when it refuses the request, answers something malformed, or a :class:`Read`
    reverts after every call succeeded.

    anvil (1.7) simulates the first block *at* ``block`` (same number and timestamp), where geth simulates
    the block after it; :attr:`SimulationResult.timestamp` says which it was.
    """
    if not calls and not reads:
        raise SimulationError("nothing to simulate")
    frm = checksum(sender)
    items: list[dict[str, str]] = []
    for call in calls:
        item = {"from": frm, "to": checksum(call.to), "data": call.data}
        if call.value:
            item["value"] = hex(call.value)
        items.append(item)
    items.extend({"from": frm, "to": checksum(r.to), "data": "0x" + r.data.hex()} for r in reads)
    payload = {"blockStateCalls": [{"calls": items}], "validation": False}
    try:
        answer = rpc.request("eth_simulateV1", [payload, block_param(block)])
    except RpcError as exc:
        message = str(exc)
        if exc.code == -32601 or any(m in message.lower() for m in _UNSUPPORTED_MARKERS):
            raise SimulationUnsupportedError(f"the node does not support eth_simulateV1: {message}") from exc
        raise SimulationError(f"eth_simulateV1 failed: {message}") from exc
    if not isinstance(answer, list) or len(answer) != 1 or not isinstance(answer[0], dict):
        raise SimulationError(f"eth_simulateV1: expected one simulated block, got {_shape(answer)}")
    sim_block = answer[0]
    results = sim_block.get("calls")
    if not isinstance(results, list) or len(results) != len(items):
        raise SimulationError(f"eth_simulateV1: expected {len(items)} call results, got {_shape(results)}")
    try:
        number = hex_to_int(sim_block.get("number"), "block number") if "number" in sim_block else None
        timestamp = hex_to_int(sim_block.get("timestamp"), "block timestamp") if "timestamp" in sim_block else None
        decoded = [_call_result(r, i) for i, r in enumerate(results)]
    except DecodeError as exc:
        raise SimulationError(f"eth_simulateV1: {exc}") from exc
    gas: list[int] = []
    for i, (ok, gas_used, _, error) in enumerate(decoded[: len(calls)]):
        gas.append(gas_used)
        if not ok:
            return SimulationResult(False, tuple(gas), i, error, (), number, timestamp)
    out: list[bytes] = []
    for j, (ok, _, data, error) in enumerate(decoded[len(calls) :]):
        if not ok:
            raise SimulationError(f"read {j} (to {reads[j].to}) reverted after the calls: {error}")
        out.append(data)
    return SimulationResult(True, tuple(gas), None, None, tuple(out), number, timestamp)


def _call_result(raw: object, index: int) -> tuple[bool, int, bytes, str | None]:
    """(ok, gas used, return data, error text) of one simulated call."""
    if not isinstance(raw, dict):
        raise DecodeError(f"call {index}: result is {type(raw).__name__}, not an object")
    status = hex_to_int(raw.get("status"), f"call {index} status")
    gas_used = hex_to_int(raw.get("gasUsed"), f"call {index} gasUsed")
    data = hex_to_bytes(raw.get("returnData", "0x"), f"call {index} returnData")
    if status == 1:
        return True, gas_used, data, None
    err = raw.get("error")
    message = str(err.get("message", "")) if isinstance(err, dict) else ""
    revert = data
    if not revert and isinstance(err, dict) and isinstance(err.get("data"), str):
        try:
            revert = hex_to_bytes(err["data"], "error data")
        except DecodeError:
            revert = b""
    reason = decode_revert_reason(revert)
    if reason is None:
        reason = message or "reverted without a reason"
    return False, gas_used, data, reason


def _shape(value: object) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return type(value).__name__


# --------------------------------------------------------------------------------------------- signer
class Signer:
    """A private key that signs transactions; its repr and str show only :attr:`address`."""

    __slots__ = ("_account", "address")

    def __init__(self, account: LocalAccount) -> None:
        self._account = account
        self.address: str = checksum(account.address)

    @classmethod
    def from_key(cls, key: str | bytes, source: str = "the key") -> Signer:
        """A signer for ``key`` (``0x``-hex or 32 raw bytes); ``source`` names it in errors."""
        from eth_account import Account
        try:
            if isinstance(key, str):
                text = key.strip()
                body = text[2:] if text[:2] in ("0x", "0X") else text
                if len(body) != 64:
                    raise ValueError("length")
                raw = bytes.fromhex(body)
            else:
                raw = bytes(key)
            account = Account.from_key(raw)
        except Exception:  # any failure: say nothing about the value
            raise SignerError(f"{source} is not a valid private key (want 0x + 64 hex digits)") from None
        return cls(account)

    @classmethod
    def from_env(cls, var: str) -> Signer:
        """The key in environment variable ``var`` (hex, with or without ``0x``)."""
        value = os.environ.get(var)
        if value is None or not value.strip():
            raise SignerError(f"environment variable {var} is not set: it must hold the keeper's private key")
        return cls.from_key(value, f"environment variable {var}")

    @classmethod
    def from_keystore(cls, path: str | Path, password_env: str) -> Signer:
        """The key in an Ethereum V3 keystore file, decrypted with the password in env var ``password_env``."""
        password = os.environ.get(password_env)
        if password is None:
            raise SignerError(f"environment variable {password_env} is not set: it must hold the keystore password")
        file = Path(path)
        try:
            keyfile = json.loads(file.read_text())
        except OSError as exc:
            raise SignerError(f"cannot read keystore {file}: {exc.strerror or exc}") from None
        except ValueError:
            raise SignerError(f"keystore {file} is not JSON") from None
        if not isinstance(keyfile, dict) or "crypto" not in {k.lower() for k in keyfile}:
            raise SignerError(f"{file} is not an Ethereum V3 keystore (no crypto section)")
        from eth_account import Account
        try:
            key = Account.decrypt(keyfile, password)
        except ValueError as exc:
            hint = "wrong password" if "mac" in str(exc).lower() else "unsupported or corrupted keystore"
            raise SignerError(f"cannot decrypt keystore {file}: {hint}") from None
        except Exception:
            raise SignerError(f"cannot decrypt keystore {file}: unsupported or corrupted keystore") from None
        signer = cls.from_key(bytes(key), f"keystore {file}")
        stated = keyfile.get("address")
        if isinstance(stated, str) and stated.lower().removeprefix("0x") != signer.address.lower()[2:]:
            raise SignerError(f"keystore {file} says address {stated} but holds the key of {signer.address}")
        return signer

    def sign(self, tx: dict[str, Any]) -> tuple[str, str]:
        """Sign a transaction dict (eth-account fields); returns (raw ``0x`` hex, transaction hash ``0x`` hex)."""
        try:
            signed = self._account.sign_transaction(tx)
        except Exception as exc:  # a malformed dict: report its fault, never the key
            raise SignerError(f"cannot sign the transaction: {type(exc).__name__}: {exc}") from None
        return "0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex()

    def __repr__(self) -> str:
        return f"Signer({self.address})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a Signer is not picklable")


# ------------------------------------------------------------------------------------------------ sign
@dataclass(frozen=True)
class GasPolicy:
    """Hard caps on what the keeper pays. ``gas_margin`` scales the simulated gas into the gas limit
    (``ceil(gas · margin) + 25,000``): 1.25 also covers refunds, which the reported gas is net of and which
    are at most a fifth of the gas spent (EIP-3529)."""

    max_fee_per_gas_wei: int
    max_priority_fee_per_gas_wei: int
    max_gas_per_tx: int
    gas_margin: float = 1.25

    def __post_init__(self) -> None:
        if self.max_fee_per_gas_wei <= 0:
            raise ValueError("max_fee_per_gas_wei must be positive")
        if self.max_priority_fee_per_gas_wei < 0:
            raise ValueError("max_priority_fee_per_gas_wei must not be negative")
        if self.max_priority_fee_per_gas_wei > self.max_fee_per_gas_wei:
            raise ValueError("max_priority_fee_per_gas_wei must not exceed max_fee_per_gas_wei")
        if self.max_gas_per_tx <= 0:
            raise ValueError("max_gas_per_tx must be positive")
        if not math.isfinite(self.gas_margin) or self.gas_margin < 1:
            raise ValueError("gas_margin must be at least 1")


@dataclass(frozen=True)
class SignedTx:
    """One signed transaction of a plan: ``seq`` is its index in the plan's calls."""

    seq: int
    description: str
    to: str
    nonce: int
    gas_limit: int
    max_fee_per_gas: int
    raw: str
    tx_hash: str


def gas_limit_for(gas_used: int, margin: float) -> int:
    """``ceil(gas_used · margin) + 25,000`` (the margin taken as the decimal it prints as)."""
    return math.ceil(Decimal(gas_used) * Decimal(repr(margin))) + GAS_LIMIT_PAD


def sign_calls(
    signer: Signer,
    rpc: RpcClient,
    calls: Sequence[Call],
    gas_used: Sequence[int],
    policy: GasPolicy,
    *,
    nonce: int | None = None,
) -> list[SignedTx]:
    """EIP-1559 transactions for ``calls`` from ``signer``, with consecutive nonces.

    ``gas_used`` is the simulated gas of each call (:attr:`SimulationResult.gas_used`). The first nonce is
    ``nonce``, or the signer's ``pending`` transaction count. ``maxFeePerGas`` is ``min(cap, 2 · base fee of the
    latest block + priority fee)``. Raises :class:`GasCapError`, before signing anything, when a gas limit is
    over ``policy.max_gas_per_tx`` or the current base fee plus the priority fee is over the fee cap.
    """
    if len(calls) != len(gas_used):
        raise ValueError(f"{len(calls)} calls but {len(gas_used)} gas figures")
    if not calls:
        return []
    if nonce is not None and nonce < 0:
        raise ValueError(f"negative nonce {nonce}")
    limits: list[int] = []
    for call, gas in zip(calls, gas_used, strict=True):
        if gas <= 0:
            raise ValueError(f"{call.description}: simulated gas must be positive, got {gas}")
        limit = gas_limit_for(gas, policy.gas_margin)
        if limit > policy.max_gas_per_tx:
            raise GasCapError(
                f"{call.description}: gas limit {limit:,} (simulated {gas:,}) is over the cap of "
                f"{policy.max_gas_per_tx:,} per transaction"
            )
        limits.append(limit)
    from connectors.evm.web3_bridge import web3_for
    w3 = web3_for(rpc)
    base_fee = _base_fee(w3)
    priority = policy.max_priority_fee_per_gas_wei
    if base_fee + priority > policy.max_fee_per_gas_wei:
        raise GasCapError(
            f"base fee {base_fee:,} wei + priority fee {priority:,} wei is over the fee cap of "
            f"{policy.max_fee_per_gas_wei:,} wei per gas"
        )
    max_fee = min(policy.max_fee_per_gas_wei, 2 * base_fee + priority)
    chain_id = rpc.chain_id()  # cached by the client
    sender = ChecksumAddress(HexAddress(HexStr(signer.address)))  # checksummed by Signer
    first = nonce if nonce is not None else int(w3.eth.get_transaction_count(sender, "pending"))
    out: list[SignedTx] = []
    for seq, (call, limit) in enumerate(zip(calls, limits, strict=True)):
        to = checksum(call.to)
        tx: dict[str, Any] = {
            "type": 2,
            "chainId": chain_id,
            "nonce": first + seq,
            "to": to,
            "value": call.value,
            "data": call.data,
            "gas": limit,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": priority,
        }
        raw, tx_hash = signer.sign(tx)
        out.append(SignedTx(seq, call.description, to, first + seq, limit, max_fee, raw, tx_hash))
    return out


def _base_fee(w3: Web3) -> int:
    try:
        block = w3.eth.get_block("latest")
    except (ValueError, TypeError) as exc:  # web3.py's formatters on a malformed block
        raise KeeperChainError(f"eth_getBlockByNumber(latest): malformed block: {exc}") from None
    fee = block.get("baseFeePerGas")
    if fee is None:
        raise KeeperChainError("the latest block has no base fee: the chain does not support EIP-1559")
    if not isinstance(fee, int) or isinstance(fee, bool) or fee < 0:
        raise KeeperChainError(f"baseFeePerGas: not a fee: {fee!r}")
    return fee


# ------------------------------------------------------------------------------------------------ send
@dataclass(frozen=True)
class Receipt:
    """A mined transaction: ``status`` 1 succeeded, 0 reverted."""

    tx_hash: str
    status: int
    block_number: int
    gas_used: int


def send_raw(rpc: RpcClient, tx: SignedTx) -> str:
    """``eth_sendRawTransaction``; returns the transaction hash.

    Idempotent: when the node answers that it already knows the transaction (in its pool, or mined), or that
    the nonce is too low while this very transaction has a receipt, the hash is returned as if sent. A nonce
    used by another transaction, or any other rejection, raises :class:`SendError`.
    """
    from connectors.evm.web3_bridge import web3_for
    w3 = web3_for(rpc)
    try:
        sent = w3.eth.send_raw_transaction(HexStr(tx.raw))
    except RpcError as exc:
        message = str(exc)
        lower = message.lower().replace("_", " ")
        known = any(m in lower for m in _KNOWN_MARKERS)
        if known or any(m in lower for m in _NONCE_TOO_LOW_MARKERS):
            if get_receipt(rpc, tx.tx_hash) is not None:
                return tx.tx_hash
            if known and _pending(w3, tx.tx_hash):
                return tx.tx_hash
            if not known:
                raise SendError(
                    f"tx {tx.seq} ({tx.description}) nonce {tx.nonce}: nonce too low and this transaction "
                    f"{tx.tx_hash} has no receipt: the nonce was used by another transaction",
                    tx.tx_hash,
                ) from exc
        raise SendError(f"tx {tx.seq} ({tx.description}) nonce {tx.nonce} rejected: {message}", tx.tx_hash) from exc
    answer = "0x" + bytes(sent).hex()
    if answer.lower() != tx.tx_hash.lower():
        raise SendError(
            f"tx {tx.seq} ({tx.description}): the node answered hash {answer!r}, expected {tx.tx_hash}", tx.tx_hash
        )
    return tx.tx_hash


def _pending(w3: Web3, tx_hash: str) -> bool:
    from web3.exceptions import TransactionNotFound

    try:
        w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
    except TransactionNotFound:
        return False
    return True


def get_receipt(rpc: RpcClient, tx_hash: str) -> Receipt | None:
    """The receipt of ``tx_hash``, or None while it is not mined (or unknown)."""
    from web3.exceptions import TransactionNotFound

    from connectors.evm.web3_bridge import web3_for

    try:
        raw: Any = web3_for(rpc).eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    except TransactionNotFound:
        return None
    except (ValueError, TypeError) as exc:  # web3.py's formatters on a malformed receipt
        raise DecodeError(f"eth_getTransactionReceipt: malformed receipt: {exc}") from None
    if not hasattr(raw, "get"):
        raise DecodeError(f"eth_getTransactionReceipt: expected an object, got {_shape(raw)}")
    if raw.get("blockNumber") is None:  # some nodes answer a pending receipt
        return None
    return Receipt(
        tx_hash=tx_hash,
        status=_receipt_int(raw.get("status"), "receipt status"),
        block_number=_receipt_int(raw.get("blockNumber"), "receipt blockNumber"),
        gas_used=_receipt_int(raw.get("gasUsed"), "receipt gasUsed"),
    )


def _receipt_int(value: object, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return hex_to_int(value, what)


def wait_receipt(
    rpc: RpcClient,
    tx_hash: str,
    *,
    timeout_s: float = 60,
    poll_s: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Receipt:
    """Poll :func:`get_receipt` every ``poll_s`` until there is one; :class:`ReceiptTimeoutError` after
    ``timeout_s``. A reverted transaction's receipt (status 0) is returned, not raised."""
    deadline = clock() + timeout_s
    while True:
        receipt = get_receipt(rpc, tx_hash)
        if receipt is not None:
            return receipt
        left = deadline - clock()
        if left <= 0:
            raise ReceiptTimeoutError(f"no receipt for {tx_hash} after {timeout_s:g} s")
        sleep(min(poll_s, left))
