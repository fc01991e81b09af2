"""Where absolute targets and configs live in the tmpfs, and what a container gets bound."""

from __future__ import annotations

from secretd.mount.tmpfs import CONFIGS, layout
from secretd.spec import SecretFile


def _file(target: str, config: bool = False) -> SecretFile:
    return SecretFile(target, b"v", config=config)


def test_an_update_of_one_absolute_target_writes_where_the_first_fill_put_it() -> None:
    """The bug: names counted by position, so update([b]) wrote a's file."""
    first = layout([_file("/etc/a/key"), _file("/srv/b/key")])
    alone = layout([_file("/srv/b/key")])
    assert alone.files[0].target == first.files[1].target
    assert first.files[0].target != first.files[1].target


def test_targets_of_one_directory_share_it_and_a_missing_directory_is_bound_whole() -> None:
    placed = layout([_file("/etc/app/a.conf", True), _file("/etc/app/b.conf", True)])
    (unit,) = placed.units
    assert unit.target == "/etc/app" and unit.inner.startswith(CONFIGS + "/")
    assert placed.binds(lambda directory: False) == ((unit.inner, "/etc/app"),)
    by_file = placed.binds(lambda directory: True)
    assert sorted(target for _, target in by_file) == ["/etc/app/a.conf", "/etc/app/b.conf"]


def test_a_config_beside_a_secret_lives_with_the_secret_off_the_exec_tmpfs() -> None:
    placed = layout([_file("/etc/app/app.conf", True), _file("/etc/app/db.pass")])
    assert len(placed.units) == 1
    assert not any(f.config for f in placed.files)


def test_a_unit_nested_in_another_gets_its_mount_point_made() -> None:
    placed = layout([_file("/etc/app/a", True), _file("/etc/app/conf.d/b", True)])
    outer = next(u for u in placed.units if u.target == "/etc/app")
    assert f"{outer.inner}/conf.d" in placed.dirs
    binds = placed.binds(lambda directory: False)
    assert [target for _, target in binds] == ["/etc/app", "/etc/app/conf.d"]


def test_targets_in_the_root_directory_are_files_of_their_unit() -> None:
    placed = layout([_file("/app.conf", True)])
    (unit,) = placed.units
    assert placed.files[0].target == f"{unit.inner}/app.conf"
    assert placed.binds(lambda directory: True) == ((f"{unit.inner}/app.conf", "/app.conf"),)
