"""TextOps serving."""
