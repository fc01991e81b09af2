"""``secret rotate`` looking for compose tmpfs finds none where there are none, and
skips what is not one (no note, a bad note), without touching anything."""

from __future__ import annotations

from pathlib import Path

from secretd.broker import Broker
from secretd.compose import fresh
from secretd.config import load_config


def test_no_runtime_dir_a_missing_note_and_a_bad_note_update_nothing(
    tmp_path: Path, clean_environ: dict[str, Path]
) -> None:
    broker = Broker(load_config())
    assert fresh.rotated(tmp_path / "absent", {"api_key"}, broker) == []
    mounts = tmp_path / "runtime" / "mounts"
    (mounts / "plain").mkdir(parents=True)
    (mounts / "bad").mkdir()
    (mounts / "bad" / fresh.REFS_NOTE).write_text('[{"name": 1}]')
    (mounts / "bad2").mkdir()
    (mounts / "bad2" / fresh.REFS_NOTE).write_text("not json")
    assert fresh.rotated(tmp_path / "runtime", {"api_key"}, broker) == []
    assert sorted(p.name for p in (mounts / "bad").iterdir()) == [fresh.REFS_NOTE]
