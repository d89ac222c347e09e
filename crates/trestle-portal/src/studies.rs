//! Study pages: the three shelves (My Studies, Organization, Open Data),
//! one study with its files (browse, download through the API with the
//! session, checked by its SHA-256 there) and an upload drop zone with
//! progress, and the permissions page for the study's admins. Every
//! answer comes from `trestle_service::studies`, with its authorization.

use super::login::or_error;
use super::{Form, Nav, Viewer, csrf_field, error_page, html_response, page, when};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use std::collections::HashMap;
use trestle_core::api::study::GrantRequest;
use trestle_core::study::Category;
use trestle_core::study::quota::human;
use trestle_service::Service;
use trestle_service::studies as svc;

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn file_url(study: &str, path: &str, version: u64) -> String {
    let p: Vec<String> = path.split('/').map(enc).collect();
    format!(
        "/api/v1/studies/{}/files/{}?version={version}",
        enc(study),
        p.join("/")
    )
}

/// `GET /ui/studies?category=`: the three shelves.
pub async fn list(
    State(app): State<Service>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let cat = q
        .get("category")
        .and_then(|c| Category::parse(c))
        .unwrap_or(Category::Personal);
    let all = match or_error(&v, svc::list(&app, &v.p, Some(cat.as_str())).await) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let body = html! {
        nav class="tabs" aria-label="Study categories" {
            @for c in svc::tabs() {
                @let href = format!("/ui/studies?category={}", c.as_str());
                @if c == cat { a href=(href) aria-current="page" { (c.title()) } }
                @else { a href=(href) { (c.title()) } }
            }
        }
        @if all.is_empty() {
            p { "No studies here yet. Create one with " code { "trestle study create NAME" } "." }
        } @else {
            table {
                thead { tr { th { "Name" } th { "Project" } th { "Your permission" } th { "Version" } th { "Stored" } th { "Description" } } }
                tbody {
                    @for s in &all {
                        tr {
                            td { a href=(format!("/ui/studies/{}", enc(&s.name))) { (s.name) } }
                            td { (s.project) }
                            td { (s.permission.map_or("-", |p| p.as_str())) }
                            td { (s.version) }
                            td { (human(s.stored_bytes)) }
                            td { (s.description.clone().unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    };
    html_response(
        StatusCode::OK,
        page(Some(&v), Nav::Studies, "Studies", body),
    )
}

/// `GET /ui/studies/{name}?version=`: files, downloads and uploads.
pub async fn show(
    State(app): State<Service>,
    v: Viewer,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let s = match or_error(&v, svc::show(&app, &v.p, &name).await) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let can_read = s.files.is_some();
    let listing = if can_read {
        match or_error(
            &v,
            svc::files(
                &app,
                &v.p,
                &name,
                q.get("version").map(String::as_str),
                None,
            )
            .await,
        ) {
            Ok(l) => Some(l),
            Err(r) => return *r,
        }
    } else {
        None
    };
    let versions = if can_read {
        svc::versions(&app, &v.p, &name).await.unwrap_or_default()
    } else {
        Vec::new()
    };
    let perm = s.permission;
    let writes = perm.is_some_and(|p| p.can_write());
    let admin = perm == Some(trestle_core::study::Permission::Admin);
    let body = html! {
        p class="meta" {
            (s.category.title()) " · project " (s.project) " · owner " (s.owner)
            " · your permission: " strong { (perm.map_or("-", |p| p.as_str())) }
            " · stored " (human(s.stored_bytes))
            @if let Some(qb) = s.quota_bytes { " of " (human(qb)) }
        }
        @if let Some(d) = &s.description { p { (d) } }
        @if admin { p { a href=(format!("/ui/studies/{}/permissions", enc(&name))) { "Permissions" } } }
        @if let Some(l) = &listing {
            h2 { "Files of version " (l.version) }
            @if l.files.is_empty() { p { "No files yet." } }
            @else {
                table {
                    thead { tr { th { "Path" } th { "Size" } th { "SHA-256" } } }
                    tbody {
                        @for f in &l.files {
                            tr {
                                td { a href=(file_url(&name, &f.path, l.version)) download { (f.path) } }
                                td { (human(f.size)) }
                                td { code { (&f.sha256[..16]) "…" } }
                            }
                        }
                    }
                }
            }
        } @else {
            p { "This study is a deposit box for you: you may add files but not read them." }
        }
        @if writes {
            h2 { "Upload" }
            div id="study-dropzone" class="dropzone" tabindex="0" data-study=(name) data-version=(s.version) {
                p { "Drop files or a folder here, or " label for="study-files" class="button" { "choose files" } }
                input id="study-files" type="file" multiple class="visually-hidden";
                progress id="upload-progress" max="100" value="0" hidden {}
                p id="upload-status" role="status" aria-live="polite" {}
            }
            p class="hint" { "Each file is checked by its SHA-256 on the server; the whole drop becomes one new version. Large files: " code { "trestle study upload" } " sends them in resumable parts." }
        }
        @if !versions.is_empty() {
            h2 { "Versions" }
            table {
                thead { tr { th { "Version" } th { "Files" } th { "Bytes" } th { "By" } th { "Job" } th { "When" } } }
                tbody {
                    @for ver in versions.iter().rev() {
                        tr {
                            td { a href=(format!("/ui/studies/{}?version={}", enc(&name), ver.version)) { (ver.version) } }
                            td { (ver.files) }
                            td { (human(ver.bytes)) }
                            td { (ver.created_by.clone().unwrap_or_default()) }
                            td { @if let Some(j) = ver.job_id { a href=(format!("/ui/jobs/{j}")) { (j) } } }
                            td { (when(ver.created_at)) }
                        }
                    }
                }
            }
        }
    };
    html_response(
        StatusCode::OK,
        page(Some(&v), Nav::Studies, &format!("Study {name}"), body),
    )
}

/// `GET /ui/studies/{name}/permissions` (the study's admins).
pub async fn permissions(
    State(app): State<Service>,
    v: Viewer,
    Path(name): Path<String>,
) -> Response {
    let grants = match or_error(&v, svc::grants(&app, &v.p, &name).await) {
        Ok(g) => g,
        Err(r) => return *r,
    };
    let action = format!("/ui/studies/{}/permissions", enc(&name));
    let body = html! {
        p { a href=(format!("/ui/studies/{}", enc(&name))) { "Back to the study" } }
        table {
            thead { tr { th { "User" } th { "Permission" } th { "Granted by" } th { "When" } th {} } }
            tbody {
                @for g in &grants {
                    tr {
                        td { (g.user) }
                        td { (g.permission.as_str()) }
                        td { (g.granted_by.clone().unwrap_or_default()) }
                        td { (when(g.granted_at)) }
                        td {
                            form method="post" action=(action) class="inline" {
                                (csrf_field(&v))
                                input type="hidden" name="user" value=(g.user);
                                input type="hidden" name="permission" value="revoke";
                                button type="submit" { "Revoke" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Grant" }
        form method="post" action=(action) {
            (csrf_field(&v))
            div class="field" {
                label for="grant-user" { "User" }
                input id="grant-user" name="user" type="text" required;
            }
            div class="field" {
                label for="grant-permission" { "Permission" }
                select id="grant-permission" name="permission" {
                    @for p in trestle_core::study::Permission::ALL {
                        option value=(p.as_str()) selected[p == trestle_core::study::Permission::ReadOnly] { (p.as_str()) }
                    }
                }
            }
            button type="submit" { "Grant" }
        }
    };
    html_response(
        StatusCode::OK,
        page(
            Some(&v),
            Nav::Studies,
            &format!("Permissions of {name}"),
            body,
        ),
    )
}

/// `POST /ui/studies/{name}/permissions`: grant, or revoke.
pub async fn change_permission(
    State(app): State<Service>,
    v: Viewer,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let f = Form::parse(&body);
    if let Err(r) = f.check_csrf(&v) {
        return *r;
    }
    let user = f.get("user").to_string();
    let r = if f.get("permission") == "revoke" {
        svc::revoke(&app, &v.p, &name, &user).await
    } else {
        let req = GrantRequest {
            permission: f.get("permission").to_string(),
        };
        svc::grant(&app, &v.p, &name, &user, req).await.map(|_| ())
    };
    match r {
        Ok(()) => Redirect::to(&format!("/ui/studies/{}/permissions", enc(&name))).into_response(),
        Err(e) => error_page(Some(&v), &e),
    }
}
