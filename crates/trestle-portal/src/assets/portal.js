// Trestle portal: live updates (job state over the server-sent event
// stream, log text by polling the log endpoint while the job runs) and
// input-folder uploads with progress. Everything else works without this
// script.
const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
const TERMINAL = ["SUCCEEDED", "FAILED", "CANCELLED"];

// Reloads the page when the job's state differs from the one it shows.
// The stream first replays the job's history, then follows it live; only
// the latest state counts, so the replay does not trigger a reload.
function watchState(job, badge) {
  if (!window.EventSource || !badge) return;
  const es = new EventSource(`/api/v1/events?job=${job}&follow=true`);
  let latest = null;
  let timer = null;
  es.addEventListener("job", (m) => {
    try {
      const e = JSON.parse(m.data);
      if (e.job_id !== Number(job)) return; // children of a group
      latest = e.state;
    } catch (_) { return; }
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (latest && latest !== badge.dataset.state) { es.close(); location.reload(); }
    }, 300);
  });
}

function followLog(pre) {
  let next = Number(pre.dataset.next || 0);
  let attempt = Number(pre.dataset.attempt || 0);
  const badge = document.getElementById("job-state");
  watchState(pre.dataset.job, badge);
  const tick = async () => {
    let done = false;
    try {
      const q = attempt ? `attempt=${attempt}&after=${next}` : `after=${next}`;
      const r = await fetch(`/api/v1/jobs/${pre.dataset.job}/log?${q}`, { credentials: "same-origin" });
      if (r.ok) {
        const s = await r.json();
        if (s.attempt !== attempt) { pre.textContent = ""; attempt = s.attempt; }
        if (s.data) {
          const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
          pre.textContent += s.data;
          if (atEnd) pre.scrollTop = pre.scrollHeight;
        }
        next = s.next;
        done = TERMINAL.includes(s.state) && !s.data;
        if (badge && badge.dataset.state !== s.state && !window.EventSource) {
          location.reload(); // no event stream in this browser
          return;
        }
      }
    } catch (_) { /* try again */ }
    if (!done) setTimeout(tick, 1000);
  };
  setTimeout(tick, 1000);
}

async function upload(files) {
  const status = document.getElementById("upload-status");
  const bar = document.getElementById("upload-progress");
  const target = document.getElementById("inputs");
  const list = Array.from(files).filter((f) => f.size >= 0);
  if (!list.length) return;
  const total = list.reduce((n, f) => n + f.size, 0) || 1;
  let done = 0;
  bar.hidden = false; bar.value = 0;
  status.textContent = `Uploading ${list.length} files...`;
  const made = await fetch("/api/v1/uploads", { method: "POST", credentials: "same-origin", headers: { "x-csrf-token": csrf } });
  if (!made.ok) { status.textContent = `Upload refused: ${(await made.json()).error?.message ?? made.status}`; return; }
  const { id } = await made.json();
  for (const f of list) {
    const rel = (f.relPath || f.webkitRelativePath || f.name).split("/");
    if (rel.length > 1 && !f.relPath) rel.shift(); // drop the chosen folder's own name
    const path = rel.map(encodeURIComponent).join("/");
    await new Promise((ok, fail) => {
      const x = new XMLHttpRequest();
      x.open("PUT", `/api/v1/uploads/${id}/files/${path}`);
      x.setRequestHeader("x-csrf-token", csrf);
      x.upload.onprogress = (e) => { bar.value = ((done + e.loaded) / total) * 100; };
      x.onload = () => (x.status < 300 ? ok() : fail(new Error(`${f.name}: HTTP ${x.status}`)));
      x.onerror = () => fail(new Error(`${f.name}: network error`));
      x.send(f);
    }).catch((e) => { status.textContent = `Upload failed: ${e.message}`; throw e; });
    done += f.size;
  }
  bar.value = 100;
  target.value = id;
  status.textContent = `Uploaded ${list.length} files as ${id}.`;
}

async function walk(entry, prefix, out) {
  if (entry.isFile) {
    const f = await new Promise((ok, fail) => entry.file(ok, fail));
    f.relPath = prefix + f.name;
    out.push(f);
  } else if (entry.isDirectory) {
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
      if (!batch.length) break;
      for (const e of batch) await walk(e, prefix + entry.name + "/", out);
    }
  }
}

function dropzone(zone) {
  const input = document.getElementById("folder");
  input.addEventListener("change", () => upload(input.files).catch(() => {}));
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault(); zone.classList.remove("over");
    const out = [];
    for (const item of Array.from(e.dataTransfer.items)) {
      const entry = item.webkitGetAsEntry?.();
      if (entry?.isDirectory) {
        const reader = entry.createReader();
        for (;;) {
          const batch = await new Promise((ok, fail) => reader.readEntries(ok, fail));
          if (!batch.length) break;
          for (const b of batch) await walk(b, "", out);
        }
      } else if (entry) await walk(entry, "", out);
    }
    upload(out).catch(() => {});
  });
}

// Study uploads: each file is hashed (SHA-256) in the browser, sent as an
// object the server checks against that hash, and the whole drop is
// committed as one new version on top of the version the page showed.
async function studyUpload(zone, files) {
  const status = document.getElementById("upload-status");
  const bar = document.getElementById("upload-progress");
  const study = encodeURIComponent(zone.dataset.study);
  const list = Array.from(files);
  if (!list.length) return;
  const total = list.reduce((n, f) => n + f.size, 0) || 1;
  let done = 0;
  bar.hidden = false; bar.value = 0;
  status.textContent = `Uploading ${list.length} files...`;
  const changes = [];
  for (const f of list) {
    const digest = await crypto.subtle.digest("SHA-256", await f.arrayBuffer());
    const sha = Array.from(new Uint8Array(digest)).map((b) => b.toString(16).padStart(2, "0")).join("");
    await new Promise((ok, fail) => {
      const x = new XMLHttpRequest();
      x.open("PUT", `/api/v1/studies/${study}/objects/${sha}`);
      x.setRequestHeader("x-csrf-token", csrf);
      x.upload.onprogress = (e) => { bar.value = ((done + e.loaded) / total) * 100; };
      x.onload = () => (x.status < 300 ? ok() : fail(new Error(`${f.name}: ${JSON.parse(x.responseText || "{}").error?.message ?? x.status}`)));
      x.onerror = () => fail(new Error(`${f.name}: network error`));
      x.send(f);
    }).catch((e) => { status.textContent = `Upload failed: ${e.message}`; throw e; });
    done += f.size;
    changes.push({ op: "put", path: f.relPath || f.webkitRelativePath || f.name, size: f.size, sha256: sha });
  }
  const r = await fetch(`/api/v1/studies/${study}/versions`, {
    method: "POST", credentials: "same-origin",
    headers: { "x-csrf-token": csrf, "content-type": "application/json" },
    body: JSON.stringify({ base_version: Number(zone.dataset.version), changes }),
  });
  const answer = await r.json();
  if (!r.ok) { status.textContent = `Not saved: ${answer.error?.message ?? r.status}`; return; }
  bar.value = 100;
  status.textContent = `Saved as version ${answer.version}.`;
  setTimeout(() => location.reload(), 500);
}

function studyDropzone(zone) {
  const input = document.getElementById("study-files");
  input.addEventListener("change", () => studyUpload(zone, input.files).catch(() => {}));
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault(); zone.classList.remove("over");
    const out = [];
    for (const item of Array.from(e.dataTransfer.items)) {
      const entry = item.webkitGetAsEntry?.();
      if (entry) await walk(entry, "", out);
    }
    studyUpload(zone, out).catch(() => {});
  });
}

const pre = document.getElementById("log");
if (pre && pre.dataset.follow === "yes") followLog(pre);
const zone = document.getElementById("dropzone");
if (zone) dropzone(zone);
const studyZone = document.getElementById("study-dropzone");
if (studyZone) studyDropzone(studyZone);
