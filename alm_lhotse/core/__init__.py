"""The core rules: windows of an entry and the overlap filter, NeMo Curator-exact."""
