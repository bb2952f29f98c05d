"""`python -m agem`: the command line."""

from agem.cli.main import entry

if __name__ == "__main__":
    entry()
