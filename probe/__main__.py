"""``python -m probe`` runs the CLI."""

from probe.cli import main

if __name__ == "__main__":
    main()
