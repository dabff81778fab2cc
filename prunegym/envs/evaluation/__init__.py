"""The evaluation path: coefficient vectors in, metrics and step infos out."""
