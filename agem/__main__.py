"""`python -m agem`: the same as the `agem` console script."""

from agem.cli.main import entry

if __name__ == "__main__":
    entry()
