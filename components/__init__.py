"""TextOps components."""
