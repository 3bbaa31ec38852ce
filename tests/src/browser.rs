//! Headless Chromium through WebDriver (`chromedriver`, driven by fantoccini), for the
//! tests of the web UI. `ops/test` installs Debian's `chromium` and `chromium-driver`.

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// A private chromedriver; killed on drop. One test at a time drives browsers: each
/// session is a whole Chromium, and several tests' worth on two cores would turn every
/// wait into a race against the machine.
#[derive(Debug)]
pub struct Browser {
    driver: tokio::process::Child,
    port: u16,
    /// Every session's profile lives below it, which names its Chromium processes.
    profiles: tempfile::TempDir,
    sessions: std::sync::atomic::AtomicUsize,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Longest a wait for the page polls.
const PATIENCE: Duration = Duration::from_secs(30);

fn program(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_owned())
}

impl Browser {
    /// Starts chromedriver and waits until it answers.
    pub async fn start() -> Self {
        let turn = TURN.lock().await;
        let port = crate::free_port();
        let driver =
            tokio::process::Command::new(program("NOROSHI_CHROMEDRIVER", "/usr/bin/chromedriver"))
                .arg(format!("--port={port}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("start chromedriver (ops/test installs chromium-driver)");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self {
                    driver,
                    port,
                    profiles: tempfile::Builder::new()
                        .prefix("noroshi-browser-")
                        .tempdir()
                        .expect("a profile directory"),
                    sessions: std::sync::atomic::AtomicUsize::new(0),
                    _turn: turn,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not start on port {port}");
    }

    /// A new browser session (its own Chromium, cookies and storage).
    pub async fn session(&self) -> Client {
        let n = self
            .sessions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile = self.profiles.path().join(n.to_string());
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": program("NOROSHI_CHROMIUM", "/usr/bin/chromium"),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=ja",
                         format!("--user-data-dir={}", profile.display())],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.start_kill();
        // Chromium's processes outlive a killed driver (and a test that failed before
        // closing its sessions): end every process of this browser's profiles.
        let _ = std::process::Command::new("pkill")
            .arg("-KILL")
            .arg("-f")
            .arg(self.profiles.path())
            .status();
    }
}

/// Polls until the text of the first element matching `css` satisfies `check`, and
/// returns it; panics after [`PATIENCE`] with what it last saw.
pub async fn wait_text(client: &Client, css: &str, check: impl Fn(&str) -> bool) -> String {
    let mut last = String::from("(no element)");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if check(&text) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css}: never as expected; last text {last:?}");
}

/// Polls until an element matches `css`.
pub async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            return element;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css}: never appeared");
}

/// Logs in through the form, and waits to leave it.
pub async fn log_in(client: &Client, base: &str, username: &str, password: &str) {
    client
        .goto(&format!("{base}/login"))
        .await
        .expect("open the login page");
    let form = wait_for(client, "#login-form").await;
    form.find(Locator::Css("input[name=username]"))
        .await
        .expect("username field")
        .send_keys(username)
        .await
        .expect("type the username");
    form.find(Locator::Css("input[name=password]"))
        .await
        .expect("password field")
        .send_keys(password)
        .await
        .expect("type the password");
    form.find(Locator::Css("button[type=submit]"))
        .await
        .expect("submit button")
        .click()
        .await
        .expect("submit");
    for _ in 0..100 {
        let url = client.current_url().await.expect("current url");
        if !url.path().starts_with("/login") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{username} stayed on the login page");
}

/// Saves a screenshot as a test artifact under `target/screenshots/<name>.png`.
pub async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let path = dir.join(format!("{name}.png"));
    client
        .execute("window.scrollTo(0, 0);", Vec::new())
        .await
        .expect("scroll to the top");
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(&path, png).expect("write the screenshot");
    path
}

/// The axe-core script (`NOROSHI_AXE_JS`, which ops/test sets after installing it, or the
/// copy ops/test keeps under `.noroshi/axe`).
fn axe_script() -> String {
    let path = std::env::var("NOROSHI_AXE_JS").unwrap_or_else(|_| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../.noroshi/axe/node_modules/axe-core/axe.min.js")
            .to_string_lossy()
            .into_owned()
    });
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("axe-core at {path}: {e} (ops/test installs it)"))
}

/// Runs axe-core's WCAG 2.1 A and AA rules on the page as it is now (JIS X 8341-3 asks
/// for WCAG 2.x AA), and panics with every violation found on `page`.
pub async fn accessible(client: &Client, page: &str) {
    client
        .execute(&format!("{}\nreturn true;", axe_script()), Vec::new())
        .await
        .expect("load axe-core into the page");
    let found = client
        .execute_async(
            r"const done = arguments[arguments.length - 1];
              axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
                .then((r) => done(r.violations.map((v) => `${v.id} (${v.impact}): ${v.help}\n` +
                  v.nodes.map((n) => `    ${n.target.join(' ')}: ${n.failureSummary.replace(/\n/g, ' ')}`).join('\n'))))
                .catch((e) => done([`axe failed: ${e}`]));",
            Vec::new(),
        )
        .await
        .expect("run axe-core");
    let violations: Vec<String> = serde_json::from_value(found).expect("a list of violations");
    assert!(
        violations.is_empty(),
        "{page} is not accessible (WCAG 2.1 AA):\n{}",
        violations.join("\n")
    );
}
