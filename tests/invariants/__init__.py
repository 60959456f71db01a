"""Cross-cutting tests of DESIGN.md's invariants I1-I7 (map: docs/invariants.md)."""
