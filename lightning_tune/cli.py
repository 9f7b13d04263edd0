"""The ``lightning-tune`` command: scripts and cluster head nodes drive searches from a shell."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning-tune", description="Ray Tune searches over PyTorch Lightning models.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    resume = commands.add_parser(
        "resume", help="continue an interrupted experiment from its directory",
        description="Continue an interrupted tune_lightning experiment. Finished trials are not "
                    "run again; running ones continue from their last checkpoint.")
    resume.add_argument("path", help="the experiment directory (storage_path/name)")
    resume.add_argument("--resume-errored", action="store_true",
                        help="also retry trials that had failed")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    from lightning_tune.api import resume

    try:
        result = resume(args.path, resume_errored=args.resume_errored)
    except (FileNotFoundError, ImportError, ValueError) as error:
        print(f"lightning-tune resume: {error}", file=sys.stderr)
        return 2
    print(f"best config: {result.best_config}")
    print(f"best {result.metric}: {result.best_metrics.get(result.metric)}")
    print(f"experiment: {result.experiment_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
