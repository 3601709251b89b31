"""A substring index on message subjects (docs/decisions/0051-message-log-search.md).

SQLite: an FTS5 table with the trigram tokenizer over reports_messagelog.subject (external
content, kept in step by triggers); ``LIKE '%text%'`` on it uses the index. PostgreSQL: a
pg_trgm GIN index on UPPER(subject), which Django's ``icontains`` uses; skipped (search still
works, by scan) when the extension cannot be created.
"""

from django.db import migrations

SQLITE_UP = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS reports_messagelog_fts USING fts5("
    "subject, content='reports_messagelog', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS reports_messagelog_fts_ai AFTER INSERT ON reports_messagelog BEGIN "
    "INSERT INTO reports_messagelog_fts(rowid, subject) VALUES (new.id, new.subject); END",
    "CREATE TRIGGER IF NOT EXISTS reports_messagelog_fts_ad AFTER DELETE ON reports_messagelog BEGIN "
    "INSERT INTO reports_messagelog_fts(reports_messagelog_fts, rowid, subject) VALUES ('delete', old.id, old.subject); END",
    "CREATE TRIGGER IF NOT EXISTS reports_messagelog_fts_au AFTER UPDATE OF subject ON reports_messagelog BEGIN "
    "INSERT INTO reports_messagelog_fts(reports_messagelog_fts, rowid, subject) VALUES ('delete', old.id, old.subject); "
    "INSERT INTO reports_messagelog_fts(rowid, subject) VALUES (new.id, new.subject); END",
    "INSERT INTO reports_messagelog_fts(reports_messagelog_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS reports_messagelog_fts_ai",
    "DROP TRIGGER IF EXISTS reports_messagelog_fts_ad",
    "DROP TRIGGER IF EXISTS reports_messagelog_fts_au",
    "DROP TABLE IF EXISTS reports_messagelog_fts",
]


def up(apps, schema_editor):  # type: ignore[no-untyped-def]
    conn = schema_editor.connection
    if conn.vendor == "sqlite":
        with conn.cursor() as c:
            c.execute("SELECT sqlite_compileoption_used('ENABLE_FTS5')")
            if not c.fetchone()[0]:
                return  # no FTS5 in this SQLite build: subject search scans
            for sql in SQLITE_UP:
                c.execute(sql)
    elif conn.vendor == "postgresql":
        from django.db import DatabaseError, transaction

        try:
            with transaction.atomic(using=conn.alias), conn.cursor() as c:
                c.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                c.execute("CREATE INDEX IF NOT EXISTS msglog_subject_trgm ON reports_messagelog "
                          "USING gin (UPPER(subject) gin_trgm_ops)")
        except DatabaseError:
            pass  # no privilege for the extension: subject search scans


def down(apps, schema_editor):  # type: ignore[no-untyped-def]
    conn = schema_editor.connection
    with conn.cursor() as c:
        if conn.vendor == "sqlite":
            for sql in SQLITE_DOWN:
                c.execute(sql)
        elif conn.vendor == "postgresql":
            c.execute("DROP INDEX IF EXISTS msglog_subject_trgm")


class Migration(migrations.Migration):
    dependencies = [("reports", "0002_msglog_search_indexes")]
    operations = [migrations.RunPython(up, down)]
