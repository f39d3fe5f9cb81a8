"""Dialogs: one ModalScreen per module."""
