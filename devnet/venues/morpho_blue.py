"""Morpho Blue on the devnet: its part (:data:`PART`), deployment (from ``@morpho-org/morpho-blue@1.0.0``'s own
source, compiled by ``compile.js``), actions for arbitrary wallets, and the reads tests compare against. The
helpers are also ``devnet.morpho``.

Deployed (owner :data:`~devnet.deploy.ADMIN`): ``Morpho``, the package's own ``IrmMock`` (borrow APR =
utilization), one package ``OracleMock`` per market, and these markets on the devnet's tokens (the Aave test
market's own):

=========== ============ ========== ======= =============================================
market      collateral   loan       LLTV    loan liquidity (supplied by :data:`devnet.tokens.LIQUIDITY`)
=========== ============ ========== ======= =============================================
WETH_USDC   WETH         USDC       86 %    5,000,000 USDC
WETH_DAI    WETH         DAI        91.5 %  5,000,000 DAI
=========== ============ ========== ======= =============================================

The seed's ``hedged`` wallet holds :data:`HEDGED` (10 WETH collateral, 20,000 USDC borrowed on ``WETH_USDC``:
health 1.72).

Names in :class:`~devnet.models.DevnetInfo`: ``contracts["morpho_blue.morpho"]``,
``contracts["morpho_blue.irm"]``, ``contracts["morpho_blue.oracle.<COLL>_<LOAN>"]``, and the market ids
(bytes32 hex, not addresses) in ``markets["morpho_blue.<COLL>_<LOAN>"]``.

Oracle prices follow Morpho's convention: the price of one raw unit of collateral in raw units of loan
token, scaled by 1e36 (so ``usd_coll / usd_loan * 10**(36 + loan_decimals - collateral_decimals)``).
:func:`devnet.feeds.set_price` keeps every oracle equal to :func:`chainlink_price` of its two tokens.

Amounts are raw token integers. Actions approve Morpho for what they pull; the wallet must hold the tokens
(see :func:`devnet.tokens.mint_tokens`). A revert raises :class:`devnet.evm.RevertedError` whose ``reason`` is
Morpho's error string (``"insufficient collateral"``, ``"position is healthy"``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from eth_abi.abi import encode
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from devnet.deploy import ADMIN
from devnet.evm import Receipt, deploy_contract, eth_call, transact
from devnet.install import artifact
from devnet.models import DevnetInfo
from devnet.parts import CompileJob, DevnetPart
from devnet.paths import NODE_MODULES
from devnet.tokens import mint_tokens

__all__ = [
    "HEDGED",
    "MARKETS",
    "ORACLE_PRICE_SCALE",
    "PART",
    "MarketParams",
    "MarketState",
    "Position",
    "borrow",
    "borrow_assets",
    "chainlink_price",
    "health_factor_wad",
    "liquidate",
    "market_id",
    "market_names",
    "market_params",
    "market_state",
    "oracle_price",
    "position",
    "repay",
    "set_oracle_price",
    "supply",
    "supply_collateral",
    "sync_oracles",
    "withdraw",
    "withdraw_collateral",
]

ORACLE_PRICE_SCALE = 10**36
WAD = 10**18
VIRTUAL_SHARES = 10**6
VIRTUAL_ASSETS = 1
MAX_UINT256 = 2**256 - 1
PREFIX = "morpho_blue"
# market name -> (collateral, loan, LLTV in WAD, loan liquidity in whole tokens)
MARKETS: dict[str, tuple[str, str, int, int]] = {
    "WETH_USDC": ("WETH", "USDC", 860_000_000_000_000_000, 5_000_000),
    "WETH_DAI": ("WETH", "DAI", 915_000_000_000_000_000, 5_000_000),
}
"""The markets :func:`deploy` creates: name -> (collateral symbol, loan symbol, LLTV (WAD), loan liquidity)."""
_PARAMS = "(address,address,address,address,uint256)"  # MarketParams(loan, collateral, oracle, irm, lltv)
_EMPTY = b""


@dataclass(frozen=True)
class MarketParams:
    """Morpho's ``MarketParams`` struct (checksummed addresses, ``lltv`` in WAD)."""

    loan_token: str
    collateral_token: str
    oracle: str
    irm: str
    lltv: int

    def as_tuple(self) -> tuple[str, str, str, str, int]:
        """The ABI tuple ``(loanToken, collateralToken, oracle, irm, lltv)``."""
        return (self.loan_token, self.collateral_token, self.oracle, self.irm, self.lltv)

    @property
    def id(self) -> str:
        """The market id: ``keccak256(abi.encode(params))`` as ``0x`` hex."""
        return "0x" + keccak(encode([_PARAMS], [self.as_tuple()])).hex()


@dataclass(frozen=True)
class Position:
    """``Morpho.position(id, user)``: supply shares, borrow shares, collateral (raw collateral token)."""

    supply_shares: int
    borrow_shares: int
    collateral: int


@dataclass(frozen=True)
class MarketState:
    """``Morpho.market(id)`` as stored (interest accrued up to ``last_update`` only); ``fee`` in WAD."""

    total_supply_assets: int
    total_supply_shares: int
    total_borrow_assets: int
    total_borrow_shares: int
    last_update: int
    fee: int


# ----------------------------------------------------------------------------------------------- reads
def market_names(info: DevnetInfo) -> list[str]:
    """Short names (``"WETH_USDC"``, ...) of the Morpho markets on this devnet (one per oracle)."""
    prefix = f"{PREFIX}.oracle."
    return sorted(k.removeprefix(prefix) for k in info.contracts if k.startswith(prefix))


def market_id(info: DevnetInfo, market: str) -> str:
    """The bytes32 id (``0x`` hex) of ``market`` (short name ``"WETH_USDC"``, full key, or an id)."""
    if market.startswith("0x") and len(market) == 66:
        return market.lower()
    key = market if market.startswith(f"{PREFIX}.") else f"{PREFIX}.{market}"
    if key in info.markets:
        return info.markets[key]
    name = key.removeprefix(f"{PREFIX}.")
    oracle, irm = info.contracts.get(f"{PREFIX}.oracle.{name}"), info.contracts.get(f"{PREFIX}.irm")
    if name in MARKETS and oracle and irm:  # an info without market ids (e.g. from the four-key JSON)
        collateral, loan, lltv, _ = MARKETS[name]
        return MarketParams(info.token(loan), info.token(collateral), oracle, irm, lltv).id
    raise KeyError(f"no Morpho market {market!r} on this devnet; known: {market_names(info)}")


def market_params(info: DevnetInfo, market: str) -> MarketParams:
    """``idToMarketParams`` of ``market``, read from chain."""
    (params,) = eth_call(info, _morpho(info), "idToMarketParams(bytes32)", [_id_bytes(info, market)], [_PARAMS])
    loan, collateral, oracle, irm, lltv = params
    return MarketParams(
        to_checksum_address(loan),
        to_checksum_address(collateral),
        to_checksum_address(oracle),
        to_checksum_address(irm),
        int(lltv),
    )


def market_state(info: DevnetInfo, market: str) -> MarketState:
    """``Morpho.market(id)`` (all zero for an id that is not a created market)."""
    values = eth_call(info, _morpho(info), "market(bytes32)", [_id_bytes(info, market)], ["uint128"] * 6)
    return MarketState(*(int(v) for v in values))


def position(info: DevnetInfo, market: str, wallet: str) -> Position:
    """``Morpho.position(id, wallet)``."""
    args = [_id_bytes(info, market), wallet]
    values = eth_call(info, _morpho(info), "position(bytes32,address)", args, ["uint256", "uint128", "uint128"])
    return Position(*(int(v) for v in values))


def oracle_price(info: DevnetInfo, market: str) -> int:
    """The market oracle's ``price()`` (1e36-scaled, see the module docstring)."""
    (value,) = eth_call(info, market_params(info, market).oracle, "price()", (), ["uint256"])
    return int(value)


def borrow_assets(info: DevnetInfo, market: str, wallet: str) -> int:
    """The wallet's debt in raw loan token, rounded up as Morpho does, from the stored market totals
    (interest accrued up to the market's ``last_update``)."""
    state = market_state(info, market)
    shares = position(info, market, wallet).borrow_shares
    return _to_assets_up(shares, state.total_borrow_assets, state.total_borrow_shares)


def health_factor_wad(info: DevnetInfo, market: str, wallet: str) -> int:
    """``collateral * price / 1e36 * lltv / borrowed`` in WAD with Morpho's roundings (MAX_UINT256 without
    debt); below 1e18 means Morpho's ``_isHealthy`` is false (up to the interest not yet accrued)."""
    borrowed = borrow_assets(info, market, wallet)
    if borrowed == 0:
        return MAX_UINT256
    params = market_params(info, market)
    collateral = position(info, market, wallet).collateral
    max_borrow = collateral * oracle_price(info, market) // ORACLE_PRICE_SCALE * params.lltv // WAD
    return max_borrow * WAD // borrowed


def chainlink_price(info: DevnetInfo, collateral: str, loan: str, answers: Mapping[str, int] | None = None) -> int:
    """The 1e36-scaled Morpho price of ``collateral`` in ``loan`` from the two tokens' Chainlink answers
    (``answers``, raw 8-decimal, take precedence over the feeds' current ones)."""
    from devnet.feeds import latest_round  # feeds imports this module lazily too

    answers = answers or {}
    coll_answer = answers.get(collateral) or latest_round(info, collateral).answer_raw
    loan_answer = answers.get(loan) or latest_round(info, loan).answer_raw
    scale = 10 ** (36 + _decimals(info, loan) - _decimals(info, collateral))
    return int(coll_answer * scale // loan_answer)


# ----------------------------------------------------------------------------------------------- actions
def set_oracle_price(info: DevnetInfo, market: str, price_1e36: int) -> Receipt:
    """Set the market's ``OracleMock`` price (1e36-scaled)."""
    if price_1e36 <= 0:
        raise ValueError(f"oracle price must be positive, got {price_1e36}")
    return transact(info, ADMIN, market_params(info, market).oracle, "setPrice(uint256)", price_1e36)


def sync_oracles(info: DevnetInfo, symbol: str | None = None, answers: Mapping[str, int] | None = None) -> list[str]:
    """Set every market oracle (those involving ``symbol``; all when None) to :func:`chainlink_price`
    (with ``answers`` overriding feed answers); return the names of the markets set."""
    done = []
    for name in market_names(info):
        params = market_params(info, name)
        coll, loan = _symbol(info, params.collateral_token), _symbol(info, params.loan_token)
        if symbol is None or symbol in (coll, loan):
            price = chainlink_price(info, coll, loan, answers)
            transact(info, ADMIN, params.oracle, "setPrice(uint256)", price)
            done.append(name)
    return done


def supply(info: DevnetInfo, wallet: str, market: str, assets_raw: int, shares: int = 0) -> Receipt:
    """Supply ``assets_raw`` of the loan token (or mint exactly ``shares``: pass ``assets_raw=0``) on the
    wallet's behalf."""
    params = market_params(info, market)
    _approve(info, wallet, params.loan_token, assets_raw or MAX_UINT256)
    return transact(
        info,
        wallet,
        _morpho(info),
        f"supply({_PARAMS},uint256,uint256,address,bytes)",
        params.as_tuple(),
        assets_raw,
        shares,
        wallet,
        _EMPTY,
    )


def withdraw(info: DevnetInfo, wallet: str, market: str, assets_raw: int, shares: int = 0) -> Receipt:
    """Withdraw ``assets_raw`` of supplied loan token (or burn ``shares``: pass ``assets_raw=0``) to the wallet."""
    params = market_params(info, market)
    return transact(
        info,
        wallet,
        _morpho(info),
        f"withdraw({_PARAMS},uint256,uint256,address,address)",
        params.as_tuple(),
        assets_raw,
        shares,
        wallet,
        wallet,
    )


def supply_collateral(info: DevnetInfo, wallet: str, market: str, assets_raw: int) -> Receipt:
    """Supply ``assets_raw`` of the collateral token on the wallet's behalf."""
    params = market_params(info, market)
    _approve(info, wallet, params.collateral_token, assets_raw)
    return transact(
        info,
        wallet,
        _morpho(info),
        f"supplyCollateral({_PARAMS},uint256,address,bytes)",
        params.as_tuple(),
        assets_raw,
        wallet,
        _EMPTY,
    )


def withdraw_collateral(info: DevnetInfo, wallet: str, market: str, assets_raw: int) -> Receipt:
    """Withdraw ``assets_raw`` of the wallet's collateral to itself (reverts ``"insufficient collateral"``
    if that leaves the position unhealthy)."""
    params = market_params(info, market)
    return transact(
        info,
        wallet,
        _morpho(info),
        f"withdrawCollateral({_PARAMS},uint256,address,address)",
        params.as_tuple(),
        assets_raw,
        wallet,
        wallet,
    )


def borrow(info: DevnetInfo, wallet: str, market: str, assets_raw: int, shares: int = 0) -> Receipt:
    """Borrow ``assets_raw`` of the loan token (or exactly ``shares``: pass ``assets_raw=0``) to the wallet."""
    params = market_params(info, market)
    return transact(
        info,
        wallet,
        _morpho(info),
        f"borrow({_PARAMS},uint256,uint256,address,address)",
        params.as_tuple(),
        assets_raw,
        shares,
        wallet,
        wallet,
    )


def repay(info: DevnetInfo, wallet: str, market: str, assets_raw: int, shares: int = 0) -> Receipt:
    """Repay ``assets_raw`` of the wallet's debt, or exactly ``shares`` borrow shares (pass
    ``assets_raw=0``; use the position's ``borrow_shares`` to repay it all). The wallet must hold the loan
    token, interest included."""
    params = market_params(info, market)
    _approve(info, wallet, params.loan_token, assets_raw or MAX_UINT256)
    return transact(
        info,
        wallet,
        _morpho(info),
        f"repay({_PARAMS},uint256,uint256,address,bytes)",
        params.as_tuple(),
        assets_raw,
        shares,
        wallet,
        _EMPTY,
    )


def liquidate(
    info: DevnetInfo,
    liquidator: str,
    borrower: str,
    market: str,
    seized_assets: int = 0,
    repaid_shares: int = 0,
) -> Receipt:
    """``Morpho.liquidate`` by ``liquidator`` (which must hold enough loan token): seize exactly
    ``seized_assets`` of collateral, or repay exactly ``repaid_shares`` (exactly one of them non-zero).
    Reverts ``"position is healthy"`` while the borrower is healthy."""
    params = market_params(info, market)
    _approve(info, liquidator, params.loan_token, MAX_UINT256)
    return transact(
        info,
        liquidator,
        _morpho(info),
        f"liquidate({_PARAMS},address,uint256,uint256,bytes)",
        params.as_tuple(),
        borrower,
        seized_assets,
        repaid_shares,
        _EMPTY,
    )


# ----------------------------------------------------------------------------------------------- deploy
def deploy(info: DevnetInfo, liquidity: str) -> tuple[dict[str, str], dict[str, str]]:
    """Deploy Morpho, its IRM and one oracle per :data:`MARKETS` entry onto ``info``'s chain (which must
    have the Aave tokens and Chainlink feeds), create the markets and have ``liquidity`` supply their
    loan tokens. Returns ``(contracts, markets)`` to merge into the devnet's info."""
    morpho = deploy_contract(info, ADMIN, str(artifact("Morpho")["bytecode"]), ["address"], [ADMIN])
    irm = deploy_contract(info, ADMIN, str(artifact("IrmMock")["bytecode"]))
    transact(info, ADMIN, morpho, "enableIrm(address)", irm)
    contracts = {f"{PREFIX}.morpho": morpho, f"{PREFIX}.irm": irm}
    markets: dict[str, str] = {}
    for name, (collateral, loan, lltv, _) in MARKETS.items():
        (enabled,) = eth_call(info, morpho, "isLltvEnabled(uint256)", [lltv], ["bool"])
        if not enabled:
            transact(info, ADMIN, morpho, "enableLltv(uint256)", lltv)
        oracle = deploy_contract(info, ADMIN, str(artifact("OracleMock")["bytecode"]))
        transact(info, ADMIN, oracle, "setPrice(uint256)", chainlink_price(info, collateral, loan))
        params = MarketParams(info.token(loan), info.token(collateral), oracle, irm, lltv)
        transact(info, ADMIN, morpho, f"createMarket({_PARAMS})", params.as_tuple())
        contracts[f"{PREFIX}.oracle.{name}"] = oracle
        markets[f"{PREFIX}.{name}"] = params.id
    live = DevnetInfo(info.rpc_url, info.chain_id, {**info.contracts, **contracts}, info.tokens, markets)
    for name, (_, loan, _, liquidity_tokens) in MARKETS.items():
        amount = liquidity_tokens * 10 ** _decimals(info, loan)
        mint_tokens(live, liquidity, loan, amount)
        supply(live, liquidity, name, amount)
    return contracts, markets


# ----------------------------------------------------------------------------------------------- helpers
def _morpho(info: DevnetInfo) -> str:
    return info.contract(f"{PREFIX}.morpho")


def _id_bytes(info: DevnetInfo, market: str) -> bytes:
    return bytes.fromhex(market_id(info, market)[2:])


def _approve(info: DevnetInfo, wallet: str, token: str, amount_raw: int) -> None:
    transact(info, wallet, token, "approve(address,uint256)", _morpho(info), amount_raw)


def _decimals(info: DevnetInfo, symbol: str) -> int:
    (value,) = eth_call(info, info.token(symbol), "decimals()", (), ["uint8"])
    return int(value)


def _symbol(info: DevnetInfo, token: str) -> str:
    for symbol, address in info.tokens.items():
        if address.lower() == token.lower():
            return symbol
    raise KeyError(f"token {token} is not one of the devnet's {sorted(info.tokens)}")


def _to_assets_up(shares: int, total_assets: int, total_shares: int) -> int:
    """SharesMathLib.toAssetsUp."""
    numerator = shares * (total_assets + VIRTUAL_ASSETS)
    denominator = total_shares + VIRTUAL_SHARES
    return (numerator + denominator - 1) // denominator


# ------------------------------------------------------------------------------------------------- part
HEDGED = ("WETH_USDC", 10, 20_000)
"""The seed's ``hedged`` wallet here: (market, WETH collateral, USDC borrowed), whole tokens."""


def _seed(info: DevnetInfo, label: str, wallet: str) -> None:
    if label != "hedged":
        return
    market, collateral_weth, borrow_usdc = HEDGED
    collateral = collateral_weth * 10 ** _decimals(info, "WETH")
    mint_tokens(info, wallet, "WETH", collateral)
    supply_collateral(info, wallet, market, collateral)
    borrow(info, wallet, market, borrow_usdc * 10 ** _decimals(info, "USDC"))


def _tables(info: DevnetInfo, chain: str) -> list[dict[str, object]]:
    if f"{PREFIX}.morpho" not in info.contracts:
        return []
    markets = tuple(mid for name, mid in sorted(info.markets.items()) if name.startswith(f"{PREFIX}."))
    return [{"name": PREFIX, "type": PREFIX, "chain": chain, "morpho": info.contract(f"{PREFIX}.morpho"),
             "markets": markets}]


def _sync_price(info: DevnetInfo, symbol: str, answers: Mapping[str, int] | None) -> list[str]:
    return sync_oracles(info, symbol, answers)


PART = DevnetPart(
    venue=PREFIX,
    title="Morpho Blue",
    short="Morpho",
    module=__name__,
    present=lambda info: f"{PREFIX}.morpho" in info.contracts,
    venue_tables=_tables,
    npm_packages=("@morpho-org/morpho-blue",),
    # @morpho-org/morpho-blue@1.0.0 with the settings Morpho deployed with (via-IR, 999999 runs); its own mocks.
    compile_jobs=MappingProxyType({"morpho": CompileJob(
        root=NODE_MODULES / "@morpho-org" / "morpho-blue",
        contracts=MappingProxyType({
            "Morpho": "src/Morpho.sol",
            "IrmMock": "src/mocks/IrmMock.sol",
            "OracleMock": "src/mocks/OracleMock.sol",
        }),
        settings=MappingProxyType({"evmVersion": "paris", "viaIR": True,
                                   "optimizer": MappingProxyType({"enabled": True, "runs": 999999})}),
    )}),
    deploy=deploy,
    sync_price=_sync_price,
    seed=_seed,
    alias="morpho",
)
"""Morpho Blue's part of the devnet: its markets and liquidity, the hedged wallet's position, its table."""
