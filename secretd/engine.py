"""The run pipeline, the same code in the daemon and in-process:
references -> secrets and configs (broker) -> templates rendered -> mount plan -> runtime
-> supervise -> clean up.

Supervising means waiting for the command while keeping leased secrets alive: each lease
is renewed at 2/3 of its duration; when the provider refuses, the secret is issued anew
and its files are replaced in place. Every lease is given back when the command ends.
Secrets with a refresh interval are kept current by rotation.py, which says what changed;
the engine swaps those files and acts (``--on-change``).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from . import accesslog, ci, mount
from .broker import Broker
from .config import Config
from .errors import MountError, SecretdError, UsageError
from .redactstream import redacting
from .refs import named_file_env, parse_ref
from .rotation import Actions, Rotation, check_spec
from .runtime import load_runtime, runtime_name
from .spec import (
    DEFAULT_MODE,
    SECRET_TEMPLATE_MODE,
    Container,
    RunSpec,
    Secret,
    SecretFile,
    SecretMount,
    SecretRef,
    Stdio,
    TemplateRef,
)

if TYPE_CHECKING:
    from .backends import Provider
    from .templates import Rendered

log = logging.getLogger(__name__)

RETRY_AFTER_FAILURE = 10.0
KEPT_RUNTIMES = ("docker", "podman", "oci")  # detached containers the daemon can keep


def file_env(spec: RunSpec) -> tuple[tuple[str, str], ...]:
    """``<NAME>_FILE=/run/secrets/<target>`` for each secret (the official images' way)."""
    return mount.file_env(spec.secrets, spec.secrets_dir)


class Engine:
    """Runs RunSpecs. One per process; the daemon shares it (and its broker) across clients."""

    def __init__(self, config: Config, broker: Broker | None = None) -> None:
        self.config = config
        self.broker = broker or Broker(config)
        accesslog.configure_from(config)
        # how often a run wakes to see rotate requests (the daemon's ``request()``s)
        self.tick: float | None = None
        # the daemon: runs a detached container's upkeep (leases, rotation) in a thread
        # that outlives the run; without it, a detached container's leases are left alone
        self.keep: Callable[[str, Rotation, Callable[[], None]], None] | None = None

    def with_providers(self, providers: Mapping[str, Provider]) -> Engine:
        """This engine for one run that brings ``providers`` of its own (the daemon: a
        caller's environment for its ``env:`` secrets), in place of the shared ones for
        their schemes, for the whole run: its reads, rotation and lease upkeep."""
        view = copy.copy(self)
        view.broker = self.broker.for_run(providers)
        return view

    def run(
        self,
        spec: RunSpec,
        stdio: Stdio = (0, 1, 2),
        on_start: Callable[[Container], None] | None = None,
        admit: Callable[[SecretMount], None] | None = None,
        watch: Callable[[Rotation], None] | None = None,
    ) -> int:
        """Run ``spec`` to completion and return the command's exit status.

        Args:
            admit: sees the planned files before anything is mounted, and may refuse them
                (the daemon's per-run and per-user limits); leases are given back.
            watch: gets the run's Rotation once the command started (the daemon's
                ``secretd secret rotate`` and ``ps`` reach it through it).

        Raises:
            SecretdError: anything that failed before the command started.
        """
        check_spec(spec)
        chosen = runtime_name(spec, self.config)
        mount.check_type(spec, chosen)
        runtime = load_runtime(chosen, self.config)
        if spec.file_env:
            spec = dataclasses.replace(spec, env=spec.env + file_env(spec))
        named = named_file_env(spec.secrets, spec.secrets_dir)
        spec = dataclasses.replace(spec, env=spec.env + named)
        refs = [mount.inside(ref, spec.secrets_dir) for ref in (*spec.secrets, *spec.configs)]
        secrets = self.broker.resolve(refs)
        read: tuple[list[SecretRef], list[Secret]] = ([], [])  # by templates alone
        detached = handed = False
        kept = self.keep if runtime.name in KEPT_RUNTIMES else None
        if spec.detach and spec.refreshes() and kept is None:
            raise UsageError(
                f"--refresh with -d needs a detached container the daemon keeps: Docker, "
                f"Podman or oci, not {runtime.name}",
                "use --runtime docker, podman or oci with a running 'secretd daemon'",
            )
        try:
            _warn_about_configs(refs, secrets)
            rendered = self._render(spec, refs, secrets, runtime.name, read)
            _register_masks(spec, refs, secrets, read[1], stdio[1])
            planned = mount.plan(refs, secrets, rendered, spec.secrets_dir, spec.mount_type)
            if admit is not None:
                admit(planned)
            launcher = redacting(runtime, spec, [*refs, *read[0]], [*secrets, *read[1]])
            current = [launcher.launch(spec, planned, stdio)]
            detached = spec.detach
            try:  # from here on, an interrupt (Ctrl-C before on_start) removes the command
                _record_run(spec, current[0], refs, secrets, runtime.name)
                log.debug("started %s with secrets %s", current[0].id, [r.name for r in refs])
                if on_start is not None:
                    on_start(current[0])

                def relaunch() -> Container:
                    files = mount.plan(refs, secrets, rendered, spec.secrets_dir, spec.mount_type)
                    current[0] = launcher.launch(spec, files, stdio)
                    if on_start is not None:
                        on_start(current[0])
                    return current[0]

                # the run's secrets and those its templates alone read, kept current
                watched = ([*refs, *read[0]], [*secrets, *read[1]])
                rotation = Rotation(self.broker, *watched, spec.refresh)

                def rerender() -> list[SecretFile]:
                    """The templates rendered from the current values: the files that
                    changed (a template is a function of its inputs)."""
                    before = {f.target: f.value for f in rendered}
                    rendered[:] = self._render(spec, *watched, runtime.name, read)
                    return [f for f in rendered if before.get(f.target) != f.value]

                if watch is not None:
                    watch(rotation)
                actions = Actions(spec, relaunch)
                if detached and kept is not None:
                    upkeep = self._upkeep(current[0], runtime.name, refs, secrets, read)
                    kept(current[0].id, rotation, lambda: upkeep(rotation, actions))
                    handed = True
                    return 0
                templates = rerender if spec.templates else None
                return self._supervise(current, refs, secrets, rotation, actions, templates)
            finally:
                if not handed:
                    current[0].remove()
        finally:
            every = (refs + read[0], secrets + read[1])
            if handed:
                log.debug("the daemon keeps the leases of %s", [r.name for r in every[0]])
            elif detached:
                _leave_leases(*every)
            else:
                self.broker.release(*every)

    def _upkeep(
        self,
        container: Container,
        engine: str,
        refs: list[SecretRef],
        secrets: list[Secret],
        read: tuple[list[SecretRef], list[Secret]],
    ) -> Callable[[Rotation, Actions], None]:
        """What keeps a detached container (in the daemon's thread): renew its leases and
        rotate its files until the engine no longer has it, then give the leases back."""
        from .runtime.engines.listing import UntilGone
        from .runtime.engines.reaper import remove_orphan_mounts_quietly

        removed = getattr(container, "removed", None)  # oci's DetachedContainer
        current: list[Container] = [UntilGone(container, engine, removed=removed)]

        def upkeep(rotation: Rotation, actions: Actions) -> None:
            try:
                self._supervise(current, refs, secrets, rotation, actions)
                log.info("container %s is gone; giving its leases back", container.id[:12])
            finally:
                current[0].remove()
                self.broker.release(refs + read[0], secrets + read[1])
                remove_orphan_mounts_quietly(self.config.runtime_dir)  # its mount, now

        return upkeep

    def _render(
        self,
        spec: RunSpec,
        refs: list[SecretRef],
        secrets: list[Secret],
        runtime: str,
        extra: tuple[list[SecretRef], list[Secret]],
    ) -> list[SecretFile]:
        """Each ``--template`` as a file. A name it reads is this run's ``--secret`` or
        ``--config`` of that name, else resolves as ``--secret NAME`` (``--config NAME``)
        would, into ``extra``: their leases last as long as the run (the rendered file
        holds the credential), but nothing renews or re-issues them."""
        if not spec.templates:
            return []
        from .templates import render

        held = {(ref.kind, ref.source): s for ref, s in zip(refs, secrets, strict=True)}
        named = {(ref.kind, ref.name): s for ref, s in zip(refs, secrets, strict=True)}

        def read(kind: str) -> Callable[[str], bytes]:
            bindings = self.config.secrets if kind == "secret" else self.config.configs

            def value(text: str) -> bytes:
                if (kind, text) in named:
                    return named[(kind, text)].value
                ref = parse_ref(text, bindings, kind)
                found = held.get((kind, ref.source))
                if found is None:
                    found = self.broker.resolve([ref])[0]
                    held[(kind, ref.source)] = found
                    extra[0].append(ref)
                    extra[1].append(found)
                return found.value

            return value

        run = {"name": spec.name or "", "image": spec.image or "", "runtime": runtime}
        owner = _user_ids(spec.user)
        files = []
        for template in spec.templates:
            done = render(
                Path(template.source),
                secret=read("secret"),
                config=read("config"),
                env=dict(spec.env),
                run=run,
                delimiters=template.delimiters,
            )
            files.append(_template_file(mount.inside(template, spec.secrets_dir), done, owner))
        return files

    def _supervise(
        self,
        current: list[Container],
        refs: list[SecretRef],
        secrets: list[Secret],
        rotation: Rotation,
        actions: Actions,
        templates: Callable[[], list[SecretFile]] | None = None,
    ) -> int:
        """Wait for the command (``current[0]``, replaced by a restart), renewing leases
        when due and swapping the files of secrets whose content changed."""
        due = {i: _renew_at(s) for i, s in enumerate(secrets) if s.lease_id and s.lease_duration}
        while True:
            wake = [*due.values(), *filter(None, [rotation.due()])]
            timeout = max(0.0, min(wake) - time.monotonic()) if wake else None
            if self.tick is not None:
                timeout = self.tick if timeout is None else min(timeout, self.tick)
            status = current[0].wait(timeout)
            if status is not None:
                return status
            now = time.monotonic()
            for index in [i for i, at in due.items() if at <= now]:
                due[index] = self._keep_alive(current[0], refs, secrets, index)
            changed = rotation.poll()
            if changed:
                current[0] = self._rotated(
                    current[0], (refs, secrets), rotation, changed, actions, templates
                )

    def _rotated(
        self,
        container: Container,
        mounted: tuple[list[SecretRef], list[Secret]],
        rotation: Rotation,
        changed: list[int],
        actions: Actions,
        templates: Callable[[], list[SecretFile]] | None,
    ) -> Container:
        """Write the changed secrets' files, and the templates that render differently
        now, in one update, then act once. ``changed`` indexes ``rotation``'s secrets:
        the run's mounted ones (``mounted``, brought up to date here), then those only
        its templates read."""
        refs, secrets = mounted
        for i in changed:
            if i < len(secrets):
                secrets[i] = rotation.secrets[i]
        files = [f for i in changed if i < len(refs) for f in mount.files_for(refs[i], secrets[i])]
        names = [rotation.refs[i].name for i in changed]
        if templates is not None:
            try:
                files += templates()
            except SecretdError as exc:
                log.error("rendering the templates again failed; they keep their files: %s", exc)
        try:
            container.update(tuple(files))
        except OSError as exc:
            log.error("cannot replace the files of %s: %s", ", ".join(names), exc.strerror or exc)
            return container
        for i in changed:
            accesslog.record(
                "rotate", secret=rotation.refs[i].name, version=rotation.secrets[i].version,
                run=container.id, action=actions.on_change.action,
            )  # fmt: skip
        return actions.after_change(container, names)

    def _keep_alive(
        self, container: Container, refs: list[SecretRef], secrets: list[Secret], index: int
    ) -> float:
        """Renew one lease, or re-issue the secret and swap its files; returns when next."""
        ref, secret = refs[index], secrets[index]
        try:
            renewed = self.broker.renew(ref, secret)
            if renewed is None:
                log.info("lease of %s cannot be renewed; issuing it anew", ref.name)
                renewed = self.broker.resolve([ref])[0]
                self._swap(container, ref, secret, renewed)
            secrets[index] = renewed
            return _renew_at(renewed)
        except SecretdError as exc:
            log.error("keeping %s alive failed; the command keeps its files: %s", ref.name, exc)
            return time.monotonic() + min(RETRY_AFTER_FAILURE, max(1.0, secret.lease_duration / 3))

    def _swap(self, container: Container, ref: SecretRef, old: Secret, new: Secret) -> None:
        """Put ``new``'s files in place of ``old``'s and give back the lease that is no
        longer used: the old one, or the new one when its files could not be written.

        Raises:
            MountError: the files could not be replaced (a full tmpfs, say).
        """
        try:
            container.update(tuple(mount.files_for(ref, new)))
        except BaseException as exc:
            self.broker.release([ref], [new])
            if isinstance(exc, OSError):
                message = f"cannot replace the files of {ref.name}: {exc.strerror or exc}"
                raise MountError(message) from None
            raise
        self.broker.release([ref], [old])


def _register_masks(
    spec: RunSpec, refs: list[SecretRef], secrets: list[Secret], read: list[Secret], fd: int
) -> None:
    """In a GitHub Actions job, the values go to the runner's log masking before the
    command can print them (ci.py); the job's variables reach a daemon in ``spec.env``."""
    found = ci.detect() or ci.detect(dict(spec.env))
    if found is not None:
        values = [s for r, s in zip(refs, secrets, strict=True) if r.kind == "secret"] + read
        ci.register(found, values, fd)


def _record_run(
    spec: RunSpec, container: Container, refs: list[SecretRef], secrets: list[Secret], runtime: str
) -> None:
    """The access log's line for a started run: which secrets (names, versions) it got."""
    accesslog.record(
        "run",
        run=container.id,
        runtime=runtime,
        image=spec.image,
        name=spec.name,
        uid=os.getuid(),
        user=spec.user,
        mount=spec.mount_type,
        secrets=[
            {"name": ref.name, "version": secret.version, "kind": ref.kind}
            for ref, secret in zip(refs, secrets, strict=True)
        ],
    )


def _leave_leases(refs: list[SecretRef], secrets: list[Secret]) -> None:
    """A detached container outlives this run: revoking its leases now would pull its
    credentials from under it. Nothing renews them either, so they end with their TTL."""
    leased = [ref.name for ref, secret in zip(refs, secrets, strict=True) if secret.lease_id]
    if leased:
        log.warning(
            "leases of %s stay with the detached container, unrenewed, until their TTL ends",
            ", ".join(leased),
        )


def _warn_about_configs(refs: list[SecretRef], secrets: list[Secret]) -> None:
    """A ``file:`` config that looks like a secret is probably one (docs/configs.md)."""
    for ref, secret in zip(refs, secrets, strict=True):
        if ref.kind == "config" and ref.scheme == "file":
            from .exposure import config_warning  # here: a run without configs skips it

            warning = config_warning(ref.name, secret.value)
            if warning:
                log.warning("%s", warning)


def _template_file(
    template: TemplateRef, done: Rendered, owner: tuple[int | None, int | None]
) -> SecretFile:
    """A template that read a secret is a secret: on the secrets tmpfs, 0400 for the run's
    user unless told otherwise; any other is a config (0444, root's unless told)."""
    if done.reads_secrets:
        uid = owner[0] if template.uid is None else template.uid
        gid = owner[1] if template.gid is None else template.gid
        mode = SECRET_TEMPLATE_MODE if template.mode is None else template.mode
        return SecretFile(template.target, done.data, uid, gid, mode)
    mode = DEFAULT_MODE if template.mode is None else template.mode
    return SecretFile(template.target, done.data, template.uid, template.gid, mode, config=True)


def _user_ids(user: str | None) -> tuple[int | None, int | None]:
    """``--user UID[:GID]`` as numbers; a name (resolved inside an image) or no user leaves
    the default owner, which is the run's user in an unprivileged sandbox."""
    uid, _, gid = (user or "").partition(":")
    return (int(uid) if uid.isdigit() else None, int(gid) if gid.isdigit() else None)


def _renew_at(secret: Secret) -> float:
    return time.monotonic() + max(1.0, secret.lease_duration * 2 / 3)
