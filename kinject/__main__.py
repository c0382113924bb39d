"""``python -m kinject`` entry point (also what ``accelerate launch -m kinject`` runs)."""

from kinject.cli import main

raise SystemExit(main())
