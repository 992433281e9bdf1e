"""Model specs (as data), the catalog, name resolution, hub fetching and ONNX export."""
