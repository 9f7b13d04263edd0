"""Launchers decide how a strategy's ranks start: here, as Ray actors."""
