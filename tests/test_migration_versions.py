"""Migration versions are numbers, ordered as numbers everywhere: with version 10, text order would put it
before 2 (a test sorted MongoDB's recorded steps that way), and a store comparing text would take a database
at 9 for one at the latest version, or one at 10 for an old one."""

from __future__ import annotations

import sqlite3

import pytest

from jobqueue.store.mongodb import schema as mongodb_schema
from jobqueue.store.sqlite import migrations as sqlite_migrations


@pytest.mark.parametrize("module", [sqlite_migrations, mongodb_schema], ids=["sqlite", "mongodb"])
def test_each_store_lists_its_steps_as_whole_numbers_one_to_latest_in_order(module):
    versions = [step.version for step in module.MIGRATIONS]
    assert all(type(v) is int for v in versions)
    assert versions == list(range(1, len(versions) + 1)) and module.LATEST == versions[-1] == max(versions)


def test_sqlite_records_versions_as_integers_and_reads_the_highest_numerically(tmp_path):
    conn = sqlite3.connect(str(tmp_path / "v.db"), isolation_level=None)
    sqlite_migrations.migrate(conn)
    assert {row[0] for row in conn.execute("SELECT typeof(version) FROM schema_version")} == {"integer"}
    assert sqlite_migrations.current_version(conn) == sqlite_migrations.LATEST
    conn.execute("DELETE FROM schema_version WHERE version > 10")
    conn.execute("UPDATE schema_version SET version = '9' WHERE version = 9")  # text given is stored as a number
    assert sqlite_migrations.current_version(conn) == 10  # not '9' > '10'
    conn.close()


@pytest.mark.gen_test
async def test_mongodb_records_versions_as_numbers_and_goes_on_from_nine_numerically():
    from mongomock_motor import AsyncMongoMockClient

    db = AsyncMongoMockClient().get_database("jobqueue_versions")
    await mongodb_schema.migrate(db, 1.0, "mock")
    meta = await db.meta.find_one({"_id": "schema"})
    assert meta["version"] == mongodb_schema.LATEST and type(meta["version"]) is int
    await db.meta.update_one({"_id": "schema"}, {"$set": {"version": 9}})
    assert await mongodb_schema.migrate(db, 2.0, "mock") == [
        s.version for s in mongodb_schema.MIGRATIONS if s.version >= 10]
    meta = await db.meta.find_one({"_id": "schema"})
    assert meta["version"] == mongodb_schema.LATEST
    assert sorted(meta["steps"], key=int) == [str(s.version) for s in mongodb_schema.MIGRATIONS]
