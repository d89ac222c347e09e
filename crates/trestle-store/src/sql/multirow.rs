//! Multi-row statements for the hot path. A batch of jobs travels as one
//! JSON parameter (an array of ids, or an array of row arrays) that the
//! database expands itself (`json_each` in SQLite, `jsonb_array_elements`
//! in PostgreSQL), so leasing or finishing a batch costs a few statements
//! instead of a few per job. The SQL text stays constant: each statement
//! is assembled at compile time with `concat!` from the macros below, one
//! text per dialect, chosen with [`Dialect::pick`].

use super::Dialect;
use crate::{Result, StoreError};

/// The ids of JSON array parameter `$n`, as a subquery for `IN`.
macro_rules! ids_in {
    (sqlite, $n:literal) => {
        concat!("(SELECT value FROM json_each($", $n, "))")
    };
    (postgres, $n:literal) => {
        concat!(
            "(SELECT CAST(value AS BIGINT) FROM jsonb_array_elements_text(CAST($",
            $n,
            " AS JSONB)) AS j(value))"
        )
    };
}
pub(super) use ids_in;

/// The elements of JSON array parameter `$n`, one row each (column `value`).
macro_rules! each_of {
    (sqlite, $n:literal) => {
        concat!("json_each($", $n, ")")
    };
    (postgres, $n:literal) => {
        concat!("jsonb_array_elements(CAST($", $n, " AS JSONB)) AS j(value)")
    };
}
pub(super) use each_of;

/// [`each_of!`] with each element's position in column `key` (to keep
/// the array's order with `ORDER BY key`).
macro_rules! each_ordered {
    (sqlite, $n:literal) => {
        concat!("json_each($", $n, ")")
    };
    (postgres, $n:literal) => {
        concat!(
            "jsonb_array_elements(CAST($",
            $n,
            " AS JSONB)) WITH ORDINALITY AS j(value, key)"
        )
    };
}
pub(super) use each_ordered;

/// Integer element `i` of the current row array (`value`).
macro_rules! int_at {
    (sqlite, $i:literal) => {
        concat!("(value ->> ", $i, ")")
    };
    (postgres, $i:literal) => {
        concat!("CAST(value ->> ", $i, " AS BIGINT)")
    };
}
pub(super) use int_at;

/// Text element `i` of the current row array (`value`).
macro_rules! text_at {
    ($d:ident, $i:literal) => {
        concat!("(value ->> ", $i, ")")
    };
}
pub(super) use text_at;

/// After a table name: in SQLite, look rows up by id only. Without
/// statistics SQLite's planner would rather scan the `(state, queue)`
/// index for a `state IN (...)` term than look up the batch's ids.
macro_rules! by_id {
    (sqlite) => {
        " NOT INDEXED"
    };
    (postgres) => {
        ""
    };
}
pub(super) use by_id;

/// Declares `const NAME: [&str; 2]`, the statement built by `$build!(d)`
/// for SQLite and for PostgreSQL.
macro_rules! per_dialect {
    ($(#[$doc:meta])* $name:ident = $build:ident) => {
        $(#[$doc])*
        const $name: [&str; 2] = [$build!(sqlite), $build!(postgres)];
    };
}
pub(super) use per_dialect;

impl Dialect {
    /// This dialect's text of a [`per_dialect!`] statement.
    pub(super) fn pick(self, texts: &[&'static str; 2]) -> &'static str {
        match self {
            Dialect::Sqlite => texts[0],
            Dialect::Postgres => texts[1],
        }
    }
}

/// A JSON array of ids, for [`ids_in!`].
pub(super) fn id_list(ids: &[i64]) -> String {
    let mut s = String::with_capacity(ids.len() * 8 + 2);
    s.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&id.to_string());
    }
    s.push(']');
    s
}

/// A JSON array of rows for [`each_of!`]: each row a tuple, which
/// serialises as a JSON array (`None` as `null`).
pub(super) fn row_list<T: serde::Serialize>(rows: &[T]) -> Result<String> {
    serde_json::to_string(rows).map_err(|e| StoreError::Corrupt(format!("batch rows: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! probe {
        ($d:ident) => {
            concat!(
                "SELECT ",
                int_at!($d, 0),
                " AS a, ",
                text_at!($d, 1),
                " AS b FROM ",
                each_of!($d, 1),
                " WHERE ",
                int_at!($d, 0),
                " IN ",
                ids_in!($d, 2)
            )
        };
    }
    per_dialect!(PROBE = probe);

    #[test]
    fn texts_are_assembled_per_dialect() {
        assert_eq!(
            Dialect::Sqlite.pick(&PROBE),
            "SELECT (value ->> 0) AS a, (value ->> 1) AS b FROM json_each($1) \
             WHERE (value ->> 0) IN (SELECT value FROM json_each($2))"
        );
        assert!(Dialect::Postgres.pick(&PROBE).contains(
            "CAST(value ->> 0 AS BIGINT) AS a, (value ->> 1) AS b FROM \
             jsonb_array_elements(CAST($1 AS JSONB)) AS j(value)"
        ));
    }

    #[test]
    fn lists_are_json() {
        assert_eq!(id_list(&[]), "[]");
        assert_eq!(id_list(&[1, -2, 30]), "[1,-2,30]");
        let rows = [(1, "a\"b", None::<i64>), (2, "c", Some(3))];
        assert_eq!(row_list(&rows).unwrap(), r#"[[1,"a\"b",null],[2,"c",3]]"#);
    }
}
