"""Evaluation: tasks, retrieval, correspondence, color correction, metrics, figures (Sec. 4)."""
