"""Durable engine state under state_dir: the journal (SQLite: runs, items, attempts, events,
its schema migrated on open), the lock that gives one engine a state_dir, and the state_dir's
own modes and errors (`statedir`)."""

from core.state.journal import JOURNAL_FILE, AttemptRow, ItemRow, Journal, RunRow
from core.state.lock import EngineLock

__all__ = ["JOURNAL_FILE", "AttemptRow", "EngineLock", "ItemRow", "Journal", "RunRow"]
