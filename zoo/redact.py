"""Keep access tokens out of messages: zoo never prints or logs a token, and errors that come back from
huggingface_hub (or anything that saw a token) are re-raised with every token replaced by ``***``."""

from __future__ import annotations

import os
import re
from typing import Iterable

__all__ = ["TOKEN_VARIABLES", "known_tokens", "redact"]

#: Environment variables that hold tokens zoo's dependencies read (Hub, Weights & Biases).
TOKEN_VARIABLES: tuple[str, ...] = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "WANDB_API_KEY")
#: Hub tokens have a recognisable shape: caught even when zoo was never told the value.
_HF_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{16,}")
_SHORTEST = 8  # shorter "tokens" (empty, "1") would redact ordinary words


def known_tokens(extra: Iterable[str | None] = ()) -> list[str]:
    """The tokens this process could be using: `extra` (e.g. a `token=` argument), the variables of
    `TOKEN_VARIABLES`, and the token huggingface_hub has stored (`hf auth login`)."""
    found = [t for t in extra if t]
    found += [os.environ[name] for name in TOKEN_VARIABLES if os.environ.get(name)]
    try:
        from huggingface_hub import get_token

        stored = get_token()
    except Exception:  # noqa: BLE001 - no hub, unreadable token file: nothing to hide from it
        stored = None
    if stored:
        found.append(stored)
    return sorted({t for t in found if isinstance(t, str) and len(t) >= _SHORTEST}, key=len, reverse=True)


def redact(text: str, extra: Iterable[str | None] = ()) -> str:
    """`text` with every known token (see `known_tokens`) and anything shaped like a Hub token replaced by
    ``***``."""
    for token in known_tokens(extra):
        text = text.replace(token, "***")
    return _HF_TOKEN_RE.sub("hf_***", text)
