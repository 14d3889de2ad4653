//! The `tollgate` binary: loads configuration, sets up logging, and serves (or migrates).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tollgate::config::Config;
use tollgate::startup::{Application, prepare_databases};

#[derive(Parser)]
#[command(
    name = "tollgate",
    version = tollgate::VERSION,
    about = "Multi-tenant LLM API gateway, compatible with One API",
    override_usage = "tollgate [--port <port>] [--log-dir <log directory>] [--version] [--help] [COMMAND]"
)]
struct Cli {
    /// Port to listen on (the PORT environment variable takes precedence, as in One API).
    #[arg(long)]
    port: Option<u16>,
    /// Directory for log files (in addition to stdout).
    #[arg(long = "log-dir")]
    log_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and dashboard (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Copy a One API database (users, tokens, channels, codes, options, logs) into this one.
    ImportOneApi {
        /// One API's SQL_DSN (MySQL `user:pass@tcp(host:3306)/db`, `postgres://...`) or the path
        /// of its SQLite file.
        #[arg(long)]
        from: String,
        /// Add to a database that already has data, skipping rows whose ids or keys are taken.
        #[arg(long)]
        merge: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _ = dotenvy::dotenv();
    let mut cfg = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tollgate: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if std::env::var("PORT")
        .map(|p| p.trim().is_empty())
        .unwrap_or(true)
        && let Some(p) = cli.port
    {
        cfg.port = p;
    }
    if let Some(dir) = cli.log_dir {
        cfg.log_dir = Some(dir);
    }
    if let Some(dir) = &cfg.log_dir
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!(
            "tollgate: cannot create log directory {}: {e}",
            dir.display()
        );
        return std::process::ExitCode::from(2);
    }
    let _guard =
        tollgate::telemetry::init(cfg.log_dir.as_deref(), cfg.only_one_log_file, cfg.debug);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tollgate: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Migrate => {
                let mut c = cfg.clone();
                c.node_type = tollgate::config::NodeType::Master;
                prepare_databases(&c).await.map(|_| {
                    tracing::info!("migrations applied");
                })
            }
            Command::ImportOneApi { from, merge } => {
                let (db, log_db) = tollgate::startup::connect_databases(&cfg, true).await?;
                let report = tollgate::import::run(&from, &db, &log_db, merge, true).await?;
                print!("{}", report.render());
                // A source without users leaves the database without root: create it.
                tollgate::bootstrap::ensure_root(&db, &cfg).await?;
                Ok(())
            }
            Command::Serve => {
                let app = Application::build(cfg).await?;
                tracing::info!(
                    port = app.port(),
                    version = tollgate::VERSION,
                    "tollgate listening"
                );
                app.run_until_stopped().await
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("tollgate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
