"""What ends the command with one line on stderr and exit status 2."""

from __future__ import annotations

from adapters.models import FRAMEWORKS

__all__ = ["CommandError", "check_framework"]


class CommandError(Exception):
    """A problem with the user's input: reported in one line, exit status 2."""


def check_framework(framework: str) -> None:
    """Refuse a ``--framework`` that is not one of :data:`adapters.models.FRAMEWORKS`.

    Raises:
        CommandError: if ``framework`` is not a known framework's name.

    Example:
        >>> check_framework("jax")
        >>> try:
        ...     check_framework("caffe")
        ... except CommandError as error:
        ...     print(error)
        --framework: expected one of torch, tensorflow, jax, got 'caffe'
    """
    if framework not in FRAMEWORKS:
        raise CommandError(
            f"--framework: expected one of {', '.join(FRAMEWORKS)}, got {framework!r}"
        )
