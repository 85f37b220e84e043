"""The file stack under a storage root, for `persistence.storage` and the artifact cache.

Bottom up, each importing only those before it: `paths` (names, checks, errors and the
confined walk), `locks` (path locks, staged changes, `perform`), `content` (hashing,
atomic publish, the store's changes) and `tree` (listings, `verify`, backups, clean-up).
"""
