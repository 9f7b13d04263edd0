"""A small LightningCLI project on digits: what ``tune_lightning_cli`` searches.

``main.py`` is the project's own entry point (``python main.py fit --config config.yaml``);
``search.yaml`` searches that config with ``lightning-tune run``. Nothing here knows about the
toolkit: the search reads the project as LightningCLI would.
"""
