"""Data model: taxonomy, manifest, sources and cases, I/O, validation."""
