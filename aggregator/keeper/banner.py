"""What the keeper will do, in one line for the ``xmargin run`` banner: off, a dry run, or executing — and for
which wallets, since the keeper signs only for the wallet whose key it holds (the others are planned and
simulated only)."""

from __future__ import annotations

from aggregator.config import Settings
from aggregator.keeper.chain import Signer, SignerError
from aggregator.keeper.runner import signer_from_config
from aggregator.render import short_hex
from connectors.types import checksum

__all__ = ["keeper_banner"]


def _wallets(n: int, word: str = "wallet") -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def keeper_banner(settings: Settings, signer: Signer | None = None) -> str:
    """The keeper's mode for the ``xmargin run`` banner, e.g. ``keeper executing for 0x4b27…22B8; dry run for 2
    others``.

    ``signer``: the keeper's signer when already loaded; otherwise the configured key is loaded here when the
    keeper is to execute (never for a dry run), and a key that cannot be loaded is named:
    ``keeper not executing: environment variable X is not set: …``.
    """
    cfg = settings.keeper
    if not cfg.enabled:
        return "keeper off"
    wallets = list(dict.fromkeys(checksum(w) for w in cfg.wallets))
    if not wallets:
        return "keeper on, but [keeper] wallets lists no wallet"
    if not cfg.execute:
        return f"keeper dry run for {_wallets(len(wallets))}"
    if signer is None:
        try:
            signer = signer_from_config(cfg)
        except SignerError as exc:
            return f"keeper not executing: {exc}"
    if signer is None:  # execute = true always has a signer configured (the settings refuse it otherwise)
        return f"keeper dry run for {_wallets(len(wallets))}: no signer configured"
    own = [w for w in wallets if w == signer.address]
    others = len(wallets) - len(own)
    if not own:
        return (f"keeper dry run for {_wallets(len(wallets))}: its signer {short_hex(signer.address)} is none of "
                "them")
    text = f"keeper executing for {short_hex(own[0])}"
    return text + (f"; dry run for {_wallets(others, 'other')}" if others else "")
