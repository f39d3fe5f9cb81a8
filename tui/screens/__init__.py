"""Screens: the dashboard, and a date pushed on top of it."""
