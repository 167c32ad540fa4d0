#!/usr/bin/env python3
"""`make bench-load`: every read path of the service against the machine's own ceilings.

Builds the release binary, seeds a throwaway database (N locations x M workflows of a few KB
each), starts the server in the configurations each case needs, drives it with oha on
loopback (same connections and duration for every case, after a warm-up), measures
redis-benchmark and pgbench on the same servers, and writes the table to BENCHMARKS.md
(between markers) and bench/out/load.json. Everything it starts, it stops.

When `node` is on PATH, the L1-hit and miss cases are also run against a minimal
Node.js/Express + ioredis + pg peer (bench/peers/node), right after the Rust case, against the
same database and Redis with the same oha parameters: the "Peer" table.

Environment: BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (default 64),
BENCH_LOCATIONS (10), BENCH_WORKFLOWS (1000), BENCH_PORT (3977), BENCH_ANALYSIS_STEPS (400), DATABASE_ADMIN_URL
(postgres://postgres@127.0.0.1:5432/postgres), REDIS_URL (redis://127.0.0.1:6379).
BENCH_ROUNDS (3): rounds of the cases compared with the ceiling, and of the L2-hit case between
runs of redis-benchmark.
BENCH_ONLY=l1,open,analyses,list,cached,overview,split,l2,miss,down,pooler,tokens runs the ceiling and those
groups only and prints them (no report, no peer): a quick look while working on one path.

The "tokens" group (issue #21) runs the same writes on a server that answers each with an
X-Consistency-Token (the default: the primary's WAL position is read after the commit, one more
round trip) and on one with CONSISTENCY_TOKENS=false (no position read), BENCH_ROUNDS times
interleaved, with 64 connections and with one: the ratios are taken within each round.

The "pooler" group (issue #26) runs the same uncached reads and the same writes through a
PgBouncer in transaction mode (Debian's package, started here on a free port in front of the
same Postgres) with DATABASE_POOLER=transaction, against a direct connection, BENCH_ROUNDS
times interleaved; a third server runs pooler mode on the direct connection, to tell the mode's
cost (a transaction per statement) from the extra hop's.

Two layouts. In the main one, oha and the server share every core, as on a small machine where
both must run. With two cores or more, the "separate cores" group repeats the ceiling, L1-hit
and cached-analysis cases with oha (one thread) on the first core and the server on the others:
at saturation the shared layout's tail is set by how the kernel time-slices four busy threads
over two cores, not by the request's path (BENCHMARKS.md, "Reading the load run").
BENCH_BINARY=<path> measures that build instead of building this checkout's (an A/B of two
commits: build each in its own worktree, run the quick look with each binary).
"""

import ctypes
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# BENCH_BINARY: measure another build (e.g. an earlier commit's, for an A/B) instead of building this one.
BINARY = Path(os.environ.get("BENCH_BINARY") or ROOT / "target" / "release" / "ghl-workflow-debugger")
PEER_DIR = ROOT / "bench" / "peers" / "node"
OUT_DIR = ROOT / "bench" / "out"
DURATION = int(os.environ.get("BENCH_DURATION", "10"))
WARMUP = 2
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
LOCATIONS = int(os.environ.get("BENCH_LOCATIONS", "10"))
WORKFLOWS = int(os.environ.get("BENCH_WORKFLOWS", "1000"))
ADMIN_URL = os.environ.get("DATABASE_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
PORT = int(os.environ.get("BENCH_PORT", "3977"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
RUNNING_SERVER = None  # the Rust server now up, whose CPU time each case reads
ONLY = {group.strip() for group in os.environ.get("BENCH_ONLY", "").split(",") if group.strip()}
BENCH_DB = f"gwd_bench_{os.getpid()}"
PG_BENCH_DB = f"gwd_pgbench_{os.getpid()}"
HOT_SET = 100
COMMANDS = []  # every load command, for the report
L1_CASE = "L1 hit: GET /api/workflows/{id}, hot set of 100"
# Issue #20: with Redis down the in-process tier keeps answering (the Postgres bus keeps it
# correct), and writes send their invalidation through Postgres.
L1_DOWN_CASE = "Redis down: L1 hit, hot set of 100"
WRITES_UP_CASE = "writes: PUT /api/workflows/{id} (500 ids of the overview location), Redis up"
WRITES_DOWN_CASE = "writes: PUT /api/workflows/{id} (500 ids of the overview location), Redis down"
WRITE_BODY = json.dumps({"name": "Bench write", "status": "draft", "triggers": [],
                         "start": "s1", "steps": [{"id": "s1", "type": "end"}]})
MISS_CASE = "miss: cache bypassed, Postgres every request"
L2_CASE = "L2 hit: same, L1 off for workflows"
CLUSTER_CASE = "L2 hit through a 3-primary Redis Cluster, L1 off for workflows"
L1_OPEN_CASE = "L1 hit at 20 % rate (open loop)"
L1_UNDER_ANALYSES_CASE = "L1 hit at 20 % rate (open loop) while analyses saturate the pool"
CEILING_CASE = "ceiling: GET /live"
# Issue #26: the same Postgres load direct, through PgBouncer (transaction mode), and in pooler
# mode without a pooler.
POOLER_READ = "uncached reads (cache bypassed, 1,000 ids)"
POOLER_WRITE = "writes: PUT /api/workflows/{id} (500 ids)"
POOLER_LAYOUTS = {
    "direct": "direct connection",
    "pgbouncer": "PgBouncer, transaction mode, DATABASE_POOLER=transaction",
    "mode_only": "direct connection, DATABASE_POOLER=transaction",
}
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
# Issue #21: a write answers X-Consistency-Token, the primary's position read after its commit.
TOKEN_LAYOUTS = {
    "on": ("X-Consistency-Token (position read after the commit)", {}),
    "off": ("CONSISTENCY_TOKENS=false (no position read)", {"CONSISTENCY_TOKENS": "false"}),
}
TOKEN_LOADS = {"saturated": (f"{CONNECTIONS} connections", None), "one": ("one connection", 1)}
# A location of its own (after the N seeded ones) with 300 workflows, for the overview page.
OVERVIEW_LOCATION = LOCATIONS + 1
OVERVIEW_WORKFLOWS = 300
OVERVIEW_PATH = "/api/workflows?include=analysis&sort=healthScore&limit=20"
OVERVIEW_CASE = f"overview page from the cache: GET {OVERVIEW_PATH}, 300 workflows"
# The cases send an API key and draw their URLs from a regex (oha --rand-regex-url); this
# ceiling makes oha do the same, so the ratios compare what the server does, not oha's work.
LIKE_CEILING_CASE = "ceiling as the cases send it: GET /live?n={1..100}, random URLs, API-key header"
OPEN_CEILING_CASE = "ceiling at 20 % rate (open loop), as the cases send it"
CACHED_ANALYSIS_CASE = "analysis cached: GET /api/workflows/{id}/analysis"
# The same three cases with oha (one thread) pinned to the first core and the server to the rest.
SPLIT_CEILING_CASE = "separate cores: ceiling as the cases send it"
SPLIT_L1_CASE = "separate cores: L1 hit"
SPLIT_CACHED_CASE = "separate cores: analysis cached"
ANALYSES_CASE = "ad-hoc analyses driving the pool: POST /api/analyze (concurrent with the case above)"
# A control for the case above: the same L1 case beside a busy loop at idle priority, no code of
# ours, i.e. what any idle-priority work on one core costs the HTTP side on this machine.
L1_BESIDE_IDLE_LOOP_CASE = "L1 hit at 20 % rate (open loop) beside a busy loop at idle priority (control)"
# The ad-hoc document of the "while analyses run" case: a chain of this many steps, so each
# request is mostly analysis (on the bounded pool), little HTTP and JSON (on the workers).
ANALYSIS_STEPS = int(os.environ.get("BENCH_ANALYSIS_STEPS", "400"))
# Requests in flight against the pool: more than ANALYSIS_CONCURRENCY (2), so it never idles.
ANALYSIS_CONNECTIONS = 4


def run(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def ensure_oha():
    if shutil.which("oha"):
        return "oha"
    cargo_bin = Path.home() / ".cargo" / "bin" / "oha"
    if not cargo_bin.exists():
        run(["cargo", "install", "oha", "--locked"])
    return str(cargo_bin)


def database_url(name):
    return re.sub(r"/[^/]*$", f"/{name}", ADMIN_URL)


def psql(url, sql):
    return run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
               capture_output=True, text=True).stdout


def key_of(location):
    return f"gwd_bench_key_{location}"


def seed():
    """N locations x M workflows via generate_series; keys are stored as sha256 like the app's."""
    psql(ADMIN_URL, f'create database "{BENCH_DB}"')
    url = database_url(BENCH_DB)
    env = dict(os.environ, DATABASE_URL=url, RUST_LOG="warn")
    run([str(BINARY), "migrate"], env=env)
    template = json.loads((ROOT / "demo" / "workflows" / "new-lead-nurture.json").read_text())
    # A few KB per definition: realistic message bodies.
    for step in template["steps"]:
        if "body" in step.get("config", {}):
            step["config"]["body"] = step["config"]["body"] + (" Lorem ipsum dolor sit amet." * 20)
    definition = json.dumps(template).replace("'", "''")
    psql(url, f"""
        insert into locations (id, name)
          select 'benchLoc' || l, 'Bench location ' || l from generate_series(1, {LOCATIONS}) l;
        insert into api_keys (location_id, key_hash, label)
          select 'benchLoc' || l, sha256(convert_to('{key_of("")}' || l, 'UTF8')), 'bench'
          from generate_series(1, {LOCATIONS}) l;
        insert into subscriptions (location_id, plan, status)
          select 'benchLoc' || l, 'agency', 'active' from generate_series(1, {LOCATIONS}) l;
        insert into workflows (location_id, id, name, status, version, definition, step_count, trigger_count)
          select 'benchLoc' || l, 'wf-' || w, 'Workflow ' || w, 'published', 1,
                 jsonb_set('{definition}'::jsonb, '{{name}}', to_jsonb('Workflow ' || w)), 6, 1
          from generate_series(1, {LOCATIONS}) l, generate_series(1, {WORKFLOWS}) w;
        insert into locations (id, name) values ('benchLoc{OVERVIEW_LOCATION}', 'Bench overview');
        insert into api_keys (location_id, key_hash, label)
          values ('benchLoc{OVERVIEW_LOCATION}',
                  sha256(convert_to('{key_of(OVERVIEW_LOCATION)}', 'UTF8')), 'bench');
        insert into subscriptions (location_id, plan, status)
          values ('benchLoc{OVERVIEW_LOCATION}', 'agency', 'active');
        insert into workflows (location_id, id, name, status, version, definition, step_count, trigger_count)
          select 'benchLoc{OVERVIEW_LOCATION}', 'wf-' || w, 'Workflow ' || w, 'published', 1,
                 jsonb_set('{definition}'::jsonb, '{{name}}', to_jsonb('Workflow ' || w)), 6, 1
          from generate_series(1, {OVERVIEW_WORKFLOWS}) w;
        analyze;
    """)
    size = run(["psql", "-X", "-tA", url, "-c", "select avg(octet_length(definition::text))::int from workflows"],
               capture_output=True, text=True).stdout.strip()
    return url, size


def server_env(db_url, port=PORT, **extra):
    """The environment every measured server runs with: logging at warn, no rate limit."""
    env = dict(os.environ, DATABASE_URL=db_url, REDIS_URL=REDIS_URL, PORT=str(port), HOST="127.0.0.1",
               RUST_LOG="warn", RATE_LIMIT_ENABLED="false", RUN_MIGRATIONS="false",
               CACHE_PREFIX=f"gwdbench{os.getpid()}", DATABASE_MAX_CONNECTIONS="16")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def wait_until_ready(port=PORT, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1)
            return
        except Exception:
            time.sleep(0.1)


def load_and_server_cores():
    """(oha's core, the server's cores) for the separate-cores layout, or None with fewer than two."""
    try:
        cores = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None
    return (cores[:1], cores[1:]) if len(cores) >= 2 else None


def pinned_to(cores):
    """A preexec_fn that pins the child to `cores` (None: no pinning)."""
    return None if cores is None else (lambda: os.sched_setaffinity(0, cores))


class Server:
    def __init__(self, db_url, cores=None, **extra):
        # Pinned to fewer cores, the server starts as many HTTP workers as it may use (actix
        # counts the cores it is allowed on).
        self.proc = subprocess.Popen([str(BINARY), "serve"], env=server_env(db_url, **extra),
                                     preexec_fn=pinned_to(cores))
        global RUNNING_SERVER
        RUNNING_SERVER = self
        wait_until_ready()
        time.sleep(0.5)  # the cache's startup probe and subscriber
        if self.proc.poll() is not None:  # e.g. the port is taken: never measure someone else's server
            raise RuntimeError(f"the server exited with status {self.proc.returncode} while starting")

    def cpu_seconds(self):
        """(user + system, user) CPU time the server has used so far, from /proc (Linux). The
        user part is the server's own code; the system part is mostly the kernel's TCP work."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            tick = os.sysconf("SC_CLK_TCK")
            return (int(fields[11]) + int(fields[12])) / tick, int(fields[11]) / tick
        except (OSError, IndexError, ValueError):
            return None

    def stop(self):
        global RUNNING_SERVER
        if RUNNING_SERVER is self:
            RUNNING_SERVER = None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _term_with_parent():
    """In the peer's child, before exec (Linux): SIGTERM when this script dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Peer:
    """The Node.js/Express peer (bench/peers/node) on a free port, in its own process group:
    the cluster primary and its workers are all stopped by stop()."""

    def __init__(self, db_url, processes, **extra):
        self.port = free_port()
        # Its keys are `peer:gwdbench<pid>:…`, never the Rust service's `gwdbench<pid>:v3:…`.
        env = dict(os.environ, DATABASE_URL=db_url, REDIS_URL=REDIS_URL, PORT=str(self.port), HOST="127.0.0.1",
                   NODE_ENV="production", WORKERS=str(processes), CACHE_PREFIX=f"gwdbench{os.getpid()}",
                   DATABASE_MAX_CONNECTIONS="16")
        env.update({k: str(v) for k, v in extra.items()})
        self.stopped = False
        self.proc = subprocess.Popen(["node", "server.js"], cwd=PEER_DIR, env=env, start_new_session=True,
                                     preexec_fn=_term_with_parent)
        try:
            deadline = time.monotonic() + 15
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the peer exited with status {self.proc.returncode} while starting")
                try:
                    urllib.request.urlopen(url("/ready", self.port), timeout=1)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the peer did not answer /ready within 15 s")
                    time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def _group_alive(self):
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for _ in range(50):  # workers outliving the primary
            if not self._group_alive():
                break
            time.sleep(0.1)
        else:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class PeerRun:
    """The peer's cases in this run, or why there are none."""

    def __init__(self, skipped=None):
        self.cases = {}
        self.info = None
        self.skipped = skipped or self._prepare()
        if self.skipped:
            print(f"bench-load: peer skipped: {self.skipped}", flush=True)

    @classmethod
    def skip(cls, why):
        return cls(skipped=why)

    def _prepare(self):
        node, npm = shutil.which("node"), shutil.which("npm")
        if not node:
            return "node not found"
        if not npm:
            return "npm not found"
        print(f"+ npm ci (in {PEER_DIR.relative_to(ROOT)})", flush=True)
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PEER_DIR,
                              capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["?"])[-1]
            return f"npm ci failed ({tail})"
        version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        try:
            processes = len(os.sched_getaffinity(0))
        except AttributeError:
            processes = os.cpu_count() or 1
        self.info = {"node": version, "processes": processes,
                     "dependencies": json.loads((PEER_DIR / "package.json").read_text())["dependencies"]}
        return None

    def measure(self, name, db_url, args, **extra):
        """Starts the peer with `extra` in its environment, runs oha with args(port), stops it."""
        if self.skipped:
            return
        peer = None
        try:
            peer = Peer(db_url, self.info["processes"], **extra)
            self.cases[name] = oha(args(peer.port), server_cpu=False)
        except Exception as error:
            self.skipped = f"failed in '{name}': {error}"
            print(f"bench-load: peer {self.skipped}", file=sys.stderr, flush=True)
        finally:
            if peer is not None:
                peer.stop()


class LocalCluster:
    """A 3-primary Redis Cluster of our own redis-servers on free ports (stopped by PID), for
    the "L2 hit through the Cluster" case."""

    def __init__(self):
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="gwd-bench-cluster-")
        self.procs, self.ports = [], []
        try:
            for n in range(3):
                port = self._cluster_port()
                self.ports.append(port)
                node_dir = Path(self.dir) / str(n)
                node_dir.mkdir()
                self.procs.append(subprocess.Popen(
                    ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                     "--cluster-config-file", str(node_dir / "nodes.conf"), "--dir", str(node_dir),
                     "--save", "", "--appendonly", "no"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for port in self.ports:
                self._wait(lambda: self._cli(port, "ping") == "PONG", f"node {port}")
            cmd = ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                   "--cluster-replicas", "0", "--cluster-yes"]
            COMMANDS.append(" ".join(cmd))
            subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=True)
            for port in self.ports:
                self._wait(lambda: "cluster_state:ok" in self._cli(port, "cluster", "info"), f"cluster on {port}")
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _cluster_port():
        """A free port whose cluster bus port (+10000) is free too."""
        for _ in range(50):
            port = free_port()
            if port + 10000 > 65535:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                    return port
                except OSError:
                    continue
        raise RuntimeError("no free port pair for a cluster node")

    @staticmethod
    def _cli(port, *args):
        done = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True)
        return done.stdout.strip()

    @staticmethod
    def _wait(check, what, seconds=20):
        deadline = time.monotonic() + seconds
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"bench-load: {what} not ready within {seconds} s")
            time.sleep(0.1)

    def nodes(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def stop(self):
        for proc in self.procs:
            proc.kill()
            proc.wait()
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)


class LocalPgBouncer:
    """PgBouncer in transaction mode on a free port in front of the benchmark's Postgres
    (ADMIN_URL's host and port), its pool as large as the server's (16); as the `postgres`
    user when this runs as root (PgBouncer refuses root). Stopped by the PID it wrote."""

    def __init__(self, pool_size=16):
        import tempfile
        from urllib.parse import urlsplit
        if not Path(PGBOUNCER).exists():
            raise RuntimeError(f"{PGBOUNCER} not found (apt-get install pgbouncer)")
        target = urlsplit(ADMIN_URL)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="gwd-bench-pgbouncer-"))
        user = target.username or "postgres"
        (self.dir / "userlist.txt").write_text(f'"{user}" "{target.password or ""}"\n')
        ini = self.dir / "pgbouncer.ini"
        ini.write_text(
            f"[databases]\n* = host={target.hostname or '127.0.0.1'} port={target.port or 5432}\n"
            f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir}/userlist.txt\npool_mode = transaction\n"
            f"default_pool_size = {pool_size}\nmax_client_conn = 1000\n"
            f"logfile = {self.dir}/pgbouncer.log\npidfile = {self.dir}/pgbouncer.pid\n")
        cmd = [PGBOUNCER, str(ini)]
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres", str(self.dir)], check=True)
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        COMMANDS.append(" ".join(cmd) + f"  # pool_mode = transaction, default_pool_size = {pool_size}")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while True:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    break
                except OSError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        log = (self.dir / "pgbouncer.log")
                        tail = log.read_text()[-500:] if log.exists() else ""
                        raise RuntimeError(f"pgbouncer did not listen on {self.port}: {tail}")
                    time.sleep(0.1)
        except BaseException:
            self.stop()
            raise

    def url(self, db_url):
        """db_url through this pooler: the same user and database, the pooler's host and port."""
        from urllib.parse import urlsplit, urlunsplit
        parts = urlsplit(db_url)
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{userinfo}127.0.0.1:{self.port}"))

    def stop(self):
        pidfile = self.dir / "pgbouncer.pid"
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def pooler_rounds(db_url):
    """Issue #26: uncached reads and writes on a direct connection, through PgBouncer in
    transaction mode, and in pooler mode on the direct connection, ROUNDS times interleaved.
    Returns the median round of each case; the per-round ratios to the direct case go to
    ROUND_RATIOS."""
    bouncer = LocalPgBouncer()
    write = ["-m", "PUT", "-T", "application/json", "-d", WRITE_BODY,
             *auth(OVERVIEW_LOCATION), "--rand-regex-url", write_ids_regex()]
    configs = {
        "direct": dict(database=db_url),
        "pgbouncer": dict(database=bouncer.url(db_url), DATABASE_POOLER="transaction",
                          DATABASE_LISTEN_URL=db_url),
        "mode_only": dict(database=db_url, DATABASE_POOLER="transaction", DATABASE_LISTEN_URL=db_url),
    }
    rounds = []
    try:
        for _ in range(ROUNDS):
            measured = {}
            for layout, extra in configs.items():
                extra = dict(extra)
                server = Server(extra.pop("database"), CACHE_BYPASS="true", **extra)
                try:
                    measured[pooler_case(POOLER_READ, layout)] = oha(
                        [*auth(), "--rand-regex-url", all_ids_regex()])
                    measured[pooler_case(POOLER_WRITE, layout)] = oha(write)
                finally:
                    server.stop()
            rounds.append(measured)
    finally:
        bouncer.stop()
    for kind, what in (("read", POOLER_READ), ("write", POOLER_WRITE)):
        for layout in ("pgbouncer", "mode_only"):
            ROUND_RATIOS[f"pooler_{kind}_{layout}"] = median(
                [round_ratio(r, pooler_case(what, layout), "rps", pooler_case(what, "direct")) for r in rounds])
    chosen = {}
    for case in rounds[0]:
        runs = sorted((r[case] for r in rounds), key=lambda result: result["rps"])
        chosen[case] = dict(runs[len(runs) // 2], rounds_rps=[r[case]["rps"] for r in rounds])
    return chosen


def token_rounds(db_url):
    """Issue #21: the same writes with and without the consistency token's position read,
    ROUNDS times interleaved (the order alternates between rounds), at CONNECTIONS connections
    and at one. Returns the median round of each case; the per-round ratios go to ROUND_RATIOS."""
    write = ["-m", "PUT", "-T", "application/json", "-d", WRITE_BODY,
             *auth(OVERVIEW_LOCATION), "--rand-regex-url", write_ids_regex()]
    rounds = []
    for n in range(ROUNDS):
        measured = {}
        for layout in (("on", "off") if n % 2 == 0 else ("off", "on")):
            server = Server(db_url, **TOKEN_LAYOUTS[layout][1])
            try:
                answered = write_answers_token()
                if answered != (layout == "on"):
                    raise RuntimeError(f"tokens {layout}: a write answered a token: {answered}")
                for load, (_, connections) in TOKEN_LOADS.items():
                    measured[token_case(layout, load)] = oha(write, connections=connections)
            finally:
                server.stop()
        rounds.append(measured)
        print("tokens, round " + str(n + 1) + ": with / without, " + "; ".join(
            f"{TOKEN_LOADS[load][0]}: req/s {measured[token_case('on', load)]['rps'] / measured[token_case('off', load)]['rps']:.2f}, "
            f"p50 {measured[token_case('on', load)]['p50_ms']:.2f} / {measured[token_case('off', load)]['p50_ms']:.2f} ms"
            for load in TOKEN_LOADS), flush=True)
    for load in TOKEN_LOADS:
        on, off = token_case("on", load), token_case("off", load)
        ROUND_RATIOS[f"tokens_{load}_rps"] = median([round_ratio(r, on, "rps", off) for r in rounds])
        ROUND_RATIOS[f"tokens_{load}_p50"] = median([round_ratio(r, on, "p50_ms", off) for r in rounds])
        ROUND_RATIOS[f"tokens_{load}_cpu"] = median(
            [round_ratio(r, on, "server_cpu_us_per_req", off) for r in rounds])
    chosen = {}
    for case in rounds[0]:
        runs = sorted((r[case] for r in rounds), key=lambda result: result["rps"])
        chosen[case] = dict(runs[len(runs) // 2], rounds_rps=[r[case]["rps"] for r in rounds])
    return chosen


def write_answers_token():
    """Whether a write to the running server answers X-Consistency-Token."""
    request = urllib.request.Request(
        url("/api/workflows/w-1"), data=WRITE_BODY.encode(), method="PUT",
        headers={"Authorization": f"Bearer {key_of(OVERVIEW_LOCATION)}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers.get("X-Consistency-Token") is not None


def token_case(layout, load):
    return f"tokens: writes, PUT /api/workflows/{{id}} (500 ids), {TOKEN_LOADS[load][0]}, {TOKEN_LAYOUTS[layout][0]}"


def token_ratios():
    """The tokens group's rows: with the position read over without it, same round."""
    rows = []
    for load, (label, _) in TOKEN_LOADS.items():
        for metric, what in (("rps", "req/s"), ("p50", "p50 latency"), ("cpu", "server CPU per write")):
            ratio = ROUND_RATIOS.get(f"tokens_{load}_{metric}")
            if ratio is not None:
                rows.append((f"writes with the consistency token / without, {what}, {label}", ratio))
    return rows


def pooler_case(what, layout):
    return f"pooler: {what}, {POOLER_LAYOUTS[layout]}"


def pooler_ratios():
    """The pooler group's rows: req/s of each layout over the direct connection's."""
    rows = []
    for kind, what in (("read", "uncached reads"), ("write", "writes")):
        for layout, label in (("pgbouncer", "through PgBouncer (transaction mode)"),
                              ("mode_only", "pooler mode without a pooler")):
            ratio = ROUND_RATIOS.get(f"pooler_{kind}_{layout}")
            if ratio is not None:
                rows.append((f"{what} {label} / direct", ratio))
    return rows


def oha_command(args, duration, rate, cores=None, connections=None):
    cmd = [OHA, "--no-tui", "--output-format", "json", "-c", str(connections or CONNECTIONS), "-z", f"{duration}s"]
    if cores is not None:
        # oha starts a thread per core of the machine, whatever its affinity.
        cmd += ["--worker-threads", str(len(cores))]
    if rate:
        cmd += ["-q", str(rate), "--latency-correction"]
    return cmd + args


def oha(args, duration=DURATION, rate=None, server_cpu=True, cores=None, connections=None):
    """One measured case. With the Rust server up (and server_cpu), also its CPU time per
    request: what the server itself spends, apart from oha and the rest of the machine.
    `cores`: oha runs pinned to those, one thread each. `connections`: instead of CONNECTIONS."""
    subprocess.run(oha_command(args, WARMUP, rate, cores, connections), capture_output=True,
                   preexec_fn=pinned_to(cores))
    cmd = oha_command(args, duration, rate, cores, connections)
    COMMANDS.append(" ".join(cmd) + ("" if cores is None else f"  # pinned to core {','.join(map(str, cores))}"))
    server = RUNNING_SERVER if server_cpu else None
    before = server.cpu_seconds() if server else None
    oha_before = children_cpu_seconds()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, preexec_fn=pinned_to(cores)).stdout
    oha_cpu = children_cpu_seconds() - oha_before
    after = server.cpu_seconds() if server else None
    result = oha_result(out)
    if result["requests"]:
        result["oha_cpu_us_per_req"] = round(oha_cpu * 1e6 / result["requests"], 1)
        if before is not None and after is not None:
            result["server_cpu_us_per_req"] = round((after[0] - before[0]) * 1e6 / result["requests"], 1)
            result["server_user_us_per_req"] = round((after[1] - before[1]) * 1e6 / result["requests"], 2)
    return result


def children_cpu_seconds():
    """CPU time (user + system) of this script's finished children: oha's, after each run."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def oha_result(out):
    data = json.loads(out)
    summary = data["summary"]
    pct = data.get("latencyPercentiles", {})
    codes = data.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if str(k).startswith("2"))
    total = sum(codes.values())
    return {
        "rps": round(summary.get("requestsPerSec") or 0, 1),
        "p50_ms": round((pct.get("p50") or 0) * 1000, 3),
        "p99_ms": round((pct.get("p99") or 0) * 1000, 3),
        # Requests still in flight when the duration ends are cut by oha, not failed.
        "errors": total - ok + sum(n for e, n in (data.get("errorDistribution") or {}).items()
                                   if "deadline" not in e.lower()),
        "requests": total,
    }


def url(path, port=PORT):
    return f"http://127.0.0.1:{port}{path}"


def auth(location=1):
    return ["-H", f"Authorization: Bearer {key_of(location)}"]


def url_regex(path_regex, port=PORT):
    """oha's --rand-regex-url takes the whole URL as a regex: the host's dots are escaped."""
    return f"http://127[.]0[.]0[.]1:{port}" + path_regex


def live_regex():
    """/live with 100 different query strings: oha's URL work as in the cases."""
    return url_regex("/live[?]n=([1-9]|[1-9][0-9]|100)")


def hot_ids_regex(port=PORT):
    return url_regex("/api/workflows/wf-([1-9]|[1-9][0-9]|100)", port)


def write_ids_regex(port=PORT):
    return url_regex("/api/workflows/w-([1-9]|[1-9][0-9]|[1-4][0-9][0-9]|500)", port)


def all_ids_regex(port=PORT):
    return url_regex(f"/api/workflows/wf-([1-9][0-9]{{0,2}}|{WORKFLOWS})", port)


def analysis_regex():
    return url_regex("/api/workflows/wf-([1-9]|[1-9][0-9])/analysis")


def analysis_document(path):
    """An ad-hoc workflow of ANALYSIS_STEPS steps (emails and waits in a chain), for POST /api/analyze."""
    steps = []
    for i in range(1, ANALYSIS_STEPS + 1):
        step = ({"id": f"s{i}", "type": "send_email", "name": f"Email {i}",
                 "config": {"subject": "Hi {{contact.first_name}}", "body": "Thanks for reaching out.",
                            "to": "{{contact.email}}"}}
                if i % 2 else {"id": f"s{i}", "type": "wait", "name": f"Wait {i}", "config": {"duration": "1d"}})
        if i < ANALYSIS_STEPS:
            step["next"] = f"s{i + 1}"
        steps.append(step)
    document = {"name": "Bench ad-hoc analysis", "status": "published",
                "triggers": [{"id": "t1", "type": "contact_tag_added", "name": "Tag", "filters": {"tag": "lead"}}],
                "start": "s1", "steps": steps}
    path.write_text(json.dumps({"workflow": document}))
    return path


def l1_while_analyses_run(rate):
    """The open-loop L1 case while a second oha keeps the analysis pool busy with ad-hoc
    analyses (every request computes: nothing is cached or recorded). Returns (l1, analyses)."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="gwd-bench-analysis-") as tmp:
        body = analysis_document(Path(tmp) / "analyze.json")
        # Runs through the L1 case's warm-up and measured run, and a little beyond.
        cmd = [OHA, "--no-tui", "--output-format", "json", "-c", str(ANALYSIS_CONNECTIONS),
               "-z", f"{WARMUP + DURATION + 3}s", "-m", "POST", "-T", "application/json", "-D", str(body),
               *auth(), url("/api/analyze")]
        COMMANDS.append(" ".join(cmd) + "  # concurrently with the next command")
        background = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            time.sleep(1)  # the pool is busy before the L1 warm-up starts
            l1 = oha([*auth(), "--rand-regex-url", hot_ids_regex()], rate=rate)
            out, _ = background.communicate(timeout=WARMUP + DURATION + 30)
        finally:
            if background.poll() is None:
                background.kill()
                background.wait()
    return l1, oha_result(out)


def l1_beside_idle_loop(rate):
    """The open-loop L1 case beside a Python busy loop under SCHED_IDLE, as the analysis pool
    runs: the control for the case above."""
    loop = subprocess.Popen([sys.executable, "-c",
                             "import os\nos.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
                             "while True: pass"])
    try:
        time.sleep(0.5)
        COMMANDS.append(f"{sys.executable} -c '<busy loop under SCHED_IDLE>'  # concurrently with the next command")
        return oha([*auth(), "--rand-regex-url", hot_ids_regex()], rate=rate)
    finally:
        loop.kill()
        loop.wait()


def metric(name):
    text = urllib.request.urlopen(url("/metrics")).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def redis_benchmark():
    cmd = ["redis-benchmark", "-t", "get", "-d", "2048", "-c", "50", "-n", "200000", "--csv"]
    COMMANDS.append(" ".join(cmd))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith('"GET"'):
            return float(line.split(",")[1].strip('"'))
    raise RuntimeError(out)


def pgbench():
    psql(ADMIN_URL, f'create database "{PG_BENCH_DB}"')
    url_ = database_url(PG_BENCH_DB)
    run(["pgbench", "-q", "-i", "-s", "10", url_], capture_output=True)
    cmd = ["pgbench", "-S", "-M", "prepared", "-c", "16", "-j", "2", "-T", str(DURATION), url_]
    COMMANDS.append(" ".join(cmd))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    tps = float(re.search(r"tps = ([0-9.]+)", out).group(1))
    psql(ADMIN_URL, f'drop database "{PG_BENCH_DB}" with (force)')
    return tps


def l2_against_redis_benchmark(db_url):
    """The L2-hit case in ROUNDS rounds, each between two runs of redis-benchmark (their mean
    is that round's ceiling): a slow minute on the shared machine then moves both sides of a
    ratio. Returns the round with the median ratio and its ceiling."""
    # Workflow reads skip L1; the API-key lookup stays in L1, as in production.
    server = Server(db_url, CACHE_L1_BYPASS="true")
    rounds = []
    try:
        ceiling = redis_benchmark()
        for _ in range(ROUNDS):
            measured = oha([*auth(), "--rand-regex-url", hot_ids_regex()])
            after = redis_benchmark()
            rounds.append((measured, (ceiling + after) / 2))
            ceiling = after
    finally:
        server.stop()
    rps = [measured["rps"] for measured, _ in rounds]
    rounds.sort(key=lambda r: r[0]["rps"] / r[1])
    measured, ceiling = rounds[len(rounds) // 2]
    return dict(measured, rounds_rps=rps, rounds_ratio=[round(m["rps"] / c, 3) for m, c in rounds]), ceiling


def overview_analyzed(seconds=120.0):
    """Asks for the overview page until no workflow's analysis is pending (they are computed in
    the background), so the case measures the cached page, not the analyses."""
    request = urllib.request.Request(url(OVERVIEW_PATH.replace("limit=20", "limit=100")),
                                     headers={"Authorization": f"Bearer {key_of(OVERVIEW_LOCATION)}"})
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for page in range(1, OVERVIEW_WORKFLOWS // 100 + 2):
            request.full_url = url(f"{OVERVIEW_PATH.replace('limit=20', 'limit=100')}&page={page}")
            body = urllib.request.urlopen(request, timeout=5).read()
            if b'"pending"' in body:
                break
        else:
            return
        time.sleep(0.2)
    raise RuntimeError("the overview's analyses did not finish")


def single_flight(counts):
    """N concurrent requests for one cold key: loads counted by the cache's loader counter."""
    results = {}
    for n, wf in zip(counts, ["wf-901", "wf-902", "wf-903"]):
        before = metric("cache_loads_total")
        subprocess.run([OHA, "--no-tui", "-n", str(n), "-c", str(n), *auth(), url(f"/api/workflows/{wf}")],
                       capture_output=True, check=True)
        results[n] = int(metric("cache_loads_total") - before)
    return results


# Ratios to the ceiling taken within each round (see main); the report gives their median.
ROUND_RATIOS = {}


def round_ratio(measured, case, metric, base_case):
    base = measured.get(base_case, {}).get(metric)
    value = measured.get(case, {}).get(metric)
    return None if not base or value is None else value / base


def median(values):
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def median_round(rounds):
    """Per case, the round with the median req/s (p99 targets: the median of the per-round
    ratios, kept in ROUND_RATIOS)."""
    pairs = {
        "l1_rps_plain": (L1_CASE, "rps", CEILING_CASE),
        "l1_rps": (L1_CASE, "rps", LIKE_CEILING_CASE),
        "l1_p99": (L1_CASE, "p99_ms", LIKE_CEILING_CASE),
        "open_p99": (L1_OPEN_CASE, "p99_ms", OPEN_CEILING_CASE),
        "busy_p99": (L1_UNDER_ANALYSES_CASE, "p99_ms", L1_OPEN_CASE),
        "idle_loop_p99": (L1_BESIDE_IDLE_LOOP_CASE, "p99_ms", L1_OPEN_CASE),
        "cached_rps_plain": (CACHED_ANALYSIS_CASE, "rps", CEILING_CASE),
        "overview_vs_l1": (OVERVIEW_CASE, "rps", L1_CASE),
        "cached_rps": (CACHED_ANALYSIS_CASE, "rps", LIKE_CEILING_CASE),
        "split_l1_rps": (SPLIT_L1_CASE, "rps", SPLIT_CEILING_CASE),
        "split_l1_p99": (SPLIT_L1_CASE, "p99_ms", SPLIT_CEILING_CASE),
        "split_cached_rps": (SPLIT_CACHED_CASE, "rps", SPLIT_CEILING_CASE),
    }
    for name, (case, metric, base) in pairs.items():
        ratio = median([round_ratio(r, case, metric, base) for r in rounds])
        if ratio is not None:  # each layout's rounds set their own ratios
            ROUND_RATIOS[name] = ratio
    chosen = {}
    for case in rounds[0]:
        runs = sorted((r[case] for r in rounds if case in r), key=lambda result: result["rps"])
        chosen[case] = dict(runs[len(runs) // 2], rounds_rps=[r[case]["rps"] for r in rounds if case in r])
    return chosen


def selected(group):
    """BENCH_ONLY=l1,open,analyses,list,cached,overview,split,l2,miss,down,pooler,tokens (comma-separated): a quick
    look at a few groups while working on them; the report and BENCHMARKS.md are left alone."""
    return not ONLY or group in ONLY


def main():
    global OHA
    # SIGTERM unwinds like Ctrl-C, so the `finally` below stops what was started.
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    OHA = ensure_oha()
    if not os.environ.get("BENCH_BINARY"):
        run(["cargo", "build", "--release", "--locked", "--bin", "ghl-workflow-debugger"], cwd=ROOT)
    run([str(ROOT / "scripts" / "ensure-services.sh")])
    peer = PeerRun() if not ONLY else PeerRun.skip("BENCH_ONLY")
    db_url, definition_bytes = seed()
    cases, flights, redis_get, pg_tps = {}, {}, None, None
    try:
        server = Server(db_url)
        rounds = []
        for n in range(ROUNDS):
            # The cases compared with the ceiling, side by side, ROUNDS times: the machine's
            # speed drifts between minutes, so each ratio is taken within a round, then the
            # median round is reported.
            measured = {
                CEILING_CASE: oha([url("/live")]),
                LIKE_CEILING_CASE: oha([*auth(), "--rand-regex-url", live_regex()]),
            }
            if selected("l1"):
                measured[L1_CASE] = oha([*auth(), "--rand-regex-url", hot_ids_regex()])
                if n == 0:
                    # The peer's case right after the Rust one; the Rust server stays up, idle.
                    peer.measure(L1_CASE, db_url,
                                 lambda port: [*auth(), "--rand-regex-url", hot_ids_regex(port)])
            if n == 0:
                rate = max(1, int(measured[CEILING_CASE]["rps"] * 0.2))
            if selected("open") or selected("analyses"):
                measured[OPEN_CEILING_CASE] = oha([*auth(), "--rand-regex-url", live_regex()], rate=rate)
                measured[L1_OPEN_CASE] = oha([*auth(), "--rand-regex-url", hot_ids_regex()], rate=rate)
            if selected("analyses"):
                measured[L1_UNDER_ANALYSES_CASE], measured[ANALYSES_CASE] = l1_while_analyses_run(rate)
                measured[L1_BESIDE_IDLE_LOOP_CASE] = l1_beside_idle_loop(rate)
            if selected("cached"):
                measured[CACHED_ANALYSIS_CASE] = oha([*auth(), "--rand-regex-url", analysis_regex()])
            if selected("overview"):
                if n == 0:
                    overview_analyzed()
                measured[OVERVIEW_CASE] = oha([*auth(OVERVIEW_LOCATION), url(OVERVIEW_PATH)])
            rounds.append(measured)
        cases.update(median_round(rounds))
        if selected("list"):
            cases["list: GET /api/workflows?limit=20"] = oha([*auth(), url("/api/workflows?limit=20")])
        if not ONLY:
            flights = single_flight([64, 256, 1000])
        server.stop()

        layout = load_and_server_cores()
        if selected("split") and layout:
            cases.update(separate_cores_rounds(db_url, *layout))

        if selected("l2"):
            cases[L2_CASE], redis_get = l2_against_redis_benchmark(db_url)

        if not ONLY:
            cluster = LocalCluster()
            try:
                server = Server(db_url, CACHE_L1_BYPASS="true", REDIS_URL="", REDIS_CLUSTER_NODES=cluster.nodes())
                cases[CLUSTER_CASE] = oha([*auth(), "--rand-regex-url", hot_ids_regex()])
                server.stop()
            finally:
                cluster.stop()

            server = Server(db_url, CACHE_L1_CAPACITY=200)
            cases["uniform over 1,000 workflows (L1 of 200: L1 misses, L2 hits)"] = oha(
                [*auth(), "--rand-regex-url", all_ids_regex()])
            server.stop()

        if selected("miss") or selected("down"):
            server = Server(db_url, CACHE_BYPASS="true")
            cases[MISS_CASE] = oha([*auth(), "--rand-regex-url", all_ids_regex()])
            peer.measure(MISS_CASE, db_url, lambda port: [*auth(), "--rand-regex-url", all_ids_regex(port)],
                         CACHE_BYPASS="true")
            if not ONLY:
                cases["analysis uncached (bypass)"] = oha([*auth(), "--rand-regex-url", analysis_regex()])
            server.stop()

        if selected("down"):
            # Writes go to ids of the overview location that no read case uses.
            write = ["-m", "PUT", "-T", "application/json", "-d", WRITE_BODY,
                     *auth(OVERVIEW_LOCATION), "--rand-regex-url", write_ids_regex()]
            server = Server(db_url)
            cases[WRITES_UP_CASE] = oha(write)
            server.stop()
            closed = socket.socket()
            closed.bind(("127.0.0.1", 0))
            dead_port = closed.getsockname()[1]
            closed.close()
            server = Server(db_url, REDIS_URL=f"redis://127.0.0.1:{dead_port}")
            cases["Redis down: breaker open, L1-miss traffic"] = oha([*auth(), "--rand-regex-url", all_ids_regex()])
            cases[L1_DOWN_CASE] = oha([*auth(), "--rand-regex-url", hot_ids_regex()])
            cases[WRITES_DOWN_CASE] = oha(write)
            server.stop()

        if selected("pooler"):
            cases.update(pooler_rounds(db_url))

        if selected("tokens"):
            cases.update(token_rounds(db_url))

        if selected("miss"):
            redis_get = redis_get or (redis_benchmark() if not ONLY else None)
            pg_tps = pgbench()
        if not ONLY:
            redis_get = redis_get or redis_benchmark()
    finally:
        try:
            server.stop()
        except Exception:
            pass
        psql(ADMIN_URL, f'drop database if exists "{BENCH_DB}" with (force)')
    if ONLY:
        return quick_look(cases, redis_get, pg_tps)
    report(cases, flights, redis_get, pg_tps, definition_bytes, peer)


def separate_cores_rounds(db_url, load_cores, server_cores):
    """The ceiling, L1-hit and cached-analysis cases with oha on `load_cores` and the server on
    `server_cores`, ROUNDS times: the median round of each (ratios: ROUND_RATIOS)."""
    server = Server(db_url, cores=server_cores)
    try:
        rounds = [{
            SPLIT_CEILING_CASE: oha([*auth(), "--rand-regex-url", live_regex()], cores=load_cores),
            SPLIT_L1_CASE: oha([*auth(), "--rand-regex-url", hot_ids_regex()], cores=load_cores),
            SPLIT_CACHED_CASE: oha([*auth(), "--rand-regex-url", analysis_regex()], cores=load_cores),
        } for _ in range(ROUNDS)]
    finally:
        server.stop()
    return median_round(rounds)


def ceiling_of(name, cases):
    """The ceiling a case's "ratio to ceiling" column divides by: its own layout's."""
    split = name.startswith("separate cores") and SPLIT_CEILING_CASE in cases
    return cases[SPLIT_CEILING_CASE if split else CEILING_CASE]


def quick_look(cases, redis_get, pg_tps):
    """BENCH_ONLY: the measured cases and their ratios on stdout, nothing written."""
    for name, r in cases.items():
        print(f"{name}: {r['rps']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
              f"{r['errors']} errors, {r['rps'] / ceiling_of(name, cases)['rps']:.2f} of the ceiling, "
              f"CPU µs/request: server {r.get('server_cpu_us_per_req')} "
              f"(user {r.get('server_user_us_per_req')}), oha {r.get('oha_cpu_us_per_req')}")
    for name, ratio in ROUND_RATIOS.items():
        if ratio is not None and not name.startswith(("pooler_", "tokens_")):  # those: below
            print(f"median of the per-round ratios, {name}: {ratio:.2f}")
    if redis_get and L2_CASE in cases:
        print(f"L2 / redis-benchmark GET: {cases[L2_CASE]['rps'] / redis_get:.2f}")
    if pg_tps and MISS_CASE in cases:
        print(f"miss / pgbench -S: {cases[MISS_CASE]['rps'] / pg_tps:.2f}")
    for label, ratio in redis_down_ratios(cases):
        print(f"{label}: {ratio:.2f}")
    for label, ratio in [*pooler_ratios(), *token_ratios()]:
        print(f"median of the per-round ratios, {label}: {ratio:.2f}")


def redis_down_ratios(cases):
    """Issue #20's rows: L1 hits and writes with Redis down, each against its Redis-up case."""
    pairs = [("Redis down: L1 hit / L1 hit with Redis up", L1_DOWN_CASE, L1_CASE),
             ("writes with Redis down / with Redis up", WRITES_DOWN_CASE, WRITES_UP_CASE)]
    return [(label, cases[down]["rps"] / cases[up]["rps"])
            for label, down, up in pairs if down in cases and up in cases]


def peer_section(cases, peer):
    """The "Peer: Node.js/Express" lines of the report, and its part of load.json."""
    title = "**Peer: Node.js/Express**"
    if not peer.cases:
        return [f"{title}: peer skipped: {peer.skipped}."], {"status": f"peer skipped: {peer.skipped}"}
    info = peer.info
    deps = ", ".join(f"{name} {version}" for name, version in info["dependencies"].items())
    rows, ratios = [], {}
    for name, r in peer.cases.items():
        rust = cases[name]
        ratios[name] = round(rust["rps"] / max(r["rps"], 1e-9), 2)
        rows.append(f"| {name} | Rust | {rust['rps']:.0f} | {rust['p50_ms']:.2f} | {rust['p99_ms']:.2f} | "
                    f"{rust['errors']} | |")
        rows.append(f"| {name} | Node.js/Express | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                    f"{r['errors']} | {ratios[name]:.2f} |")
    lines = [
        f"{title} (`bench/peers/node`: Node {info['node']}, {deps}; cluster module, {info['processes']} "
        f"processes, one per core; Postgres pool of 16 split between them): the same cases against the same "
        f"database and Redis with the same oha parameters, each right after the Rust one "
        f"(Rust / peer = ratio of req/s).",
        "",
        "| case | service | req/s | p50 ms | p99 ms | errors | Rust / peer |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]
    if peer.skipped:
        lines += ["", f"The peer's other cases did not run: {peer.skipped}."]
    return lines, {"status": "measured" if not peer.skipped else f"partial: {peer.skipped}", **info,
                   "cases": peer.cases, "rust_over_peer_rps": ratios}


def report(cases, flights, redis_get, pg_tps, definition_bytes, peer):
    ceiling = cases[CEILING_CASE]
    rows = []
    for name, r in cases.items():
        cpu, oha_cpu = r.get("server_cpu_us_per_req"), r.get("oha_cpu_us_per_req")
        rows.append(f"| {name} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} | "
                    f"{r['rps'] / ceiling_of(name, cases)['rps']:.2f} | {'' if cpu is None else f'{cpu:.1f}'} | "
                    f"{'' if oha_cpu is None else f'{oha_cpu:.1f}'} |")
    l2 = cases[L2_CASE]
    l2_cluster = cases[CLUSTER_CASE]
    miss = cases[MISS_CASE]
    down = cases["Redis down: breaker open, L1-miss traffic"]
    targets = [
        ("L1 hit / ceiling as the cases send it", ROUND_RATIOS["l1_rps"], "≥ 0.85"),
        ("L1 hit / plain `GET /live`", ROUND_RATIOS["l1_rps_plain"], "recorded"),
        ("L1 p99 / ceiling p99 (as the cases send it), open loop at 20 %", ROUND_RATIOS["open_p99"], "≤ 1.3"),
        ("L1 p99 / ceiling p99 (as the cases send it), saturation", ROUND_RATIOS["l1_p99"], "≤ 1.1"),
        ("L1 p99 with analyses running / without, open loop at 20 %", ROUND_RATIOS["busy_p99"], "≤ 1.2"),
        ("L1 p99 beside an idle-priority busy loop (control, no code of ours) / without",
         ROUND_RATIOS.get("idle_loop_p99"), "recorded"),
        ("L2 hit / redis-benchmark GET", l2["rps"] / redis_get, "≥ 0.60"),
        ("miss / pgbench -S", miss["rps"] / pg_tps, "≥ 0.25"),
        ("cached analysis / ceiling as the cases send it", ROUND_RATIOS["cached_rps"], "≥ 0.75"),
        ("cached analysis / plain `GET /live`", ROUND_RATIOS["cached_rps_plain"], "recorded"),
        ("overview page (300 workflows, include=analysis, sort=healthScore) / L1 hit",
         ROUND_RATIOS.get("overview_vs_l1"), "≥ 0.5"),
        ("Redis down / miss", down["rps"] / miss["rps"], "≥ 0.9"),
        *[(label, ratio, "≥ 0.9" if "L1" in label else "recorded")
          for label, ratio in redis_down_ratios(cases)],
        ("L2 hit through a 3-primary Cluster / single-node L2 hit", l2_cluster["rps"] / l2["rps"], "recorded"),
        *[(label, ratio, "recorded") for label, ratio in pooler_ratios()],
        *[(label, ratio, "recorded") for label, ratio in token_ratios()],
        ("separate cores: L1 hit / ceiling", ROUND_RATIOS.get("split_l1_rps"), "≥ 0.85"),
        ("separate cores: L1 p99 / ceiling p99, saturation", ROUND_RATIOS.get("split_l1_p99"), "≤ 1.1"),
        ("separate cores: cached analysis / ceiling", ROUND_RATIOS.get("split_cached_rps"), "≥ 0.75"),
    ]
    peer_lines, peer_json = peer_section(cases, peer)
    machine = f"{os.cpu_count()} cores, {cpu_model()}, {platform.system()} {platform.release()}"
    body = "\n".join([
        "<!-- bench-load:start -->",
        f"Last run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine}; "
        f"{LOCATIONS} locations × {WORKFLOWS} workflows (definition ≈ {definition_bytes} B of JSON); "
        f"oha, {CONNECTIONS} connections, {DURATION} s per case after a {WARMUP} s warm-up. "
        f"The ceiling, L1 and cached-analysis cases ran {ROUNDS} times, interleaved: each row gives "
        f"the median run, and each of their targets the median of the ratios taken within a round. "
        f"The ratio column is to plain `GET /live` (for the separate-cores rows: to that layout's "
        f"ceiling); the targets compare with the ceiling as the cases send it (the same API-key header, and oha drawing each URL from a regex; in this run it "
        f"answered {cases[LIKE_CEILING_CASE]['rps'] / ceiling['rps']:.2f} × the plain ceiling's req/s).",
        "",
        "| case | req/s | p50 ms | p99 ms | errors | ratio to ceiling | server CPU µs/req | oha CPU µs/req |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Physical ceilings in the same run: `redis-benchmark GET -d 2048 -c 50` {redis_get:.0f} req/s "
        f"(the L2-hit case ran {ROUNDS} times, each between two runs of it; the L2 row is the round with "
        f"the median ratio, and this its ceiling: the mean of the runs around it); "
        f"`pgbench -S -M prepared` (scale 10, 16 clients) {pg_tps:.0f} tps.",
        "",
        "| target | measured | wanted |",
        "|---|---|---|",
        *[f"| {name} | {'not measured (one core)' if value is None else f'{value:.2f}'} | {want} |"
          for name, value, want in targets],
        "",
        "Single flight (concurrent requests for one cold key → loader calls): "
        + ", ".join(f"{n} → {loads}" for n, loads in flights.items()) + ".",
        "",
        *peer_lines,
        "",
        "Commands:",
        "",
        *[f"    {c}" for c in dict.fromkeys(COMMANDS)],
        "<!-- bench-load:end -->",
    ])
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text()
    if "<!-- bench-load:start -->" in text:
        text = re.sub(r"<!-- bench-load:start -->.*<!-- bench-load:end -->", lambda _: body, text, flags=re.S)
    else:
        text += "\n## Load (`make bench-load`)\n\n" + body + "\n"
    path.write_text(text)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "load.json").write_text(json.dumps({
        "cases": cases, "redis_benchmark_get": redis_get, "pgbench_select_tps": pg_tps,
        "single_flight": flights, "targets": {n: v for n, v, _ in targets}, "machine": machine,
        "peer": peer_json, "commands": COMMANDS}, indent=2))
    print(body)


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
