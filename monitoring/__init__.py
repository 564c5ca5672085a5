"""TextOps monitoring."""
