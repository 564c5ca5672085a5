"""TextOps pipelines."""
