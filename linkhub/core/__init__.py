"""The domain: accounts, link minting, events, webhooks, the outbox and payload formats.

Plain functions on a connection (`f(conn, ...)`), shared by the writer thread, the CLI and the
tests; they hold the SQL, and never do network I/O.
"""
