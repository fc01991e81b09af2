"""The Docker and Podman runtimes and what they share: the host-side secrets mount, its
notes, and removing it once the container is gone."""
