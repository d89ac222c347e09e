//! The migrations: applying them twice changes nothing, and the SQLite and
//! PostgreSQL migrations build the same schema. Both are applied to fresh
//! databases by `SqlStore::connect` and read back from the catalogs
//! (SQLite: `sqlite_master` and the `pragma_*` functions; PostgreSQL:
//! `information_schema.columns`, `pg_indexes` and `pg_constraint`), then
//! compared table by table: the same tables, the same columns in the same
//! order with the same nullability and defaults, the same primary keys,
//! unique and foreign keys, and the same indexes (name, table, columns,
//! uniqueness, predicate). Column types may differ only as [`portable_type`]
//! maps them; the one other difference allowed is [`SQLITE_NULLABLE_KEYS`].

use sqlx::Row;
use std::collections::BTreeMap;
use trestle_store::SqlStore;
use trestle_store_conformance::db::{EmptyDb, TestDb};

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = TestDb::sqlite().await;
    db.store.close().await;
    let again = SqlStore::connect(db.url()).await.unwrap();
    again.close().await;
    assert!(SqlStore::connect("mysql://x").await.is_err());
    db.finish().await;
}

/// One column, as both dialects can describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    name: String,
    /// See [`portable_type`].
    ty: &'static str,
    not_null: bool,
    /// Normalised: casts dropped; `autoincrement` for SQLite's
    /// `AUTOINCREMENT` and PostgreSQL's `BIGSERIAL` sequence.
    default: Option<String>,
}

/// One table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Table {
    columns: Vec<Column>,
    primary_key: Vec<String>,
    /// Column lists of UNIQUE constraints, sorted.
    unique: Vec<Vec<String>>,
    /// (columns, referenced table, referenced columns), sorted.
    foreign: Vec<(Vec<String>, String, Vec<String>)>,
}

/// One index created by `CREATE INDEX` (not one backing a constraint).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Index {
    table: String,
    /// Column names, `name DESC` when descending.
    columns: Vec<String>,
    unique: bool,
    /// The partial index's `WHERE`, normalised by [`normalise_expr`].
    predicate: Option<String>,
}

#[derive(Debug, Default)]
struct Schema {
    tables: BTreeMap<String, Table>,
    indexes: BTreeMap<String, Index>,
}

/// The only column types the migrations may use, and what they are on each
/// side: SQLite's `INTEGER` (and `BIGINT`, in `schema_migrations`) is a
/// 64-bit integer like PostgreSQL's `bigint` (`BIGSERIAL` is `bigint` with
/// a sequence); `TEXT` is `text` on both; SQLite's `REAL` is an 8-byte
/// float like PostgreSQL's `double precision` (charges, prices). Anything else fails the test
/// until it is added here deliberately.
fn portable_type(sqlite: bool, declared: &str) -> &'static str {
    match (sqlite, declared.to_ascii_lowercase().as_str()) {
        (true, "integer" | "bigint") | (false, "bigint") => "int64",
        (_, "text") => "text",
        (true, "real") | (false, "double precision") => "float64",
        (_, other) => panic!(
            "column type `{other}` ({}) has no mapping in portable_type",
            if sqlite { "SQLite" } else { "PostgreSQL" }
        ),
    }
}

/// Drops casts (`'job'::text`, `(state)::text`), parentheses and repeated
/// blanks, so that PostgreSQL's rewritten expressions compare with the
/// text SQLite keeps.
fn normalise_expr(e: &str) -> String {
    let mut out = String::new();
    let mut chars = e.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
            out.push(c);
        } else if quoted {
            out.push(c);
        } else if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ' ')
            {
                // A cast ends at the next operator; `character varying`
                // and the like are two words, so a blank is only part of
                // the type when letters follow it.
                if *chars.peek().unwrap() == ' ' {
                    let rest: String = chars.clone().collect();
                    let next_word: String = rest
                        .trim_start()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric())
                        .collect();
                    if !matches!(next_word.as_str(), "varying" | "precision" | "zone") {
                        break;
                    }
                }
                chars.next();
            }
        } else if c != '(' && c != ')' {
            out.push(c);
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn list(s: &str) -> Vec<String> {
    s.split(',').map(|c| c.trim().to_string()).collect()
}

async fn sqlite_schema(url: &str) -> Schema {
    let pool = sqlx::SqlitePool::connect(url).await.unwrap();
    let mut schema = Schema::default();
    let tables = sqlx::query(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for t in &tables {
        let name: String = t.get("name");
        let sql: String = t.get("sql");
        let autoincrement = sql.to_ascii_uppercase().contains("AUTOINCREMENT");
        let mut table = Table::default();
        let cols = sqlx::query(
            "SELECT name, type, \"notnull\" AS nn, dflt_value, pk FROM pragma_table_info($1) \
             ORDER BY cid",
        )
        .bind(&name)
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut pk: Vec<(i64, String)> = Vec::new();
        let pk_columns = cols.iter().filter(|c| c.get::<i64, _>("pk") > 0).count();
        for c in &cols {
            let col: String = c.get("name");
            let ty: String = c.get("type");
            let in_pk: i64 = c.get("pk");
            let mut not_null = c.get::<i64, _>("nn") != 0;
            let mut default = c
                .get::<Option<String>, _>("dflt_value")
                .map(|d| normalise_expr(&d));
            if in_pk > 0 {
                pk.push((in_pk, col.clone()));
                // `INTEGER PRIMARY KEY` is the rowid: never NULL. Other
                // keys may be: see `SQLITE_NULLABLE_KEYS`.
                if pk_columns == 1 && ty.eq_ignore_ascii_case("INTEGER") {
                    not_null = true;
                    if autoincrement {
                        default = Some("autoincrement".into());
                    }
                }
            }
            table.columns.push(Column {
                name: col,
                ty: portable_type(true, &ty),
                not_null,
                default,
            });
        }
        pk.sort();
        table.primary_key = pk.into_iter().map(|(_, c)| c).collect();
        let indexes =
            sqlx::query("SELECT name, \"unique\" AS u, origin FROM pragma_index_list($1)")
                .bind(&name)
                .fetch_all(&pool)
                .await
                .unwrap();
        for i in &indexes {
            let origin: String = i.get("origin");
            if origin != "u" {
                continue; // `c`: CREATE INDEX (below); `pk`: the primary key.
            }
            let iname: String = i.get("name");
            let cols: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                    .bind(&iname)
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            table.unique.push(cols);
        }
        table.unique.sort();
        let fks = sqlx::query(
            "SELECT id, \"table\" AS t, \"from\" AS f, \"to\" AS r FROM pragma_foreign_key_list($1) \
             ORDER BY id, seq",
        )
        .bind(&name)
        .fetch_all(&pool)
        .await
        .unwrap();
        let mut by_id: BTreeMap<i64, (Vec<String>, String, Vec<String>)> = BTreeMap::new();
        for f in &fks {
            let e = by_id
                .entry(f.get("id"))
                .or_insert_with(|| (vec![], f.get("t"), vec![]));
            e.0.push(f.get("f"));
            e.2.push(f.get("r"));
        }
        table.foreign = by_id.into_values().collect();
        table.foreign.sort();
        schema.tables.insert(name, table);
    }
    let indexes = sqlx::query(
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for i in &indexes {
        let name: String = i.get("name");
        let sql: String = i.get("sql");
        let cols = sqlx::query(
            "SELECT name, \"desc\" AS d FROM pragma_index_xinfo($1) WHERE key = 1 ORDER BY seqno",
        )
        .bind(&name)
        .fetch_all(&pool)
        .await
        .unwrap();
        let columns = cols
            .iter()
            .map(|c| {
                let n: String = c.get("name");
                if c.get::<i64, _>("d") != 0 {
                    format!("{n} DESC")
                } else {
                    n
                }
            })
            .collect();
        let upper = sql.to_ascii_uppercase();
        let predicate = upper
            .find(" WHERE ")
            .map(|at| normalise_expr(&sql[at + 7..]));
        schema.indexes.insert(
            name,
            Index {
                table: i.get("tbl_name"),
                columns,
                unique: upper.starts_with("CREATE UNIQUE"),
                predicate,
            },
        );
    }
    pool.close().await;
    schema
}

async fn postgres_schema(url: &str) -> Schema {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let mut schema = Schema::default();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for name in tables {
        let mut table = Table::default();
        let cols = sqlx::query(
            "SELECT column_name::text AS name, data_type::text AS ty, is_nullable::text AS nullable, \
             column_default::text AS dflt FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(&name)
        .fetch_all(&pool)
        .await
        .unwrap();
        for c in &cols {
            let dflt: Option<String> = c.get("dflt");
            table.columns.push(Column {
                name: c.get("name"),
                ty: portable_type(false, c.get("ty")),
                not_null: c.get::<String, _>("nullable") == "NO",
                default: dflt.map(|d| {
                    if d.starts_with("nextval(") {
                        "autoincrement".to_string()
                    } else {
                        normalise_expr(&d)
                    }
                }),
            });
        }
        schema.tables.insert(name, table);
    }
    let constraints = sqlx::query(
        "SELECT c.contype::text AS kind, c.conrelid::regclass::text AS tbl, \
           c.confrelid::regclass::text AS ref, \
           (SELECT string_agg(a.attname::text, ',' ORDER BY k.ord) \
              FROM unnest(c.conkey) WITH ORDINALITY AS k(att, ord) \
              JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.att) AS cols, \
           (SELECT string_agg(a.attname::text, ',' ORDER BY k.ord) \
              FROM unnest(c.confkey) WITH ORDINALITY AS k(att, ord) \
              JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.att) AS refcols \
         FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace \
         WHERE n.nspname = 'public' AND c.contype IN ('p', 'u', 'f')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for c in &constraints {
        let tbl: String = c.get("tbl");
        let table = schema
            .tables
            .get_mut(&tbl)
            .expect("constraint of a known table");
        let cols = list(&c.get::<String, _>("cols"));
        match c.get::<String, _>("kind").as_str() {
            "p" => table.primary_key = cols,
            "u" => table.unique.push(cols),
            _ => table
                .foreign
                .push((cols, c.get("ref"), list(&c.get::<String, _>("refcols")))),
        }
    }
    for t in schema.tables.values_mut() {
        t.unique.sort();
        t.foreign.sort();
    }
    // Indexes that back a constraint (primary keys, UNIQUE) are compared as
    // constraints above.
    let indexes = sqlx::query(
        "SELECT i.indexname::text AS name, i.tablename::text AS tbl, i.indexdef AS def \
         FROM pg_indexes i WHERE i.schemaname = 'public' AND NOT EXISTS \
           (SELECT 1 FROM pg_constraint c \
            WHERE c.conindid = (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for i in &indexes {
        let def: String = i.get("def");
        // CREATE [UNIQUE] INDEX name ON public.t USING btree (a DESC, b) [WHERE (...)]
        let open = def
            .find(" USING ")
            .and_then(|u| def[u..].find('(').map(|p| u + p))
            .unwrap();
        let mut depth = 0;
        let mut close = open;
        for (k, ch) in def[open..].char_indices() {
            match ch {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + k;
                        break;
                    }
                }
                _ => {}
            }
        }
        let columns = list(&def[open + 1..close])
            .into_iter()
            .map(|c| c.trim_end_matches(" ASC").to_string())
            .collect();
        let predicate = def[close..]
            .find(" WHERE ")
            .map(|at| normalise_expr(&def[close + at + 7..]));
        schema.indexes.insert(
            i.get("name"),
            Index {
                table: i.get("tbl"),
                columns,
                unique: def.starts_with("CREATE UNIQUE"),
                predicate,
            },
        );
    }
    pool.close().await;
    schema
}

/// Primary key columns that SQLite lets hold NULL and PostgreSQL does not:
/// in SQLite a primary key that is not `INTEGER PRIMARY KEY` (the rowid)
/// may be NULL unless it also says `NOT NULL` (a legacy quirk), while
/// PostgreSQL's primary keys are always NOT NULL. These tables were made
/// so; the store never writes a NULL key. Making SQLite refuse one takes a
/// migration that rebuilds each table. A new table must say `NOT NULL` on
/// such a key instead of joining this list.
const SQLITE_NULLABLE_KEYS: &[(&str, &str)] = &[
    ("compute_envs", "name"),
    ("indexes", "name"),
    ("leader_leases", "name"),
    ("projects", "name"),
    ("queues", "name"),
    ("schema_migrations", "version"),
    ("sessions", "hash"),
    ("tokens", "id"),
    ("uploads", "id"),
    ("users", "name"),
    ("workers", "id"),
];

/// Allows exactly the differences of [`SQLITE_NULLABLE_KEYS`], each of
/// which must still be one.
fn allow_known_differences(sqlite: &mut Schema, postgres: &Schema) {
    for (table, column) in SQLITE_NULLABLE_KEYS {
        let pg = postgres.tables[*table]
            .columns
            .iter()
            .find(|c| c.name == *column)
            .unwrap();
        let t = sqlite.tables.get_mut(*table).unwrap();
        assert!(t.primary_key.contains(&column.to_string()));
        let c = t.columns.iter_mut().find(|c| c.name == *column).unwrap();
        assert!(
            !c.not_null && pg.not_null,
            "{table}.{column} is no longer nullable in SQLite only: \
             remove it from SQLITE_NULLABLE_KEYS"
        );
        c.not_null = true;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialects_differ_only_in_column_types() {
    let lite = TestDb::sqlite().await;
    lite.store.close().await;
    let pg_db = EmptyDb::postgres("schema_parity").await;
    SqlStore::connect(&pg_db.url).await.unwrap().close().await;
    let mut sqlite = sqlite_schema(lite.url()).await;
    let postgres = postgres_schema(&pg_db.url).await;
    allow_known_differences(&mut sqlite, &postgres);

    let names = |s: &Schema| s.tables.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&sqlite), names(&postgres), "the same tables");
    assert!(sqlite.tables.len() >= 18, "{:?}", names(&sqlite));
    for (name, t) in &sqlite.tables {
        let pg = &postgres.tables[name];
        let cols = |t: &Table| t.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            cols(t),
            cols(pg),
            "table {name}: the same columns in the same order"
        );
        for (a, b) in t.columns.iter().zip(&pg.columns) {
            assert_eq!(
                a, b,
                "table {name}, column {} (left SQLite, right PostgreSQL)",
                a.name
            );
        }
        assert_eq!(t.primary_key, pg.primary_key, "table {name}: primary key");
        assert_eq!(t.unique, pg.unique, "table {name}: UNIQUE constraints");
        assert_eq!(t.foreign, pg.foreign, "table {name}: foreign keys");
    }
    let names = |s: &Schema| s.indexes.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&sqlite), names(&postgres), "the same indexes");
    for (name, i) in &sqlite.indexes {
        assert_eq!(
            i, &postgres.indexes[name],
            "index {name} (left SQLite, right PostgreSQL)"
        );
    }
    lite.finish().await;
}

#[test]
fn expressions_are_normalised() {
    assert_eq!(normalise_expr("'job'::text"), "'job'");
    assert_eq!(
        normalise_expr("((kind <> 'job'::text) AND (state = 'RUNNING'::text))"),
        "kind <> 'job' AND state = 'RUNNING'"
    );
    assert_eq!(
        normalise_expr("(state)::character varying = 'a'"),
        "state = 'a'"
    );
    assert_eq!(
        normalise_expr("lease_token IS NOT NULL"),
        "lease_token IS NOT NULL"
    );
    assert_eq!(normalise_expr("'it''s (x)'"), "'it''s (x)'");
}
