"""The one exception type users see: bad input, explained in one line."""


class InputError(ValueError):
    """Input the engine refuses (a file, a name, a shape, a setting), with a message meant for the user."""


class LimitExceeded(InputError):
    """Input refused because it is, or declares, more than a configured limit allows (bytes, elements, depth)."""
