//! The real `tollgate` binary: flags, `.env`, bad configuration, `migrate`, log files, secrets
//! kept out of logs, and graceful shutdown on SIGTERM.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tollgate");

fn tollgate(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    c
}

#[path = "support/ports.rs"]
mod ports;
use ports::free_port;

/// Everything written so far to the log files in `dir`.
fn read_logs(dir: &std::path::Path) -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        all.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    all
}

fn wait_ready(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A blocking HTTP/1.1 exchange, enough for these checks without a client dependency.
fn http(port: u16, method: &str, path: &str, body: &str, cookie: &str) -> String {
    http_with(port, method, path, body, &format!("Cookie: {cookie}"))
}

/// `header` is one `Name: value` line.
fn http_with(port: u16, method: &str, path: &str, body: &str, header: &str) -> String {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n{header}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let out = tollgate(dir.path()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("tollgate {}", tollgate::VERSION)
    );
    let out = tollgate(dir.path()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for flag in ["--port", "--log-dir", "--version", "--help", "migrate"] {
        assert!(help.contains(flag), "help lacks {flag}: {help}");
    }
}

#[test]
fn bad_configuration_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value) in [
        ("PORT", "eighty"),
        ("SYNC_FREQUENCY", "soon"),
        ("NODE_TYPE", "boss"),
    ] {
        let out = tollgate(dir.path()).env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{var}: {err}");
    }
    // An unreachable database stops the start with a message, not a panic.
    let out = tollgate(dir.path())
        .env("SQL_DSN", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect to the PostgreSQL database"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test]
async fn migrate_applies_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let out = tollgate(dir.path())
        .arg("migrate")
        .env("SQLITE_PATH", "m.db")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let settings = tollgate::store::PoolSettings {
        max_open: 1,
        max_idle: 1,
        max_lifetime: Duration::from_secs(60),
        sqlite_busy_timeout: Duration::from_secs(3),
    };
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let db = tollgate::store::Db::connect(&url, &settings).await.unwrap();
    let schema = db.schema().await.unwrap();
    for table in [
        "users",
        "tokens",
        "channels",
        "abilities",
        "redemptions",
        "logs",
        "options",
    ] {
        assert!(schema.contains_key(table), "{table} missing: {schema:?}");
    }
    db.pool.close().await;
    // Running it again is fine.
    let out = tollgate(dir.path())
        .arg("migrate")
        .env("SQLITE_PATH", "m.db")
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn serves_from_dotenv_logs_to_dir_hides_secrets_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let secret_token = "sk-canarytoken0000000000000000000000000000000000";
    let secret_session = "canary-session-secret-9f8e7d";
    std::fs::write(
        dir.path().join(".env"),
        format!(
            "PORT={port}\nSQLITE_PATH=env.db\nINITIAL_ROOT_TOKEN={secret_token}\n\
             SESSION_SECRET={secret_session}\n"
        ),
    )
    .unwrap();
    let mut child = tollgate(dir.path())
        .args(["--log-dir", "logs"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_ready(port), "server did not start");
    let status = http(port, "GET", "/api/status", "", "");
    assert!(status.contains("\"success\":true"), "{status}");
    let login = http(
        port,
        "POST",
        "/api/user/login",
        r#"{"username":"root","password":"123456"}"#,
        "",
    );
    assert!(login.contains("\"success\":true"), "{login}");
    assert!(
        login.to_lowercase().contains("set-cookie: session="),
        "{login}"
    );
    // A relayed call (no channel serves the model: refused after the token and model are known).
    let relayed = http_with(
        port,
        "POST",
        "/v1/chat/completions",
        r#"{"model":"canary-model-7","messages":[{"role":"user","content":"hi"}]}"#,
        &format!("Authorization: Bearer {secret_token}"),
    );
    assert!(relayed.contains("\"error\""), "{relayed}");
    // Access lines reach the log file while the server runs: the log thread buffers its writes
    // but flushes whenever its queue is empty, not only when 64 KB have gathered or at exit.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !read_logs(&dir.path().join("logs")).contains("path=/v1/chat/completions") {
        assert!(
            Instant::now() < deadline,
            "access lines held back while running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // SIGTERM: a graceful stop with exit code 0.
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(40);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(code.success(), "exit status {code:?}");
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stdout.contains("tollgate listening"), "{stdout}");

    let file_logs = read_logs(&dir.path().join("logs"));
    assert!(file_logs.contains("/api/user/login"), "{file_logs}");
    assert!(file_logs.contains("request_id"), "{file_logs}");
    // The access line of a relayed call names its token and model, each once, in the file as on
    // stdout (with two layers, a field recorded after the span started was once written twice).
    for text in [&file_logs, &stdout] {
        let access = text
            .lines()
            .find(|l| l.contains("path=/v1/chat/completions"))
            .unwrap_or_else(|| panic!("no access line for the relayed call: {text}"));
        assert!(
            access.contains("token_id=1 ") && access.contains(r#"model="canary-model-7""#),
            "{access}"
        );
        assert_eq!(access.matches("model=").count(), 1, "{access}");
        assert_eq!(access.matches("token_id=").count(), 1, "{access}");
    }
    for text in [&stdout, &stderr, &file_logs] {
        assert!(!text.contains("canarytoken"), "token leaked: {text}");
        assert!(!text.contains(secret_session), "session secret leaked");
        assert!(!text.contains("123456\""), "password leaked");
    }
}

#[test]
fn port_flag_is_used_when_port_env_is_unset() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = tollgate(dir.path())
        .args(["--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = wait_ready(port);
    // Still running means it bound the port itself (it exits when the port is taken).
    let alive = child.try_wait().unwrap().is_none();
    let db = dir.path().join("tollgate.db").exists();
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready && alive, "not listening on --port {port}");
    assert!(db, "no tollgate.db in the working directory");
}

/// Every variable `config.rs` reads is documented in `.env.example`.
#[test]
fn env_example_documents_every_variable() {
    let code = include_str!("../src/config.rs");
    let doc = include_str!("../.env.example");
    let mut missing = Vec::new();
    for part in code.split('"').skip(1).step_by(2) {
        let is_var = part.len() > 2
            && part.contains('_')
            && part.chars().all(|c| c.is_ascii_uppercase() || c == '_');
        if is_var && part != "BLOCK_NONE" && !doc.contains(part) {
            missing.push(part.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "undocumented in .env.example: {missing:?}"
    );
}
