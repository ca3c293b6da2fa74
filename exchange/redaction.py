"""No secret in any log line: a registry of the secret values this process knows, and ONE logging
filter that masks them, in every form a URL gives them, in every record of every logger.

What is a secret:

- the value of every environment variable a source names (``token_env``, and any other
  ``*_env`` key of a source's settings), registered when the configuration is loaded
  (:func:`register_config_secrets`) and read again from the environment when a record is
  filtered, so a token set after the config was read is still masked;
- the password of the database URL;
- a partner token the process issued (``exchange partner add``);
- any ``token=`` value of a query string: the partner tokens a feed server receives are not known
  (only their hashes are stored), and uvicorn's access log prints the query string.

A secret is masked as ``***`` wherever it appears: raw, percent-encoded once or twice (upper- or
lower-case hex, ``+`` for a space), or any mix of those, so ``?token=`` (httpx), a token in a
URL path (Partner Hub feeds) and ``urlencode``'s form (the ArcGIS query) are all caught. It is
masked by value, not by the name of a parameter.

Where: :func:`install_log_redaction` attaches :class:`RedactSecrets` to every handler of every
logger (the one ``logging.basicConfig`` gives the root, uvicorn's own when it has any, and
``logging.lastResort``), which sees every record whatever logger it was made on, and to every
logger that exists (the root, ``exchange``, ``adapters``, ``httpx``, ``httpcore``, ``uvicorn``,
``uvicorn.access``, ``uvicorn.error``, ``apscheduler``, ...), so a record of those is masked
before any handler added later (a test's) sees it. A filter on a logger alone would not do: it
does not see the records of the logger's children (``httpcore.http11``,
``apscheduler.scheduler``). The CLI installs it with its logging set-up, the daemon and the feed
server when they start; installing again is harmless.

Adapters never import this module (they may import only the model, errors and config types); they
keep masking their own error messages with :func:`adapters.http.redact_location`.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from exchange.config import Config, SourceConfig

__all__ = [
    "MASK",
    "RedactSecrets",
    "install_log_redaction",
    "redact",
    "redact_query_tokens",
    "redact_record",
    "register_config_secrets",
    "register_secret",
    "register_secret_env",
    "register_source_secrets",
    "register_url_password",
]

MASK = "***"

#: loggers that carry URLs, requests or the tracebacks of polls; they get the filter even before
#: they exist (several are created only when their library is first used, after the set-up)
LOGGERS = (
    "", "exchange", "adapters", "httpx", "httpcore", "httpcore.connection", "httpcore.http11",
    "httpcore.http2", "httpcore.proxy", "uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi",
    "apscheduler", "apscheduler.scheduler", "apscheduler.executors.default",
)



class _Registry:
    """The known secret values and the environment variables holding more, and the pattern of all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._env_names: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._compiled_for: frozenset[str] = frozenset()

    def add_value(self, value: str | None) -> None:
        if value and value.strip():
            with self._lock:
                self._values = self._values | {value}

    def add_env(self, name: str) -> None:
        if name:
            with self._lock:
                self._env_names = self._env_names | {name}

    def pattern(self) -> re.Pattern[str] | None:
        """One pattern matching every known secret in any encoding; None while there is none."""
        values = self._values
        for name in self._env_names:
            value = os.environ.get(name)
            if value and value.strip() and value not in values:
                self.add_value(value)  # a value once seen stays a secret, even after the variable changes
                values = self._values
        if values != self._compiled_for:
            with self._lock:
                if values != self._compiled_for:
                    self._pattern = _compile(values)
                    self._compiled_for = values
        return self._pattern


_registry = _Registry()


def register_secret(value: str | None) -> None:
    """Mask ``value`` in every log line of this process from now on (an empty value is ignored)."""
    _registry.add_value(value)
    if value and "%" in value:
        _registry.add_value(unquote(value))


def register_secret_env(name: str) -> None:
    """Mask the value of the environment variable ``name``, as it is whenever a record is logged."""
    _registry.add_env(name)


def register_url_password(url: str | None) -> None:
    """Mask the password of a URL (the database's), decoded, in every encoding."""
    if not url:
        return
    try:
        password = urlsplit(url).password
    except ValueError:
        return
    if password:
        register_secret(unquote(password))


def register_source_secrets(source: SourceConfig) -> None:
    """Every environment variable a source names (``token_env`` and any other ``*_env`` key)."""
    for key, value in source.settings.items():
        if key.endswith("_env") and isinstance(value, str):
            register_secret_env(value)


#: the environment variables outbound HTTP takes a proxy from (lower-case too): their passwords are secrets
PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")


def register_config_secrets(config: Config) -> None:
    """The secrets a configuration points at: its sources' variables, the database password, and the
    password of the outbound proxy (``[http] proxy`` or ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY``)."""
    for source in config.sources:
        register_source_secrets(source)
    register_url_password(config.database_url)
    register_url_password(config.http.proxy)
    for name in PROXY_VARIABLES:
        register_url_password(os.environ.get(name))
        register_url_password(os.environ.get(name.lower()))


def redact_query_tokens(text: str) -> str:
    """Mask ``token=`` values of query strings (the partner tokens a feed server receives), however
    the name is spelled: the server reads it after percent-decoding, so ``%74oken=`` is a token too.

    >>> redact_query_tokens("/feeds/cifs.xml?a=1&token=s3cret&b=2")
    '/feeds/cifs.xml?a=1&token=***&b=2'
    >>> redact_query_tokens("/feeds/cifs.xml?%74oken=s3cret&TO%4BEN=x")
    '/feeds/cifs.xml?%74oken=***&TO%4BEN=***'

    A query inside a parameter (``/login?next=/map%3Ftoken%3Ds3cret%26a%3D1``) is masked too:

    >>> redact_query_tokens("/login?next=/map%3Ftoken%3Ds3cret%26a%3D1")
    '/login?next=/map%3Ftoken%3D***%26a%3D1'

    OAuth's ``access_token``, API keys, a ``=`` percent-encoded, and a token-shaped path segment:

    >>> redact_query_tokens("/api/events?access_token=abc&api_key=def"), redact_query_tokens("/x?token%3Dabc")
    ('/api/events?access_token=***&api_key=***', '/x?token%3D***')
    >>> redact_query_tokens('"GET /feeds/Up2e41bWq0J8Kk3n4Xr5Ts6Vu7Wx8Yz9Ab0Cd1Ef2G HTTP/1.1" 404')
    '"GET /feeds/*** HTTP/1.1" 404'

    A token-shaped value under any other name, with none, quoted or cut short (a partner's typo) is
    masked as well:

    >>> redact_query_tokens('"GET /feeds/cifs.xml?t0ken=Up2e41bWq0J8Kk3n4Xr5Ts6Vu7Wx8Yz9Ab0Cd1Ef2G&a=1 HTTP/1.1" 401')
    '"GET /feeds/cifs.xml?t0ken=***&a=1 HTTP/1.1" 401'
    >>> redact_query_tokens("/feeds/cifs.xml?Up2e41bWq0J8Kk3n4Xr5Ts6V /feeds/cifs.xml?t=%22Up2e41bWq0J8Kk3n4Xr5%22")
    '/feeds/cifs.xml?*** /feeds/cifs.xml?t=%22***%22'

    In a path, a run that mixes upper and lower case as a token does, whatever is around it; ids stay:

    >>> redact_query_tokens("/feeds/Up2e41bWq0J8Kk3n4Xr5Ts6V.xml /feeds/cifs.xml%3Btoken%3DUp2e41bWq0J8Kk3n4Xr5Ts")
    '/feeds/***.xml /feeds/cifs.xml%3Btoken%3D***'
    >>> redact_query_tokens("/api/events/waze:alert:2e2a71c3-b36b-43e3-a3b2-62eef6bcf70e")
    '/api/events/waze:alert:2e2a71c3-b36b-43e3-a3b2-62eef6bcf70e'
    >>> redact_query_tokens("moved to /srv/.www.sets/adopted-20261128T015513")
    'moved to /srv/.www.sets/adopted-20261128T015513'

    A message going on after the URL keeps its colon; a colon inside the value is masked with it:

    >>> redact_query_tokens("cannot read http://dot.example/wz?key=s3cret: no answer"), redact_query_tokens("?key=a:b")
    ('cannot read http://dot.example/wz?key=***: no answer', '?key=***')
    """
    if "=" in text or "%3" in text:
        text = _QUERY_TOKEN.sub(r"\1" + MASK, text)
    if "?" in text:
        text = _QUERY_STRING.sub(lambda query: _TOKEN_RUN.sub(r"\1" + MASK, query.group()), text)
    if "/" not in text:
        return text
    return _TOKEN_RUN.sub(_mixed_run, _PATH_TOKEN.sub(MASK, text))


def _mixed_run(found: re.Match[str]) -> str:
    """A run of 20 or more URL-safe characters in a path masked when it mixes upper and lower case (two of
    each at least), as a random token does (``/feeds/<token>.xml``, ``/feeds/cifs.xml;token=<token>``, one
    cut short); ids (hex, lower case), file names and times (``adopted-20261128T015513``) stay readable."""
    run = found.group()
    core = run[3:] if found.group(1) else run
    if sum(c.isupper() for c in core) >= 2 and sum(c.islower() for c in core) >= 2:
        return (found.group(1) or "") + MASK
    return run


def redact(text: str) -> str:
    """``text`` with every known secret (in any URL encoding) and every query ``token=`` masked."""
    pattern = _registry.pattern()
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return redact_query_tokens(text)


class RedactSecrets(logging.Filter):
    """Masks the secrets of a record (its message, arguments, traceback, stack); drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> None:
    """Rewrite ``record`` in place so that no known secret is left in what any formatter prints.

    A record without a secret is left exactly as it is. Otherwise the arguments are masked one by
    one, keeping their shape (uvicorn's access formatter unpacks them); when the message still
    holds a secret after that (say, in a ``%r`` of a container), the formatted and masked message
    replaces ``msg`` and ``args`` becomes None. A traceback holding a secret is kept as masked
    text (``exc_text``) and the exception itself dropped, so no formatter renders it again.
    """
    try:
        message = record.getMessage()
    except Exception:  # logging would print msg and args on its error path: print them masked instead
        record.msg, record.args = redact(f"{record.msg} {record.args!r}"), None
    else:
        if redact(message) != message:
            if isinstance(record.args, tuple):
                record.args = tuple(_redact_arg(arg) for arg in record.args)
            elif isinstance(record.args, Mapping):
                record.args = {key: _redact_arg(arg) for key, arg in record.args.items()}
            if isinstance(record.msg, str):
                record.msg = redact(record.msg)
            try:
                clean = redact(record.getMessage()) == record.getMessage()
            except Exception:
                clean = False
            if not clean:
                record.msg, record.args = redact(message), None
    if record.exc_info and record.exc_info[1] is not None:
        text = record.exc_text or _TRACEBACKS.formatException(record.exc_info)
        masked = redact(text)
        if masked != text:
            record.exc_text, record.exc_info = masked, None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


_TRACEBACKS = logging.Formatter()


def _redact_arg(arg: Any) -> Any:
    if isinstance(arg, str):
        return redact(arg)
    if arg is None or isinstance(arg, int | float):
        return arg
    shown = str(arg)  # an httpx.URL, an exception, a path: printed with %s
    masked = redact(shown)
    return arg if masked == shown else masked


_FILTER = RedactSecrets()


def install_log_redaction() -> None:
    """Attach the filter to every handler and every logger there is now (and the known loggers).

    Call it after handlers are set up (``logging.basicConfig``, uvicorn's configuration): a
    handler added later gets the records of the known loggers masked, but not those of others.
    """
    loggers: list[logging.Logger] = [logging.getLogger(name) for name in LOGGERS]
    loggers.extend(
        logger for logger in list(logging.root.manager.loggerDict.values()) if isinstance(logger, logging.Logger)
    )
    handlers: list[logging.Handler] = [logging.lastResort] if logging.lastResort is not None else []
    for logger in loggers:
        _attach(logger)
        handlers.extend(logger.handlers)
    for handler in handlers:
        _attach(handler)


def _attach(target: logging.Filterer) -> None:
    if not any(isinstance(existing, RedactSecrets) for existing in target.filters):
        target.addFilter(_FILTER)


def _compile(values: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern matching each value raw, percent-encoded (once or twice, any hex case, ``+`` for a
    space) or any mix of those, longest value first. A value shorter than ``_SHORT_SECRET`` is matched
    only where no letter or digit adjoins it: a test token ``x`` masked inside every word would make
    the log unreadable ("ne***t poll") and tell where the letter x stood."""
    alternatives = []
    for value in sorted(values, key=len, reverse=True):
        pattern = "".join(_char_pattern(char) for char in value)
        alternatives.append(f"(?<![A-Za-z0-9]){pattern}(?![A-Za-z0-9])" if len(value) < _SHORT_SECRET else pattern)
    return re.compile("|".join(alternatives)) if alternatives else None


#: secrets shorter than this are masked only where they stand alone
_SHORT_SECRET = 8


def _char_pattern(char: str) -> str:
    options = [re.escape(char)]
    try:
        encoded = char.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        encoded = b""
    if encoded:
        options.append("".join(f"%(?:25)?{_hex(byte)}" for byte in encoded))
    if char == " ":
        options.append(r"\+")
    return f"(?:{'|'.join(options)})"


def _hex(byte: int) -> str:
    return "".join(f"[{digit}{digit.lower()}]" if digit.isalpha() else digit for digit in f"{byte:02X}")


#: ``token=`` in a query, its name in any case and any percent-encoding of its letters
def _any_case(word: str) -> str:
    return "".join(f"(?:{_char_pattern(char)}|{_char_pattern(char.upper())})" for char in word)


#: query parameters that carry credentials by convention (ours is ``token``; clients also send OAuth's
#: ``access_token`` and API keys), their names in any case and any percent-encoding
_SECRET_PARAMETERS = ("access_token", "token", "api_key", "apikey", "key")
_QUERY_TOKEN = re.compile(
    r"((?:^|[?&;]|%3[Ff]|%26)"
    + "(?:" + "|".join(_any_case(name) for name in _SECRET_PARAMETERS) + ")"
    # a ':' ends the value where a message goes on after it ("cannot read URL?key=...: no answer")
    + r"(?:=|%3[Dd]))(?:[^&\s\"'%:]|:(?=[^&\s\"'])|%(?!26))*"
)
#: a URL path segment shaped like one of our tokens (43 URL-safe characters; 32 or more here): a
#: partner who puts the token in the path (``/feeds/<token>``, Waze's own URL style) is answered 404,
#: and the access log must not keep it. Event ids hold ':' and are not caught.
_PATH_TOKEN = re.compile(r"(?<=/)[A-Za-z0-9_-]{32,}(?=[/?#\s\"']|$)")
#: a query string (up to the end of the URL) and, in it, any run of URL-safe characters long enough to be
#: a token or most of one, whatever surrounds it: ``?x=<token>``, ``?t0ken=<token>``, a bare ``?<token>``,
#: a quoted ``?t=%22<token>%22``, a token cut short by a copy and paste (a partner's typo is answered
#: 401, and the access log must not keep the token it carried). Event ids and times are shorter.
_QUERY_STRING = re.compile(r"\?[^\s\"'#]+")
_TOKEN_RUN = re.compile(r"(%[0-9A-Fa-f]{2})?(?<!%)(?<!%[0-9A-Fa-f])[A-Za-z0-9_-]{20,}")  # an escape before it stays
