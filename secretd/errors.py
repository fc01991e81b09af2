"""One exception tree, so the CLI has a single boundary that turns failures into one line.

Messages name what is wrong and, where there is one, what to do; they never carry a
secret value (only names, paths, provider URIs without credentials).
"""

from __future__ import annotations

from types import MappingProxyType

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


class SecretdError(Exception):
    """Base of every error secretd raises on purpose.

    Args:
        message: what is wrong, one line, no secret values.
        hint: what the user can do about it; appended after a colon.
    """

    exit_code = 1
    # What a failed request was about, for callers that need more than the line:
    # ``provider``, ``method``, ``path`` where a library's exception was mapped
    # (``_errormap``). Names only, never a value.
    fields: Mapping[str, str] = MappingProxyType({})

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.line())

    def line(self) -> str:
        return f"{self.message}: {self.hint}" if self.hint else self.message



class LikeDockerRun:
    """``with LikeDockerRun():`` around what a command that runs another command (``run``,
    ``compose``, ``swarm``) does itself: exit status 1 is left to the command it runs, so
    a failure of secretd's own that would exit 1 exits 125 (usage errors keep 2), as
    ``docker run``'s do."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        if isinstance(exc, SecretdError) and exc.exit_code == 1:
            exc.exit_code = 125


def printable(text: str) -> str:
    """``text`` with every control and invisible character escaped (``\\x1b``, ``\\n``,
    ``\\u202e``), so a name from a server, an image or a file cannot move the cursor, clear
    the terminal or start a second line that looks like secretd's own."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def close_names(name: str, known: Iterable[str]) -> str | None:
    """A "did you mean" hint for a mistyped name, or ``None`` when nothing is close."""
    import difflib  # only on this error path: it compiles a regular expression on import

    matches = difflib.get_close_matches(name, sorted(set(known)), n=3, cutoff=0.75)
    if not matches:
        return None
    return "did you mean " + " or ".join(repr(match) for match in matches) + "?"


class UsageError(SecretdError):
    """The user's input is wrong: a flag, a reference, a file the user named."""

    exit_code = 2


class SecretNotFound(SecretdError):
    """A provider was reached and has no such secret (or field)."""


class NotInStore(SecretNotFound):
    """The local store has no secret ``name``; callers that may list names suggest close ones.

    Args:
        name: the name asked for.
        hint: what to do; by default, how to create it.
    """

    def __init__(self, name: str, hint: str | None = None) -> None:
        self.name = name
        super().__init__(
            f"secret {name!r} not found in the local store",
            hint or f"create it: printf %s VALUE | secretd secret create {name} -",
        )


class ProviderError(SecretdError):
    """A provider could not be used: unreachable, denied, misconfigured, damaged."""


class AccessDenied(ProviderError):
    """The provider or the daemon's policy refused the caller."""


class StoreError(SecretdError):
    """The encrypted local store cannot be opened or written."""


class MountError(SecretdError):
    """The in-memory secrets mount could not be made, filled or removed."""


class LaunchError(SecretdError):
    """A container runtime failed before or around the command."""


class Untrusted(LaunchError):
    """A daemon socket or a runtime directory that someone other than the caller or root
    controls: used, it would hand secrets to (or take commands from) that user."""

    exit_code = 125


class AuditIncomplete(LaunchError):
    """``secretd audit`` could not read an engine it was asked to audit: 125, so that CI
    tells a broken audit from exit 1, findings."""

    exit_code = 125


class CommandNotFound(LaunchError):
    """The command to run does not exist (docker run's 127)."""

    exit_code = 127


class CommandNotRunnable(LaunchError):
    """The command exists but cannot be executed (docker run's 126)."""

    exit_code = 126
