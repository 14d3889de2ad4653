//! Outgoing mail over SMTP (One API's `SMTP*` options): implicit TLS on port 465, otherwise
//! STARTTLS when the server offers it. Only the caller's message is logged, never credentials.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::options::Options;

/// Whether the options name an SMTP server to send through.
pub fn configured(o: &Options) -> bool {
    let has = |k: &str| !o.get(k).trim().is_empty();
    has("SMTPServer") && (has("SMTPFrom") || has("SMTPAccount"))
}

/// Sends one HTML mail. Errors are messages fit for the caller.
pub async fn send(o: &Options, to: &str, subject: &str, html: String) -> Result<(), String> {
    if !configured(o) {
        return Err("服务器未配置 SMTP，无法发送邮件".into());
    }
    let host = o.get("SMTPServer").trim().to_string();
    let port = u16::try_from(o.i64("SMTPPort")).unwrap_or(587);
    let account = o.get("SMTPAccount").trim();
    let from = match o.get("SMTPFrom").trim() {
        "" => account,
        f => f,
    };
    let from = Mailbox::new(
        Some(o.get("SystemName").to_string()),
        from.parse()
            .map_err(|_| "SMTPFrom 不是合法的邮箱地址".to_string())?,
    );
    let to: Mailbox = to.parse().map_err(|_| "无效的邮箱地址".to_string())?;
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .header(ContentType::TEXT_HTML)
        .body(html)
        .map_err(|e| format!("邮件构造失败：{e}"))?;
    let tls = TlsParameters::new(host.clone()).map_err(|e| format!("TLS 配置失败：{e}"))?;
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .port(port)
        .timeout(Some(Duration::from_secs(30)))
        .tls(if port == 465 {
            Tls::Wrapper(tls)
        } else {
            Tls::Opportunistic(tls)
        });
    if !account.is_empty() {
        builder = builder.credentials(Credentials::new(
            account.to_string(),
            o.get("SMTPToken").to_string(),
        ));
    }
    builder.build().send(message).await.map_err(|e| {
        tracing::warn!(error = %e, "sending mail failed");
        "邮件发送失败，请检查 SMTP 配置".to_string()
    })?;
    Ok(())
}
