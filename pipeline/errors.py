"""Errors a user can cause. The CLI prints them as one line and exits with code 2."""


class ClactiveError(Exception):
    """Base class: the message names the cause and the fix."""


class ConfigError(ClactiveError):
    """A config value is unknown, of the wrong type or out of range."""


class DataError(ClactiveError):
    """A data file is missing, truncated or not in the announced format."""


class RunDirError(ClactiveError):
    """The run directory cannot be used as asked."""


class PoolExhaustedError(ClactiveError):
    """Fewer unlabelled examples remain than a round asks for."""


class ResourceError(ClactiveError):
    """The cluster has no room for a part of the run: a scoring pass could not make progress."""


class OracleError(ClactiveError):
    """Answers for a label request are wrong, or the run cannot take them or continue yet."""


def first_line(exc: BaseException) -> str:
    """An exception's first message line, for one-line errors (its type's name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
