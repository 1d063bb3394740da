"""The ``saliency`` command: ``saliency demo``, ``saliency explain`` and ``saliency evaluate``.

``saliency demo`` reproduces the paper's figures on the shipped digits model
(:mod:`adapters.demo`) in the framework of your choice; ``saliency explain`` computes a map
for your own model and images; ``saliency evaluate`` measures such maps with the metrics of
:mod:`saliency_core.metrics`. They write PNG files (``.npy`` raw maps for ``explain``, a CSV
or JSON table for ``evaluate``) and print where each went. Bad input (a missing file, an
unreadable image, an unknown framework or method, a target out of range, a model that does
not import) ends the command with one line on stderr and exit status 2, and leaves nothing
half-written in the output folder: files are written to a hidden staging folder inside it
and moved in at the end, once every target is known to be free.

Where things live: one module per subcommand (:mod:`adapters.cli.demo`,
:mod:`adapters.cli.explain`, :mod:`adapters.cli.evaluate`), each with ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; :mod:`adapters.cli.methods`, the
``--method`` table;
:mod:`adapters.cli.images` and :mod:`adapters.cli.loading`, reading images and models;
:mod:`adapters.cli.output`, report lines and staged files; :mod:`adapters.cli.errors`,
the error that ends the command. ``python -m adapters.cli`` runs the command too.
``--help`` shows every option's default (:class:`HelpFormatter`).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from typing import NoReturn

from . import demo, evaluate, explain
from .errors import CommandError
from .methods import METHODS

__all__ = ["METHODS", "HelpFormatter", "build_parser", "console", "main"]

#: Every subcommand, by name: a module with ``HELP``, ``add_arguments`` and ``run``.
COMMANDS = {"demo": demo, "explain": explain, "evaluate": evaluate}


class HelpFormatter(argparse.HelpFormatter):
    """Help text that ends every option's line with its default.

    An option whose help already says ``(default ...`` keeps it as written (where the
    default needs words, such as "the predicted class"); a required one says
    ``(required)``; a flag says ``(default: off)``; an option without a default says
    ``(default: none)``; a list default is shown as it is typed (``gradient smoothgrad``).

    Example:
        >>> parser = argparse.ArgumentParser(prog="p", formatter_class=HelpFormatter)
        >>> _ = parser.add_argument("--steps", type=int, default=50, help="steps")
        >>> "steps (default: 50)" in parser.format_help()
        True
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.default is argparse.SUPPRESS
                or "(default" in text):
            return text
        if action.required:
            return f"{text} (required)".lstrip()
        default = action.default
        if action.nargs == 0:  # a flag
            shown = "on" if default else "off"
        elif default is None:
            shown = "none"
        elif isinstance(default, (list, tuple)):
            shown = " ".join(str(value) for value in default)
        else:
            shown = str(default)
        return f"{text} (default: {shown.replace('%', '%%')})".lstrip()

    def _split_lines(self, text: str, width: int) -> list[str]:
        # wrap at spaces only, so that names such as saliency-out stay whole
        text = self._whitespace_matcher.sub(" ", text).strip()
        return textwrap.wrap(text, width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit status 2, no usage dump
        raise CommandError(message)


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``saliency`` command; bad arguments raise ``CommandError``."""
    parser = _Parser(prog="saliency", description="SmoothGrad and gradient saliency maps "
                     "for PyTorch, TensorFlow/Keras and JAX models.",
                     formatter_class=HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, command in COMMANDS.items():
        command.add_arguments(commands.add_parser(name, help=command.HELP,
                                                  description=command.HELP,
                                                  formatter_class=HelpFormatter))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0, or 2 for bad input).

    Args:
        argv: the arguments after ``saliency``; default: ``sys.argv[1:]``.

    Returns:
        0 on success; 2 after printing ``saliency: error: ...`` (one line) on stderr.

    Example:
        >>> import contextlib, io
        >>> with contextlib.redirect_stderr(io.StringIO()) as err:
        ...     status = main(["explain", "--model", "m:f", "--input", "x.png", "--method", "lrp"])
        >>> status, err.getvalue().startswith("saliency: error: --method: expected one of")
        (2, True)
    """
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command].run(args)
    except CommandError as error:
        print(f"saliency: error: {error}", file=sys.stderr)
        return 2
    except ImportError as error:  # a framework the command needs is not installed
        print(f"saliency: error: {error}", file=sys.stderr)
        return 2


def console() -> NoReturn:
    """The console script's entry point: run the command and exit with its status."""
    sys.exit(main())
