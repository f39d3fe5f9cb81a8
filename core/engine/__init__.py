"""The engine: runs a plan's work items as real processes, in dependency order, to the end.

`api` is what clients use (snapshots, events, commands); the rest is the engine's own:
`scheduler` (what may start now), `retry` (what a failure leads to), `gates` (phase gates kept
up to date), `attempts` (one attempt from spawn to verdict), `verifier` (warehouse re-reads),
`recovery` (resume and adoption after a crash), `snapshots` and `engine`, which ties them up.
"""
