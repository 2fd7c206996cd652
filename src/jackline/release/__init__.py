"""Release: a main commit taken through the environments, verified, reversible, and recorded.

`gate` (expand/contract against the live release, the flags file), `probes` (health, smoke,
log scan), `steps` (the plain functions the release workflow in `engine` strings together).
"""
