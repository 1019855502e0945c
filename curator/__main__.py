"""``python -m curator ...`` is the ``curator`` command (for environments without the console script)."""

from curator.cli import main

if __name__ == "__main__":
    main()
