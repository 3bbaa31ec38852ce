//! The real `noroshi` binary as a child process.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// Path of the `noroshi` binary built in this workspace's target directory.
///
/// `ops/test` builds it before running the suites; run `cargo build -p noroshi` first
/// when running tests by hand.
pub fn noroshi_bin() -> PathBuf {
    if let Ok(path) = std::env::var("NOROSHI_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        },
        PathBuf::from,
    );
    let path = target.join("debug").join("noroshi");
    assert!(
        path.is_file(),
        "{} not found: run `cargo build -p noroshi` (ops/test does this)",
        path.display()
    );
    path
}

/// A running `noroshi` process; killed on drop. Its log goes to a file kept under
/// `target/test-logs/`, named in assertion messages.
#[derive(Debug)]
pub struct NoroshiProcess {
    child: Option<Child>,
    log: PathBuf,
}

impl NoroshiProcess {
    /// Starts `noroshi <args>` with `envs` added to the environment (`NOROSHI_LOG` among
    /// them replaces the default filter).
    pub fn spawn(name: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let logs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/test-logs");
        std::fs::create_dir_all(&logs).expect("create test log dir");
        let log = logs.join(format!("{name}-{}.log", uuid::Uuid::new_v4().simple()));
        let file = std::fs::File::create(&log).expect("create process log");
        let child = Command::new(noroshi_bin())
            .args(args)
            .env("NOROSHI_LOG", "info,noroshi_event_store=debug")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn noroshi");
        Self {
            child: Some(child),
            log,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn log_path(&self) -> &PathBuf {
        &self.log
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `limit` for the exit status.
    pub async fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits up to `limit` for the process to exit by itself.
    pub async fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for NoroshiProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
