"""A template is a function of its inputs: when a secret it reads rotates, the file is
rendered again and swapped in the same batch as the secret's own file (one action), both
for a secret the run mounts and for one only the template reads."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.rotation.conftest import Follower, reporter, settle
from tests.rotation.test_sandbox import create, rotate
from tests.support.waiting import wait_for

pytestmark = pytest.mark.root

Start = Callable[..., subprocess.Popen[str]]


def test_a_template_reading_a_rotated_secret_is_rendered_again_in_the_same_batch(
    secretd, store_env, background: Start, tmp_path: Path
) -> None:
    create(secretd, "t1")
    (tmp_path / "app.tmpl").write_text('key={{ secret("api_key") }}')
    plain, rendered = Follower(tmp_path / "plain.log"), Follower(tmp_path / "rendered.log")
    readers = f"({reporter(plain.log)}) & ({reporter(rendered.log, '/etc/app/app.conf')}) &"
    background(
        "run", "--no-daemon", "--on-change", "signal:HUP",
        "--secret", "source=api_key,refresh=1s",
        "--template", f"source={tmp_path}/app.tmpl,target=/etc/app/app.conf",
        "--", "sh", "-c", f"trap : HUP; {readers} while :; do wait; done",
    )  # fmt: skip
    rendered.wait_value("key=t1")
    rotate(secretd, "t2")
    rendered.wait_value("key=t2")
    plain.wait_value("t2")
    wait_for(lambda: rendered.lines().count("HUP") >= 1, f"a HUP in {rendered.lines()}")
    settle(1.5)  # a second action would follow within a poll interval (1 s)
    assert rendered.lines().count("HUP") == 1  # one batch: the secret and its template


def test_a_secret_only_a_template_reads_is_polled_and_rendered_again(
    secretd, store_env, background: Start, tmp_path: Path
) -> None:
    create(secretd, "only-1")
    (tmp_path / "app.tmpl").write_text('key={{ secret("api_key") }}')
    rendered = Follower(tmp_path / "rendered.log")
    background(
        "run", "--no-daemon", "--refresh", "1s",
        "--template", f"source={tmp_path}/app.tmpl,target=/etc/app/app.conf",
        "--", "sh", "-c", reporter(rendered.log, "/etc/app/app.conf"),
    )  # fmt: skip
    rendered.wait_value("key=only-1")
    rotate(secretd, "only-2")
    rendered.wait_value("key=only-2")
