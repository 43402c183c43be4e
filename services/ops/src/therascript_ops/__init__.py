"""The ops service (containers, GPU, admin, usage, readiness). Built by the ops issue."""
