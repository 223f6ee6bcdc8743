"""The project's own exceptions; the CLI and the API turn them into exit codes and answers."""


class WalletError(Exception):
    """Base of every error the wallet raises on purpose; the message is shown to the user."""


class ConfigurationError(WalletError):
    """A setting is missing or unusable; the message names the `WALLET_*` variable."""


class InputFileError(WalletError):
    """An input file cannot be read at all: missing, unreadable, or its header is wrong."""


class AuthenticationError(WalletError):
    """A bearer token is missing, malformed, badly signed or expired."""
