"""``secretd image``: load, list and remove images of the integrated oci runtime."""

from __future__ import annotations

from pathlib import Path

import click

from . import AppContext
from .output import echo_table


@click.group()
def image() -> None:
    """Manage images for the oci runtime (shaped like 'docker image')."""


@image.command("load")
@click.option("-i", "--input", "source", required=True,
              type=click.Path(exists=True, path_type=Path),
              help="A 'docker save' archive, or an OCI image layout (directory or tar).")
@click.option("--name", help="Store the image under this name (default: the file's own).")
@click.pass_obj
def load(app: AppContext, source: Path, name: str | None) -> None:
    """Verify an image's layers, unpack them into the cache and store its name."""
    from ..runtime.oci.images import ImageStore, Limits

    for stored in ImageStore(app.config.state_dir, Limits.from_config(app.config)).load(
        source, name
    ):
        click.echo(f"Loaded image: {stored}")


@image.command("ls")
@click.option("-q", "--quiet", is_flag=True, help="Only names.")
@click.pass_obj
def ls(app: AppContext, quiet: bool) -> None:
    """List stored images."""
    from ..runtime.oci.images import ImageStore

    records = ImageStore(app.config.state_dir).records()
    if quiet:
        for record in records:
            click.echo(record.name)
        return
    echo_table(
        ("NAME", "IMAGE ID", "LAYERS", "SIZE"),
        ((r.name, r.id.partition(":")[2][:12], str(len(r.layers)), _size(r.size)) for r in records),
    )


@image.command("rm")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def rm(app: AppContext, names: tuple[str, ...]) -> None:
    """Remove images; layers no other image or container uses leave the cache."""
    from ..runtime.oci.images import ImageStore
    from ..runtime.oci.state import layers_in_use

    store = ImageStore(app.config.state_dir)
    for name in names:
        deleted = store.remove(name, layers_in_use(app.config))
        click.echo(f"Untagged: {name}")
        for digest in deleted:
            click.echo(f"Deleted: {digest}")


def _size(size: float) -> str:
    for unit in ("B", "kB", "MB"):
        if size < 1000:
            return f"{size:.3g}{unit}"
        size /= 1000
    return f"{size:.3g}GB"
