"""Trace ids without span objects, for when nothing records: a leaf package both halves import
(the bridge for its requests, the server for its calls), as they import checkpoint_prometheus."""
