"""``secretd run``'s options, declared once, as data: ``run.py`` builds its click command
from this table, and ``quickrun.py`` reads a plain command line with it without loading
click. Both give the callback the same values (a test compares them on random lines)."""

from __future__ import annotations

from ..spec import DEFAULT_SECRETS_DIR

# What an option does with its occurrences on the command line.
FLAG = "flag"  # no value; True when given
VALUE = "value"  # one value; the last one given wins
MULTIPLE = "multiple"  # one value each time; all of them, in order, as a tuple
SWITCH = "switch"  # --x/--no-x: True, False (the last one given), or the default
# How a value is converted (none: the text as given).
FLOAT = "float"
PATH = "path"  # a pathlib.Path; an existing file must be readable (click.Path's check)


class Flag:
    """One option: its names (``-e``, ``--env``), where its value goes (``dest``), how it is
    given (``kind``), and how ``--help`` shows it. ``off`` is a switch's negative name."""

    __slots__ = (
        "choices", "convert", "default", "dest", "help", "kind", "metavar", "names", "off",
        "show_default",
    )  # fmt: skip

    def __init__(
        self,
        names: tuple[str, ...],
        dest: str,
        kind: str = VALUE,
        help: str = "",  # noqa: A002 - click's own word for it
        *,
        metavar: str | None = None,
        default: object = None,
        show_default: bool = False,
        convert: str | None = None,
        choices: tuple[str, ...] | None = None,
        off: str | None = None,
    ) -> None:
        self.names, self.dest, self.kind, self.help = names, dest, kind, help
        self.metavar, self.default, self.show_default = metavar, default, show_default
        self.convert, self.choices, self.off = convert, choices, off

    def unset(self) -> object:
        """The value when the option is not given."""
        if self.kind == MULTIPLE:
            return ()
        if self.kind == FLAG:
            return False
        return self.default


FLAGS = (
    Flag(
        ("--secret",), "secrets", MULTIPLE, metavar="REF",
        help="Secret to mount (repeatable). SCHEME is local, env, dotenv, file, vault, aws or "
        "ssm (docs/references.md).",
    ),
    Flag(
        ("--config",), "configs", MULTIPLE, metavar="REF",
        help="Config to mount (repeatable): --secret's grammar, Swarm's defaults (target /NAME, "
        "mode 0444; docs/configs.md).",
    ),
    Flag(
        ("--template",), "templates", MULTIPLE, metavar="source=PATH,target=/PATH",
        help="Render a Jinja2 template into a file (repeatable; docs/configs.md).",
    ),
    Flag(("-e", "--env"), "env", MULTIPLE, "Set a variable.", metavar="KEY[=VALUE]"),
    Flag(("--env-file",), "env_file", MULTIPLE, "Read variables.", convert=PATH),
    Flag(("-u", "--user"), "user", VALUE, "Run the command as this user.", metavar="UID[:GID]"),
    Flag(("-w", "--workdir"), "workdir", VALUE, "Working directory of the command.", metavar="DIR"),
    Flag(("--name",), "name", VALUE, "A name for the run (shown by 'secretd ps')."),
    Flag(
        ("--secrets-dir",), "secrets_dir", VALUE, "Mount point.",
        default=DEFAULT_SECRETS_DIR, show_default=True,
    ),
    Flag(("--strict",), "strict", FLAG, "Refuse -e values that look like secrets."),
    Flag(("--allow-env",), "allow_env", MULTIPLE, "Accept -e NAME as not secret.", metavar="NAME"),
    Flag(("--file-env",), "file_env", FLAG, "Also set NAME_FILE=<path> for each secret."),
    Flag(
        ("--runtime",), "runtime", VALUE, "sandbox, oci, docker, podman.",
        default="auto", show_default=True,
    ),
    Flag(("--entrypoint",), "entrypoint", VALUE, "Override the image's entrypoint."),
    Flag(("-v", "--volume"), "volumes", MULTIPLE, "Bind.", metavar="HOST:CTR[:ro]"),
    Flag(("-p", "--publish"), "publish", MULTIPLE, "Publish a port (engines).", metavar="PORTS"),
    Flag(("--label",), "labels", MULTIPLE, "Container label.", metavar="KEY=VALUE"),
    Flag(("--network",), "network", VALUE, "none or host (oci); any network (engines)."),
    Flag(("--hostname",), "hostname", VALUE, "Container host name."),
    Flag(("--restart",), "restart", VALUE, "Restart policy (engines, with -d)."),
    Flag(("--read-only",), "read_only", FLAG, "Mount the image's root filesystem read-only."),
    Flag(("-t", "--tty"), "tty", FLAG, "Allocate a terminal."),
    Flag(("-i", "--interactive"), "interactive", FLAG, "Keep stdin open."),
    Flag(("-d", "--detach"), "detach", FLAG, "Run in the background (images)."),
    Flag(("--rm",), "remove", FLAG, "Remove the container when it exits."),
    Flag(
        ("--refresh",), "refresh", VALUE, metavar="DURATION",
        help="Check every secret for a new version this often (1s or more; docs/rotation.md).",
    ),
    Flag(
        ("--on-change",), "on_change", VALUE, metavar="ACTION", default="none", show_default=True,
        help="When secrets changed: none, signal:NAME, restart or exec:CMD.",
    ),
    Flag(
        ("--stop-signal",), "stop_signal", VALUE, "How restart stops.",
        default="SIGTERM", show_default=True,
    ),
    Flag(
        ("--stop-timeout",), "stop_timeout", VALUE, "Restart's SIGKILL delay.",
        default=10.0, show_default=True, convert=FLOAT,
    ),
    Flag(
        ("--mount-type",), "mount_type", VALUE, choices=("tmpfs", "fuse"),
        help="tmpfs (default) or fuse: files served from secretd's memory (docs/fuse.md).",
    ),
    Flag(("--no-daemon",), "no_daemon", FLAG, "Never use the secretd daemon; run in-process."),
    Flag(
        ("--redact",), "redact", SWITCH, off="--no-redact",
        help="Mask secrets' values in the command's output; default: SECRETD_REDACT, else on "
        "in CI or when output is not a terminal (docs/redaction.md).",
    ),
    Flag(
        ("--no-sandbox",), "no_sandbox", FLAG,
        help="Host commands: no namespace; secrets in a private directory on /dev/shm, "
        "$SECRETD_SECRETS_DIR (docs/ci.md).",
    ),
    Flag(
        ("--clean-env",), "clean_env", FLAG,
        help="Host commands inherit only PATH HOME USER LANG TZ TERM, CI* and the CI marker, "
        "plus -e.",
    ),
)  # fmt: skip
ARGS_METAVAR = "[IMAGE] [--] CMD [ARG...]"


def no_image(args: list[str], positional: int) -> bool:
    """``run -- CMD``, not ``run IMAGE CMD``: the ``--`` that ended the options right
    before the ``positional`` arguments at the end of ``args`` (the words after ``run``).
    A ``--`` that is an option's value (``-e --``, ``--name --``) ends nothing."""
    end = len(args) - positional
    i = 0
    while i < end:
        if args[i] == "--":
            return i == end - 1
        i += 2 if _value_follows(args[i]) else 1
    return False


def _value_follows(arg: str) -> bool:
    """Whether the option word ``arg`` takes the next word as its value, as click reads it:
    ``--env`` does, ``--env=X`` does not; short options run together (``-it``) are read
    letter by letter, and one that takes a value takes the rest of the word, or, at its
    end, the next word (``-ie X``)."""
    if arg.startswith("--"):
        return "=" not in arg and arg in _TAKING
    for at in range(1, len(arg)):
        if f"-{arg[at]}" in _TAKING:
            return at == len(arg) - 1
    return False


_TAKING = frozenset(name for flag in FLAGS if flag.kind in (VALUE, MULTIPLE) for name in flag.names)
