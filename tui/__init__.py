"""The Textual dashboard: renders engine snapshots, sends commands; `core` owns the truth."""
