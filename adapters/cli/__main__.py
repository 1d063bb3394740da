"""``python -m adapters.cli``: the ``saliency`` command."""

from adapters.cli import console

if __name__ == "__main__":
    console()
