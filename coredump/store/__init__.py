"""Artifact directories and remote stores."""
