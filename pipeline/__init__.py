"""DVC stage entry points: one Prefect flow per stage, run as `python -m pipeline.<stage>`."""
