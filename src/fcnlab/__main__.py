"""``python -m fcnlab``: the command line (also what ``torchrun -m fcnlab`` runs)."""

from __future__ import annotations

from fcnlab.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
