"""MLflow lineage for pipeline stages: the one package that imports mlflow (docs/design.md, "Tracking and lineage").

`store` (where a repository's store is, and the tag keys of its runs), `writer` (one MLflow run per stage
execution, recording its provenance), `queries` (the runs read back, for `egsynth lineage`, `runs` and `compare`).
"""
