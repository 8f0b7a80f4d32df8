"""The embedded backend: one SQLite file, one writer thread, versioned migrations."""
