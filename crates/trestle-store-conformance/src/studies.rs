//! The conformance suite for studies: names are unique and the owner is
//! the first admin; listings return what a user may be shown (open
//! studies, their projects' organisation studies, their grants); grants
//! are replaced and revoked; versions are a compare-and-set on the
//! current version; quotas (the study's and its project's) count every
//! distinct object of every version kept, and a refused commit changes
//! nothing; deleting a study removes its rows.

use std::sync::Arc;
use trestle_core::study::manifest::{Change, Manifest, apply};
use trestle_core::study::{Category, Permission};
use trestle_store::study::{Committed, GrantRecord, NewVersion, StudyFilter, StudyRecord};
use trestle_store::{Store, StoreError};

/// Names of every check.
pub const CHECKS: &[&str] = &[
    "studies_grants_and_listing",
    "versions_are_compare_and_set",
    "quotas_count_every_version_kept",
    "old_versions_are_pruned_but_not_those_in_use",
];

/// Runs one named check.
pub async fn run(name: &str, s: Arc<dyn Store>) {
    match name {
        "studies_grants_and_listing" => grants(&*s).await,
        "versions_are_compare_and_set" => versions(&*s).await,
        "quotas_count_every_version_kept" => quotas(&*s).await,
        "old_versions_are_pruned_but_not_those_in_use" => prune(&*s).await,
        other => panic!("unknown studies conformance check `{other}`"),
    }
}

const T0: i64 = 1_700_000_000_000;

fn study(name: &str, category: Category, project: &str, quota: Option<u64>) -> StudyRecord {
    StudyRecord {
        id: 0,
        name: name.into(),
        category,
        project: project.into(),
        org: Some("uni".into()),
        owner: "alice".into(),
        description: Some("a data set".into()),
        quota_bytes: quota,
        version: 0,
        stored_bytes: 0,
        created_at: T0,
    }
}

fn put(path: &str, n: u8, size: u64) -> Change {
    Change::Put {
        path: path.into(),
        size,
        sha256: format!("{n:02x}").repeat(32),
    }
}

fn version<'a>(id: i64, after: u64, m: &'a Manifest) -> NewVersion<'a> {
    NewVersion {
        study_id: id,
        after,
        manifest: m,
        created_by: Some("alice"),
        job_id: None,
        message: Some("change"),
        now: T0 + after as i64 + 1,
    }
}

async fn grants(s: &dyn Store) {
    let a = s
        .insert_study(&study("genomes", Category::Personal, "p", None))
        .await
        .unwrap();
    let err = s
        .insert_study(&study("genomes", Category::Open, "q", None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { ref field, .. } if field == "name"),
        "{err:?}"
    );
    s.insert_study(&study("census", Category::Open, "q", None))
        .await
        .unwrap();
    s.insert_study(&study("lab-notes", Category::Organization, "p", None))
        .await
        .unwrap();
    s.insert_study(&study("other-lab", Category::Organization, "q", None))
        .await
        .unwrap();
    let got = s.study("genomes").await.unwrap().unwrap();
    assert_eq!((got.id, got.version, got.stored_bytes), (a, 0, 0));
    assert_eq!(got.category, Category::Personal);
    assert_eq!(got.description.as_deref(), Some("a data set"));
    assert_eq!(
        s.study_grant(a, "alice").await.unwrap(),
        Some(Permission::Admin),
        "the owner is the first admin"
    );
    assert_eq!(s.study_grant(a, "bob").await.unwrap(), None);
    let names = |v: Vec<StudyRecord>| v.into_iter().map(|s| s.name).collect::<Vec<_>>();
    // Bob, a member of `p`, with no grants: open and p's organisation studies.
    let bob = StudyFilter {
        user: Some("bob".into()),
        projects: vec!["p".into()],
        category: None,
    };
    assert_eq!(
        names(s.studies(&bob).await.unwrap()),
        ["census", "lab-notes"]
    );
    s.put_study_grant(
        a,
        &GrantRecord {
            user: "bob".into(),
            permission: Permission::WriteOnly,
            granted_by: Some("alice".into()),
            granted_at: T0 + 1,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        names(s.studies(&bob).await.unwrap()),
        ["census", "genomes", "lab-notes"]
    );
    let mine = StudyFilter {
        category: Some(Category::Personal),
        ..bob.clone()
    };
    assert_eq!(names(s.studies(&mine).await.unwrap()), ["genomes"]);
    // A grant is replaced, not added.
    s.put_study_grant(
        a,
        &GrantRecord {
            user: "bob".into(),
            permission: Permission::ReadOnly,
            granted_by: Some("alice".into()),
            granted_at: T0 + 2,
        },
    )
    .await
    .unwrap();
    let g = s.study_grants(a).await.unwrap();
    assert_eq!(g.len(), 2, "{g:?}");
    assert_eq!(g[1].user, "bob");
    assert_eq!(g[1].permission, Permission::ReadOnly);
    assert_eq!(g[1].granted_at, T0 + 2);
    assert!(s.revoke_study_grant(a, "bob").await.unwrap());
    assert!(!s.revoke_study_grant(a, "bob").await.unwrap());
    assert_eq!(
        names(s.studies(&bob).await.unwrap()),
        ["census", "lab-notes"]
    );
    let everyone = s.studies(&StudyFilter::default()).await.unwrap();
    assert_eq!(everyone.len(), 4);
    // Deleting removes the study and its rows; the name can be used again.
    assert!(s.delete_study(a).await.unwrap());
    assert!(!s.delete_study(a).await.unwrap());
    assert!(s.study("genomes").await.unwrap().is_none());
    assert!(s.study_grants(a).await.unwrap().is_empty());
    let again = s
        .insert_study(&study("genomes", Category::Personal, "p", None))
        .await
        .unwrap();
    assert_ne!(again, a);
}

async fn versions(s: &dyn Store) {
    let id = s
        .insert_study(&study("s", Category::Personal, "p", None))
        .await
        .unwrap();
    assert_eq!(
        s.study_manifest(id, 0).await.unwrap(),
        Some(Manifest::default())
    );
    assert_eq!(s.study_manifest(id, 1).await.unwrap(), None);
    let v1 = apply(&Manifest::default(), &[put("a", 1, 10), put("d/b", 2, 20)]).unwrap();
    assert_eq!(
        s.commit_study_version(&version(id, 0, &v1)).await.unwrap(),
        Committed::Done {
            version: 1,
            stored_bytes: 30
        }
    );
    // A second writer that read version 0 must merge again.
    let other = apply(&Manifest::default(), &[put("c", 3, 5)]).unwrap();
    assert_eq!(
        s.commit_study_version(&version(id, 0, &other))
            .await
            .unwrap(),
        Committed::Moved { current: 1 }
    );
    let v2 = apply(&v1, &[put("c", 3, 5)]).unwrap();
    let mut nv = version(id, 1, &v2);
    nv.job_id = Some(42);
    assert!(matches!(
        s.commit_study_version(&nv).await.unwrap(),
        Committed::Done { version: 2, .. }
    ));
    assert_eq!(s.study_manifest(id, 1).await.unwrap().as_ref(), Some(&v1));
    assert_eq!(s.study_manifest(id, 2).await.unwrap().as_ref(), Some(&v2));
    let list = s.study_versions(id).await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!((list[0].version, list[0].files, list[0].bytes), (1, 2, 30));
    assert_eq!((list[1].version, list[1].job_id), (2, Some(42)));
    assert_eq!(list[1].created_by.as_deref(), Some("alice"));
    assert_eq!(list[1].message.as_deref(), Some("change"));
    let st = s.study("s").await.unwrap().unwrap();
    assert_eq!((st.version, st.stored_bytes), (2, 35));
    let gone = version(id + 1000, 0, &v1);
    assert_eq!(
        s.commit_study_version(&gone).await.unwrap(),
        Committed::Gone
    );
}

async fn quotas(s: &dyn Store) {
    let id = s
        .insert_study(&study("q1", Category::Personal, "proj", Some(100)))
        .await
        .unwrap();
    let v1 = apply(&Manifest::default(), &[put("a", 1, 60)]).unwrap();
    assert!(matches!(
        s.commit_study_version(&version(id, 0, &v1)).await.unwrap(),
        Committed::Done { .. }
    ));
    // Deleting `a` and adding 50 new bytes: version 1 is kept, so its 60
    // bytes still count: 110 > 100.
    let v2 = apply(&v1, &[Change::Delete { path: "a".into() }, put("b", 2, 50)]).unwrap();
    let Committed::Quota(e) = s.commit_study_version(&version(id, 1, &v2)).await.unwrap() else {
        panic!("the study's quota was not enforced");
    };
    assert_eq!(e.code, "quota-exceeded");
    assert!(e.message.contains("study `q1`"), "{}", e.message);
    let st = s.study("q1").await.unwrap().unwrap();
    assert_eq!((st.version, st.stored_bytes), (1, 60), "nothing changed");
    assert_eq!(s.study_versions(id).await.unwrap().len(), 1);
    // The same content under another name adds nothing.
    let v2 = apply(&v1, &[put("copy-of-a", 1, 60)]).unwrap();
    assert!(matches!(
        s.commit_study_version(&version(id, 1, &v2)).await.unwrap(),
        Committed::Done {
            version: 2,
            stored_bytes: 60
        }
    ));
    // The project's quota counts every study of the project.
    assert_eq!(s.project_study_quota("proj").await.unwrap(), None);
    s.set_project_study_quota("proj", Some(80), "admin", T0)
        .await
        .unwrap();
    assert_eq!(s.project_study_quota("proj").await.unwrap(), Some(80));
    let other = s
        .insert_study(&study("q2", Category::Personal, "proj", None))
        .await
        .unwrap();
    let w = apply(&Manifest::default(), &[put("x", 7, 30)]).unwrap();
    let Committed::Quota(e) = s
        .commit_study_version(&version(other, 0, &w))
        .await
        .unwrap()
    else {
        panic!("the project's quota was not enforced");
    };
    assert!(e.message.contains("project `proj`"), "{}", e.message);
    let w = apply(&Manifest::default(), &[put("x", 7, 20)]).unwrap();
    assert!(matches!(
        s.commit_study_version(&version(other, 0, &w))
            .await
            .unwrap(),
        Committed::Done { .. }
    ));
    assert_eq!(s.project_study_bytes("proj").await.unwrap(), 80);
    s.set_project_study_quota("proj", None, "admin", T0)
        .await
        .unwrap();
    assert_eq!(s.project_study_quota("proj").await.unwrap(), None);
}

async fn prune(s: &dyn Store) {
    let id = s
        .insert_study(&study("old", Category::Personal, "p", None))
        .await
        .unwrap();
    let v1 = apply(&Manifest::default(), &[put("a", 1, 10), put("b", 2, 20)]).unwrap();
    s.commit_study_version(&version(id, 0, &v1)).await.unwrap();
    let v2 = apply(&v1, &[Change::Delete { path: "a".into() }]).unwrap();
    s.commit_study_version(&version(id, 1, &v2)).await.unwrap();
    let v3 = apply(&v2, &[put("c", 3, 5)]).unwrap();
    s.commit_study_version(&version(id, 2, &v3)).await.unwrap();
    // An unfinished job reads version 2.
    let mut spec = crate::support::spec(r#"{"command": ["true"]}"#);
    spec.studies = vec![trestle_core::study::attach::StudyAttach {
        study: "old".into(),
        subdir: None,
        mode: trestle_core::study::attach::AttachMode::Ro,
        path: None,
        version: Some(2),
    }];
    s.submit(&[spec], T0).await.unwrap();
    let used = s.study_versions_in_use("old").await.unwrap();
    assert_eq!(used.into_iter().collect::<Vec<_>>(), [2]);
    assert!(s.study_versions_in_use("other").await.unwrap().is_empty());
    // Version 1 goes: object `a` (10 bytes) is referenced by no kept version.
    let gone = s.prune_study_versions(id, &[1], T0 + 100).await.unwrap();
    assert_eq!(gone, [format!("{:02x}", 1).repeat(32)]);
    let list = s.study_versions(id).await.unwrap();
    assert_eq!(list.len(), 3, "the row stays");
    assert_eq!(list[0].deleted_at, Some(T0 + 100));
    assert_eq!(list[1].deleted_at, None);
    assert_eq!(
        s.study_manifest(id, 1).await.unwrap(),
        None,
        "its manifest is gone"
    );
    assert_eq!(s.study_manifest(id, 2).await.unwrap().as_ref(), Some(&v2));
    assert_eq!(s.study("old").await.unwrap().unwrap().stored_bytes, 25);
    // Pruning again changes nothing.
    assert!(
        s.prune_study_versions(id, &[1], T0 + 200)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.study_versions(id).await.unwrap()[0].deleted_at,
        Some(T0 + 100)
    );
}
