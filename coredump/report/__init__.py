"""Render crashes as text, JSON, HTML and JUnit XML; nothing else."""
