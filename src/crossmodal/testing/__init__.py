"""Test helpers that ship with crossmodal: seeded tiny models, generated shapes, a fake encoder."""
