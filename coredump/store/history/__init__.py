"""
Crash history
=============

The crash database across jobs (issue #19): every job's CI metadata and crashes, in SQLite
by default or PostgreSQL for a team, read back as top crashers, one crash's history and a
"seen on this branch before?" baseline for ``diff``. SQLAlchemy Core is imported only here
and only when a command uses the database.

One module per job: ``url`` (which database), ``engine`` (connections and their errors),
``schema`` (the tables), ``migrations`` (versions and their steps), ``jobs`` (a
summary.json as rows), ``sources`` (artifact directories and S3 prefixes), ``record``
(writing), ``queries`` (reading), ``baseline`` (``diff --baseline db``).
"""
