"""The one error type seglab raises for bad input, shown to the user as one line."""


class ConfigError(ValueError):
    """Bad user input, found before any training time is spent.

    The message names the key, the value and what was expected, on one line.
    """
