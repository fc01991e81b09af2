"""OCI images and the runc runtime: unpacking images, building bundles, and the state
of detached containers."""
