"""The filter loop alone: descriptors above 1024 (a busy daemon has them) work."""

from __future__ import annotations

import os
import resource

from secretd.redact import Redactable, Redactor
from secretd.redactstream import pump

VALUE = b"value-above-1024"


def test_descriptors_above_1024_are_filtered() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    high = [os.dup2(in_r, 1500), os.dup2(out_w, 1501)]
    for fd in (in_r, out_w):
        os.close(fd)
    try:
        os.write(in_w, b"x " + VALUE + b" y")
        os.close(in_w)
        pump(1500, 1501, Redactor([Redactable("v", VALUE)]))
        os.close(1501)
        high.remove(1501)
        with os.fdopen(out_r, "rb") as out:
            assert out.read() == b"x [MASKED] y"
    finally:
        for fd in high:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
