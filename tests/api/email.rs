//! Email verification and password reset through a fake SMTP server; clear errors without SMTP.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::db_test;
use crate::helpers::{Backend, TestApp, spawn_app, uname};

db_test!(
    without_smtp_errors_are_clear,
    verification_and_reset_by_mail
);

/// A minimal SMTP server (no TLS, no auth) collecting message bodies.
async fn fake_smtp() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let store = mails.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 fake ESMTP\r\n").await.ok();
                let mut in_data = false;
                let mut data = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            let mail = decode_body(&std::mem::take(&mut data));
                            store.lock().unwrap().push(mail);
                            w.write_all(b"250 queued\r\n").await.ok();
                        } else {
                            data.push_str(&line);
                            data.push('\n');
                        }
                        continue;
                    }
                    let cmd = line.to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        b"250 fake\r\n"
                    } else if cmd.starts_with("DATA") {
                        in_data = true;
                        b"354 go ahead\r\n"
                    } else if cmd.starts_with("QUIT") {
                        w.write_all(b"221 bye\r\n").await.ok();
                        break;
                    } else {
                        b"250 OK\r\n"
                    };
                    w.write_all(reply).await.ok();
                }
            });
        }
    });
    (port, mails)
}

async fn set(app: &TestApp, key: &str, value: &str) {
    app.state.options.set(app.db(), key, value).await.unwrap();
}

async fn without_smtp_errors_are_clear(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let anon = app.anon();
    for path in [
        "/api/verification?email=a@example.com",
        "/api/reset_password?email=a@example.com",
    ] {
        let r = anon.get(path).await;
        assert_eq!(r["success"], false);
        assert!(r["message"].as_str().unwrap().contains("SMTP"), "{r}");
    }
    let r = anon
        .post(
            "/api/user/reset",
            &json!({"email": "a@example.com", "token": "x"}),
        )
        .await;
    assert_eq!(r["success"], false);
    // Verification cannot be switched on without SMTP.
    let root = app.root().await;
    let r = root
        .put(
            "/api/option/",
            &json!({"key": "EmailVerificationEnabled", "value": "true"}),
        )
        .await;
    assert_eq!(r["success"], false);
    app.finish().await;
}

/// The body of a collected mail, base64-decoded when so encoded.
fn decode_body(mail: &str) -> String {
    let Some((head, body)) = mail.split_once("\n\n") else {
        return mail.to_string();
    };
    if !head.contains("Content-Transfer-Encoding: base64") {
        return body.to_string();
    }
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in body.bytes() {
        let Some(v) = ALPHABET.iter().position(|a| *a == c) else {
            continue;
        };
        bits = (bits << 6) | v as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn code_in(mail: &str) -> String {
    let start = mail.find("<strong>").unwrap() + "<strong>".len();
    let end = mail[start..].find("</strong>").unwrap();
    mail[start..start + end].to_string()
}

async fn verification_and_reset_by_mail(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let (port, mails) = fake_smtp().await;
    set(&app, "SMTPServer", "127.0.0.1").await;
    set(&app, "SMTPPort", &port.to_string()).await;
    set(&app, "SMTPFrom", "noreply@example.com").await;
    set(&app, "EmailVerificationEnabled", "true").await;
    let anon = app.anon();
    let email = format!("{}@example.com", uname("m"));
    let r = anon.get(&format!("/api/verification?email={email}")).await;
    assert_eq!(r["success"], true, "{r}");
    let code = code_in(&mails.lock().unwrap()[0]);
    assert_eq!(code.len(), 6);
    let name = uname("mail");
    let body = |code: &str| {
        json!({"username": name, "password": "password123", "email": email,
               "verification_code": code})
    };
    let r = anon.post("/api/user/register", &body("zzzzzz")).await;
    assert_eq!(r["success"], false);
    let r = anon.post("/api/user/register", &body(&code)).await;
    assert_eq!(r["success"], true, "{r}");
    // Codes are single use.
    let r = anon
        .post(
            "/api/user/register",
            &json!({"username": uname("again"), "password": "password123", "email": email,
                    "verification_code": code}),
        )
        .await;
    assert_eq!(r["success"], false);
    let r = anon.get(&format!("/api/verification?email={email}")).await;
    assert_eq!(r["message"], "邮箱地址已被占用");

    // Password reset: link by mail, new password by mail, never in the response.
    let r = anon
        .get("/api/reset_password?email=nobody@example.com")
        .await;
    assert_eq!(r["message"], "该邮箱地址未注册");
    let r = anon
        .get(&format!("/api/reset_password?email={email}"))
        .await;
    assert_eq!(r["success"], true, "{r}");
    let link_mail = mails.lock().unwrap().last().unwrap().clone();
    let flat = link_mail;
    let t_start = flat.find("token=").unwrap() + 6;
    let token: String = flat[t_start..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    assert_eq!(token.len(), 32, "{flat}");
    let r = anon
        .post(
            "/api/user/reset",
            &json!({"email": email, "token": "0".repeat(32)}),
        )
        .await;
    assert_eq!(r["success"], false);
    let r: Value = anon
        .post("/api/user/reset", &json!({"email": email, "token": token}))
        .await;
    assert_eq!(r["success"], true, "{r}");
    assert!(r.get("data").is_none() || r["data"].is_null());
    let new_password = code_in(mails.lock().unwrap().last().unwrap());
    assert!(!r.to_string().contains(&new_password));
    app.session(&name, &new_password).await;
    let r = anon
        .post("/api/user/reset", &json!({"email": email, "token": token}))
        .await;
    assert_eq!(r["success"], false);
    app.finish().await;
}
