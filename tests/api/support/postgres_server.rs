//! A Postgres server of the test's own: `initdb` into a temp dir, a free port, extra
//! `postgresql.conf` lines and an optional `pg_hba.conf`, started with `pg_ctl -w` and stopped
//! by the postmaster's PID (never anything else on the machine, never the shared server on
//! 5432). A streaming replica is a `pg_basebackup -R` of a running server in a dir of its own.
//!
//! Commands run as the `postgres` user when the tests run as root (Postgres refuses to run
//! as root); every wait is bounded.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cache::common::free_port;

/// Startup and shutdown of a small cluster take a second or two; this is for a loaded CI box.
const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

/// One Postgres data directory (plus its log and socket) under a temp dir removed on drop.
pub struct PostgresServer {
    pub port: u16,
    /// The temp dir: `data/` (the cluster), `postgres.log`, the Unix socket.
    root: PathBuf,
    bin: PathBuf,
    /// Run the binaries through `runuser -u postgres` (we are root).
    as_postgres: bool,
    /// The postmaster's PID while started by us.
    pid: Option<u32>,
}

/// The newest Postgres binaries: `PG_BIN`, else `/usr/lib/postgresql/<newest>/bin`, else
/// `/usr/local/bin`.
fn binaries() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PG_BIN")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Ok(dirs) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<PathBuf> = dirs.flatten().map(|d| d.path().join("bin")).collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev());
    }
    candidates.push(PathBuf::from("/usr/local/bin"));
    candidates
        .into_iter()
        .find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Whether `pid` is a live process (a zombie left for a non-reaping PID 1 counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S …`: the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

impl PostgresServer {
    /// A fresh cluster (`initdb -A trust -U postgres`), configured for `127.0.0.1` on a free
    /// port with `fsync=off`, not started yet. `None` (with a printed reason) when the
    /// binaries are not installed.
    pub fn init() -> Option<PostgresServer> {
        let me = PostgresServer::empty()?;
        let data = me.data_dir().display().to_string();
        me.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )
        .unwrap_or_else(|e| panic!("initdb failed: {e}"));
        me.set_local_settings();
        Some(me)
    }

    /// `init` + `configure(lines)` + `start`: the common case.
    pub fn start_with(lines: &[&str]) -> Option<PostgresServer> {
        let mut me = PostgresServer::init()?;
        me.configure(lines);
        me.start();
        Some(me)
    }

    /// A streaming replica of `primary` (which must be running and let `postgres` replicate
    /// from 127.0.0.1, as `init`'s trust `pg_hba.conf` does): `pg_basebackup -R -X stream`
    /// into a dir of its own, on its own port; not started yet (`configure`, then `start`).
    pub fn replica_of(primary: &PostgresServer) -> PostgresServer {
        let me = PostgresServer::empty().expect("the primary's binaries are installed");
        let data = me.data_dir().display().to_string();
        let port = primary.port.to_string();
        me.run(
            "pg_basebackup",
            &[
                "-D",
                &data,
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        )
        .unwrap_or_else(|e| panic!("pg_basebackup from {port} failed: {e}"));
        // The copied postgresql.conf names the primary's port and socket; later lines win.
        me.set_local_settings();
        me
    }

    /// A temp dir owned by the user that runs Postgres, with no cluster in it yet.
    fn empty() -> Option<PostgresServer> {
        let Some(bin) = binaries() else {
            eprintln!("SKIPPED: initdb/pg_ctl not found (PG_BIN, /usr/lib/postgresql/*/bin, /usr/local/bin)");
            return None;
        };
        let root = std::env::temp_dir().join(format!("gwd-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("create {}: {e}", root.display()));
        let as_postgres = running_as_root();
        let me = PostgresServer {
            port: free_port(),
            root,
            bin,
            as_postgres,
            pid: None,
        };
        me.chown(&me.root);
        Some(me)
    }

    fn chown(&self, path: &Path) {
        if self.as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(path)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown {} to postgres", path.display());
        }
    }

    /// Runs one of the Postgres binaries (as `postgres` when we are root); `Err` has its output.
    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(program));
            c
        } else {
            Command::new(self.bin.join(program))
        };
        let out = cmd
            .args(args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run {program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} {args:?}: {}\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn set_local_settings(&self) {
        self.configure(&[
            &format!("port = {}", self.port),
            "listen_addresses = '127.0.0.1'",
            &format!("unix_socket_directories = '{}'", self.root.display()),
            "fsync = off",
            "full_page_writes = off",
        ]);
    }

    /// Appends lines to `postgresql.conf` (a later line wins over an earlier one); they take
    /// effect at the next `start`.
    pub fn configure(&self, lines: &[&str]) {
        use std::io::Write as _;
        let path = self.data_dir().join("postgresql.conf");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        for line in lines {
            writeln!(f, "{line}").unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
    }

    /// Replaces `pg_hba.conf` (read at the next `start`).
    pub fn set_hba(&self, text: &str) {
        let path = self.data_dir().join("pg_hba.conf");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Copies `src` into the data dir as `name`, owned by Postgres and readable only by it (a
    /// TLS key must be); returns its path, e.g. for `ssl_key_file`.
    pub fn install_file(&self, src: &Path, name: &str) -> PathBuf {
        let dest = self.data_dir().join(name);
        std::fs::copy(src, &dest)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), dest.display()));
        self.chown(&dest);
        let ok = Command::new("chmod")
            .arg("600")
            .arg(&dest)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chmod 600 {}", dest.display());
        dest
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The temp dir the server lives in (data dir, log, socket).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The postmaster's PID, while started.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// `pg_ctl start -w` (it waits until the server accepts connections), up to 3 times on a
    /// new free port if another process took ours. Panics with the log tail otherwise.
    pub fn start(&mut self) {
        assert!(self.pid.is_none(), "postgres already started");
        let data = self.data_dir().display().to_string();
        let log = self.log_path().display().to_string();
        let timeout = DEADLINE.as_secs().to_string();
        let mut last = String::new();
        for _ in 0..3 {
            match self.run(
                "pg_ctl",
                &["-D", &data, "-l", &log, "-w", "-t", &timeout, "start"],
            ) {
                Ok(()) => {
                    self.pid = Some(self.read_pid());
                    return;
                }
                Err(e) => last = e,
            }
            if !self.log().contains("could not bind") {
                break;
            }
            self.port = free_port();
            self.configure(&[&format!("port = {}", self.port)]);
        }
        panic!("postgres did not start: {last}\n{}", self.log_tail(30));
    }

    fn read_pid(&self) -> u32 {
        let path = self.data_dir().join("postmaster.pid");
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no PID in {}", path.display()))
    }

    /// Fast shutdown (SIGINT to the postmaster's PID), waiting until it is gone.
    pub fn stop(&mut self) {
        self.signal_and_wait("-INT");
    }

    /// Immediate shutdown (SIGQUIT): no checkpoint, like a crash; the next start recovers.
    pub fn stop_immediately(&mut self) {
        self.signal_and_wait("-QUIT");
    }

    /// Sends `signal` to the postmaster by its PID (e.g. `-STOP`/`-CONT` to hang it).
    pub fn signal(&self, signal: &str) {
        let pid = self.pid.expect("postgres is running");
        let ok = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {signal} {pid}");
    }

    fn signal_and_wait(&mut self, signal: &str) {
        let Some(pid) = self.pid.take() else { return };
        let pid_arg = pid.to_string();
        let _ = Command::new("kill").args(["-CONT", &pid_arg]).status();
        let _ = Command::new("kill").args([signal, &pid_arg]).status();
        let started = Instant::now();
        while alive(pid) {
            if started.elapsed() > DEADLINE {
                let _ = Command::new("kill").args(["-KILL", &pid_arg]).status();
                break;
            }
            std::thread::sleep(POLL);
        }
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("postgres.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop_immediately();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, PgConnection};

    use super::*;

    /// The harness itself: start with extra settings, a replica streams from its primary,
    /// a stop by PID really stops, and a restart on the same dir and port comes back.
    #[tokio::test]
    async fn a_started_server_and_its_replica_answer_and_stop() {
        let Some(mut primary) = PostgresServer::start_with(&["max_connections = 30"]) else {
            return;
        };
        let mut conn = PgConnection::connect(&primary.url("postgres"))
            .await
            .unwrap();
        let max: String = sqlx::query_scalar("show max_connections")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(max, "30");
        sqlx::raw_sql("create table t (n int); insert into t values (7)")
            .execute(&mut conn)
            .await
            .unwrap();

        let mut replica = PostgresServer::replica_of(&primary);
        replica.start();
        let mut r = PgConnection::connect(&replica.url("postgres"))
            .await
            .unwrap();
        let recovering: bool = sqlx::query_scalar("select pg_is_in_recovery()")
            .fetch_one(&mut r)
            .await
            .unwrap();
        assert!(recovering);
        let n: i32 = sqlx::query_scalar("select n from t")
            .fetch_one(&mut r)
            .await
            .unwrap();
        assert_eq!(n, 7);
        drop(r);
        replica.stop();

        let pid = primary.pid().unwrap();
        drop(conn);
        primary.stop();
        assert!(!alive(pid), "postmaster {pid} still running");
        assert!(PgConnection::connect(&primary.url("postgres"))
            .await
            .is_err());
        primary.start();
        let mut again = PgConnection::connect(&primary.url("postgres"))
            .await
            .unwrap();
        let n: i32 = sqlx::query_scalar("select n from t")
            .fetch_one(&mut again)
            .await
            .unwrap();
        assert_eq!(n, 7);
    }
}
