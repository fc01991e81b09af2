"""A compose project with secretd's mounts: resolve, fill one tmpfs per service, hand
compose a model that binds them, and keep each tmpfs exactly as long as its containers.

Every value is resolved through the broker before any tmpfs is mounted, and every tmpfs
is filled before compose is started, so a bad reference leaves nothing behind. The model
compose gets holds paths, never values: each service's ``secrets:``/``configs:`` became
read-only binds of directories of its tmpfs (the Docker runtime's layout: ``secrets/`` at
``/run/secrets``, a directory per absolute target's directory, bound file by file only
where the image already has that directory), and the top-level ``secrets:``/``configs:``
are gone. The model goes to compose on a memfd (``-f /dev/fd/N``), which leaves stdin to
``run -i`` and ``up``'s attached containers.

Each container carries ``io.secretd.mount`` and ``io.secretd.secrets``, and each tmpfs the
notes of runtime/engines/common.py (owner, and every container using it, one id a line),
so the daemon's reaper, ``secretd run``'s reap and ``secretd compose down`` remove it once
its last container is gone: a tmpfs lives until ``compose down`` (or the destroy of its
containers), not until ``secretd`` exits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import mount
from ..broker import Broker
from ..config import Config
from ..errors import LaunchError, SecretdError
from ..mount.tmpfs import HostMount, remove_host_mount
from ..runtime.engines.common import (
    CONTAINER_NOTE,
    LABEL_MOUNT,
    LABEL_SECRETS,
    open_mount,
    secret_binds,
)
from ..signals import Relay
from ..spec import DEFAULT_SECRETS_DIR, RunSpec, Secret, SecretMount
from . import fresh, reuse
from .model import base_args, interpolation_environment, load
from .plan import KINDS, Plan, Source, Use, in_service, make_plan

if TYPE_CHECKING:
    from ..runtime.engines.docker import DockerEngine

log = logging.getLogger(__name__)

FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


@dataclass(frozen=True)
class Project:
    """``-f``/``-p``/``--project-directory`` and the compose that reads them."""

    compose: tuple[str, ...]
    files: tuple[str, ...] = ()
    name: str | None = None
    directory: str | None = None
    profiles: tuple[str, ...] = ()
    env_files: tuple[str, ...] = ()

    def args(self) -> list[str]:
        """The options every compose command of this project starts with."""
        return base_args(self.files, self.name, self.directory, self.extra())

    def extra(self) -> list[str]:
        """``--profile``/``--env-file`` as compose takes them."""
        return [
            *(arg for p in self.profiles for arg in ("--profile", p)),
            *(arg for f in self.env_files for arg in ("--env-file", f)),
        ]

    def home(self) -> str:
        """The project directory as compose picks it: the flag, else the first file's."""
        if self.directory:
            return self.directory
        if self.files and self.files[0] != "-":
            return os.path.dirname(os.path.abspath(self.files[0]))
        return os.getcwd()


@dataclass
class Loaded:
    """The model as compose read it, secretd's plan for it, and the variables compose
    interpolated ``environment:`` sources with that our own environment lacks."""

    model: dict[str, Any]
    plan: Plan
    extra_env: dict[str, str] = field(default_factory=dict, repr=False)


def load_project(project: Project, config: Config) -> Loaded:
    """Read the project with compose and map it (model.load, plan.make_plan).

    Raises:
        UsageError / ComposeError: before anything is resolved.
    """
    model = load(
        project.files, project.name, project.directory,
        compose=project.compose, extra=project.extra(),
    )  # fmt: skip
    wanted = {
        str(entry["environment"])
        for section in KINDS
        for entry in (model.get(section) or {}).values()
        if isinstance(entry, dict) and "environment" in entry and not entry.get("external")
    }
    extra: dict[str, str] = {}
    if wanted - set(os.environ):
        every = interpolation_environment(
            project.compose, project.files, project.name, project.directory,
            extra=project.extra(),
        )  # fmt: skip
        extra = {name: every[name] for name in wanted - set(os.environ) if name in every}
    bindings = {"secret": config.secrets, "config": config.configs}
    plan = make_plan(model, bindings, {**os.environ, **extra})
    return Loaded(model, plan, extra)


def resolve(loaded: Loaded, broker: Broker) -> dict[tuple[str, str], Secret]:
    """Every source a service uses, each once, through the broker; the first failure
    names its service and gives back whatever was already leased."""
    done: dict[tuple[str, str], Secret] = {}
    try:
        for service, uses in loaded.plan.services.items():
            for use in uses:
                key = (use.source.kind, use.source.name)
                if key in done:
                    continue
                if use.source.content is not None:
                    done[key] = Secret(use.source.name, "content", use.source.content)
                    continue
                try:
                    with _variables(loaded.extra_env):
                        done[key] = broker.resolve([use.source.ref])[0]
                except SecretdError as exc:
                    raise in_service(service, *key, exc) from None
    except BaseException:
        _release(broker, loaded, done)
        raise
    return done


@contextlib.contextmanager
def _variables(extra: Mapping[str, str]) -> Iterator[None]:
    """``.env`` values for ``env:`` references, in our environment only while resolving."""
    os.environ.update(extra)
    try:
        yield
    finally:
        for name in extra:
            os.environ.pop(name, None)


def service_files(uses: Sequence[Use], secrets: Mapping[tuple[str, str], Secret]) -> SecretMount:
    """One service's files, in the Docker runtime's layout."""
    files = tuple(
        item
        for use in uses
        for item in mount.files_for(
            mount.inside(use.ref(), DEFAULT_SECRETS_DIR),
            secrets[(use.source.kind, use.source.name)],
        )
    )
    return SecretMount(files, mount.tmpfs.size_for(files), DEFAULT_SECRETS_DIR)


@dataclass
class Mounted:
    """The tmpfs of each service and the model that binds them (``remove`` takes down the
    new ones only: a reused one still serves its containers)."""

    model: dict[str, Any]
    mounts: dict[str, HostMount]

    def remove(self) -> None:
        for host_mount in self.mounts.values():
            host_mount.remove()


def mount_services(
    loaded: Loaded,
    secrets: Mapping[tuple[str, str], Secret],
    runtime_dir: Path,
    host: str,
) -> Mounted:
    """Fill one tmpfs per service and transform the model; on failure nothing stays."""
    from ..runtime.engines.docker import DockerEngine

    model = {k: v for k, v in loaded.model.items() if k not in KINDS}
    services = {name: dict(body) for name, body in (model.get("services") or {}).items()}
    model["services"] = services
    built = _build_secrets(services.values())
    if built:  # BuildKit reads these itself, at build time only: compose keeps them
        model["secrets"] = {
            k: v for k, v in (loaded.model.get("secrets") or {}).items() if k in built
        }
    done = Mounted(model, {})
    engine = DockerEngine(host)
    try:
        with engine.errors():  # no tmpfs for an engine that cannot run the containers
            engine.client().ping()
        for service, uses in loaded.plan.services.items():
            body = services[service]
            files = service_files(uses, secrets)
            found = reuse.find(runtime_dir, loaded.plan.project, service, files)
            host_mount = found or open_mount(runtime_dir, files, "docker", host, detach=False)
            done.mounts[service] = host_mount
            if found is None:
                reuse.mark(host_mount, loaded.plan.project, service)
            fresh.record(host_mount.path, uses)  # for secret rotate (fresh.py)
            image = str(body.get("image") or f"{loaded.plan.project}-{service}")
            binds = _binds(engine, image, body, host_mount)
            for section in KINDS:
                body.pop(section, None)
            body["volumes"] = [*(body.get("volumes") or []), *binds]
            names = [use.source.name for use in uses if use.source.kind == "secret"]
            body["labels"] = {
                **(body.get("labels") or {}),
                LABEL_MOUNT: str(host_mount.path),
                LABEL_SECRETS: ",".join(dict.fromkeys(names)),
            }
    except BaseException:
        done.remove()
        raise
    finally:
        engine.close()
    return done


def _build_secrets(services: Iterable[Mapping[str, Any]]) -> set[str]:
    """The secrets ``build: secrets:`` names (an image build's, not a container's)."""
    build = [body.get("build") for body in services]
    return {
        str(item.get("source") if isinstance(item, Mapping) else item)
        for entry in build
        if isinstance(entry, Mapping)
        for item in entry.get("secrets") or []
    }


def _binds(
    engine: DockerEngine, image: str, body: Mapping[str, Any], host_mount: HostMount
) -> list[dict[str, Any]]:
    """Compose's long volume syntax for the tmpfs's parts; ``/run/secrets`` only when
    the service has a file there."""
    from ..runtime.engines.docker import _image_directories

    volumes = tuple(
        str(item.get("target", "")) if isinstance(item, Mapping) else str(item)
        for item in body.get("volumes") or []
    )
    spec = RunSpec(image=image, volumes=volumes)
    exists = None
    if host_mount.placed.units:
        try:
            with engine.errors():
                exists = _image_directories(engine.client(), spec, host_mount)
        except LaunchError as exc:  # not pulled or built yet: never hide a directory
            log.debug("cannot look into image %s (%s): binding file by file", image, exc)
            exists = None
    pairs = secret_binds(spec, host_mount, exists)
    if not any(not f.target.startswith("/") for f in host_mount.placed.files):
        pairs = pairs[1:]
    return [
        {
            "type": "bind",
            "source": str(source),
            "target": target,
            "read_only": True,
            "bind": {"create_host_path": False},
        }
        for source, target in pairs
    ]


def run_compose(project: Project, model: Mapping[str, Any], args: Sequence[str]) -> int:
    """Run ``compose -f /dev/fd/N -p NAME [--project-directory DIR] ARGS`` with the
    transformed model on a memfd; its exit status. Ctrl-C reaches compose from the
    terminal; SIGTERM, SIGHUP and SIGQUIT sent to secretd are passed on."""
    fd = os.memfd_create("secretd-compose-model", os.MFD_CLOEXEC)
    try:
        with open(fd, "wb", closefd=False) as fh:
            fh.write(json.dumps(model).encode())
        argv = [*project.compose, "-f", f"/dev/fd/{fd}", "-p", str(model.get("name") or "")]
        argv += ["--project-directory", project.home()]
        argv += [arg for p in project.profiles for arg in ("--profile", p)]
        argv += args
        with _PassSignals() as relay:
            relay.child = subprocess.Popen(argv, pass_fds=[fd])
            return relay.child.wait()
    finally:
        os.close(fd)


class _PassSignals(Relay):
    """SIGTERM, SIGHUP and SIGQUIT passed on to compose; SIGINT ignored: Ctrl-C reaches
    compose from the terminal (the whole foreground group gets it), and secretd waits for
    compose to stop rather than ending first."""

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None

    def _forward(self, signum: int, frame: object) -> None:
        if self.child is not None:
            self.child.send_signal(signum)

    def handlers(self) -> dict[int, Callable[[int, Any], None] | signal.Handlers]:
        return {**dict.fromkeys(FORWARDED, self._forward), signal.SIGINT: signal.SIG_IGN}


def settle(mounted: Mounted, host: str) -> None:
    """After compose: note every container each tmpfs serves (the reaper's notes), and
    remove a tmpfs no container uses."""
    from ..runtime.engines.docker import DockerEngine

    engine = DockerEngine(host)
    try:
        for host_mount in mounted.mounts.values():
            ids = users_of(engine, host_mount.path)
            if ids:
                (host_mount.path / CONTAINER_NOTE).write_text("\n".join(ids) + "\n")
                host_mount.keep()
            else:
                host_mount.remove()
                remove_host_mount(host_mount.path)  # one reused holds no handle
    finally:
        engine.close()


def users_of(engine: DockerEngine, path: Path) -> list[str]:
    """Ids of the containers (any state) bound to the tmpfs at ``path``."""
    with engine.errors():
        found = engine.client().containers(
            all=True, quiet=True, filters={"label": f"{LABEL_MOUNT}={path}"}
        )
    return sorted(item["Id"] for item in found)


def describe(plan: Plan) -> list[tuple[str, ...]]:
    """The plan as table rows: service, kind, name, source, target, owner, mode."""
    rows: list[tuple[str, ...]] = []
    for service, uses in plan.services.items():
        for use in uses:
            rows.append(
                (
                    service, use.source.kind, use.source.name, _shown(use.source), use.target,
                    use.owner, f"{use.mode:04o}",
                )  # fmt: skip
            )
    return rows


def _shown(source: Source) -> str:
    return f"{source.shown} ({source.origin})" if source.origin == "external" else source.shown


def launch(project: Project, config: Config, args: Sequence[str]) -> int:
    """``up``/``run``/``create``/``start``-like commands: resolve and mount everything,
    then run compose on the transformed model; compose's exit status.

    Raises:
        UsageError / ComposeError / MountError: before any container is created, with
            nothing left mounted.
    """
    from ..runtime.engines.reaper import remove_orphan_mounts_quietly
    from .model import require_local_docker

    host = "unix://" + require_local_docker()
    loaded = load_project(project, config)
    broker = Broker(config, suggest=True)
    secrets = resolve(loaded, broker)
    try:
        mounted = mount_services(loaded, secrets, config.runtime_dir, host)
    except BaseException:
        _release(broker, loaded, secrets)
        raise
    status = 1
    try:
        status = run_compose(project, mounted.model, args)
    finally:
        settle(mounted, host)
        remove_orphan_mounts_quietly(config.runtime_dir)  # those of containers compose replaced
        if not any(path.exists() for path in (m.path for m in mounted.mounts.values())):
            _release(broker, loaded, secrets)
        else:
            _leave_leases(secrets)
    return status


def _release(broker: Broker, loaded: Loaded, secrets: Mapping[tuple[str, str], Secret]) -> None:
    keys = [k for k, s in loaded.plan.sources.items() if k in secrets and s.content is None]
    broker.release([loaded.plan.sources[key].ref for key in keys], [secrets[key] for key in keys])


def _leave_leases(secrets: Mapping[tuple[str, str], Secret]) -> None:
    """The containers outlive this command: their leases stay, unrenewed, to their TTL."""
    leased = sorted(name for (_, name), secret in secrets.items() if secret.lease_id)
    if leased:
        log.warning(
            "leases of %s stay with the compose containers, unrenewed, until their TTL ends",
            ", ".join(leased),
        )


def passthrough(project: Project, args: Sequence[str]) -> int:
    """A compose command that needs no secrets (``ps``, ``logs``, ``exec``, ``down``),
    on the user's own files."""
    return subprocess.call([*project.compose, *project.args(), *args])


def down(project: Project, config: Config, args: Sequence[str]) -> int:
    """``compose down``, then remove every secretd tmpfs whose containers are gone."""
    from ..runtime.engines.reaper import remove_orphan_mounts

    status = passthrough(project, ["down", *args])
    remove_orphan_mounts(config.runtime_dir)
    return status
