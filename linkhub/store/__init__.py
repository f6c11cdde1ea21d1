"""The store: the SQLite file, its one writer thread, migrations, the hot-path link look-up, backup and check.

Nothing above this layer imports `sqlite3`; everything reaches the database through here.
"""
