"""What ``docker inspect`` and ``/proc/<pid>/environ`` would expose: ``-e`` values that
look like secrets.

A variable is judged by its name and its value together. The name is split into words
(``DB_PASS`` -> DB, PASS; ``AccountKey`` -> ACCOUNT, KEY); a secret word counts unless a
later word says the variable only describes a secret (``TOKEN_TTL``, ``SSH_AUTH_SOCK``,
``DB_PASSWORD_FILE``) or names where one lives (``*_URL``, ``*_HOST``), or the word before
``KEY`` says it is not a credential (``PRIMARY_KEY``, ``PUBLIC_KEY``). An empty, boolean or
path value under a secret name exposes nothing. Values are judged on their own: known token
shapes (AWS, GitHub, Slack, Stripe, JWTs, PEM private keys, ...), ``Authorization`` values,
URLs with a password or a secret query parameter, connection strings and JSON whose fields
have secret names, and long random strings (hex alone is not enough: commit SHAs, digests).

detect-secrets (the optional ``scan`` extra) adds its pattern plugins when installed; the
rules above work without it. Reasons name words and kinds, never a value.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import parse_qsl

# The patterns below are kept as text and compiled on first use (re caches them): a plain
# run checks no value and should not pay ~2 ms compiling them at import.
# The words that make KEY a credential when fused with it (APIKEY, ACCOUNTKEY).
KEY_KINDS = (
    "API ACCESS SECRET PRIVATE SIGNING MASTER ENCRYPTION LICENSE ACCOUNT SHARED HMAC SESSION "
    "CLIENT APP".split()
)
# The secret words in the order a reason names them; each matches a whole name word.
SECRET_WORDS: tuple[tuple[str, str], ...] = (
    ("PASSWORD", r"\w*PASSWORDS?"),
    ("PASSWD", r"\w*PASSWD"),
    ("PASSPHRASE", r"\w*PASSPHRASE"),
    ("PASS", r"PASS"),
    ("PWD", r"\w*PWD"),
    ("SECRET", r"\w*SECRETS?"),
    ("TOKEN", r"\w*TOKENS?"),
    ("KEY", rf"(?:{'|'.join(KEY_KINDS)})?KEYS?"),
    ("CREDENTIAL", r"\w*CREDENTIALS?|CREDS"),
    ("PRIVATE", r"PRIVATE"),
    ("AUTH", r"\w*AUTH(?:ORIZATION|ENTICATION|Z|N)?"),
    ("SALT", r"\w*SALT"),
)
# Names that hold no secret although a word says so: dockle's GPG_KEY (a fingerprint in
# official images) and the shell's working directories.
ACCEPTED_NAMES = frozenset({"GPG_KEY", "GPG_KEYS", "PWD", "OLDPWD"})
# A word after the secret word that makes the variable about a secret, not the secret.
DESCRIBES = frozenset(
    "FILE FILES FILENAME PATH DIR DIRECTORY SOCK SOCKET NAME NAMES ARN TTL EXPIRY EXPIRES "
    "EXPIRATION LIFETIME TIMEOUT DURATION AGE INTERVAL LENGTH LEN SIZE BITS COUNT MAX MIN "
    "LIMIT TYPE METHOD MODE ENABLED DISABLED ENABLE DISABLE REQUIRED PROVIDER ALGORITHM "
    "ALG VERSION REGION FORMAT SCHEME ISSUER AUDIENCE FIELD PREFIX ENV VAR USER "
    "USERNAME LOGIN STORE BACKEND POLICY ROTATION RETRIES PORT ID".split()
)
# A word after the secret word saying the value is an address: judged by the value alone.
ADDRESSES = frozenset("URL URLS URI DSN ENDPOINT HOST HOSTNAME ADDR ADDRESS SERVER DOMAIN".split())
# A word right before the secret word saying the value counts them (MAX_TOKENS=4096).
COUNTS = frozenset({"MAX", "MIN", "NUM"})
# A word right before KEY saying it is not a credential.
NOT_CREDENTIAL_KEYS = frozenset(
    "PUBLIC PUBLISHABLE PRIMARY FOREIGN SORT PARTITION CACHE ROUTING SHARD RANGE HASH LOOKUP "
    "IDEMPOTENCY OBJECT DEDUP MAP HOT SHORTCUT".split()
)
PUBLIC_WORDS = frozenset({"PUBLIC", "PUBLISHABLE"})
NEUTRAL_VALUES = frozenset("true false yes no on off enabled disabled none null".split())
WORD_SPLIT = r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])"

TOKEN_SHAPES: tuple[tuple[str, str], ...] = (
    ("PEM private key", r"-----BEGIN[A-Z ]*PRIVATE KEY(?: BLOCK)?-----"),
    ("AWS access key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    ("GitHub token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})"),
    ("GitLab token", r"\bgl(?:pat|dt|rt|cbt|ptt)-[A-Za-z0-9_\-]{20,}"),
    ("Slack token", r"\bxox[abposre]-[A-Za-z0-9\-]{10,}|\bxapp-\d-[A-Za-z0-9\-]{10,}"),
    ("Slack webhook", r"hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/]{20,}"),
    ("Discord webhook", r"discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_\-]{40,}"),
    ("Stripe key", r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|\bwhsec_[A-Za-z0-9]{24,}"),
    ("JWT", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"),
    ("Google API key", r"\bAIza[0-9A-Za-z_\-]{35}\b"),
    ("npm token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("PyPI token", r"\bpypi-AgE[A-Za-z0-9_\-]{50,}"),
    ("SendGrid key", r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}\b"),
    ("OpenAI/Anthropic key", r"\bsk-(?:proj-|ant-[a-z0-9]+-)?[A-Za-z0-9_\-]{32,}"),
    ("Vault token", r"\bhv[sbr]\.[A-Za-z0-9_\-]{24,}"),
    ("Twilio key", r"\bSK[0-9a-f]{32}\b"),
    ("Mailgun key", r"\bkey-[0-9a-f]{32}\b"),
    ("DigitalOcean token", r"\bdo[opr]_v1_[0-9a-f]{64}\b"),
    ("Shopify token", r"\bshp(?:at|ss|ca|pa)_[0-9a-fA-F]{32}\b"),
    ("Databricks token", r"\bdapi[0-9a-f]{32}\b"),
)
AUTHORIZATION = (
    r"(?i)^(?:authorization:\s*)?(?:basic|bearer|token|digest)\s+[A-Za-z0-9._~+/=\-]{8,}$"
)
# A scheme starts a run of scheme characters and is short, so a long value costs linear time.
URL = r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]{0,31}://[^\s,;'\"<>]+"
USERINFO_PASSWORD = r"[^:]+://[^/?#@\s:]*:[^/?#@\s]+@"
BARE_USERINFO = r"^[^\s:/@]+:[^\s/@]+@[A-Za-z0-9.\-]+"
# key=value fields of connection strings, libpq DSNs, query strings and option lists.
# Keys are bounded so that a long value costs linear time.
FIELD = r"(?:^|[;&?\s,])([A-Za-z_\-][\w .\-]{0,63}?)\s*=\s*(\"[^\"]*\"|'[^']*'|[^;&\s,]*)"
QUERY_SECRETS = frozenset({"sig", "signature", "x-amz-signature", "x-goog-signature"})
RANDOM = r"^[A-Za-z0-9+/=_\-]{20,}$"
HEX = r"^[0-9a-fA-F\-]+$"
RANDOM_BITS = 4.2
# detect-secrets plugins left out: entropy and keyword ones flag plain words in a bare
# value, the rules above already judge names, URLs, public addresses and JWTs (and its JWT
# rule takes quadratic time on a long value). The rest see each line's first 4 KiB only.
SKIPPED_PLUGINS = frozenset(
    {
        "Base64HighEntropyString",
        "HexHighEntropyString",
        "KeywordDetector",
        "IPPublicDetector",
        "JwtTokenDetector",
    }
)
PLUGIN_LINE = 4096


@dataclass(frozen=True)
class Exposure:
    """One ``-e`` variable that looks like a secret, and why (never its value)."""

    name: str
    reason: str

    def warning(self, origin: str = "-e", host: bool = False) -> str:
        """The warning line: where the variable came from (``-e``, ``--env-file F:N``),
        and who can read it (a host command's processes; for an image, ``docker inspect``)."""
        return (
            f"{where(self.name, origin)} looks like a secret ({self.reason}); environment "
            f"values are {readers(host)}. Use --secret {self.name.lower()}."
        )


def where(name: str, origin: str) -> str:
    """``-e NAME``, or ``NAME (--env-file ci.env:3)``."""
    return f"-e {name}" if origin == "-e" else f"{name} ({origin})"


def readers(host: bool) -> str:
    """Who reads an environment value: a host command's processes; also ``docker inspect``
    for a container."""
    if host:
        return "read by the command and every process it starts (/proc/<pid>/environ)"
    return "exposed by 'docker inspect' and /proc/<pid>/environ"


def _words(name: str) -> list[str]:
    return [word.upper() for word in re.split(WORD_SPLIT, name) if word]


def secret_word(name: str) -> str | None:
    """The secret word a name holds (``DB_PASS`` -> ``PASS``), or ``None`` if it holds none
    or only describes or locates a secret (``TOKEN_TTL``, ``PUBLIC_KEY_URL``)."""
    words = _words(name)
    hits = [
        (i, word) for i, w in enumerate(words) for word, rx in SECRET_WORDS if re.fullmatch(rx, w)
    ]
    if not hits:
        return None
    last = max(i for i, _ in hits)
    after = words[last + 1 :]
    # VAULT_SECRET_ID is AppRole's credential, although ID usually names something.
    credential_id = words[last].startswith("SECRET") and after[:1] == ["ID"]
    if not credential_id and any(w in DESCRIBES or w in ADDRESSES for w in after):
        return None
    before = words[last - 1] if last else ""
    if before in COUNTS or (words[last] in ("KEY", "KEYS") and before in NOT_CREDENTIAL_KEYS):
        return None
    return min(hits, key=lambda hit: [w for w, _ in SECRET_WORDS].index(hit[1]))[1]


def _holds_nothing(value: str) -> bool:
    """An empty, boolean or absolute-path value: a switch or a reference, not a secret."""
    text = value.strip()
    return not text or text.lower() in NEUTRAL_VALUES or re.fullmatch(r"/\S*", text) is not None


def name_reason(name: str, value: str | None = None) -> str | None:
    """Why a name marks its value as a secret, or ``None``; a ``value`` that holds nothing
    (see ``_holds_nothing``) cancels the name."""
    word = secret_word(name)
    if word is None or (value is not None and _holds_nothing(value)):
        return None
    return f"name contains {word}"


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _looks_random(text: str) -> bool:
    """Long, mixed-case, with digits, and near-uniform (within 0.9 bits of the most a string
    that long can reach): a key, not a word, an id, a hash or base64 of a file."""
    return (
        re.match(RANDOM, text) is not None
        and re.match(HEX, text) is None
        and not text.startswith("/")
        and re.search(r"[a-z]", text) is not None
        and re.search(r"[A-Z]", text) is not None
        and re.search(r"[0-9]", text) is not None
        and _entropy(text) >= max(RANDOM_BITS, min(math.log2(len(text)), 6) - 0.9)
    )


def _url_reason(value: str) -> str | None:
    # Parsed by hand, not with urlsplit: a malformed URL (``https://u:p@[bad``) still
    # carries its password.
    for match in re.finditer(URL, value):
        url = match.group()
        if re.match(USERINFO_PASSWORD, url):
            return "value is a URL with a password"
        query = url.partition("#")[0].partition("?")[2]
        for key, item in parse_qsl(query):
            if item and (key.lower() in QUERY_SECRETS or name_reason(key, item)):
                return "value is a URL with a secret parameter"
    if re.match(BARE_USERINFO, value):
        return "value holds user:password@host"
    return None


def _fields(value: str) -> Iterator[tuple[str, str]]:
    for key, item in re.findall(FIELD, value):
        yield key.strip(), item.strip("\"'")


def _json_fields(value: str) -> Iterator[tuple[str, Any]]:
    if not value.lstrip().startswith("{"):
        return
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
        return
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                yield str(key), inner
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)


def _structure_reason(value: str) -> str | None:
    """Connection strings (``Password=``, ``AccountKey=``) and JSON with secret fields."""
    for key, item in _json_fields(value):
        if isinstance(item, str) and (reason := name_reason(key, item)):
            return f"value has a field whose {reason}"
    if "=" in value:
        for key, item in _fields(value):
            if reason := name_reason(key, item):
                return f"value has a field whose {reason}"
    return None


def _core_value_reason(value: str, guess: bool) -> str | None:
    for kind, pattern in TOKEN_SHAPES:
        if re.search(pattern, value):
            return f"value matches the {kind} pattern"
    if re.match(AUTHORIZATION, value.strip()):
        return "value is an Authorization header value"
    if reason := _url_reason(value) or _structure_reason(value):
        return reason
    if guess and _looks_random(value.strip()):
        return "value is a long random string"
    return None


@cache
def _plugins() -> tuple[Any, ...] | None:
    try:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    except ImportError:
        return None
    classes: list[Any] = list(get_mapping_from_secret_type_to_class().values())
    return tuple(plugin() for plugin in classes if plugin.__name__ not in SKIPPED_PLUGINS)


def value_reason(value: str, public: bool = False) -> str | None:
    """Why a value looks like a secret, or ``None``. A ``public`` value (its name says so:
    ``STRIPE_PUBLISHABLE_KEY``) is judged by known shapes only, not by randomness."""
    if not value:
        return None
    if reason := _core_value_reason(value, guess=not public):
        return reason
    plugin: Any
    for plugin in _plugins() or ():
        for line in value.splitlines():
            if plugin.analyze_line(filename="-e", line=line[:PLUGIN_LINE], line_number=0):
                return f"value matches the {plugin.secret_type} pattern"
    return None


def variable_name_reason(name: str, value: str) -> str | None:
    """Why a variable's name marks its value as a secret, or ``None`` (also for the names
    known to hold none, ``GPG_KEY``)."""
    return None if name.upper() in ACCEPTED_NAMES else name_reason(name, value)


def variable_value_reason(name: str, value: str) -> str | None:
    """Why a variable's value looks like a secret, or ``None``; under a public name
    (``STRIPE_PUBLISHABLE_KEY``) only known shapes count."""
    return value_reason(value, public=not PUBLIC_WORDS.isdisjoint(_words(name)))


def check_env(env: Iterable[tuple[str, str]], allow: Sequence[str] = ()) -> list[Exposure]:
    """Every variable that looks like a secret, except those the user allowed."""
    found = []
    for name, value in env:
        if name in allow:
            continue
        reason = variable_name_reason(name, value) or variable_value_reason(name, value)
        if reason:
            found.append(Exposure(name, reason))
    return found


CONFIG_LINE = r"[\"']?(?P<key>[\w.-]+)[\"']?\s*[:=]\s*(?P<value>\S.*)"


def config_reason(content: bytes) -> str | None:
    """Why a config's content looks like it holds a secret, or ``None``: configs are shown
    by ``secretd config inspect --pretty``, so a secret belongs in a template instead."""
    text = content.decode("utf-8", errors="replace")
    return value_reason(text) or next(
        (reason for line in text.splitlines() if (reason := _line_reason(line.strip()))), None
    )


def _line_reason(line: str) -> str | None:
    """A line of a config file: ``password: x`` (YAML), ``password = x`` (INI, TOML), or
    a value of a known shape anywhere in it."""
    match = re.fullmatch(CONFIG_LINE, line)
    if match and (reason := name_reason(match["key"], match["value"].strip("\"'"))):
        return f"a line's {reason}"
    return value_reason(line)


def config_warning(name: str, content: bytes) -> str | None:
    """The one-line warning for a config whose content looks like a secret."""
    reason = config_reason(content)
    if reason is None:
        return None
    return (
        f"config {name!r} looks like it holds a secret ({reason}); anyone who may run "
        "'secretd config inspect --pretty' can read a stored config: keep the secret in "
        "a secret and render the file with --template"
    )
