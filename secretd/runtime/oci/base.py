"""What images, archives and layers all use: the error an unusable image raises and how
an image is named (apart, so that none of the three imports another for them)."""

from __future__ import annotations

import re

from ...errors import LaunchError, UsageError

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$", re.IGNORECASE)
DAMAGED_HINT = "the image is damaged or was not written by an image tool"


class ImageError(LaunchError):
    """An image or one of its layers cannot be used (missing, damaged or unsafe)."""


def full_name(name: str) -> str:
    """``busybox`` -> ``busybox:latest``, as Docker reads an untagged name."""
    if not NAME_RE.fullmatch(name):
        raise UsageError(f"invalid image name {name!r}", "use letters, digits and . _ / : @ -")
    return name if ":" in name.rpartition("/")[2] else f"{name}:latest"
