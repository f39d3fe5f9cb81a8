"""The bundled demo: a simulated NBA warehouse (SQLite) and the processor program that fills it.

`seed.seed_demo_warehouse` creates the warehouse the bundled backfill.yaml points at;
`python -m core.demo.job` is the command of every runnable processor in that file.
"""
