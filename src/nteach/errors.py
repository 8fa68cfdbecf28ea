"""The one exception type for mistakes a user can make (bad path, bad value, bad name)."""


class UserError(ValueError):
    """Bad input: the command line prints its message on one line and exits with code 2."""
