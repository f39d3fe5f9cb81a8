"""One send to one channel, blocking (callers run it in a worker thread under a deadline).

Secrets: a channel's text keeps `${VAR}` as written; it is expanded here, just before the send,
and every value it expanded to is masked in the error text, so an error that quotes the URL
(a refused host, an HTTP error page) can be journaled and printed as it is.
"""

from __future__ import annotations

import json
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from core.config.model import NotifyChannel

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MASK = "***"
#: what an error keeps of a receiver's answer: enough to read, never a whole page
MAX_ERROR = 300
INSTALL_APPRISE = (
    "url: channels need Apprise: install the notify extra (uv sync --extra notify, or "
    "pip install 'backfill[notify]'), or use webhook:"
)


class SendError(Exception):
    """A send failed; the text is safe to journal (secrets masked)."""


def expand(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """`text` with every `${VAR}` replaced, and the values it put in (to mask in errors)."""
    secrets: list[str] = []

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env or not env[name]:
            raise SendError(f"the environment variable {name} is not set")
        secrets.append(env[name])
        return env[name]

    return VARIABLE.sub(value, text), secrets


def redact(text: str, secrets: list[str]) -> str:
    # Longest first: a secret that contains another is masked whole.
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def deliver_once(
    channel: NotifyChannel, body: dict[str, Any], env: Mapping[str, str] | None = None
) -> None:
    """Send `body` to `channel` once, within its timeout; SendError says why not."""
    env = os.environ if env is None else env
    target = channel.webhook if channel.webhook is not None else channel.url
    assert target is not None  # the config checks hold exactly one
    url, secrets = expand(target, env)
    try:
        if channel.webhook is not None:
            _post_json(url, body, channel.timeout)
        else:
            _apprise(url, body, channel.timeout)
    except SendError as exc:
        raise SendError(redact(str(exc), secrets)) from None
    except Exception as exc:  # whatever the transport raised, as one line without secrets
        raise SendError(redact(_describe(exc), secrets)) from None


def _post_json(url: str, body: dict[str, Any], timeout: float) -> None:
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "backfill-notify"},
    )
    try:
        # The timeout bounds the connect and every read: a receiver that accepts and never
        # answers costs this long, not forever.
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(MAX_ERROR)
    except urllib.error.HTTPError as exc:
        answer = exc.read(MAX_ERROR).decode("utf-8", errors="replace").strip()
        raise SendError(
            f"HTTP {exc.code} {exc.reason}" + (f": {answer}" if answer else "")
        ) from None
    except urllib.error.URLError as exc:
        raise SendError(f"cannot reach {_host(url)}: {_describe(exc.reason)}") from None
    except TimeoutError:
        raise SendError(f"{_host(url)} did not answer within {timeout:g}s") from None


def _apprise(url: str, body: dict[str, Any], timeout: float) -> None:
    """Apprise blocks and has no overall timeout: the caller's deadline bounds it (the thread
    is abandoned past it); `timeout` is not Apprise's to take."""
    try:
        import apprise  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise SendError(INSTALL_APPRISE) from None
    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise SendError("not a URL Apprise understands (see https://appriseit.com)")
    title = f"backfill: {body['event']}"
    # Apprise says why a send failed only in its log: capture it for the exact error.
    capture = apprise.LogCapture  # untyped in Apprise 2.2
    with capture(level=logging.WARNING, fmt="%(message)s") as log:  # type: ignore[no-untyped-call,unused-ignore]
        delivered = bool(notifier.notify(title=title, body=body["message"]))
        said = [line.strip() for line in log.getvalue().splitlines() if line.strip()]
    if not delivered:
        raise SendError(said[-1] if said else "Apprise could not deliver it")


def _host(url: str) -> str:
    """scheme://host:port only: a path or a query may hold a token."""
    match = re.match(r"^([a-z]+://)(?:[^/?#@]*@)?([^/?#]*)", url)
    return match.group(1) + match.group(2) if match else "the receiver"


def _describe(exc: BaseException | str) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:MAX_ERROR]
