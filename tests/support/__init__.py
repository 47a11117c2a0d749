"""Helpers shared by every tier of the tests (unit, integration, fixtures, the control plane)."""
