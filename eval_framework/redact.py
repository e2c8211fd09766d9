"""Keep secrets out of bundles, logs and messages.

A name is secret when one of its words (split at ``_``, ``-``, ``.`` and camelCase) is a secret
word: ``api_key``, ``HF_TOKEN``, ``awsSecretAccessKey`` are; ``max_tokens``, ``num_tokens`` are not
(``tokens`` is another word). Names that contain a secret word but hold no secret (tokenizer
settings such as ``pad_token``, bookkeeping such as ``natural_key``) are on an explicit
allow-list. Free text is scrubbed of the values of known secret variables, of values registered
at run time (secret-named ``--llm-args``), and of anything written as ``<secret name>=value`` or
``<secret name>: value``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import Any

from eval_framework.env import SECRET_NAMES

REDACTED = "***"
#: Words that make a name secret when it ends with one.
SECRET_WORDS = frozenset(
    {
        "key",
        "apikey",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "credential",
        "credentials",
        "authorization",
        "auth",
        "cookie",
        "signature",
        "sig",  # signed URLs (?sig=...)
    }
)
#: Names with a secret word that are known to hold no secret (compared lower-case).
NOT_SECRET = frozenset(
    {
        # tokenizer settings and special tokens
        "pad_token",
        "bos_token",
        "eos_token",
        "unk_token",
        "sep_token",
        "cls_token",
        "mask_token",
        "pad_token_id",
        "bos_token_id",
        "eos_token_id",
        "unk_token_id",
        "add_bos_token",
        "add_eos_token",
        "token_id",
        "token_ids",
        # our own bookkeeping
        "natural_key",
        "sort_key",
        "primary_key",
        "key_field",
        "metric_key",
        "auth_mode",
        "auth_host",
    }
)
#: Environment variables whose values are secrets wherever they appear.
SECRET_ENV_VARS = SECRET_NAMES
#: Shortest value treated as a secret in free text (shorter ones would mask ordinary words).
MIN_SECRET_LEN = 6

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_registered: set[str] = set()
_registered_lock = threading.Lock()


def name_words(name: str) -> list[str]:
    """``awsSecretAccessKey`` -> aws, secret, access, key; ``HF_TOKEN`` -> hf, token."""
    return [w.lower() for w in _WORD.findall(name)]


def is_secret_key(name: str) -> bool:
    """Whether a setting called ``name`` holds a secret: its last word is a secret word (``api_key``,
    ``HF_TOKEN``, ``client.secret``; ``aws_access_key_id`` too), with an allow-list. A secret word
    elsewhere describes the value instead (``token_budget``, ``password_length``, ``key_path``)."""
    if name.lower() in NOT_SECRET:
        return False
    words = name_words(name)
    if not words:
        return False
    return words[-1] in SECRET_WORDS or (words[-2:] == ["key", "id"])


def register_secret(value: object) -> None:
    """Scrub this value from every later message and log line of the process."""
    if isinstance(value, str) and len(value) >= MIN_SECRET_LEN:
        with _registered_lock:
            _registered.add(value)


def register_secrets_in(mapping: Mapping[str, Any]) -> None:
    """Register the values of secret-named keys, nested mappings included."""
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            register_secrets_in(value)
        elif is_secret_key(str(key)):
            register_secret(value)


def redact(value: Any) -> Any:
    """Return a copy of a JSON-like value with secret-named keys masked and secret values scrubbed."""
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if is_secret_key(str(k)) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value


def _secret_values() -> list[str]:
    values = {os.environ.get(name, "") for name in SECRET_ENV_VARS}
    with _registered_lock:
        values |= _registered
    return sorted((v for v in values if len(v) >= MIN_SECRET_LEN), key=len, reverse=True)


# ``api_key=abc``, ``api_key:abc``, ``"api_key": "abc"``, ``api_key: abc`` (a flag's value,
# ``--hf-token abc``, is not matched: it is not known to be the secret's spelling); the name must be
# a whole identifier.
# Every place where a name is followed by ``=`` or ``:`` and a value (a lookahead, so that the value
# of one name, say a URL, does not hide a secret name inside it: ``http://h/v1?api_key=...``).
# Prose is not an assignment: ``key: set service_account_file`` and ``api_key= or ...`` keep their
# words. So ``=`` takes its value directly (``token=abc``), and ``: `` followed by a space takes one
# only after a name that is quoted (``"token": "abc"``) or spelt as an identifier, not a plain word
# (``api_key: abc``, ``HF_TOKEN: abc``; not ``key: set ...``).
_ASSIGNMENT = re.compile(
    r"""(?=(?<![A-Za-z0-9_.\-])(?P<open>["']?)(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)"""
    r"""(?P<sep>["']?(?:\s*=|\s*:(?!//)(?P<space>\s*)))(?P<quote>["']?)(?P<value>[^\s"',;&)}\]]+))"""
)
_PLAIN_WORD = re.compile(r"[a-z]+")
# scheme://user:password@host (the password) and scheme://token@host (all of it: a lone user part
# is where a token goes, as in https://TOKEN@github.com).
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@?#]+)(?=@)")
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]{6,}")


def _is_assignment(match: re.Match[str]) -> bool:
    """A secret name given a value, not prose that happens to follow such a word."""
    name = match.group("name")
    if not is_secret_key(name.rsplit(".", 1)[-1]) or match.group("value") == REDACTED:
        return False
    if match.group("space"):  # "name: value": a quoted name, or one spelt as an identifier
        return bool(match.group("open")) or not _PLAIN_WORD.fullmatch(name)
    return True


def _mask_assignments(text: str) -> str:
    spans = [(m.start("value"), m.end("value")) for m in _ASSIGNMENT.finditer(text) if _is_assignment(m)]
    boundary = len(text) + 1
    for start, end in sorted(spans, reverse=True):  # from the right, so earlier offsets stay valid
        if end > boundary:  # inside a value masked already
            continue
        text = f"{text[:start]}{REDACTED}{text[end:]}"
        boundary = start
    return text


def _mask_userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match.group("userinfo").partition(":")
    return f"{match.group('scheme')}{user}:{REDACTED}" if colon else f"{match.group('scheme')}{REDACTED}"


def scrub(text: str) -> str:
    """Mask secrets inside free text: known secret values, and values written after a secret name."""
    for secret in _secret_values():
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _URL_USERINFO.sub(_mask_userinfo, text)
    return _mask_assignments(text)


class ScrubFilter(logging.Filter):
    """Logging filter that scrubs secret values from every record it passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def is_masked(text: str) -> bool:
    """Whether ``text`` is, or holds, a value this module masked: ``***`` itself, or a URL whose
    password or token was replaced by it. Such a value was copied from our output (``--show-config``,
    an invocation record); sent on, it would be a wrong password, not the secret."""
    return text == REDACTED or f":{REDACTED}@" in text or f"//{REDACTED}@" in text


def masked_keys(value: Any, path: str = "") -> list[str]:
    """The dotted paths of the masked values in a JSON-like value."""
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in masked_keys(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in masked_keys(v, f"{path}[{i}]")]
    return [path] if isinstance(value, str) and is_masked(value) else []


def refuse_masked(values: Mapping[str, Any], where: str, error: type[Exception]) -> None:
    """``error`` naming the first masked value in ``values`` (read from ``where``)."""
    found = masked_keys(values)
    if found:
        raise error(
            f"{found[0]} in {where} is {REDACTED}, a secret masked in eval_framework's output; give "
            "the real value (better: in the environment or .env, which every command reads) or drop it"
        )
