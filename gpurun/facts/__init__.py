"""Read-only probes of a host. Nothing in this package changes a host."""
