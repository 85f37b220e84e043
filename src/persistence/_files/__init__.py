"""The file stack under a storage root, shared by `persistence.storage` and the artifact cache.

From the bottom up: `paths` (names, checks, errors), `walk` (confined descriptor walks and
opening regular files), `content` (hashing, describing and atomic publishing), `locks`
(path locks across processes and staged changes), `changes` (the file store's staged
writes, copies, moves, deletes and reads), `listing` (listings and `verify`), `backups`
(backups and clean-up), and `running`, which applies a staged change from the event loop.
Each module imports only those before it.
"""
