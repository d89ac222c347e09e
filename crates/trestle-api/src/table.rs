//! The one table of operations: every route of the API with its method,
//! path, who may call it, the authorization action its handler decides,
//! its audit action and resource, and its OpenAPI entry, declared once.
//! The router ([`routes`]), the OpenAPI document ([`openapi_document`])
//! and the audit record of every routed request ([`tag`]) read it.

use crate::ops::{Access, Op, audit_of, operations};
use crate::routes::{
    audit, compute, costs, directory, events, files, jobs, login, notify, oidc, pipelines,
    projects, studies, system, tokens, users, workers, workspaces,
};
use axum::Json;
use axum::extract::{OriginalUri, Request};
use axum::middleware::Next;
use axum::response::Response;
use trestle_core::identity::authz::Action;
use trestle_service::audit::AuditSlot;

operations! {
    post "/jobs" => jobs::submit, User, Some(Action::JobSubmit), "job.submit", None,
        "Submit a job (native or seed JSON)", Some("JobRequest"), "JobView";
    get "/jobs" => jobs::list, User, Some(Action::JobRead), "job.list", None,
        "List jobs (state, queue, before, limit)", None, "JobList";
    post "/jobs/batch" => jobs::submit_batch, User, Some(Action::JobSubmit), "job.submit-batch", None,
        "Submit many jobs atomically", Some("BatchSubmit"), "BatchSubmitted";
    get "/jobs/{id}" => jobs::show, User, Some(Action::JobRead), "job.show", Some("job"),
        "Show a job with its attempts", None, "JobView";
    post "/jobs/{id}/cancel" => jobs::cancel, User, Some(Action::JobCancel), "job.cancel", Some("job"),
        "Cancel a job", None, "JobView";
    post "/jobs/{id}/resubmit" => jobs::resubmit, User, Some(Action::JobSubmit), "job.resubmit", Some("job"),
        "Run a job's work again as a new job (an array task: a plain job running the same task)", None, "JobView";
    get "/admin/damaged-jobs" => system::damaged_jobs, User, Some(Action::DamagedRead), "admin.damaged-jobs", None,
        "Stored jobs that cannot be decoded and are skipped (admins)", None, "DamagedJobs";
    get "/jobs/{id}/log" => jobs::log, User, Some(Action::JobRead), "job.log", Some("job"),
        "Read a slice of an attempt's output", None, "LogSlice";
    get "/jobs/{id}/samples" => jobs::samples, User, Some(Action::JobRead), "job.samples", Some("job"),
        "Resource samples of a job's attempts (oldest first) and their alarm states", None, "JobSamples";
    get "/jobs/{id}/outputs" => files::list_outputs, User, Some(Action::JobRead), "job.outputs", Some("job"),
        "List an attempt's output files", None, "FileList";
    get "/jobs/{id}/outputs/{*path}" => files::get_output, User, Some(Action::JobRead), "job.outputs", Some("job"),
        "Download an output file", None, "binary";
    get "/jobs/{id}/inputs" => files::list_inputs, Any, Some(Action::JobInputsRead), "job.inputs", Some("job"),
        "List a job's input files", None, "FileList";
    get "/jobs/{id}/inputs/{*path}" => files::get_input, Any, Some(Action::JobInputsRead), "job.inputs", Some("job"),
        "Download an input file", None, "binary";
    put "/jobs/{id}/attempts/{attempt}/outputs/{*path}" => files::put_output, Any, Some(Action::OutputUpload), "job.upload-output", Some("job"),
        "Upload an output file (lease holder)", Some("binary"), "none";
    post "/uploads" => files::create_upload, User, Some(Action::UploadCreate), "upload.create", None,
        "Create an upload for an input folder", None, "UploadCreated";
    put "/uploads/{id}/files/{*path}" => files::put_upload_file, User, Some(Action::UploadWrite), "upload.write", Some("upload"),
        "Upload one file of a folder", Some("binary"), "none";
    get "/uploads/{id}/files" => files::list_upload, User, Some(Action::UploadRead), "upload.read", Some("upload"),
        "List an upload's files", None, "FileList";
    get "/workers" => workers::list, User, Some(Action::WorkersList), "worker.list", None,
        "List workers", None, "WorkerView[]";
    post "/workers" => workers::register, Any, Some(Action::WorkerRegister), "worker.register", None,
        "Register a worker", Some("WorkerRegistration"), "WorkerView";
    delete "/workers/{id}" => workers::deregister, Any, Some(Action::WorkerOperate), "worker.deregister", Some("worker"),
        "Deregister a worker, handing back its jobs", None, "none";
    post "/workers/{id}/lease" => workers::lease, Any, Some(Action::WorkerOperate), "worker.lease", Some("worker"),
        "Lease jobs that fit (long-poll)", Some("LeaseRequest"), "LeaseResponse";
    get "/workers/{id}/tunnel" => workers::tunnel, Any, Some(Action::WorkerTunnel), "worker.tunnel", Some("worker"),
        "Open the worker's workspace tunnel (`Upgrade: trestle-tunnel`; yamux, streams opened by the server)", None, "upgrade";
    post "/workers/{id}/updates" => workers::updates, Any, Some(Action::WorkerOperate), "worker.updates", Some("worker"),
        "Heartbeats and attempt reports", Some("UpdatesRequest"), "UpdatesResponse";
    post "/workers/{id}/sessions" => workspaces::report, Any, Some(Action::WorkerOperate), "worker.session-report", Some("worker"),
        "A hosting worker's report on a workspace session: ready (with its per-launch secret), activity, a failed save", Some("SessionReport"), "none";
    put "/workers/{id}/sessions/{job}/home" => workspaces::put_home, Any, Some(Action::WorkerOperate), "worker.session-home-save", Some("worker"),
        "Save a workspace's home (a tar archive; lease holder)", Some("binary"), "none";
    get "/workers/{id}/sessions/{job}/home" => workspaces::get_home, Any, Some(Action::WorkerOperate), "worker.session-home-restore", Some("worker"),
        "The saved home of a workspace to restore (lease holder)", None, "binary";
    get "/workspace-types" => workspaces::list_types, User, None, "workspace-type.list", None,
        "Workspace type versions (users: approved ones; latest of each unless all=true)", None, "TypeView[]";
    post "/workspace-types" => workspaces::import_type, User, None, "workspace-type.import", None,
        "Import a workspace type version, not approved (admins)", Some("WorkspaceTypeRequest"), "TypeView";
    post "/workspace-types/{name}/{version}/approve" => workspaces::approve_type, User, None, "workspace-type.approve", Some("workspace-type"),
        "Approve a type version (admins)", None, "TypeView";
    post "/workspace-types/{name}/{version}/revoke" => workspaces::revoke_type, User, None, "workspace-type.revoke", Some("workspace-type"),
        "Revoke a type version: it cannot be launched, running workspaces show it (admins)", None, "TypeView";
    get "/workspace-configs" => workspaces::list_configs, User, None, "workspace-config.list", None,
        "Workspace configurations (users: those they may launch)", None, "ConfigView[]";
    put "/workspace-configs/{name}" => workspaces::put_config, User, None, "workspace-config.put", Some("workspace-config"),
        "Create or replace a configuration (admins)", Some("WorkspaceConfigRequest"), "ConfigView";
    delete "/workspace-configs/{name}" => workspaces::delete_config, User, None, "workspace-config.delete", Some("workspace-config"),
        "Delete a configuration; running workspaces keep theirs (admins)", None, "none";
    get "/workspaces" => workspaces::list, User, None, "workspace.list", None,
        "Your workspaces and those shared with you (admins: all=true for everyone's)", None, "WorkspaceView[]";
    post "/workspaces" => workspaces::launch, User, None, "workspace.launch", None,
        "Launch a configuration", Some("LaunchRequest"), "WorkspaceView";
    get "/workspaces/{id}" => workspaces::show, User, None, "workspace.show", Some("workspace"),
        "One workspace", None, "WorkspaceView";
    post "/workspaces/{id}/stop" => workspaces::stop, User, None, "workspace.stop", Some("workspace"),
        "Stop a workspace, saving its home (owner; admins force-stop)", None, "WorkspaceView";
    post "/workspaces/{id}/start" => workspaces::start, User, None, "workspace.start", Some("workspace"),
        "Start a stopped or failed workspace, restoring its home", None, "WorkspaceView";
    post "/workspaces/{id}/terminate" => workspaces::terminate, User, None, "workspace.terminate", Some("workspace"),
        "Terminate a workspace and delete its home", None, "WorkspaceView";
    post "/workspaces/{id}/extend" => workspaces::extend, User, None, "workspace.extend", Some("workspace"),
        "Extend a running workspace's lifetime, within its configuration's allowance", Some("ExtendRequest"), "WorkspaceView";
    post "/workspaces/{id}/share" => workspaces::share, User, None, "workspace.share", Some("workspace"),
        "Share a workspace with its project's members, or stop sharing (needs per-workspace origins)", Some("ShareRequest"), "WorkspaceView";
    get "/workspaces/{id}/shell" => workspaces::shell, User, None, "workspace.shell", Some("workspace"),
        "A shell in the workspace (Upgrade: trestle-shell; cols, rows, cmd)", None, "upgrade";
    get "/workspaces/{id}/forward/{port}" => workspaces::forward, User, None, "workspace.forward", Some("workspace"),
        "A TCP connection to a port of the workspace (Upgrade: trestle-tcp; owner only)", None, "upgrade";
    post "/workspaces/{id}/assist" => workspaces::assist, User, None, "workspace.assist", Some("workspace"),
        "An admin's audited access to a user's workspace for an hour", None, "WorkspaceView";
    get "/studies" => studies::list, User, None, "study.list", None,
        "Studies you may see: My Studies, Organization, Open Data (category=personal|organization|open)", None, "StudyView[]";
    post "/studies" => studies::create, User, None, "study.create", None,
        "Create a study charged to a project (admins and researchers); the creator is its first admin", Some("CreateStudy"), "StudyView";
    get "/studies/{name}" => studies::show, User, None, "study.show", Some("study"),
        "One study: category, project, version, size, quota and your permission", None, "StudyView";
    delete "/studies/{name}" => studies::delete, User, None, "study.delete", Some("study"),
        "Delete a study with every version and its files (the study's admins)", None, "none";
    get "/studies/{name}/files" => studies::files, User, None, "study.files", Some("study"),
        "The files of a version (default: current), with sizes and SHA-256 (version=, prefix=)", None, "StudyListing";
    get "/studies/{name}/files/{*path}" => studies::download, User, None, "study.read.download", Some("study"),
        "Download a file of a version (its SHA-256 in x-trestle-sha256, the version in x-trestle-study-version)", None, "binary";
    put "/studies/{name}/objects/{sha}" => studies::put_object, User, None, "study.upload", Some("study"),
        "Upload content of at most 64 MiB, addressed by its SHA-256 (checked as it arrives)", Some("binary"), "ObjectView";
    get "/studies/{name}/parts/{sha}" => studies::parts, User, None, "study.upload-parts", Some("study"),
        "The parts of a large upload received so far, to resume it", None, "PartsView";
    put "/studies/{name}/parts/{sha}/{n}" => studies::put_part, User, None, "study.upload", Some("study"),
        "Upload part n of a large object (the part's SHA-256 in x-trestle-sha256)", Some("binary"), "ObjectView";
    post "/studies/{name}/parts/{sha}/complete" => studies::complete_parts, User, None, "study.upload", Some("study"),
        "Join the parts into the object, checking its size and SHA-256", Some("CompleteParts"), "ObjectView";
    post "/studies/{name}/versions" => studies::commit, User, None, "study.commit", Some("study"),
        "Apply changes made against a base version as one new version (paths changed since the base conflict)", Some("CommitRequest"), "VersionView";
    get "/studies/{name}/versions" => studies::versions, User, None, "study.versions", Some("study"),
        "Every version kept, oldest first", None, "VersionView[]";
    post "/studies/{name}/prune" => studies::prune, User, None, "study.prune", Some("study"),
        "Delete versions replaced more than `keep` ago that no unfinished job reads, and their unreferenced files (the study's admins)", Some("PruneRequest"), "PruneView";
    get "/studies/{name}/grants" => studies::grants, User, None, "study.grants", Some("study"),
        "Who holds which permission (the study's admins)", None, "GrantView[]";
    put "/studies/{name}/grants/{user}" => studies::grant, User, None, "study.grant", Some("study"),
        "Grant a user admin, read-write, read-only or write-only (the study's admins)", Some("GrantRequest"), "GrantView";
    delete "/studies/{name}/grants/{user}" => studies::revoke, User, None, "study.revoke", Some("study"),
        "Revoke a user's permission (a study keeps one admin)", None, "none";
    get "/jobs/{id}/studies/{name}/files" => studies::job_files, Any, Some(Action::JobInputsRead), "job.study-files", Some("job"),
        "The files a job's study attach reads: its pinned version and subset (lease holder or readers of the job)", None, "StudyListing";
    get "/jobs/{id}/studies/{name}/objects/{sha}" => studies::job_object, Any, Some(Action::JobInputsRead), "job.study-object", Some("job"),
        "One object of a job's study attach, by SHA-256 (the attach itself is audited once, at submission)", None, "binary";
    put "/jobs/{id}/attempts/{n}/studies/{name}/objects/{sha}" => studies::job_put_object, Any, Some(Action::OutputUpload), "job.study-upload", Some("job"),
        "Upload content for a read-write attach (lease holder, lease token in trestle-lease-token)", Some("binary"), "ObjectView";
    post "/jobs/{id}/attempts/{n}/studies/{name}/versions" => studies::job_commit, Any, Some(Action::OutputUpload), "job.study-commit", Some("job"),
        "Commit a succeeded attempt's changes to a read-write attach as one version (paths changed since the pinned version conflict)", Some("CommitRequest"), "VersionView";
    put "/study-quotas/{project}" => studies::set_quota, User, None, "study.quota", Some("project"),
        "Set a project's quota for all its studies, every version kept counting (admins)", Some("StudyQuota"), "object";
    get "/healthz" => system::healthz, Probe, None, "probe.health", None,
        "Liveness", None, "text";
    get "/readyz" => system::readyz, Probe, None, "probe.ready", None,
        "Readiness (database reachable)", None, "text";
    get "/metrics" => system::metrics, Probe, None, "probe.metrics", None,
        "Prometheus metrics", None, "text";
    get "/compute-environments" => compute::list_envs, User, Some(Action::ComputeRead), "ce.list", None,
        "Compute environments with their status and registered workers", None, "ComputeEnvView[]";
    post "/compute-environments" => compute::create_env, User, Some(Action::ComputeManage), "ce.create", None,
        "Create a compute environment (admins; 409 when it exists)", Some("ComputeEnvCreate"), "ComputeEnvView";
    get "/compute-environments/{name}" => compute::show_env, User, Some(Action::ComputeRead), "ce.show", Some("ce"),
        "One compute environment with its recent events", None, "ComputeEnvView";
    put "/compute-environments/{name}" => compute::put_env, User, Some(Action::ComputeManage), "ce.put", Some("ce"),
        "Create or replace a compute environment (admins)", Some("ComputeEnvRequest"), "ComputeEnvView";
    delete "/compute-environments/{name}" => compute::delete_env, User, Some(Action::ComputeManage), "ce.delete", Some("ce"),
        "Delete a compute environment no queue lists (admins; 409 otherwise)", None, "none";
    get "/queues" => compute::list_queues, User, Some(Action::ComputeRead), "queue.list", None,
        "Queues with their priorities and compute environments", None, "QueueView[]";
    post "/queues" => compute::create_queue, User, Some(Action::ComputeManage), "queue.create", None,
        "Create a queue (admins; 409 when it exists)", Some("QueueCreate"), "QueueView";
    get "/queues/{name}" => compute::show_queue, User, Some(Action::ComputeRead), "queue.show", Some("queue"),
        "One queue", None, "QueueView";
    put "/queues/{name}" => compute::put_queue, User, Some(Action::ComputeManage), "queue.put", Some("queue"),
        "Create or replace a queue; a new priority applies to its waiting jobs (admins)", Some("QueueRequest"), "QueueView";
    delete "/queues/{name}" => compute::delete_queue, User, Some(Action::ComputeManage), "queue.delete", Some("queue"),
        "Delete a queue; its jobs stay (admins)", None, "none";
    get "/leaders" => compute::leaders, User, Some(Action::ComputeRead), "leader.list", None,
        "Which server holds each cluster-wide loop's leader lease", None, "LeaderView[]";
    get "/openapi.json" => openapi_document, Public, None, "openapi", None,
        "This document (OpenAPI 3.1)", None, "object";
    post "/login" => login::login, Public, None, "login", None,
        "Log in with a password: a session cookie, or an API token", Some("LoginRequest"), "LoginResponse";
    get "/login/oidc" => oidc::providers, Public, None, "login.oidc-providers", None,
        "The OpenID Connect providers users may sign in with", None, "OidcProviderView[]";
    post "/login/oidc/{name}/begin" => oidc::begin, Public, None, "login.oidc-begin", Some("oidc"),
        "Begin a CLI sign-in at a provider: its authorization URL for a loopback redirect and a PKCE challenge", Some("OidcBegin"), "OidcStarted";
    post "/login/oidc/{name}" => oidc::finish, Public, None, "login.oidc", Some("oidc"),
        "Finish a CLI sign-in: the provider's code and state with the PKCE verifier, for an API token", Some("OidcFinish"), "LoginResponse";
    post "/logout" => login::logout, User, None, "logout", None,
        "End the browser session", None, "none";
    get "/whoami" => login::whoami, Any, None, "whoami", None,
        "The caller: user, credential, projects", None, "WhoAmI";
    post "/admin/identity/sync" => directory::sync, User, Some(Action::UserUpdate), "identity.sync", None,
        "Sync the users held from the LDAP directory now: groups mapped again, users gone from it disabled (admins; 404 without [ldap])", None, "DirectorySync";
    get "/users" => users::list, User, Some(Action::UserList), "user.list", None,
        "List users (admins)", None, "UserView[]";
    post "/users" => users::create, User, Some(Action::UserCreate), "user.create", None,
        "Add a user (admins)", Some("NewUser"), "UserView";
    get "/users/{name}" => users::show, User, Some(Action::UserRead), "user.show", Some("user"),
        "Show a user", None, "UserView";
    patch "/users/{name}" => users::update, User, Some(Action::UserUpdate), "user.update", Some("user"),
        "Change a user's role, state, organisation, default project or password (your own needs current_password; ends the user's other sessions)", Some("UserUpdate"), "UserView";
    get "/tokens" => tokens::list, User, Some(Action::TokenRead), "token.list", None,
        "List tokens (all, revoked)", None, "TokenView[]";
    post "/tokens" => tokens::create, User, Some(Action::TokenCreate), "token.create", None,
        "Create an API token or a worker credential (shown once)", Some("NewToken"), "TokenCreated";
    get "/tokens/{id}" => tokens::show, User, Some(Action::TokenRead), "token.show", Some("token"),
        "Show a token", None, "TokenView";
    delete "/tokens/{id}" => tokens::revoke, User, Some(Action::TokenRevoke), "token.revoke", Some("token"),
        "Revoke a token", None, "TokenView";
    get "/indexes" => projects::list_indexes, User, Some(Action::IndexRead), "index.list", None,
        "List indexes (funding sources)", None, "IndexView[]";
    post "/indexes" => projects::create_index, User, Some(Action::IndexCreate), "index.create", None,
        "Add an index (admins)", Some("NewIndex"), "IndexView";
    get "/projects" => projects::list, User, Some(Action::ProjectRead), "project.list", None,
        "List projects the caller may see", None, "ProjectView[]";
    post "/projects" => projects::create, User, Some(Action::ProjectCreate), "project.create", None,
        "Add a project (admins)", Some("NewProject"), "ProjectView";
    get "/projects/{name}" => projects::show, User, Some(Action::ProjectRead), "project.show", Some("project"),
        "Show a project and its members", None, "ProjectView";
    post "/projects/{name}/members" => projects::add_member, User, Some(Action::ProjectManageMembers), "project.add-member", Some("project"),
        "Add a member or change their role", Some("MemberRequest"), "ProjectView";
    delete "/projects/{name}/members/{user}" => projects::remove_member, User, Some(Action::ProjectManageMembers), "project.remove-member", Some("project"),
        "Remove a member", None, "ProjectView";
    get "/audit" => audit::query, User, Some(Action::AuditRead), "audit.query", None,
        "Query the audit trail (principal, action, resource, ip, method, since, until, status, changes, workers, group-by, limit)", None, "AuditAnswer";
    get "/audit/queries" => audit::list_queries, User, Some(Action::AuditRead), "audit.queries", None,
        "List the named audit queries", None, "NamedQuery[]";
    get "/audit/queries/{name}" => audit::run_query, User, Some(Action::AuditRead), "audit.queries", None,
        "Run a named audit query with its parameters", None, "AuditAnswer";
    get "/audit/unused" => audit::list_unused, User, Some(Action::AuditRead), "audit.unused", None,
        "Tokens and users unused for a period", None, "UnusedReport";
    post "/audit/unused" => audit::post_unused, User, Some(Action::AuditManage), "audit.disable-unused", None,
        "Revoke and disable unused credentials", Some("DisableUnused"), "UnusedReport";
    post "/pipelines" => pipelines::submit, User, Some(Action::JobSubmit), "pipeline.submit", None,
        "Submit a pipeline: named steps that run after the steps they name", Some("PipelineRequest"), "JobView";
    get "/events" => events::stream, User, Some(Action::JobRead), "events", None,
        "Job state changes as server-sent events (text/event-stream; job, state, queue, after, follow; resume with Last-Event-ID)", None, "EventView";
    get "/jobs/{id}/upstream" => pipelines::upstream, Any, Some(Action::JobInputsRead), "job.upstream", Some("job"),
        "Output files of the jobs a job depends on (staged by its worker)", None, "UpstreamList";
    get "/jobs/{id}/upstream/{dep}/{attempt}/{*path}" => pipelines::upstream_file, Any, Some(Action::JobInputsRead), "job.upstream", Some("job"),
        "One upstream output file (raw bytes)", None, "none";
    get "/costs" => costs::report, User, None, "cost.report", None,
        "Charges over the last days, grouped (by: user, project, index, env, kind, day; days, project, user, index, per_day)", None, "CostReport";
    get "/jobs/{id}/cost" => costs::job_cost, User, None, "job.cost", Some("job"),
        "What a job cost (an array or pipeline: its children)", None, "CostOf";
    get "/workspaces/{id}/cost" => costs::workspace_cost, User, None, "workspace.cost", Some("workspace"),
        "What a workspace cost (its running intervals)", None, "CostOf";
    get "/budgets" => costs::list, User, None, "budget.list", None,
        "List the budgets the caller may see, with their state", None, "BudgetView[]";
    get "/projects/{name}/budget" => costs::show_project, User, None, "budget.show", Some("project"),
        "Show a project's budget and its state", None, "BudgetView";
    put "/projects/{name}/budget" => costs::put_project, User, None, "budget.set", Some("project"),
        "Set or raise a project's budget (admins)", Some("BudgetRequest"), "BudgetView";
    delete "/projects/{name}/budget" => costs::delete_project, User, None, "budget.delete", Some("project"),
        "Delete a project's budget (admins)", None, "none";
    get "/indexes/{name}/budget" => costs::show_index, User, None, "budget.show", Some("index"),
        "Show an index's budget and its state", None, "BudgetView";
    put "/indexes/{name}/budget" => costs::put_index, User, None, "budget.set", Some("index"),
        "Set or raise an index's budget (admins)", Some("BudgetRequest"), "BudgetView";
    delete "/indexes/{name}/budget" => costs::delete_index, User, None, "budget.delete", Some("index"),
        "Delete an index's budget (admins)", None, "none";
    post "/jobs/{id}/budget-override" => costs::override_job, User, None, "budget.override", Some("job"),
        "Let one job past its project's budget (admins)", None, "BudgetOverride";
    get "/notify/targets" => notify::list_targets, User, Some(Action::NotifyTargetRead), "notify.target.list", None,
        "Notification targets: every one (admins), else the caller's own; secrets masked", None, "NotifyTargetView[]";
    post "/notify/targets" => notify::create_target, User, Some(Action::NotifyTargetManage), "notify.target.create", None,
        "Add a Slack, Teams, webhook or email target (admins: shared; others: their own); a made-up signing secret is shown once", Some("NotifyTargetSpec"), "NotifyTargetCreated";
    get "/notify/targets/{name}" => notify::show_target, User, Some(Action::NotifyTargetRead), "notify.target.show", Some("notify-target"),
        "One notification target, secrets masked", None, "NotifyTargetView";
    put "/notify/targets/{name}" => notify::update_target, User, Some(Action::NotifyTargetManage), "notify.target.update", Some("notify-target"),
        "Replace a notification target (secrets left out are kept)", Some("NotifyTargetSpec"), "NotifyTargetView";
    delete "/notify/targets/{name}" => notify::delete_target, User, Some(Action::NotifyTargetManage), "notify.target.delete", Some("notify-target"),
        "Delete a notification target and what it still had to send", None, "none";
    post "/notify/targets/{name}/test" => notify::test_target, User, Some(Action::NotifyTargetManage), "notify.target.test", Some("notify-target"),
        "Send a test message now and say whether it was accepted", None, "NotifyTestResult";
    get "/notify/rules" => notify::list_rules, User, Some(Action::NotifyRuleRead), "notify.rule.list", None,
        "Notification rules (admins)", None, "NotifyRuleView[]";
    post "/notify/rules" => notify::create_rule, User, Some(Action::NotifyRuleManage), "notify.rule.create", None,
        "Send events matching patterns (of a project) to targets (admins)", Some("NotifyRuleSpec"), "NotifyRuleView";
    delete "/notify/rules/{name}" => notify::delete_rule, User, Some(Action::NotifyRuleManage), "notify.rule.delete", Some("notify-rule"),
        "Delete a notification rule (admins)", None, "none";
    get "/notify/subscriptions" => notify::subscriptions, User, Some(Action::NotifySubscribe), "notify.subscriptions", None,
        "A user's address, whether anything reaches them, their defaults and subscriptions (user: admins)", None, "NotifySubscriptions";
    post "/notify/subscriptions" => notify::subscribe, User, Some(Action::NotifySubscribe), "notify.subscribe", None,
        "Subscribe to one's own events of some types, to email or an own target, or to one job's events", Some("NotifySubscriptionSpec"), "NotifySubscriptionView";
    post "/notify/unsubscribe" => notify::unsubscribe, User, Some(Action::NotifySubscribe), "notify.unsubscribe", None,
        "Mute event types in one's email, or delete a subscription by id", Some("NotifyUnsubscribe"), "NotifyUnsubscribed";
    put "/notify/addresses/{name}" => notify::set_address, User, Some(Action::NotifyAdmin), "notify.address.set", Some("user"),
        "Set (or clear) the address a user's notifications go to (admins)", Some("NotifyAddress"), "NotifySubscriptions";
    get "/notify/deliveries" => notify::deliveries, User, Some(Action::NotifyTargetRead), "notify.delivery.list", None,
        "Deliveries, newest first (state, target, before, limit): pending, delivered, dead letters with their last error", None, "NotifyDeliveryView[]";
    get "/notify/deliveries/{id}" => notify::delivery, User, Some(Action::NotifyTargetRead), "notify.delivery.show", Some("notify-delivery"),
        "One delivery", None, "NotifyDeliveryView";
    post "/notify/deliveries/{id}/retry" => notify::retry_delivery, User, Some(Action::NotifyTargetManage), "notify.delivery.retry", Some("notify-delivery"),
        "Try a dead letter again", None, "NotifyDeliveryView";
    post "/notify/secrets/rotate" => notify::rotate, User, Some(Action::NotifyAdmin), "notify.secrets.rotate", None,
        "Add a new keyring key (unless add_key is false) and re-encrypt every secret under it (admins)", Some("NotifyRotate"), "NotifyRotateResult";
}

/// `GET /api/v1/openapi.json`: the document built from the table.
pub async fn openapi_document() -> Json<serde_json::Value> {
    Json(crate::openapi::document(OPS))
}

/// The operation a routed request matched: by method and the route
/// template axum matched (`/api/v1/jobs/{id}`).
pub fn find(method: &str, matched: &str) -> Option<&'static Op> {
    OPS.iter()
        .find(|o| o.method.eq_ignore_ascii_case(method) && o.full_path() == matched)
}

/// Route middleware: records which operation of the table a request
/// matched, for the audit record.
pub async fn tag(req: Request, next: Next) -> Response {
    let matched = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string());
    if let (Some(m), Some(slot)) = (matched, req.extensions().get::<AuditSlot>()) {
        let path = req
            .extensions()
            .get::<OriginalUri>()
            .map(|u| u.0.path().to_string())
            .unwrap_or_else(|| req.uri().path().to_string());
        if let Some(op) = find(req.method().as_str(), &m) {
            let (action, resource) = audit_of(op, &path);
            slot.set_operation(action, resource);
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_operation_is_routed_once_with_an_openapi_entry_and_an_audit_action() {
        let mut seen = HashSet::new();
        let doc = crate::openapi::document(OPS);
        for op in OPS {
            assert!(
                seen.insert((op.method, op.path)),
                "{} {} twice",
                op.method,
                op.path
            );
            assert!(!op.audit.is_empty() && !op.summary.is_empty(), "{op:?}");
            let entry = &doc["paths"][op.openapi_path()][op.method];
            assert!(
                entry.is_object(),
                "{} {} has no OpenAPI entry",
                op.method,
                op.path
            );
            assert_eq!(entry["x-audit-action"], op.audit);
            assert_eq!(
                op.access == Access::Public || op.access == Access::Probe,
                entry["security"] == serde_json::json!([]),
                "{op:?}"
            );
        }
        // The router serves exactly the table: one route per (method, path).
        let paths: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_object().unwrap().len())
            .sum();
        assert_eq!(paths, OPS.len());
    }

    #[test]
    fn audit_actions_and_resources_come_from_the_table() {
        let op = find("POST", "/api/v1/jobs/{id}/cancel").unwrap();
        assert_eq!(
            audit_of(op, "/api/v1/jobs/12/cancel"),
            ("job.cancel".into(), Some("job:12".into()))
        );
        let op = find("delete", "/api/v1/projects/{name}/members/{user}").unwrap();
        assert_eq!(
            audit_of(op, "/api/v1/projects/bio/members/bob")
                .1
                .as_deref(),
            Some("project:bio")
        );
        assert!(find("GET", "/api/v1/nope").is_none());
        // The same names the path-parsing classification gave for the
        // operations it knew.
        for (method, path, template) in [
            ("GET", "/api/v1/jobs/7", "/api/v1/jobs/{id}"),
            (
                "POST",
                "/api/v1/workers/w-1/lease",
                "/api/v1/workers/{id}/lease",
            ),
            ("PATCH", "/api/v1/users/alice", "/api/v1/users/{name}"),
            ("POST", "/api/v1/audit/unused", "/api/v1/audit/unused"),
            (
                "PUT",
                "/api/v1/jobs/3/attempts/1/outputs/a/b.txt",
                "/api/v1/jobs/{id}/attempts/{attempt}/outputs/{*path}",
            ),
        ] {
            let op = find(method, template).unwrap();
            assert_eq!(
                audit_of(op, path),
                trestle_core::audit::classify(method, path),
                "{path}"
            );
        }
    }

    #[test]
    fn worker_credentials_reach_only_worker_operations() {
        for op in OPS.iter().filter(|o| o.access == Access::Any) {
            if let Some(a) = op.action {
                assert!(a.is_worker_action(), "{op:?}");
            }
        }
        for op in OPS.iter().filter(|o| o.access == Access::User) {
            assert!(op.action.is_none_or(|a| !a.is_worker_action()), "{op:?}");
        }
    }
}
