//! The `entra-gateway` command line. Parsing and dispatch only.

use clap::{Parser, Subcommand, ValueEnum};
use entra_gateway::config::{Config, LoadError, TenantType};
use entra_gateway::registration::Registration;
use entra_gateway::server;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "entra-gateway",
    version,
    about = "Microsoft Entra ID single sign-on in front of an existing web application"
)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "ENTRA_GATEWAY_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct ConfigArg {
    /// Configuration file (YAML).
    #[arg(long, env = "ENTRA_GATEWAY_CONFIG")]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Serve.
    Run(ConfigArg),
    /// Validate a configuration and print what to register in Entra.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
        /// Also fetch discovery and keys, ping the store and prove the client credential.
        #[arg(long)]
        online: bool,
    },
    /// The Graph `application` manifest and `az` commands that register exactly this configuration.
    AppRegistration {
        #[command(flatten)]
        config: ConfigArg,
        /// `script`: a reviewable bash script (manifest + az commands); `json`: the manifest alone.
        #[arg(long, value_enum, default_value_t = RegistrationFormat::Script)]
        format: RegistrationFormat,
    },
    /// Assertion signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Gateway + mock Entra ID + demo app on this machine. Not for production.
    #[cfg_attr(
        not(feature = "demo"),
        command(about = "Not in this build (built without the `demo` feature): exits 2")
    )]
    Demo {
        /// Where the gateway listens.
        #[arg(long, default_value = "127.0.0.1:8080", env = "ENTRA_GATEWAY_DEMO_LISTEN")]
        listen: std::net::SocketAddr,
    },
    /// The built-in user directory.
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// Sessions in the store.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// The second factor (TOTP) of users, for support desks.
    TwoFactor {
        #[command(subcommand)]
        command: TwoFactorCommand,
    },
    /// Allowed tenants.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RegistrationFormat {
    Script,
    Json,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// A new P-256 signing key (PKCS#8 PEM) on stdout, for identity.signing_keys.
    Generate,
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Import users from a CSV or JSON file.
    Import {
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List users.
    List(ConfigArg),
    /// Read the users of the home tenant (and of CSP customers, with entra.csp_sync) from
    /// Microsoft Graph into the directory.
    Sync {
        #[command(flatten)]
        config: ConfigArg,
        /// Print what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Disable the records of a synced tenant that Graph no longer lists (nothing is deleted).
        #[arg(long)]
        prune: bool,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// End sessions on every instance.
    Revoke {
        // Keys and sids are opaque: one may begin with '-' and must still be
        // taken as the value, not as another flag.
        #[arg(
            long,
            conflicts_with = "sid",
            required_unless_present = "sid",
            allow_hyphen_values = true,
            value_parser = opaque
        )]
        user: Option<String>,
        #[arg(long, allow_hyphen_values = true, value_parser = opaque)]
        sid: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand)]
enum TwoFactorCommand {
    /// Void a user's enrolment and remembered browsers: the next sign-in enrols anew.
    Reset {
        /// The directory key (X-Auth-User) of the user.
        #[arg(long, allow_hyphen_values = true, value_parser = opaque)]
        user: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Whether a user is enrolled, recovery codes left, lockout.
    Status {
        #[arg(long, allow_hyphen_values = true, value_parser = opaque)]
        user: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

/// A sid or key may begin with '-', but one beginning with "--" is a flag
/// typed where the value belongs (`--user --sid=x`): refused, not taken.
fn opaque(value: &str) -> Result<String, String> {
    if value.starts_with("--") {
        return Err(format!("expected a value, found the flag {value:?}"));
    }
    Ok(value.to_string())
}

#[derive(Subcommand)]
enum TenantsCommand {
    /// Run the CSP tenant sync once and print the list.
    Sync(ConfigArg),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

fn load(arg: &ConfigArg) -> Result<Config, ExitCode> {
    Config::load(&arg.config).map_err(|e| {
        report_config_errors(&arg.config, &e);
        ExitCode::from(2)
    })
}

fn report_config_errors(path: &std::path::Path, e: &LoadError) {
    eprintln!("{}: configuration is invalid:", path.display());
    for line in e.errors() {
        eprintln!("  error: {line}");
    }
}

fn check_config(arg: &ConfigArg, online: bool) -> ExitCode {
    let c = match load(arg) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let e = &c.entra;
    println!("{}: configuration is valid", arg.config.display());
    println!();
    println!(
        "cloud:           {} (login {}, issuer {}, graph {})",
        e.cloud.as_str(),
        e.authority_host,
        e.issuer_host,
        e.graph_host
    );
    println!("authority:       {}", e.authority());
    println!("discovery URL:   {}", e.discovery_url());
    println!("expected issuer: {}", e.expected_discovery_issuer());
    println!(
        "tenant type:     {}",
        match e.tenant_type {
            TenantType::Single => "single",
            TenantType::Multi => "multi",
        }
    );
    match &e.credential {
        Some(cred) => println!(
            "sign-in flow:    authorization code + PKCE, response_mode=form_post ({})",
            cred.kind()
        ),
        None => {
            println!("sign-in flow:    id_token, response_mode=form_post (enable \"ID tokens\" under Authentication)")
        }
    }
    println!("session store:   {}", c.session.store.describe());
    println!();
    println!("Register in the App Registration (`app-registration` prints it as a manifest and az commands):");
    for line in Registration::of(&c).checklist() {
        println!("  {line}");
    }
    let unsupported = server::unsupported_settings(&c);
    if !unsupported.is_empty() {
        println!();
        println!(
            "note: `run` refuses these settings in this version: {}",
            unsupported.join(", ")
        );
    }
    if online {
        println!();
        let checks = entra_gateway::online::run(&c);
        for check in &checks {
            println!("{}", check.line());
        }
        if checks.iter().any(|c| c.failed()) {
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

fn app_registration(arg: &ConfigArg, format: RegistrationFormat) -> ExitCode {
    let c = match load(arg) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let r = Registration::of(&c);
    match format {
        RegistrationFormat::Json => println!("{}", serde_json::to_string_pretty(&r.manifest()).unwrap_or_default()),
        RegistrationFormat::Script => print!("{}", r.az_script(&arg.config.display().to_string())),
    }
    ExitCode::SUCCESS
}

fn keys_generate() -> ExitCode {
    match entra_gateway::identity::signer::generate_pem() {
        Ok(pem) => {
            print!("{pem}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("entra-gateway keys generate: {e}");
            ExitCode::from(1)
        }
    }
}

fn tenants_sync(arg: &ConfigArg) -> ExitCode {
    let c = match load(arg) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match server::tenants_sync(c) {
        Ok(r) => {
            println!("{} customer tenant(s) from Graph /contracts:", r.tenants.len());
            for t in &r.tenants {
                println!("  {t}");
            }
            for s in &r.skipped {
                println!("skipped (not a tenant GUID): {s:?}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => start_error(e),
    }
}

/// Exit 2 for what the configuration asks and this command cannot do, 1 for
/// runtime failures (SPEC §2).
fn start_error(e: server::StartError) -> ExitCode {
    eprintln!("entra-gateway: {e}");
    match e {
        server::StartError::Unsupported(_) => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}

fn revoke(arg: &ConfigArg, user: Option<&str>, sid: Option<&str>) -> ExitCode {
    let c = match load(arg) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match server::revoke_sessions(c, user, sid) {
        Ok(n) => {
            println!("revoked {n} session(s)");
            ExitCode::SUCCESS
        }
        Err(e) => start_error(e),
    }
}

fn two_factor(arg: &ConfigArg, user: &str, cmd: server::TwoFactorCommand) -> ExitCode {
    let c = match load(arg) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match server::two_factor(c, user, cmd) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => start_error(e),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    entra_gateway::crypto::install();
    match cli.command {
        Command::CheckConfig { config, online } => check_config(&config, online),
        Command::AppRegistration { config, format } => app_registration(&config, format),
        Command::Keys {
            command: KeysCommand::Generate,
        } => keys_generate(),
        Command::Run(arg) => {
            let c = match load(&arg) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match server::run(c, Some(&arg.config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => start_error(e),
            }
        }
        Command::Demo { listen } => demo(listen),
        Command::Directory {
            command: DirectoryCommand::Import { file, config },
        } => directory_import(&file, &config),
        Command::Directory {
            command: DirectoryCommand::List(arg),
        } => directory_list(&arg),
        Command::Directory {
            command: DirectoryCommand::Sync { config, dry_run, prune },
        } => directory_sync(&config, dry_run, prune),
        Command::Sessions {
            command: SessionsCommand::Revoke { user, sid, config },
        } => revoke(&config, user.as_deref(), sid.as_deref()),
        Command::TwoFactor {
            command: TwoFactorCommand::Reset { user, config },
        } => two_factor(&config, &user, server::TwoFactorCommand::Reset),
        Command::TwoFactor {
            command: TwoFactorCommand::Status { user, config },
        } => two_factor(&config, &user, server::TwoFactorCommand::Status),
        Command::Tenants {
            command: TenantsCommand::Sync(arg),
        } => tenants_sync(&arg),
    }
}

#[cfg(feature = "demo")]
fn demo(listen: std::net::SocketAddr) -> ExitCode {
    match entra_gateway::demo::run(entra_gateway::demo::DemoOptions { listen }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("entra-gateway demo: {e}");
            ExitCode::from(1)
        }
    }
}

/// A production build (`--no-default-features`) has no mock Entra to run.
/// The subcommand still parses, so the command line is the same in every
/// build, and asking for it is an argument this build cannot honour: exit 2.
#[cfg(not(feature = "demo"))]
fn demo(_listen: std::net::SocketAddr) -> ExitCode {
    eprintln!("entra-gateway: this build has no demo: built without the `demo` feature");
    ExitCode::from(2)
}

/// The configuration of a gateway with a builtin directory in a shared store,
/// or exit 2 naming the key that prevents it.
fn builtin_directory_config(arg: &ConfigArg, what: &str) -> Result<Config, ExitCode> {
    let c = load(arg)?;
    let kind = match &c.directory {
        entra_gateway::config::Directory::Builtin => None,
        entra_gateway::config::Directory::Open => Some("open"),
        entra_gateway::config::Directory::Http { .. } => Some("http"),
    };
    if let Some(kind) = kind {
        eprintln!(
            "entra-gateway: directory.kind: is {kind}; `{what}` works on the builtin directory (set directory.kind: builtin)"
        );
        return Err(ExitCode::from(2));
    }
    // A memory store lives and dies with one process: records imported into
    // it here would never reach the running gateway.
    if matches!(c.session.store, entra_gateway::config::StoreConfig::Memory) {
        eprintln!(
            "entra-gateway: session.store: is memory; the builtin directory lives in the session store, and only \
             session.store: redis is shared with the running gateway"
        );
        return Err(ExitCode::from(2));
    }
    Ok(c)
}

/// A small runtime for a subcommand, and the builtin directory of `c` in it.
fn open_builtin_directory(
    c: &Config,
) -> Result<
    (
        tokio::runtime::Runtime,
        entra_gateway::directory::builtin::BuiltinDirectory,
    ),
    ExitCode,
> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("entra-gateway: cannot start: {e}");
            ExitCode::from(1)
        })?;
    let dir = rt.block_on(server::open_builtin_directory(c)).map_err(|e| {
        eprintln!("entra-gateway: {e}");
        ExitCode::from(1)
    })?;
    Ok((rt, dir))
}

fn print_import_problems(file: &std::path::Path, problems: &[String]) {
    eprintln!(
        "{}: {} problem(s), nothing was imported:",
        file.display(),
        problems.len()
    );
    for p in problems {
        eprintln!("  {p}");
    }
}

fn directory_import(file: &std::path::Path, arg: &ConfigArg) -> ExitCode {
    use entra_gateway::directory::import::{self, ImportError};
    let c = match builtin_directory_config(arg, "directory import") {
        Ok(c) => c,
        Err(code) => return code,
    };
    // The file is validated before the store is touched: a bad file is an
    // argument error whether or not Redis is up.
    let records = match import::read_file(file) {
        Ok(r) => r,
        Err(ImportError::Invalid(problems)) => {
            print_import_problems(file, &problems);
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("entra-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    let (rt, dir) = match open_builtin_directory(&c) {
        Ok(d) => d,
        Err(code) => return code,
    };
    match rt.block_on(import::apply(&dir, records)) {
        Ok(report) => {
            println!("imported {}: {report}", file.display());
            ExitCode::SUCCESS
        }
        Err(ImportError::Invalid(problems)) => {
            print_import_problems(file, &problems);
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("entra-gateway: {e}");
            ExitCode::from(1)
        }
    }
}

fn directory_sync(arg: &ConfigArg, dry_run: bool, prune: bool) -> ExitCode {
    let c = match builtin_directory_config(arg, "directory sync") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let options = entra_gateway::directory::sync::SyncOptions { dry_run, prune };
    match server::directory_sync(c, options) {
        Ok(report) => {
            for line in report.lines() {
                println!("{line}");
            }
            // Printed first, so the operator sees what did get synced.
            if report.failed() {
                eprintln!("entra-gateway: directory sync: some tenants could not be read (see above)");
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => start_error(e),
    }
}

fn directory_list(arg: &ConfigArg) -> ExitCode {
    let c = match builtin_directory_config(arg, "directory list") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (rt, dir) = match open_builtin_directory(&c) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let records = match rt.block_on(dir.list()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("entra-gateway: {e}");
            return ExitCode::from(1);
        }
    };
    // Tab-separated with a header, `-` for an empty value: readable, and
    // `cut -f` friendly (so no tab or newline inside a cell).
    println!("{}", entra_gateway::directory::import::COLUMNS.join("\t"));
    for r in &records {
        let cell = |v: &Option<String>| match v {
            Some(v) => v.replace(['\t', '\n', '\r'], " "),
            None => "-".to_string(),
        };
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.key,
            r.kind.as_str(),
            cell(&r.email),
            cell(&r.tid.as_ref().map(ToString::to_string)),
            cell(&r.oid),
            cell(&r.name),
            cell(&r.client),
            r.disabled,
            r.two_factor
        );
    }
    ExitCode::SUCCESS
}
