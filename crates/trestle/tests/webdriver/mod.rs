//! A minimal W3C WebDriver client over reqwest, driving Debian's headless
//! Chromium through a chromedriver this module starts on a free port.
#![allow(dead_code)]

use base64::Engine;
use serde_json::{Value, json};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session, ended on drop.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
}

/// An element handle.
#[derive(Debug, Clone)]
pub struct El(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub async fn start() -> Browser {
        let port = super::common::free_port();
        // Its own process group, so that dropping the browser ends
        // chromedriver and every Chromium process it started, even when a
        // test fails half-way.
        let driver = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver (apt-get install chromium chromium-driver)");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(Instant::now() < end, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session json");
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        let b = Browser {
            driver,
            http,
            session: format!("{base}/session/{id}"),
            _profile: profile,
        };
        b.size(1200, 900).await;
        b
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let v: Value = req
            .send()
            .await
            .expect("webdriver")
            .json()
            .await
            .expect("json");
        v["value"].clone()
    }

    async fn try_call(&self, path: &str, body: Value) -> Result<Value, String> {
        let v = self.call("POST", path, Some(body)).await;
        match v.get("error") {
            Some(e) => Err(format!("{e}: {}", v["message"])),
            None => Ok(v),
        }
    }

    /// Sets the window size.
    pub async fn size(&self, w: u32, h: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({"width": w, "height": h})),
        )
        .await;
    }

    /// Opens a URL.
    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.call("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Finds an element by CSS selector, waiting up to 10 s.
    pub async fn find(&self, css: &str) -> El {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self
                .try_call("/element", json!({"using": "css selector", "value": css}))
                .await;
            let last = match r {
                Ok(v) => match v[ELEMENT].as_str() {
                    Some(id) => return El(id.to_string()),
                    None => v.to_string(),
                },
                Err(e) => e,
            };
            assert!(
                Instant::now() < end,
                "no element `{css}` on {}: {last}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types into an element.
    pub async fn type_in(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call("POST", &format!("/element/{}/clear", el.0), None)
            .await;
        self.send_keys(&el, text).await;
    }

    /// Sends keys (or a file path, for file inputs).
    pub async fn send_keys(&self, el: &El, text: &str) {
        let r = self
            .try_call(&format!("/element/{}/value", el.0), json!({ "text": text }))
            .await;
        r.unwrap_or_else(|e| panic!("send keys: {e}"));
    }

    /// Clicks an element.
    pub async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.try_call(&format!("/element/{}/click", el.0), json!({}))
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// An element's text.
    pub async fn text(&self, css: &str) -> String {
        let el = self.find(css).await;
        let v = self
            .call("GET", &format!("/element/{}/text", el.0), None)
            .await;
        v.as_str().unwrap_or("").to_string()
    }

    /// Clicks an element if it is there and can be clicked now.
    pub async fn try_click(&self, css: &str) -> bool {
        let Ok(v) = self
            .try_call("/element", json!({"using": "css selector", "value": css}))
            .await
        else {
            return false;
        };
        let Some(id) = v[ELEMENT].as_str().map(str::to_string) else {
            return false;
        };
        self.try_call(&format!("/element/{id}/click"), json!({}))
            .await
            .is_ok()
    }

    /// The text of the first element matching `css`, if there is one now.
    pub async fn try_text(&self, css: &str) -> Option<String> {
        let v = self
            .try_call("/element", json!({"using": "css selector", "value": css}))
            .await
            .ok()?;
        let id = v[ELEMENT].as_str()?.to_string();
        let t = self.call("GET", &format!("/element/{id}/text"), None).await;
        t.as_str().map(str::to_string)
    }

    /// An element's DOM property (`value`, ...).
    pub async fn prop(&self, css: &str, name: &str) -> String {
        let el = self.find(css).await;
        let v = self
            .call("GET", &format!("/element/{}/property/{name}", el.0), None)
            .await;
        v.as_str().unwrap_or("").to_string()
    }

    /// The page's visible text.
    pub async fn body(&self) -> String {
        self.text("body").await
    }

    /// Waits until the page's text contains `needle` (the page may reload
    /// itself meanwhile), or panics after `limit`.
    pub async fn wait_text(&self, css: &str, needle: &str, limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let r = self
                .try_call("/element", json!({"using": "css selector", "value": css}))
                .await;
            if let Ok(v) = r
                && let Some(id) = v[ELEMENT].as_str()
            {
                let t = self.call("GET", &format!("/element/{id}/text"), None).await;
                if let Some(t) = t.as_str()
                    && t.contains(needle)
                {
                    return t.to_string();
                }
            }
            assert!(
                Instant::now() < end,
                "`{css}` never showed `{needle}`; page: {}",
                self.body().await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Signs in through the portal's login form and waits for the
    /// dashboard.
    pub async fn login(&self, base: &str, user: &str, password: &str) {
        self.goto(&format!("{base}/ui/login")).await;
        self.type_in("#user", user).await;
        self.type_in("#password", password).await;
        self.click("button[type=submit]").await;
        self.wait_text("main h1", "Dashboard", Duration::from_secs(10))
            .await;
    }

    /// Saves a PNG screenshot of the viewport.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let v = self.call("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("screenshot data"))
            .expect("base64");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Browser {
    /// The cookies the current page's address gets, HttpOnly ones too:
    /// (name, value).
    pub async fn cookies(&self) -> Vec<(String, String)> {
        let v = self.call("GET", "/cookie", None).await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
                        (s("name"), s("value"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ends the browser session (the browser exits).
    pub async fn quit(&self) {
        self.call("DELETE", "", None).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SAFETY: signals the process group this module created.
        unsafe {
            libc::kill(-(self.driver.id() as i32), libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}
