"""The redactor (secretd/redact.py): every form of a value, at every offset, across writes,
inside coloured output; binary passes through; short values are warned about."""

from __future__ import annotations

import base64
import json
import logging
import random
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest

from secretd.redact import MIN_LENGTH, Redactable, Redactor, forms, redact, redactables
from secretd.spec import Secret

MASK = b"[MASKED]"
VALUES = [
    b"hunter2-super-secret",  # plain ASCII
    b'p@ss w/rd+"quoted"&=?\\',  # URL and JSON escape it
    "pässwörd-ünïcode".encode(),  # JSON \u escapes
    bytes(range(200, 236)),  # binary: no JSON form
]
FILLER = b"log line: step ok; "


def _explicit_forms(value: bytes) -> dict[str, bytes]:
    """The forms, computed here independently of the module."""
    found = {
        "raw": value,
        "hex": value.hex().encode(),
        "HEX": value.hex().upper().encode(),
        "quote": quote(value, safe="").encode(),
        "quote_plus": quote_plus(value).encode(),
    }
    try:
        text = value.decode()
    except UnicodeDecodeError:
        pass
    else:
        found["json"] = json.dumps(text)[1:-1].encode()
        found["json-utf8"] = json.dumps(text, ensure_ascii=False)[1:-1].encode()
    return found


def _assert_no_form(output: bytes, value: bytes) -> None:
    for form in forms(value):
        assert form not in output


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
@pytest.mark.parametrize("offset", range(4))
def test_every_form_masked_at_every_offset(value: bytes, offset: int) -> None:
    for kind, form in _explicit_forms(value).items():
        text = FILLER[:offset] + form + FILLER
        assert redact(text, [Redactable("k", value)]) == FILLER[:offset] + MASK + FILLER, kind


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_base64_at_the_three_byte_offsets_inside_a_larger_stream(
    value: bytes, encode: Callable[[bytes], bytes]
) -> None:
    for before in range(6):
        for after in range(4):
            encoded = encode(b"\x00\xffprefix"[:before] + value + b"suffix"[:after])
            out = redact(b"data=" + encoded + b"\n", [Redactable("k", value)])
            assert MASK in out
            _assert_no_form(out, value)
            # every character made of the value's bits alone is masked; at most one
            # character each side mixes its bits with the neighbours'
            first, last = -(-8 * before // 6), 8 * (before + len(value)) // 6
            assert out == b"data=" + encoded[:first] + MASK + encoded[last:] + b"\n"


def test_each_line_of_a_multi_line_value() -> None:
    value = b"-----BEGIN KEY-----\nMIIEvQIBADANBgkq\nshort\n-----END KEY-----\n"
    out = redact(b"the key: MIIEvQIBADANBgkq and -----END KEY----- ok", [Redactable("pem", value)])
    assert out == b"the key: [MASKED] and [MASKED] ok"
    assert redact(b"x short y", [Redactable("pem", value)]) == b"x short y"  # < 8 bytes


@pytest.mark.parametrize("value", VALUES[:2], ids=range(2))
def test_split_across_two_writes_at_every_point(value: bytes) -> None:
    for form in _explicit_forms(value).values():
        text = b"before " + form + b" after\n"
        for split in range(len(text) + 1):
            redactor = Redactor([Redactable("k", value)])
            out = redactor.write(text[:split]) + redactor.write(text[split:]) + redactor.flush()
            assert out == b"before [MASKED] after\n", split


def test_inside_ansi_coloured_output_other_bytes_identical() -> None:
    value = VALUES[0]
    text = b"\x1b[1;31merror:\x1b[0m token=\x1b[33m" + value + b"\x1b[0m\r\n\x1b[2K"
    assert redact(text, [Redactable("k", value)]) == text.replace(value, MASK)


def test_binary_with_nuls_passes_through_byte_identical() -> None:
    rng = random.Random(15)
    data = bytes(rng.getrandbits(8) for _ in range(200_000)) + bytes(1000)
    redactor = Redactor([Redactable("k", value) for value in VALUES])
    out, pos = bytearray(), 0
    while pos < len(data):
        step = rng.randint(1, 5000)
        out += redactor.write(data[pos : pos + step])
        pos += step
    assert bytes(out + redactor.flush()) == data


def test_no_values_passes_everything_at_once() -> None:
    redactor = Redactor([])
    assert redactor.write(b"partial") == b"partial"
    assert redactor.flush() == b""


def test_short_values_warned_once_by_name_and_not_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "secretd")
    values = [Redactable("pin", b"1234567"), Redactable("api_key", VALUES[0])]
    out = redact(b"pin 1234567 key " + VALUES[0], values)
    assert out == b"pin 1234567 key [MASKED]"
    assert [r.getMessage() for r in caplog.records] == [
        f"secret 'pin' is shorter than {MIN_LENGTH} bytes: not redacted"
    ]


def test_opt_out_is_not_redacted_nor_warned(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "secretd")
    values = [Redactable("public", VALUES[0], redact=False), Redactable("pin", b"12", False)]
    assert redact(VALUES[0], values) == VALUES[0]
    assert caplog.records == []


def test_held_back_at_most_the_longest_form_minus_one() -> None:
    value = VALUES[1]
    redactor = Redactor([Redactable("k", value)])
    longest = max(map(len, forms(value)))
    assert redactor.longest == longest
    for byte in b"x" * (3 * longest):
        redactor.write(bytes([byte]))
        assert redactor.held <= longest - 1
    assert redactor.held == longest - 1
    assert redactor.flush() == b"x" * (longest - 1)
    assert redactor.held == 0


def test_a_newline_releases_what_no_form_can_span() -> None:
    redactor = Redactor([Redactable("k", VALUES[0])])
    assert redactor.write(b"a whole line\n") == b"a whole line\n"
    assert redactor.held == 0


def test_after_an_idle_flush_the_rest_of_a_value_is_still_masked() -> None:
    value = VALUES[0]
    redactor = Redactor([Redactable("k", value)])
    shown = redactor.write(b"> " + value[:5]) + redactor.flush()
    assert shown == b"> " + value[:5]
    assert redactor.write(value[5:] + b" <\n") == MASK + b" <\n"


def test_overlapping_values_become_one_mask_with_nothing_left() -> None:
    first, second = b"AAAAsecret-one-12345", b"12345-second-secretBBBB"
    text = b"[AAAAsecret-one-12345-second-secretBBBB]"
    assert redact(text, [Redactable("a", first), Redactable("b", second)]) == b"[[MASKED]]"


def test_streaming_equals_one_write() -> None:
    rng = random.Random(7)
    values = [Redactable("a", VALUES[0]), Redactable("b", VALUES[1])]
    pieces = [VALUES[0], quote(VALUES[1]).encode(), b"noise ", b"\n", VALUES[0].hex().encode()]
    text = b"".join(rng.choice(pieces) for _ in range(300))
    redactor = Redactor(values)
    out, pos = bytearray(), 0
    while pos < len(text):
        step = rng.randint(1, 40)
        out += redactor.write(text[pos : pos + step])
        pos += step
    assert bytes(out + redactor.flush()) == redact(text, values)


def test_replacement_is_configurable() -> None:
    assert redact(b"k=" + VALUES[0], [Redactable("k", VALUES[0])], b"***") == b"k=***"


def test_tree_secrets_give_one_value_per_file_and_reprs_hide_values() -> None:
    tree = Secret("certs", "1", b"", tree={"crt": b"certificate-body", "key": b"private-key-body"})
    found = redactables([tree, Secret("db", "1", b"db-password-1")])
    assert [item.name for item in found] == ["certs/crt", "certs/key", "db"]
    assert "private-key-body" not in repr(found)


def test_a_long_multi_line_value_is_masked_whole_and_line_by_line() -> None:
    rng = random.Random(3)
    lines = [base64.b64encode(rng.randbytes(48)) for _ in range(300)]  # a 19 KiB PEM body
    value = b"\n".join([b"-----BEGIN CERTIFICATE-----", *lines, b"-----END CERTIFICATE-----"])
    text = b"cert:\n" + value + b"\nline " + lines[7] + b"\n" + value.hex().encode() + b"\n"
    out = redact(text, [Redactable("cert", value)])
    assert out == b"cert:\n[MASKED]\nline [MASKED]\n[MASKED]\n"


def test_long_values_and_values_past_the_budget_are_masked_by_their_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every form of a value is about ten times its size in patterns: a 500 KiB secret
    (or sixteen of 64 KiB) would make an automaton of many megabytes per run. (The limits
    are scaled down 8x here, to keep the test quick.)"""
    monkeypatch.setattr("secretd.redact.MAX_LENGTH", 8192)
    monkeypatch.setattr("secretd.redact.MAX_TOTAL", 32768)
    rng = random.Random(5)
    big = b"\n".join(base64.b64encode(rng.randbytes(48)) for _ in range(190))  # 12 KiB
    many = [rng.randbytes(7680) for _ in range(7)]
    warned: list[str] = []
    redactor = Redactor(
        [Redactable("big", big), *(Redactable(f"m{i}", v) for i, v in enumerate(many))],
        warn=warned.append,
    )
    assert warned == [
        "secret 'big' is longer than 8192 bytes: only its lines are redacted",
        "secret 'm4' takes the secrets past 32768 bytes: binary, not redacted",
        "secret 'm5' takes the secrets past 32768 bytes: binary, not redacted",
        "secret 'm6' takes the secrets past 32768 bytes: binary, not redacted",
    ]

    def shown(data: bytes) -> bytes:
        return redactor.write(data) + redactor.flush()

    assert shown(b"k " + big.splitlines()[9] + b"\n") == b"k [MASKED]\n"
    assert shown(many[0].hex().encode() + b"\n") == b"[MASKED]\n"  # within the budget
    assert shown(many[6].hex().encode()) == many[6].hex().encode()  # past it
