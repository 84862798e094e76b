"""Raw facts read from ELF cores and the files they map."""
