use std::process::ExitCode;

/// mimalloc instead of glibc malloc: allocation was ~10 % of the L1-hit path's CPU profile
/// (BENCHMARKS.md), mostly glibc's arena locking across the HTTP worker threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use ghl_workflow_debugger::cli::seed;
use ghl_workflow_debugger::cli::{admin, analyze};
use ghl_workflow_debugger::config::{ConfigError, Settings};
use ghl_workflow_debugger::repository::postgres::database;
use ghl_workflow_debugger::startup::{self, Application};
use ghl_workflow_debugger::telemetry::with_request_id;

/// GHL Workflow Debugger backend.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Create the database schema and the demo location, key and workflows (idempotent).
    SeedDemo,
    /// Analyze workflow JSON files or directories offline (no database, no Redis).
    /// Exit code: 0 without critical findings, 1 with, 2 on unreadable input.
    Analyze {
        /// Workflow documents, or directories whose `*.json` files form one location.
        #[arg(required = true)]
        paths: Vec<std::path::PathBuf>,
        /// `text` for people, `json` for tools (the CONTRACT §8 result).
        #[arg(long, value_enum, default_value = "text")]
        format: AnalyzeFormat,
        /// How files are read: `auto` recognises GoHighLevel builder JSON by its shape,
        /// `native` forces CONTRACT §7 documents, `ghl` forces GoHighLevel builder JSON.
        #[arg(long, value_enum, default_value = "auto")]
        input_format: InputFormat,
    },
    /// Print the OpenAPI document (as served at /openapi.json), or write it to a file:
    /// `openapi --output openapi.json` regenerates the committed copy (`make openapi`).
    Openapi {
        /// Write here instead of standard output (replaced only once it is complete).
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
    /// Manage locations (tenants).
    #[command(subcommand)]
    Location(LocationCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AnalyzeFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum InputFormat {
    Auto,
    Native,
    Ghl,
}

#[derive(Subcommand)]
enum LocationCommand {
    /// Create a location and print its first API key once.
    Create {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create another API key for a location and print it once.
    Create {
        #[arg(long)]
        location: String,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Revoke a key by its id and wait until every running instance confirmed it forgot the
    /// key. Exit code: 0 confirmed, 3 revoked but not confirmed (printed: for how long running
    /// instances may still accept it), 1 on errors.
    Revoke {
        #[arg(long)]
        id: String,
    },
}

/// Exit code for configuration errors, as for usage errors.
/// env_logger's own line (`[time LEVEL target] message`), plus ` req=<id>` when the line is
/// written for a request: its warnings and errors then name the id its access-log line and
/// its `X-Request-ID` carry.
fn init_logger() {
    use std::io::Write;
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(|buf, record| {
            let style = buf.default_level_style(record.level());
            write!(
                buf,
                "[{} {style}{:<5}{style:#} {}] {}",
                buf.timestamp(),
                record.level(),
                record.target(),
                record.args()
            )?;
            with_request_id(|id| match id {
                Some(id) => write!(buf, " req={id}"),
                None => Ok(()),
            })?;
            writeln!(buf)
        })
        .init();
}

const EXIT_CONFIG: u8 = 2;
/// `key revoke`: revoked in the database, but running instances may accept the key for a while.
const EXIT_UNCONFIRMED: u8 = 3;

fn main() -> ExitCode {
    if let Err(error) = dotenvy::dotenv() {
        if !error.not_found() {
            eprintln!(
                "configuration error: .env is malformed ({})",
                describe_dotenv_error(&error)
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    init_logger();
    let cli = Cli::parse();
    if let Some(Command::Analyze {
        paths,
        format,
        input_format,
    }) = &cli.command
    {
        return analyze_offline(paths, *format, *input_format);
    }
    if let Some(Command::Openapi { output }) = &cli.command {
        return write_openapi(output.as_deref());
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => return config_failure(&error),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        let command = cli.command.unwrap_or(Command::Serve);
        if let Command::Key(KeyCommand::Revoke { id }) = &command {
            return match admin::revoke_key(&settings, id).await {
                Ok(admin::Revocation::Confirmed) => Ok(ExitCode::SUCCESS),
                Ok(admin::Revocation::Unconfirmed) => Ok(ExitCode::from(EXIT_UNCONFIRMED)),
                Err(e) => Err(e.to_string()),
            };
        }
        match command {
            Command::Serve => serve(settings).await,
            Command::Migrate => migrate(settings).await,
            Command::Analyze { .. } | Command::Openapi { .. } => Ok(()),
            Command::SeedDemo => seed::seed_demo(&settings).await.map_err(|e| e.to_string()),
            Command::Location(LocationCommand::Create { id, name }) => {
                admin::create_location(&settings, &id, &name)
                    .await
                    .map_err(|e| e.to_string())
            }
            Command::Key(KeyCommand::Create { location, label }) => {
                admin::create_key(&settings, &location, &label)
                    .await
                    .map_err(|e| e.to_string())
            }
            Command::Key(KeyCommand::Revoke { .. }) => Ok(()),
        }
        .map(|()| ExitCode::SUCCESS)
    });
    match outcome {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The offline analyzer: files in, findings out, exit code for CI pipelines.
fn analyze_offline(
    paths: &[std::path::PathBuf],
    format: AnalyzeFormat,
    input: InputFormat,
) -> ExitCode {
    use std::io::IsTerminal;
    let format = match format {
        AnalyzeFormat::Text => analyze::OutputFormat::Text,
        AnalyzeFormat::Json => analyze::OutputFormat::Json,
    };
    let input = match input {
        InputFormat::Auto => analyze::InputFormat::Auto,
        InputFormat::Native => analyze::InputFormat::Native,
        InputFormat::Ghl => analyze::InputFormat::Ghl,
    };
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let code = analyze::run_analyze(
        paths,
        format,
        input,
        color,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    );
    ExitCode::from(u8::try_from(code).unwrap_or(2))
}

/// The generated document: no settings, no database (it describes the code, not a deployment).
fn write_openapi(output: Option<&std::path::Path>) -> ExitCode {
    let text = match startup::openapi_text() {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: could not write the OpenAPI document: {error}");
            return ExitCode::FAILURE;
        }
    };
    let written = match output {
        None => {
            use std::io::Write;
            std::io::stdout().lock().write_all(text.as_bytes())
        }
        // A sibling file renamed over the target: an interrupted run leaves the old copy.
        Some(path) => {
            let partial = path.with_extension("json.partial");
            std::fs::write(&partial, &text).and_then(|()| std::fs::rename(&partial, path))
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: could not write the OpenAPI document: {error}");
            ExitCode::FAILURE
        }
    }
}

fn config_failure(error: &ConfigError) -> ExitCode {
    eprintln!("{error}");
    ExitCode::from(EXIT_CONFIG)
}

/// Names the line of a malformed `.env` without printing it (it may hold a secret).
fn describe_dotenv_error(error: &dotenvy::Error) -> String {
    match error {
        dotenvy::Error::LineParse(_, index) => format!("cannot parse it at character {index}"),
        dotenvy::Error::Io(error) => error.kind().to_string(),
        _ => "unreadable".to_owned(),
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    let application = Application::build(settings)
        .await
        .map_err(|e| e.to_string())?;
    log::info!("listening on port {}", application.port());
    application
        .run_until_stopped()
        .await
        .map_err(|e| e.to_string())
}

async fn migrate(settings: Settings) -> Result<(), String> {
    let pool = database::connect_lazy(&settings.database).map_err(|e| e.to_string())?;
    database::migrate(&pool, &settings.database)
        .await
        .map_err(|e| e.to_string())?;
    pool.close().await;
    log::info!("migrations applied");
    Ok(())
}
