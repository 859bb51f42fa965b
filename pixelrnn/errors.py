"""The error type for a user's mistake, shared by the command-line modules."""


class UserError(Exception):
    """A mistake in the command line or its files; printed as one line without a traceback."""
