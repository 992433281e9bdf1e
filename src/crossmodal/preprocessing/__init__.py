"""Preprocessing shared by every runtime: images (decode, orient, RGB, resize/crop/normalize) and texts (tokenizers)."""
