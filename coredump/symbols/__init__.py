"""Find the files behind a core's modules and turn addresses into names, files and lines."""
