"""The one place secrets are hidden: every message, log record, report and error goes through it.

:func:`mask_secrets` replaces with ``***``:

* the password of every URL in the text (``scheme://user:PASSWORD@host``),
  up to the last ``@`` of the URL, so a password holding ``@`` is hidden whole;
* ``password=...`` (also ``passwd``, ``pwd``, ``sslpassword``) as in a URL's
  query string, a libpq connection string or keyword arguments;
* ``'password': '...'`` as in a mapping's repr;
* the literal of SQL that sets a password (``PASSWORD '...'``,
  ``IDENTIFIED BY '...'``, ``SET PASSWORD = PASSWORD('...')``).

:func:`mask_url` renders a URL through it. Library code never prints, so
the output paths that call these are the exception root
(:class:`~asyncmigrate.exceptions.AsyncMigrateError` masks its message), the
``asyncmigrate`` loggers (:class:`MaskingFilter`) and SQLAlchemy's SQL echo
once env.py configured logging, the fan-out's results
and reports, the lifespan's messages and the command line (its error line
and its ``--raiseerr`` traceback).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["SQL_ECHO_LOGGER", "MaskingFilter", "get_logger", "mask_secrets", "mask_url"]

#: The logger SQLAlchemy echoes SQL on; env.py's logging set-up gives it the filter as well.
SQL_ECHO_LOGGER = "sqlalchemy.engine.Engine"

MASK = "***"

_KEYS = r"(?:password|passwd|pwd|sslpassword|sslkeypassword)"
_QUOTED = r"'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?"
_SQL_LITERAL = r"[EN]?'(?:[^']|'')*'?|\"(?:[^\"]|\"\")*\"?|\$\$.*?\$\$"
#: One pass, the first alternative that matches at a position wins: a secret is masked once.
_SECRETS = re.compile(
    "|".join((
        # scheme://user:PASSWORD@ -- to the URL's last "@" (a password may hold "@")
        r"(?P<url>[a-zA-Z][\w+.-]*://[^:/@\s]*:)\S*@",
        # 'password': '...'
        rf"(?P<mapping>(?P<q>['\"]){_KEYS}(?P=q)\s*:\s*)(?:{_QUOTED}|[^,}}\s]+)",
        # PASSWORD '...', user@host IDENTIFIED BY '...', [SET] PASSWORD [FOR u] = PASSWORD('...')
        r"(?P<sql>(?:\bPASSWORD(?:\s+FOR\s+\S+?)?|(?:@\S+|\bUSER\s+\S+)\s+IDENTIFIED\s+BY(?:\s+PASSWORD)?)"
        r"(?:\s*=\s*|\s+|(?=\())"
        rf"(?:PASSWORD\s*)?(?:\(\s*)?)(?:{_SQL_LITERAL})",
        # password=... (a query string, a libpq connection string, keyword arguments); a ":"
        # and a space after it end a message's URL ("...?password=x: [Errno 111] ..."), not the value
        rf"(?P<key>\b{_KEYS}\s*=\s*)(?:{_QUOTED}|[^&\s;,)'\"]+?(?=:\s|[&\s;,)'\"]|$))",
    )),
    re.IGNORECASE | re.DOTALL,
)


def _masked(match: re.Match[str]) -> str:
    if match["url"] is not None:
        return f"{match['url']}{MASK}@"
    if match["sql"] is not None:
        return f"{match['sql']}'{MASK}'"
    return f"{match['mapping'] or match['key']}{MASK}"


def mask_secrets(text: str) -> str:
    """Return ``text`` with every password it shows replaced by ``***`` (see the module's list)."""
    return _SECRETS.sub(_masked, text) if text else text


def mask_url(url: str | URL) -> str:
    """Render ``url`` (a string or a SQLAlchemy URL) with its password, also in the query, hidden."""
    from sqlalchemy.engine import URL

    if isinstance(url, URL):
        return mask_secrets(url.render_as_string(hide_password=True))
    return mask_secrets(str(url))


def _mask_args(args: Any) -> Any:
    """Mask the strings among a log record's ``args`` (a tuple or a mapping)."""
    if isinstance(args, tuple):
        return tuple(_mask_value(a) for a in args)
    if isinstance(args, dict):
        return {k: _mask_value(v) for k, v in args.items()}
    return args


def _mask_value(value: Any) -> Any:
    if isinstance(value, (str, BaseException)) or type(value).__name__ == "URL":
        return mask_secrets(str(value))
    return value


class MaskingFilter(logging.Filter):
    """Hide secrets in a log record's message, its arguments and its formatted traceback.

    Attached to every ``asyncmigrate`` logger (:func:`get_logger`), so records
    are masked at every level before any handler -- the application's or the
    command line's -- sees them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_secrets(str(record.msg)) if isinstance(record.msg, str) else record.msg
        if record.args:
            record.args = _mask_args(record.args)
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            import traceback

            record.exc_text = mask_secrets("".join(traceback.format_exception(*record.exc_info)).rstrip())
        return True


_FILTER = MaskingFilter()


def get_logger(name: str) -> logging.Logger:
    """Return the logger ``name`` with the masking filter attached (once)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
