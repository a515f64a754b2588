from abiscan.cli import run

raise SystemExit(run())
