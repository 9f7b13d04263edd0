"""The project's entry point, as LightningCLI projects write it.

    python main.py fit --config config.yaml
    python main.py fit --config <trial folder>/config.yaml     # re-run one searched trial
"""

from lightning.pytorch.cli import LightningCLI


def main() -> None:
    LightningCLI()  # model and data are given by class path in the config


if __name__ == "__main__":
    main()
