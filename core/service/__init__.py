"""The engine as a service: an engine process serves a Unix socket under state_dir; dashboards
and the CLI attach to it (protocol, server, client, detach, run_status)."""
