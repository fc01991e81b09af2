"""``secretd audit``'s reports: text (a line per finding and a summary), JSON, and SARIF
2.1.0 for code-scanning uploads. Findings hold no value, so no format can print one."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import __version__
from .audit import Finding, Level
from .errors import printable

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
FINGERPRINT_KEY = "secretd/v1"
# SARIF rules, by what the reason says: a known form, a secret name, a value's structure.
RULES = {
    "known-credential": "A value has the form of a credential (a known token, a private "
    "key, an Authorization value)",
    "secret-name": "A variable whose name says it holds a secret has a value",
    "secret-in-value": "A value carries a secret: a URL with a password, a connection "
    "string or JSON with a secret field",
    "random-value": "A value looks like a random key",
}
SARIF_LEVELS = {Level.HIGH: "error", Level.MEDIUM: "warning", Level.LOW: "note"}


def rule_of(finding: Finding) -> str:
    if finding.level is Level.HIGH:
        return "known-credential"
    if finding.level is Level.LOW:
        return "random-value"
    return "secret-name" if finding.reason.startswith("name ") else "secret-in-value"


def summary(findings: Sequence[Finding]) -> dict[str, int]:
    counts = Counter(finding.level for finding in findings)
    return {"total": len(findings), **{str(level): counts[level] for level in reversed(Level)}}


def as_text(findings: Sequence[Finding]) -> str:
    lines = [
        printable(
            f"{str(f.level).upper():<6} {f.where}: {f.name} ({f.reason}) "
            f"[{f.fingerprint}]; fix: {f.fix}"
        )
        for f in findings
    ]
    counts = summary(findings)
    if counts["total"]:
        by_level = ", ".join(f"{counts[str(level)]} {level}" for level in reversed(Level))
        lines.append(f"{counts['total']} exposed secret(s) found: {by_level}")
    else:
        lines.append("no exposed secrets found")
    return "\n".join(lines) + "\n"


def as_dict(finding: Finding) -> dict[str, Any]:
    return {
        "kind": finding.kind,
        "subject": finding.subject,
        "detail": finding.detail,
        "line": finding.line,
        "where": finding.where,
        "name": finding.name,
        "reason": finding.reason,
        "level": str(finding.level),
        "fix": finding.fix,
        "fingerprint": finding.fingerprint,
    }


def as_json(findings: Sequence[Finding]) -> str:
    report = {"findings": [as_dict(f) for f in findings], "summary": summary(findings)}
    return json.dumps(report, indent=2) + "\n"


def _uri(path: str) -> str:
    posix = Path(path).as_posix()
    return f"file://{quote(posix)}" if posix.startswith("/") else quote(posix)


def _location(finding: Finding) -> dict[str, Any]:
    if finding.file is not None:
        physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(finding.file)}}
        if finding.line:
            physical["region"] = {"startLine": finding.line}
        return {"physicalLocation": physical}
    return {
        "logicalLocations": [
            {"name": finding.subject, "fullyQualifiedName": finding.where, "kind": "resource"}
        ]
    }


def as_sarif(findings: Sequence[Finding]) -> str:
    rule_ids = list(RULES)
    rules = [{"id": rule, "shortDescription": {"text": text}} for rule, text in RULES.items()]
    results = [
        {
            "ruleId": rule_of(f),
            "ruleIndex": rule_ids.index(rule_of(f)),
            "level": SARIF_LEVELS[f.level],
            "message": {"text": f"{f.name} in {f.where} looks like a secret ({f.reason}). "
                        f"Fix: {f.fix}"},
            "locations": [_location(f)],
            "partialFingerprints": {FINGERPRINT_KEY: f.fingerprint},
            "properties": {"level": str(f.level), "variable": f.name, "fix": f.fix},
        }
        for f in findings
    ]  # fmt: skip
    run = {
        "tool": {"driver": {"name": "secretd", "version": __version__, "rules": rules}},
        "results": results,
    }
    report = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(report, indent=2) + "\n"


FORMATS = {"text": as_text, "json": as_json, "sarif": as_sarif}
