"""Contract functions described by their signatures, and revert-reason decoding.

``Fn("getUserAccountData(address)(uint256,uint256,uint256,uint256,uint256,uint256)")`` parses once and
then encodes calls and decodes returns. Returns made only of static one-word types (``uintN``, ``intN``,
``address``, ``bool``, ``bytesN`` and tuples of those) are decoded by slicing 32-byte words, with the same
range checks eth-abi makes; anything else goes through eth-abi. Every decoding failure is a
:class:`~connectors.errors.DecodeError` naming the function.

Addresses come back as lower-case ``0x`` hex strings, exactly as eth-abi returns them.

ERC-20 ``symbol()`` (:data:`SYMBOL`, :func:`decode_symbol`) is here too: every on-chain venue reads it, and
old tokens (MKR) answer ``bytes32`` instead of ``string``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError, EncodingError
from eth_hash.auto import keccak

from connectors.errors import DecodeError, InvalidInputError

__all__ = [
    "BALANCE_OF",
    "ERROR_SELECTOR",
    "PANIC_CODES",
    "PANIC_SELECTOR",
    "SYMBOL",
    "Fn",
    "decode_revert_reason",
    "decode_symbol",
    "split_types",
]

ERROR_SELECTOR = bytes.fromhex("08c379a0")
"""``Error(string)``: the revert reason of ``require(cond, "reason")``."""
PANIC_SELECTOR = bytes.fromhex("4e487b71")
"""``Panic(uint256)``: compiler-inserted checks (overflow, division by zero, ...)."""

PANIC_CODES: dict[int, str] = {
    0x00: "generic compiler panic",
    0x01: "assert failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "invalid storage byte array encoding",
    0x31: "pop on empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to uninitialized function",
}

_SIG = re.compile(r"^\s*([A-Za-z_$][A-Za-z0-9_$]*)\s*\((.*)\)\s*$", re.S)
_UINT = re.compile(r"^uint(\d*)$")
_INT = re.compile(r"^int(\d*)$")
_BYTES_N = re.compile(r"^bytes(\d+)$")

_Word = Callable[[bytes], Any]


def split_types(text: str) -> list[str]:
    """Split ``"uint256,(address,bool),bytes"`` on its top-level commas (whitespace removed)."""
    text = re.sub(r"\s+", "", text)
    if not text:
        return []
    out: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise InvalidInputError(f"unbalanced parentheses in {text!r}")
        elif ch == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise InvalidInputError(f"unbalanced parentheses in {text!r}")
    out.append(text[start:])
    if any(not t for t in out):
        raise InvalidInputError(f"empty type in {text!r}")
    return out


def _split_signature(signature: str) -> tuple[str, str, str | None]:
    """``name(in)(out)`` → (name, "in", "out"); ``name(in)`` → (name, "in", None)."""
    m = _SIG.match(signature)
    if not m:
        raise InvalidInputError(f"not a function signature: {signature!r}")
    name, rest = m.group(1), m.group(2)
    depth = 0
    for i, ch in enumerate(rest):
        if ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                # ``rest`` is "in)(out" or "in) returns (out"
                tail = rest[i + 1 :].strip()
                if tail.startswith("returns"):
                    tail = tail[len("returns") :].strip()
                if not tail.startswith("("):
                    raise InvalidInputError(f"not a function signature: {signature!r}")
                return name, rest[:i], tail[1:]
            depth -= 1
    return name, rest, None


def _word_decoder(typ: str) -> _Word | None:
    """A decoder of one 32-byte word for a static one-word type, or None when the type is not one."""
    if typ == "address":

        def dec_address(w: bytes) -> str:
            if any(w[:12]):
                raise ValueError("address word has nonzero padding")
            return "0x" + w[12:].hex()

        return dec_address
    if typ == "bool":

        def dec_bool(w: bytes) -> bool:
            v = int.from_bytes(w, "big")
            if v > 1:
                raise ValueError(f"bool word is {v}")
            return v == 1

        return dec_bool
    m = _UINT.match(typ)
    if m:
        bits = int(m.group(1) or 256)
        limit = 1 << bits

        def dec_uint(w: bytes) -> int:
            v = int.from_bytes(w, "big")
            if v >= limit:
                raise ValueError(f"value out of range for uint{bits}")
            return v

        return dec_uint
    m = _INT.match(typ)
    if m:
        bits = int(m.group(1) or 256)
        lo, hi = -(1 << (bits - 1)), 1 << (bits - 1)

        def dec_int(w: bytes) -> int:
            v = int.from_bytes(w, "big", signed=True)
            if not lo <= v < hi:
                raise ValueError(f"value out of range for int{bits}")
            return v

        return dec_int
    m = _BYTES_N.match(typ)
    if m:
        n = int(m.group(1))

        def dec_bytes_n(w: bytes) -> bytes:
            if any(w[n:]):
                raise ValueError(f"bytes{n} word has nonzero padding")
            return w[:n]

        return dec_bytes_n
    return None


_HEX40 = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _word_encoder(typ: str) -> Callable[[Any], bytes] | None:
    """An encoder of one argument into one 32-byte word for a static one-word type, or None."""
    if typ == "address":

        def enc_address(v: Any) -> bytes:
            if isinstance(v, str) and _HEX40.fullmatch(v):
                return bytes(12) + bytes.fromhex(v[2:])
            if isinstance(v, bytes | bytearray) and len(v) == 20:
                return bytes(12) + bytes(v)
            raise ValueError(f"not an address: {v!r}")

        return enc_address
    if typ == "bool":

        def enc_bool(v: Any) -> bytes:
            if not isinstance(v, bool):
                raise ValueError(f"not a bool: {v!r}")
            return (1 if v else 0).to_bytes(32, "big")

        return enc_bool
    m = _UINT.match(typ)
    if m:
        limit = 1 << int(m.group(1) or 256)

        def enc_uint(v: Any) -> bytes:
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < limit:
                raise ValueError(f"not a {typ}: {v!r}")
            return v.to_bytes(32, "big")

        return enc_uint
    m = _INT.match(typ)
    if m:
        half = 1 << (int(m.group(1) or 256) - 1)

        def enc_int(v: Any) -> bytes:
            if not isinstance(v, int) or isinstance(v, bool) or not -half <= v < half:
                raise ValueError(f"not a {typ}: {v!r}")
            return v.to_bytes(32, "big", signed=True)

        return enc_int
    return None


def _static_plan(types: Sequence[str]) -> list[Any] | None:
    """A nested list of word decoders mirroring ``types``, or None if any type is not static-word."""
    plan: list[Any] = []
    for t in types:
        if t.startswith("(") and t.endswith(")"):
            sub = _static_plan(split_types(t[1:-1]))
            if sub is None:
                return None
            plan.append(sub)
        else:
            dec = _word_decoder(t)
            if dec is None:
                return None
            plan.append(dec)
    return plan


def _count_words(plan: list[Any]) -> int:
    return sum(_count_words(p) if isinstance(p, list) else 1 for p in plan)


def _run_plan(plan: list[Any], data: bytes, pos: int) -> tuple[tuple[Any, ...], int]:
    out: list[Any] = []
    for p in plan:
        if isinstance(p, list):
            sub, pos = _run_plan(p, data, pos)
            out.append(sub)
        else:
            out.append(p(data[pos : pos + 32]))
            pos += 32
    return tuple(out), pos


class Fn:
    """One contract function, parsed from ``"name(inputs)(outputs)"`` (outputs optional).

    >>> fn = Fn("balanceOf(address)(uint256)")
    >>> fn.selector.hex()
    '70a08231'
    """

    __slots__ = ("_encoders", "_plan", "_words", "input_types", "name", "output_types", "selector", "signature")

    def __init__(self, signature: str) -> None:
        name, inputs, outputs = _split_signature(signature)
        self.name = name
        self.input_types: tuple[str, ...] = tuple(split_types(inputs))
        self.output_types: tuple[str, ...] = tuple(split_types(outputs)) if outputs is not None else ()
        self.signature = f"{name}({','.join(self.input_types)})"
        """Canonical form the selector is hashed from."""
        self.selector: bytes = keccak(self.signature.encode())[:4]
        self._plan = _static_plan(self.output_types)
        encoders = [_word_encoder(t) for t in self.input_types]
        self._encoders: list[Callable[[Any], bytes]] | None = (
            [e for e in encoders if e is not None] if all(e is not None for e in encoders) else None
        )
        self._words = _count_words(self._plan) if self._plan is not None else 0

    def __repr__(self) -> str:
        return f"Fn({self.signature!r} -> ({','.join(self.output_types)}))"

    @property
    def static_return(self) -> bool:
        """Whether returns are decoded by the word-slicing fast path."""
        return self._plan is not None

    def encode(self, *args: Any) -> bytes:
        """Calldata: the selector followed by the ABI-encoded arguments."""
        if len(args) != len(self.input_types):
            raise InvalidInputError(f"{self.signature} takes {len(self.input_types)} arguments, got {len(args)}")
        if not args:
            return self.selector
        if self._encoders is not None:
            try:
                return self.selector + b"".join(enc(a) for enc, a in zip(self._encoders, args, strict=True))
            except ValueError as exc:
                raise InvalidInputError(f"cannot encode arguments of {self.signature}: {exc}") from exc
        try:
            return self.selector + abi_encode(self.input_types, args)
        except (EncodingError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"cannot encode arguments of {self.signature}: {exc}") from exc

    def decode(self, data: bytes) -> tuple[Any, ...]:
        """Decode a return into a tuple with one item per output type.

        Raises :class:`DecodeError` (naming the function) on an empty, short or malformed return.
        """
        if not self.output_types:
            return ()
        if not data:
            raise DecodeError(f"{self.signature} returned no data (no contract at the address, or no such function)")
        if self._plan is not None:
            if len(data) < 32 * self._words:
                raise DecodeError(f"{self.signature} returned {len(data)} bytes, want {32 * self._words}")
            try:
                return _run_plan(self._plan, data, 0)[0]
            except ValueError as exc:
                raise DecodeError(f"cannot decode the return of {self.signature}: {exc}") from exc
        try:
            return tuple(abi_decode(self.output_types, data))
        except (DecodingError, ValueError, TypeError, OverflowError) as exc:
            raise DecodeError(f"cannot decode the return of {self.signature}: {exc}") from exc

    def decode_one(self, data: bytes) -> Any:
        """Decode a function with exactly one output and return that value."""
        out = self.decode(data)
        if len(out) != 1:
            raise DecodeError(f"{self.signature} has {len(out)} outputs, not one")
        return out[0]


def decode_revert_reason(data: bytes) -> str | None:
    """A readable reason from revert bytes: ``Error(string)``, ``Panic(uint256)`` or a custom error's selector.

    ``None`` when there are no revert bytes (a bare ``revert()``, or out of gas).
    """
    if not data:
        return None
    sel, body = data[:4], data[4:]
    if sel == ERROR_SELECTOR:
        try:
            (reason,) = abi_decode(["string"], body)
        except (DecodingError, ValueError, TypeError, OverflowError):
            return f"Error(<undecodable {len(body)} bytes>)"
        return str(reason)
    if sel == PANIC_SELECTOR and len(body) >= 32:
        code = int.from_bytes(body[:32], "big")
        return f"Panic(0x{code:02x}: {PANIC_CODES.get(code, 'unknown panic code')})"
    if len(data) >= 4:
        return f"custom error 0x{sel.hex()}" + (f" with {len(body)} bytes of arguments" if body else "")
    return f"revert data 0x{data.hex()}"


SYMBOL = Fn("symbol()(string)")
"""ERC-20 ``symbol()``; decode its answer with :func:`decode_symbol`."""
BALANCE_OF = Fn("balanceOf(address)(uint256)")
"""ERC-20 ``balanceOf(owner)``."""


def decode_symbol(data: bytes) -> str:
    """``symbol()`` as ``string``, or as ``bytes32`` for old tokens (MKR)."""
    try:
        return str(SYMBOL.decode_one(data))
    except DecodeError:
        if len(data) == 32:
            return data.rstrip(b"\0").decode("utf-8", errors="replace")
        raise
