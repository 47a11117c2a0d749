"""GitHub's published REST API description, the part the tests use (see PROVENANCE.md)."""
