"""Uniswap v3 on the devnet: its part (:data:`PART`), deployment from the bytecode Uniswap's npm packages ship
(``@uniswap/v3-core@1.0.1``, ``@uniswap/v3-periphery@1.4.4``; nothing compiled, :data:`NPM_ARTIFACTS`), LP
positions and swaps for arbitrary wallets, and the reads tests compare against. The helpers are also
``devnet.uniswap``.

Deployed: ``UniswapV3Factory``, ``NonfungiblePositionManager`` (WETH9 = the Aave test market's WETH; no
token descriptor, so ``tokenURI`` does not work) and ``SwapRouter``, and these pools on the Aave test
market's own tokens, initialised at the Chainlink prices:

=============== ===== ============ ================================================================
pool            fee   tick spacing liquidity (minted by :data:`devnet.tokens.LIQUIDITY`)
=============== ===== ============ ================================================================
WETH_USDC_500   0.05% 10           full range 1,000 WETH + 4M USDC; ±10 %: 300 WETH; ±2 %: 100 WETH
WETH_DAI_3000   0.3%  60           full range 1,000 WETH + 4M DAI; ±10 %: 300 WETH; ±2 %: 100 WETH
=============== ===== ============ ================================================================

The seed's ``hedged`` wallet holds one LP position on ``WETH_USDC_500`` of up to 5 WETH + 20,000 USDC (paid from
its borrows) over WETH ±15 % around the feed price (:data:`HEDGED`).

Names in :class:`~devnet.models.DevnetInfo`: ``contracts["uniswap_v3.factory"]``,
``contracts["uniswap_v3.position_manager"]``, ``contracts["uniswap_v3.swap_router"]``,
``contracts["uniswap_v3.pool.<BASE>_<QUOTE>_<FEE>"]``. A pool name puts the *base* token (WETH) first,
whatever the on-chain ``token0``/``token1`` order (which sorts by address): prices in this module's API
are "USD per base token", converted to ``token1``/``token0`` raw ratios with both tokens' decimals
(``sqrtPriceX96 = sqrt(price_1_per_0 * 10**(dec1 - dec0)) * 2**96``).

:func:`devnet.feeds.set_price` keeps every pool at the ratio of its tokens' Chainlink prices
(:func:`sync_pools`): an arbitrageur wallet swaps through ``SwapRouter`` with a ``sqrtPriceLimitX96``
equal to the target and an amount larger than needed, so the pool stops exactly at the target.
Amounts are raw token integers; actions approve what they spend; the wallet must hold its tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, localcontext
from math import isqrt
from types import MappingProxyType

from eth_abi.abi import decode
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from devnet.deploy import ADMIN
from devnet.evm import Receipt, deploy_contract, eth_call, transact
from devnet.install import artifact
from devnet.models import DevnetInfo
from devnet.parts import DevnetPart
from devnet.tokens import mint_tokens
from devnet.wallets import wallet_address

__all__ = [
    "ARBITRAGEUR",
    "HEDGED",
    "MAX_TICK",
    "MIN_TICK",
    "NPM_ARTIFACTS",
    "PART",
    "POOLS",
    "LpPosition",
    "PoolState",
    "SwapResult",
    "full_range_ticks",
    "lp_position",
    "mint_position",
    "pool_names",
    "pool_price",
    "pool_state",
    "pool_tokens",
    "positions_of",
    "sqrt_price_x96_at",
    "swap",
    "swap_to_price",
    "swap_to_sqrt_price",
    "sync_pools",
    "tick_at_sqrt_price",
    "ticks_for_usd_range",
]

PREFIX = "uniswap_v3"
NPM_ARTIFACTS = MappingProxyType({
    "UniswapV3Factory": "@uniswap/v3-core/artifacts/contracts/UniswapV3Factory.sol/UniswapV3Factory.json",
    "UniswapV3Pool": "@uniswap/v3-core/artifacts/contracts/UniswapV3Pool.sol/UniswapV3Pool.json",
    "NonfungiblePositionManager": (
        "@uniswap/v3-periphery/artifacts/contracts/NonfungiblePositionManager.sol/NonfungiblePositionManager.json"
    ),
    "SwapRouter": "@uniswap/v3-periphery/artifacts/contracts/SwapRouter.sol/SwapRouter.json",
})
"""The contracts deployed as Uniswap's npm packages publish them (with bytecode): name -> path under node_modules."""
MIN_TICK = -887272
MAX_TICK = 887272
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342
TICK_SPACING = {100: 1, 500: 10, 3000: 60, 10000: 200}
POOLS: dict[str, tuple[str, str, int]] = {
    "WETH_USDC_500": ("WETH", "USDC", 500),
    "WETH_DAI_3000": ("WETH", "DAI", 3000),
}
"""The pools :func:`deploy` creates: name -> (base symbol, quote symbol, fee in hundredths of a bip)."""
# (price band around the start price, or None for full range; base tokens; quote worth as many USD)
_LIQUIDITY: tuple[tuple[float | None, int], ...] = ((None, 1_000), (0.10, 300), (0.02, 100))
ARBITRAGEUR = wallet_address("arbitrageur")
"""The wallet :func:`swap_to_price` swaps from; topped up with freshly minted tokens as needed."""
_ARB_FLOOR_TOKENS = 10**8
_ARB_TOPUP_TOKENS = 10**9
_HUGE_AMOUNT_IN = 10**40
_MAX_UINT256 = 2**256 - 1
_FEED_SCALE = 10**8
_MINT = "mint((address,address,uint24,int24,int24,uint256,uint256,uint256,uint256,address,uint256))"
_EXACT_INPUT_SINGLE = "exactInputSingle((address,address,uint24,address,uint256,uint256,uint256,uint160))"
_INCREASE_LIQUIDITY_TOPIC = "0x" + keccak(b"IncreaseLiquidity(uint256,uint128,uint256,uint256)").hex()
_SWAP_TOPIC = "0x" + keccak(b"Swap(address,address,int256,int256,uint160,uint128,int24)").hex()


@dataclass(frozen=True)
class PoolTokens:
    """A pool's address and its tokens in on-chain order, with symbols and decimals; ``base`` is the
    symbol named first in the pool name."""

    pool: str
    token0: str
    token1: str
    symbol0: str
    symbol1: str
    decimals0: int
    decimals1: int
    fee: int
    base: str

    @property
    def tick_spacing(self) -> int:
        """The fee tier's tick spacing."""
        return TICK_SPACING[self.fee]

    @property
    def base_is_token0(self) -> bool:
        """Whether the base token (named first in the pool name) is ``token0``."""
        return self.symbol0 == self.base


@dataclass(frozen=True)
class PoolState:
    """``slot0`` price and tick, in-range ``liquidity`` and the global fee growth (Q128.128) of a pool."""

    sqrt_price_x96: int
    tick: int
    liquidity: int
    fee_growth_global0_x128: int
    fee_growth_global1_x128: int


@dataclass(frozen=True)
class LpPosition:
    """``NonfungiblePositionManager.positions(tokenId)``."""

    token_id: int
    token0: str
    token1: str
    fee: int
    tick_lower: int
    tick_upper: int
    liquidity: int
    fee_growth_inside0_last_x128: int
    fee_growth_inside1_last_x128: int
    tokens_owed0: int
    tokens_owed1: int


@dataclass(frozen=True)
class SwapResult:
    """A swap as the pool's ``Swap`` event reports it: token deltas from the pool's side (positive: paid
    into the pool), and the pool's price, in-range liquidity and tick after it."""

    amount0: int
    amount1: int
    sqrt_price_x96: int
    liquidity: int
    tick: int
    receipt: Receipt


# ----------------------------------------------------------------------------------------------- math
def sqrt_price_x96_at(price_1_per_0_raw: Decimal | int) -> int:
    """``floor(sqrt(price) * 2**96)`` for a raw ``token1``-per-``token0`` price."""
    price = Decimal(price_1_per_0_raw)
    with localcontext() as ctx:
        ctx.prec = 80
        scaled = price * (Decimal(2) ** 192)
        return isqrt(int(scaled.to_integral_value(ROUND_HALF_EVEN)))


def tick_at_sqrt_price(sqrt_price_x96: int) -> int:
    """The tick ``floor(log_1.0001(price))`` of a ``sqrtPriceX96`` (as ``slot0.tick`` reports it, up to
    the last-ulp rounding of ``TickMath``)."""
    with localcontext() as ctx:
        ctx.prec = 60
        price = (Decimal(sqrt_price_x96) / Decimal(2**96)) ** 2
        return int((price.ln() / Decimal("1.0001").ln()).to_integral_value(ROUND_FLOOR))


def full_range_ticks(fee: int) -> tuple[int, int]:
    """The widest ``(tick_lower, tick_upper)`` the fee tier's spacing allows."""
    spacing = TICK_SPACING[fee]
    return (-(MAX_TICK // spacing) * spacing, (MAX_TICK // spacing) * spacing)


# ----------------------------------------------------------------------------------------------- reads
def pool_names(info: DevnetInfo) -> list[str]:
    """Names (``"WETH_USDC_500"``, ...) of the Uniswap v3 pools on this devnet."""
    prefix = f"{PREFIX}.pool."
    return sorted(k.removeprefix(prefix) for k in info.contracts if k.startswith(prefix))


def pool_tokens(info: DevnetInfo, pool_name: str) -> PoolTokens:
    """The pool's address, tokens (on-chain order), symbols, decimals, fee, and base symbol."""
    pool = info.contract(f"{PREFIX}.pool.{pool_name}")
    base = pool_name.split("_")[0]
    (token0,) = eth_call(info, pool, "token0()", (), ["address"])
    (token1,) = eth_call(info, pool, "token1()", (), ["address"])
    (fee,) = eth_call(info, pool, "fee()", (), ["uint24"])
    sym0, sym1 = _symbol(info, token0), _symbol(info, token1)
    return PoolTokens(
        pool,
        to_checksum_address(token0),
        to_checksum_address(token1),
        sym0,
        sym1,
        _decimals(info, sym0),
        _decimals(info, sym1),
        int(fee),
        base,
    )


def pool_state(info: DevnetInfo, pool_name: str) -> PoolState:
    """``slot0`` (sqrtPriceX96, tick), ``liquidity`` and ``feeGrowthGlobal0X128``/``1`` of the pool."""
    pool = info.contract(f"{PREFIX}.pool.{pool_name}")
    sqrt_price, tick, *_ = eth_call(
        info, pool, "slot0()", (), ["uint160", "int24", "uint16", "uint16", "uint16", "uint8", "bool"]
    )
    (liquidity,) = eth_call(info, pool, "liquidity()", (), ["uint128"])
    (growth0,) = eth_call(info, pool, "feeGrowthGlobal0X128()", (), ["uint256"])
    (growth1,) = eth_call(info, pool, "feeGrowthGlobal1X128()", (), ["uint256"])
    return PoolState(int(sqrt_price), int(tick), int(liquidity), int(growth0), int(growth1))


def pool_price(info: DevnetInfo, pool_name: str) -> Decimal:
    """The pool's price of one base token in quote tokens (whole tokens, decimals applied)."""
    tokens = pool_tokens(info, pool_name)
    sqrt_price = pool_state(info, pool_name).sqrt_price_x96
    with localcontext() as ctx:
        ctx.prec = 60
        raw_1_per_0 = (Decimal(sqrt_price) / Decimal(2**96)) ** 2
        price_1_per_0 = raw_1_per_0 * Decimal(10) ** (tokens.decimals0 - tokens.decimals1)
        return +price_1_per_0 if tokens.base_is_token0 else 1 / price_1_per_0


def positions_of(info: DevnetInfo, wallet: str) -> list[int]:
    """Token ids of the Uniswap v3 LP NFTs ``wallet`` owns (position manager enumeration order)."""
    manager = info.contract(f"{PREFIX}.position_manager")
    (count,) = eth_call(info, manager, "balanceOf(address)", [wallet], ["uint256"])
    return [
        int(eth_call(info, manager, "tokenOfOwnerByIndex(address,uint256)", [wallet, i], ["uint256"])[0])
        for i in range(int(count))
    ]


def lp_position(info: DevnetInfo, token_id: int) -> LpPosition:
    """``positions(tokenId)`` of the position manager."""
    values = eth_call(
        info,
        info.contract(f"{PREFIX}.position_manager"),
        "positions(uint256)",
        [token_id],
        [
            "uint96",
            "address",
            "address",
            "address",
            "uint24",
            "int24",
            "int24",
            "uint128",
            "uint256",
            "uint256",
            "uint128",
            "uint128",
        ],
    )
    _, _, token0, token1, fee, lower, upper, liquidity, g0, g1, owed0, owed1 = values
    return LpPosition(
        token_id,
        to_checksum_address(token0),
        to_checksum_address(token1),
        int(fee),
        int(lower),
        int(upper),
        int(liquidity),
        int(g0),
        int(g1),
        int(owed0),
        int(owed1),
    )


def ticks_for_usd_range(
    info: DevnetInfo, pool_name: str, low_usd: float | Decimal, high_usd: float | Decimal
) -> tuple[int, int]:
    """``(tick_lower, tick_upper)``, aligned outwards to the tick spacing, covering base-token USD prices
    ``low_usd``..``high_usd`` (the quote token valued at its Chainlink price)."""
    tokens = pool_tokens(info, pool_name)
    quote_answer = _answer(info, tokens.symbol1 if tokens.base_is_token0 else tokens.symbol0)
    ticks = sorted(
        tick_at_sqrt_price(_sqrt_price_for_answers(tokens, _usd_answer(usd), quote_answer))
        for usd in (low_usd, high_usd)
    )
    spacing = tokens.tick_spacing
    lower = max((ticks[0] // spacing) * spacing, full_range_ticks(tokens.fee)[0])
    upper = min(-((-ticks[1]) // spacing) * spacing, full_range_ticks(tokens.fee)[1])
    return lower, upper


# ----------------------------------------------------------------------------------------------- actions
def mint_position(
    info: DevnetInfo,
    wallet: str,
    pool_name: str,
    tick_lower: int,
    tick_upper: int,
    amount0_raw: int,
    amount1_raw: int,
) -> int:
    """Mint an LP position owned by ``wallet`` with up to ``amount0_raw``/``amount1_raw`` (on-chain token
    order, see :func:`pool_tokens`); return its token id. Ticks must be multiples of the tick spacing."""
    tokens = pool_tokens(info, pool_name)
    manager = info.contract(f"{PREFIX}.position_manager")
    for token, amount in ((tokens.token0, amount0_raw), (tokens.token1, amount1_raw)):
        if amount:
            transact(info, wallet, token, "approve(address,uint256)", manager, amount)
    params = (
        tokens.token0,
        tokens.token1,
        tokens.fee,
        tick_lower,
        tick_upper,
        amount0_raw,
        amount1_raw,
        0,
        0,
        wallet,
        _MAX_UINT256,
    )
    receipt = transact(info, wallet, manager, _MINT, params)
    for log in receipt["logs"]:
        if log["address"].lower() == manager.lower() and log["topics"][0] == _INCREASE_LIQUIDITY_TOPIC:
            return int(log["topics"][1], 16)
    raise RuntimeError(f"no IncreaseLiquidity event in the mint receipt {receipt['transactionHash']}")


def swap(
    info: DevnetInfo,
    wallet: str,
    pool_name: str,
    zero_for_one: bool,
    amount_in_raw: int,
    sqrt_price_limit_x96: int = 0,
) -> SwapResult:
    """Swap exactly ``amount_in_raw`` of ``token0`` for ``token1`` (``zero_for_one``) or the reverse,
    through ``SwapRouter.exactInputSingle``, stopping early at ``sqrt_price_limit_x96`` if given (then
    only part of the input is spent)."""
    tokens = pool_tokens(info, pool_name)
    router = info.contract(f"{PREFIX}.swap_router")
    token_in, token_out = (tokens.token0, tokens.token1) if zero_for_one else (tokens.token1, tokens.token0)
    (allowance,) = eth_call(info, token_in, "allowance(address,address)", [wallet, router], ["uint256"])
    if int(allowance) < amount_in_raw:
        transact(info, wallet, token_in, "approve(address,uint256)", router, _MAX_UINT256)
    params = (token_in, token_out, tokens.fee, wallet, _MAX_UINT256, amount_in_raw, 0, sqrt_price_limit_x96)
    receipt = transact(info, wallet, router, _EXACT_INPUT_SINGLE, params)
    for log in receipt["logs"]:
        if log["address"].lower() == tokens.pool.lower() and log["topics"][0] == _SWAP_TOPIC:
            amount0, amount1, sqrt_price, liquidity, tick = decode(
                ["int256", "int256", "uint160", "uint128", "int24"], bytes.fromhex(log["data"][2:])
            )
            return SwapResult(int(amount0), int(amount1), int(sqrt_price), int(liquidity), int(tick), receipt)
    raise RuntimeError(f"no Swap event from {tokens.pool} in {receipt['transactionHash']}")


def swap_to_sqrt_price(info: DevnetInfo, pool_name: str, sqrt_price_x96: int) -> SwapResult | None:
    """Move the pool to exactly ``sqrt_price_x96`` by an :data:`ARBITRAGEUR` swap against its liquidity
    (``None`` if it is already there)."""
    if not MIN_SQRT_RATIO < sqrt_price_x96 < MAX_SQRT_RATIO:
        raise ValueError(f"sqrtPriceX96 {sqrt_price_x96} outside Uniswap's range")
    current = pool_state(info, pool_name).sqrt_price_x96
    if sqrt_price_x96 == current:
        return None
    tokens = pool_tokens(info, pool_name)
    zero_for_one = sqrt_price_x96 < current
    symbol_in = tokens.symbol0 if zero_for_one else tokens.symbol1
    _top_up_arbitrageur(info, symbol_in)
    balance = _balance(info, info.token(symbol_in), ARBITRAGEUR)
    return swap(info, ARBITRAGEUR, pool_name, zero_for_one, min(balance, _HUGE_AMOUNT_IN), sqrt_price_x96)


def swap_to_price(info: DevnetInfo, pool_name: str, usd_price_of_base: float | Decimal) -> SwapResult | None:
    """Move the pool so one base token (WETH) costs ``usd_price_of_base`` USD, the quote token valued at
    its Chainlink price (rounded like feed answers, to 8 decimals)."""
    tokens = pool_tokens(info, pool_name)
    quote = tokens.symbol1 if tokens.base_is_token0 else tokens.symbol0
    target = _sqrt_price_for_answers(tokens, _usd_answer(usd_price_of_base), _answer(info, quote))
    return swap_to_sqrt_price(info, pool_name, target)


def sync_pools(info: DevnetInfo, symbol: str | None = None, answers: Mapping[str, int] | None = None) -> list[str]:
    """Move every pool holding ``symbol`` (all when None) to the ratio of its tokens' Chainlink answers
    (``answers``, raw 8-decimal, take precedence over the feeds' current ones); return the pools' names."""
    done = []
    for name in pool_names(info):
        tokens = pool_tokens(info, name)
        if symbol is None or symbol in (tokens.symbol0, tokens.symbol1):
            base_is_0 = tokens.base_is_token0
            base_answer = _answer(info, tokens.symbol0 if base_is_0 else tokens.symbol1, answers)
            quote_answer = _answer(info, tokens.symbol1 if base_is_0 else tokens.symbol0, answers)
            swap_to_sqrt_price(info, name, _sqrt_price_for_answers(tokens, base_answer, quote_answer))
            done.append(name)
    return done


# ----------------------------------------------------------------------------------------------- deploy
def deploy(info: DevnetInfo, liquidity: str) -> dict[str, str]:
    """Deploy the factory, position manager and router onto ``info``'s chain (which must have the Aave
    tokens and Chainlink feeds), create :data:`POOLS` at the Chainlink prices, and have ``liquidity`` mint
    the positions of the module docstring. Returns the contracts to merge into the devnet's info."""
    weth = info.token("WETH")
    factory = deploy_contract(info, ADMIN, str(artifact("UniswapV3Factory")["bytecode"]))
    manager = deploy_contract(
        info,
        ADMIN,
        str(artifact("NonfungiblePositionManager")["bytecode"]),
        ["address", "address", "address"],
        [factory, weth, "0x" + "00" * 20],
    )
    router = deploy_contract(
        info, ADMIN, str(artifact("SwapRouter")["bytecode"]), ["address", "address"], [factory, weth]
    )
    contracts = {f"{PREFIX}.factory": factory, f"{PREFIX}.position_manager": manager, f"{PREFIX}.swap_router": router}
    for name, (base, quote, fee) in POOLS.items():
        token0, token1 = sorted((info.token(base), info.token(quote)), key=lambda a: int(a, 16))
        sym0, sym1 = _symbol(info, token0), _symbol(info, token1)
        start = _sqrt_price_for_answers(
            PoolTokens("", token0, token1, sym0, sym1, _decimals(info, sym0), _decimals(info, sym1), fee, base),
            _answer(info, base),
            _answer(info, quote),
        )
        transact(
            info,
            ADMIN,
            manager,
            "createAndInitializePoolIfNecessary(address,address,uint24,uint160)",
            token0,
            token1,
            fee,
            start,
        )
        (pool,) = eth_call(info, factory, "getPool(address,address,uint24)", [token0, token1, fee], ["address"])
        contracts[f"{PREFIX}.pool.{name}"] = to_checksum_address(pool)
    live = DevnetInfo(info.rpc_url, info.chain_id, {**info.contracts, **contracts}, info.tokens, info.markets)
    for name, (base, quote, _) in POOLS.items():
        tokens = pool_tokens(live, name)
        base_usd = Decimal(_answer(live, base)) / _FEED_SCALE
        quote_usd = Decimal(_answer(live, quote)) / _FEED_SCALE
        for band, base_tokens in _LIQUIDITY:
            if band is None:
                lower, upper = full_range_ticks(tokens.fee)
            else:
                low, high = base_usd * (1 - Decimal(band)), base_usd * (1 + Decimal(band))
                lower, upper = ticks_for_usd_range(live, name, low, high)
            base_raw = base_tokens * 10 ** _decimals(live, base)
            quote_raw = int(base_tokens * base_usd / quote_usd) * 10 ** _decimals(live, quote)
            mint_tokens(live, liquidity, base, base_raw)
            mint_tokens(live, liquidity, quote, quote_raw)
            amount0, amount1 = (base_raw, quote_raw) if tokens.base_is_token0 else (quote_raw, base_raw)
            mint_position(live, liquidity, name, lower, upper, amount0, amount1)
    return contracts


# ----------------------------------------------------------------------------------------------- helpers
def _sqrt_price_for_answers(tokens: PoolTokens, base_answer: int, quote_answer: int) -> int:
    """sqrtPriceX96 where one base token is worth ``base_answer / quote_answer`` quote tokens (USD feed
    answers of the same scale), in on-chain token order and raw units."""
    usd0, usd1 = (base_answer, quote_answer) if tokens.base_is_token0 else (quote_answer, base_answer)
    # price_1_per_0 raw = usd0 / usd1 * 10**(dec1 - dec0), exact in integers
    numerator = usd0 * 10**tokens.decimals1 << 192
    denominator = usd1 * 10**tokens.decimals0
    return isqrt(numerator // denominator)


def _top_up_arbitrageur(info: DevnetInfo, symbol: str) -> None:
    unit = 10 ** _decimals(info, symbol)
    if _balance(info, info.token(symbol), ARBITRAGEUR) < _ARB_FLOOR_TOKENS * unit:
        mint_tokens(info, ARBITRAGEUR, symbol, _ARB_TOPUP_TOKENS * unit)


def _usd_answer(usd: float | Decimal) -> int:
    answer = (Decimal(str(usd)) * _FEED_SCALE).to_integral_value(ROUND_HALF_EVEN)
    if answer <= 0:
        raise ValueError(f"price must be positive, got {usd}")
    return int(answer)


def _answer(info: DevnetInfo, symbol: str, answers: Mapping[str, int] | None = None) -> int:
    from devnet.feeds import latest_round  # feeds imports this module lazily too

    return (answers or {}).get(symbol) or latest_round(info, symbol).answer_raw


def _balance(info: DevnetInfo, token: str, wallet: str) -> int:
    (value,) = eth_call(info, token, "balanceOf(address)", [wallet], ["uint256"])
    return int(value)


def _decimals(info: DevnetInfo, symbol: str) -> int:
    (value,) = eth_call(info, info.token(symbol), "decimals()", (), ["uint8"])
    return int(value)


def _symbol(info: DevnetInfo, token: str) -> str:
    for symbol, address in info.tokens.items():
        if address.lower() == token.lower():
            return symbol
    raise KeyError(f"token {token} is not one of the devnet's {sorted(info.tokens)}")


# ------------------------------------------------------------------------------------------------- part
HEDGED = ("WETH_USDC_500", 5, 20_000, Decimal("0.15"))
"""The seed's ``hedged`` wallet here: (pool, up to WETH, up to USDC, band): an LP range of the WETH feed price
×(1 ± band)."""


def _seed(info: DevnetInfo, label: str, wallet: str) -> None:
    from devnet.feeds import latest_round  # feeds imports this module lazily too

    if label != "hedged":
        return
    pool, weth_tokens, usdc_tokens, band = HEDGED
    weth, usdc = weth_tokens * 10 ** _decimals(info, "WETH"), usdc_tokens * 10 ** _decimals(info, "USDC")
    mint_tokens(info, wallet, "WETH", weth)
    usd = latest_round(info, "WETH").price_usd
    lower, upper = ticks_for_usd_range(info, pool, usd * (1 - band), usd * (1 + band))
    amounts = (weth, usdc) if pool_tokens(info, pool).base_is_token0 else (usdc, weth)
    mint_position(info, wallet, pool, lower, upper, *amounts)


def _tables(info: DevnetInfo, chain: str) -> list[dict[str, object]]:
    if f"{PREFIX}.position_manager" not in info.contracts:
        return []
    return [{"name": PREFIX, "type": PREFIX, "chain": chain,
             "position_manager": info.contract(f"{PREFIX}.position_manager"),
             "factory": info.contract(f"{PREFIX}.factory")}]


def _deploy(info: DevnetInfo, liquidity: str) -> tuple[dict[str, str], dict[str, str]]:
    return deploy(info, liquidity), {}


def _sync_price(info: DevnetInfo, symbol: str, answers: Mapping[str, int] | None) -> list[str]:
    return sync_pools(info, symbol, answers)


PART = DevnetPart(
    venue=PREFIX,
    title="Uniswap v3",
    short="Uniswap",
    module=__name__,
    present=lambda info: f"{PREFIX}.factory" in info.contracts,
    venue_tables=_tables,
    npm_packages=("@uniswap/v3-core", "@uniswap/v3-periphery"),
    npm_artifacts=NPM_ARTIFACTS,
    deploy=_deploy,
    sync_price=_sync_price,
    seed=_seed,
    alias="uniswap",
)
"""Uniswap v3's part of the devnet: its pools and liquidity, the hedged wallet's range, its table."""
