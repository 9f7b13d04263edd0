"""Curated search spaces, loadable by name (filled in by the search-spaces work)."""
