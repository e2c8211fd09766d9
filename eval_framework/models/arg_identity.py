"""Model arguments as they enter an evaluation's identity.

Two rules keep the identity exact: an argument given with its constructor's default value is the
same evaluation as leaving it out, and no value is ever dropped because of its name. Values under
secret-looking names (``api_key``, but also a user's ``reward_token``) are not stored in clear: they
enter as a slow salted hash (PBKDF2), so two different values are two evaluations, while the stored
identity and the bundle key give an attacker no cheap way to test guesses.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Mapping
from typing import Any

from eval_framework.redact import is_secret_key, scrub

_SALT = b"eval_framework model argument identity v1"
_ROUNDS = 200_000  # about 0.1 s once per value and process: nothing for a run, a lot per guess


@functools.lru_cache(maxsize=64)
def _sealed(text: str) -> str:
    return "pbkdf2:" + hashlib.pbkdf2_hmac("sha256", text.encode(), _SALT, _ROUNDS).hex()[:32]


def sealed(value: Any) -> str:
    """A secret-named value in the identity: equal values give equal text, nothing shows it."""
    return _sealed(json.dumps(value, sort_keys=True, default=str))


def _for_identity(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: (sealed(v) if is_secret_key(str(k)) and v not in (None, "") else _for_identity(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_for_identity(v) for v in value]
    if isinstance(value, str):
        return scrub(value)  # a known secret inside text (a URL's password) does not change results
    return value


def constructor_defaults(cls: type) -> dict[str, Any]:
    """Default values of the constructor's named parameters, following ``**kwargs`` up the bases
    (a subclass that passes them on takes its base's defaults)."""
    defaults: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):
            break
        for name, param in params.items():
            if name != "self" and param.default is not inspect.Parameter.empty:
                defaults.setdefault(name, param.default)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            break
    return defaults


def _is_default(value: Any, default: Any) -> bool:
    # 0 == False == 0.0 in Python; a default of False given as 0 is another spelling, not the same
    return type(value) is type(default) and value == default


def identity_args(cls: type, llm_args: Mapping[str, Any]) -> dict[str, Any]:
    """``llm_args`` as identity: defaults left out, secret-named values sealed."""
    defaults = constructor_defaults(cls)
    kept = {k: v for k, v in llm_args.items() if not (k in defaults and _is_default(v, defaults[k]))}
    identity: dict[str, Any] = _for_identity(kept)
    return identity
