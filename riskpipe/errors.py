"""Errors a user can act on. The CLI prints them as one line; services map them to 4xx."""


class UsageError(Exception):
    """Bad arguments or configuration: the message says what to change."""
