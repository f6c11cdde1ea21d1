"""PostgreSQL's twins of the numbered migrations one level up (same numbers and names), read by store/postgresql.py."""
