//! The `beema-webhooks` binary: parse settings, set up logging, then serve or migrate.

use std::io::IsTerminal;
use std::process::ExitCode;

use beema_webhooks::cli::{Cli, Command};
use beema_webhooks::config::Config;
use beema_webhooks::{app, db};

/// mimalloc: the dispatcher allocates many small, short-lived buffers per delivery (requests,
/// rows, JSON); glibc's malloc was about 15% of the server's CPU in the steady benchmark.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tune_allocator();
    // The transform worker needs no settings: it is started by the server itself (hidden).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == beema_webhooks::transform::WORKER_SUBCOMMAND)
    {
        return beema_webhooks::transform::worker::main();
    }
    let cli = match Cli::from_env_and_args() {
        Ok(c) => c,
        Err(reason) => return fail(&reason),
    };
    let config = match Config::from_settings(&cli.settings) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    init_logging(config.json_logs);
    let result = match cli.command.unwrap_or(Command::Serve) {
        // Not under a server's feet: a SQLite file being served is refused as "in use".
        Command::Migrate => db::file_lock::claim(&config.database).and_then(|_claim| {
            db::run_migrations(&config.database).map(|_| println!("migrations applied"))
        }),
        Command::Serve => serve(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("{e:#}")),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    // Claimed before the runtime starts, so that "in use" is the only line printed, whatever
    // RUST_LOG says; `app::run` shares this claim.
    let _claim = db::file_lock::claim(&config.database)?;
    let listener = std::net::TcpListener::bind(config.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    actix_web::rt::System::new().block_on(app::run(config, listener, app::shutdown_signal()))
}

/// Commit memory on demand, give freed memory back at once, keep to 4 KiB pages and give SQLite's
/// allocations one arena (unless `MIMALLOC_*` or `MALLOC_ARENA_MAX` says otherwise). With
/// mimalloc's eager defaults the backlog benchmark peaked at 174 MiB, with these at 97 MiB, at the
/// same delivery rate. Transparent huge pages (mimalloc asks the kernel for them) keep 2 MiB
/// resident wherever one byte of it is in use: a backlog of 500,000 deliveries draining peaked at
/// 251 MiB with them and 155 MiB without, at the same rate.
fn tune_allocator() {
    use libmimalloc_sys::mi_option_t;
    // mimalloc v2's `mi_option_e` names (mimalloc.h); libmimalloc-sys exports no constants for
    // these three, so they are named here once.
    const MI_OPTION_EAGER_COMMIT: mi_option_t = 3;
    const MI_OPTION_ARENA_EAGER_COMMIT: mi_option_t = 4;
    const MI_OPTION_PURGE_DELAY: mi_option_t = 15;
    const OPTIONS: [(mi_option_t, &str); 3] = [
        (MI_OPTION_EAGER_COMMIT, "MIMALLOC_EAGER_COMMIT"),
        (MI_OPTION_ARENA_EAGER_COMMIT, "MIMALLOC_ARENA_EAGER_COMMIT"),
        (MI_OPTION_PURGE_DELAY, "MIMALLOC_PURGE_DELAY"),
    ];
    for (option, env) in OPTIONS {
        if std::env::var_os(env).is_none() {
            // SAFETY: mi_option_set stores an integer setting; it runs before any other thread exists.
            unsafe { libmimalloc_sys::mi_option_set(option, 0) };
        }
    }
    // For the whole process (SQLite's own allocations too), as mimalloc does for
    // `MIMALLOC_ALLOW_THP=0`; its option alone is read before `main`, too late to set here.
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE only sets a flag of this process; no memory is touched.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
    // SQLite allocates through the C library's malloc, from whichever blocking thread runs its
    // statement. glibc gave each of those threads an arena of its own and kept every arena's peak:
    // ~100 MiB in ten arenas while a backlog drained, where SQLite's live heap peaked at 24 MiB.
    // With one arena that drain peaked at 117 MiB instead of 179, at the same rate.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt sets an allocator parameter; no other thread exists yet.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: a log file or collector gets plain text.
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn fail(reason: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("beema-webhooks: {}", reason.to_string().replace('\n', " "));
    ExitCode::FAILURE
}
