"""What-if replays: what every venue's replay of a wallet's own actions and oracle moves shares.

Each venue's replay lives with its rules (``riskcore/venues/<venue>/whatif.py``) and does exactly what the venue's
contracts do, with their own integer arithmetic, starting from the state read at one block and assuming the
actions land at that block's timestamp (no interest accrues between the read and the actions; see
``aggregator.whatif`` for why that is the comparison that can be exact). The conventions they share:

* an action returns the state after it and, where the venue would revert it, the venue's reason — the step is
  applied all the same, so that a what-if can show where it leads;
* an amount beyond what the wallet holds or owes is a :class:`ValueError` (input the wallet cannot make, not a
  revert to report), and so is a non-positive amount (:func:`positive`);
* units: ``*_raw`` token units, ``*_ray`` 1e27, ``*_wad`` 1e18, ``*_bps`` 1e4, prices in each venue's own oracle
  scale. No I/O, no floats on these paths.
"""

from __future__ import annotations

__all__ = ["positive", "ratio_price"]


def positive(amount_raw: int) -> None:
    """Refuse a non-positive amount (``ValueError``)."""
    if amount_raw <= 0:
        raise ValueError(f"amount must be positive, got {amount_raw}")


def ratio_price(price_raw: int, base_usd_raw: tuple[int, int], quote_usd_raw: tuple[int, int]) -> int:
    """A feed-ratio oracle's price (base token per quote token, any scale) after the two tokens' USD prices move.

    ``base_usd_raw`` and ``quote_usd_raw`` are each token's USD price (any fixed scale, the same within a pair)
    before and after; the result is ``price × base_after × quote_before / (base_before × quote_after)`` rounded
    down — the oracle moves by the ratio of the two USD prices — and ``price`` itself when neither moved.
    """
    (c0, c1), (l0, l1) = base_usd_raw, quote_usd_raw
    if min(c0, c1, l0, l1) <= 0:
        raise ValueError("USD prices must be positive")
    if (c0, l0) == (c1, l1):
        return price_raw
    return price_raw * c1 * l0 // (c0 * l1)
