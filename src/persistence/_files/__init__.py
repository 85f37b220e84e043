"""The file stack under a storage root, shared by `persistence.storage` and the artifact cache.

From the bottom up, each module importing only those before it: `paths` (names, checks,
errors), `walk` (confined descriptor walks, opening regular files), `locks` (path locks
across processes, staged changes and `perform`), `content` (hashing, describing, atomic
publishing and the store's staged changes), `listing` (listings and `verify`) and
`backups` (backups and clean-up).
"""
