//! Both back ends' migrations build the same schema, and ship the same versions.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sqlx::FromRow;

use super::postgres::test_database_url;
use crate::store::postgres::test_schema;

/// Everything the two schemas must agree on, by table.
#[derive(Debug, Default, PartialEq, Eq)]
struct Shape {
    /// (table, column) -> (type, not null)
    columns: BTreeMap<(String, String), (String, bool)>,
    /// table -> primary key columns, in key order
    primary_keys: BTreeMap<String, Vec<String>>,
    /// (table, index name) -> (unique, columns); indexes created by name only
    indexes: BTreeMap<(String, String), (bool, Vec<String>)>,
    /// (table, column, referenced table, referenced column, on delete)
    foreign_keys: BTreeSet<(String, String, String, String, String)>,
}

/// The type families both dialects spell differently.
fn normalise_type(ty: &str) -> String {
    match ty.to_lowercase().as_str() {
        "bytea" => "blob".to_string(),
        other => other.to_string(),
    }
}

fn migration_files(backend: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn migration_versions_match() {
    let sqlite = migration_files("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(
        sqlite,
        migration_files("postgres"),
        "same files, same names"
    );
    let versions = |m: sqlx::migrate::Migrator| -> Vec<(i64, String)> {
        m.iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect()
    };
    assert_eq!(
        versions(sqlx::migrate!("migrations/sqlite")),
        versions(sqlx::migrate!("migrations/postgres"))
    );
}

async fn sqlite_shape() -> Shape {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("shape.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::migrate!("migrations/sqlite")
        .run(&pool)
        .await
        .unwrap();
    let mut shape = Shape::default();
    let tables: Vec<String> = sqlx::query_scalar(
        "select name from sqlite_master where type = 'table'              and name not like 'sqlite_%' and name <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for table in &tables {
        #[derive(FromRow)]
        struct Col {
            name: String,
            #[sqlx(rename = "type")]
            ty: String,
            notnull: bool,
            pk: i64,
        }
        let cols: Vec<Col> = sqlx::query_as(
            "select name, type, \"notnull\", pk from pragma_table_info(?) order by pk, cid",
        )
        .bind(table)
        .fetch_all(&pool)
        .await
        .unwrap();
        for c in cols {
            if c.pk > 0 {
                shape
                    .primary_keys
                    .entry(table.clone())
                    .or_default()
                    .push(c.name.clone());
            }
            shape
                .columns
                .insert((table.clone(), c.name), (normalise_type(&c.ty), c.notnull));
        }
        let fks: Vec<(String, String, String, String)> = sqlx::query_as(
            "select \"from\", \"table\", \"to\", on_delete from pragma_foreign_key_list(?)",
        )
        .bind(table)
        .fetch_all(&pool)
        .await
        .unwrap();
        for (from, to_table, to, on_delete) in fks {
            shape.foreign_keys.insert((
                table.clone(),
                from,
                to_table,
                to,
                on_delete.to_uppercase(),
            ));
        }
        // Indexes written in the migration; not the ones SQLite makes for keys.
        let indexes: Vec<(String, bool)> = sqlx::query_as(
            "select l.name, l.\"unique\" from pragma_index_list(?1) l \
             join sqlite_master s on s.type = 'index' and s.name = l.name where s.sql is not null",
        )
        .bind(table)
        .fetch_all(&pool)
        .await
        .unwrap();
        for (name, unique) in indexes {
            let columns: Vec<String> =
                sqlx::query_scalar("select name from pragma_index_info(?) order by seqno")
                    .bind(&name)
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            shape
                .indexes
                .insert((table.clone(), name), (unique, columns));
        }
    }
    pool.close().await;
    shape
}

async fn postgres_shape(pool: &sqlx::PgPool) -> Shape {
    let mut shape = Shape::default();
    let columns: Vec<(String, String, String, bool)> = sqlx::query_as(
        "select table_name::text, column_name::text, data_type::text, is_nullable = 'NO' \
         from information_schema.columns \
         where table_schema = current_schema() and table_name <> '_sqlx_migrations'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, column, ty, not_null) in columns {
        shape
            .columns
            .insert((table, column), (normalise_type(&ty), not_null));
    }
    let indexes: Vec<(String, String, bool, bool, Vec<String>)> = sqlx::query_as(
        "select t.relname::text, i.relname::text, x.indisunique, x.indisprimary, \
                array_agg(a.attname::text order by k.ord) \
         from pg_index x \
         join pg_class i on i.oid = x.indexrelid \
         join pg_class t on t.oid = x.indrelid \
         cross join lateral unnest(x.indkey::int2[]) with ordinality as k(attnum, ord) \
         join pg_attribute a on a.attrelid = t.oid and a.attnum = k.attnum \
         where t.relnamespace = current_schema()::regnamespace and t.relname <> '_sqlx_migrations' \
         group by 1, 2, 3, 4",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    for (table, name, unique, primary, columns) in indexes {
        if primary {
            shape.primary_keys.insert(table, columns);
        } else {
            shape.indexes.insert((table, name), (unique, columns));
        }
    }
    let fks: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "select t.relname::text, a.attname::text, rt.relname::text, ra.attname::text, \
                case c.confdeltype when 'c' then 'CASCADE' when 'n' then 'SET NULL' \
                  when 'd' then 'SET DEFAULT' when 'r' then 'RESTRICT' else 'NO ACTION' end \
         from pg_constraint c \
         join pg_class t on t.oid = c.conrelid \
         join pg_class rt on rt.oid = c.confrelid \
         cross join lateral unnest(c.conkey, c.confkey) as k(attnum, ref_attnum) \
         join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum \
         join pg_attribute ra on ra.attrelid = c.confrelid and ra.attnum = k.ref_attnum \
         where c.contype = 'f' and c.connamespace = current_schema()::regnamespace",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    shape.foreign_keys.extend(fks);
    shape
}

/// Notes each item found in only one of the two schemas.
fn differ<'a, T, I>(out: &mut Vec<String>, what: &str, sqlite: I, postgres: I)
where
    T: std::fmt::Debug + Ord + 'a,
    I: IntoIterator<Item = T>,
{
    let sqlite: BTreeSet<T> = sqlite.into_iter().collect();
    let postgres: BTreeSet<T> = postgres.into_iter().collect();
    for item in sqlite.difference(&postgres) {
        out.push(format!("  {what} only in SQLite: {item:?}"));
    }
    for item in postgres.difference(&sqlite) {
        out.push(format!("  {what} only in PostgreSQL: {item:?}"));
    }
}

#[tokio::test]
async fn schemas_match() {
    let sqlite = sqlite_shape().await;
    assert!(
        sqlite
            .columns
            .contains_key(&("messages".into(), "seq".into())),
        "introspection sees the SQLite schema"
    );
    let Some(base) = test_database_url("schema parity") else {
        return;
    };
    let schema = test_schema(&base).await.unwrap();
    let pool = sqlx::PgPool::connect(schema.url()).await.unwrap();
    let migrated = sqlx::migrate!("migrations/postgres").run(&pool).await;
    let postgres = postgres_shape(&pool).await;
    pool.close().await;
    schema.drop_schema().await.unwrap();
    migrated.unwrap();
    let mut differences = Vec::new();
    differ(
        &mut differences,
        "column ((table, column), (type, not null))",
        &sqlite.columns,
        &postgres.columns,
    );
    differ(
        &mut differences,
        "primary key (table, columns)",
        &sqlite.primary_keys,
        &postgres.primary_keys,
    );
    differ(
        &mut differences,
        "index ((table, name), (unique, columns))",
        &sqlite.indexes,
        &postgres.indexes,
    );
    differ(
        &mut differences,
        "foreign key (table, column, to table, to column, on delete)",
        &sqlite.foreign_keys,
        &postgres.foreign_keys,
    );
    assert!(
        differences.is_empty(),
        "the schemas differ:\n{}",
        differences.join("\n")
    );
}
