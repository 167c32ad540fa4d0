'use strict';
// A minimal Node.js/Express peer of the Rust service, written only for the load benchmark's
// comparison (scripts/bench_load.py, BENCHMARKS.md "Peer: Node.js/Express"). It serves what
// the benchmark's L1-hit and miss cases need, with the Rust service's semantics:
//
//   GET /api/workflows/:id   Authorization: Bearer <key>
//     - the key is looked up by SHA-256 in api_keys (joined to locations, not revoked, not
//       uninstalled), read through the cache like the Rust service's (15 min, "not found" 30 s);
//     - the workflow of the key's location, read through the cache (10 min ±10 %, "not found"
//       30 s): in-process LRU (bounded by entries and bytes) → Redis GET → Postgres, filling
//       upward; an L2 hit fills L1 with the value's remaining TTL; one load per key at a time
//       per process;
//     - the same envelope ({success, data, meta: {timestamp, requestId}} / {success, error,
//       meta}), status codes (200, 401, 403, 404, 503, 500), X-Request-ID and X-Cache-Status /
//       X-Cache-Tier headers.
//   GET /live, GET /ready
//
// Not implemented (no benchmark case needs it): writes and invalidation, rate limits, stale
// serving, the Redis circuit breaker, metrics, access log, CORS.
//
// Environment (names as the Rust service's where the meaning is the same):
//   DATABASE_URL, REDIS_URL (unset: no L2), HOST (127.0.0.1), PORT (3000),
//   WORKERS (processes; default os.availableParallelism(), 1 = no cluster),
//   DATABASE_MAX_CONNECTIONS (16, split across the processes),
//   CACHE_PREFIX (gwd; keys are `peer:{CACHE_PREFIX}:…`, never the Rust service's),
//   CACHE_L1_CAPACITY (10000; 0 = no in-process tier), CACHE_L1_MAX_BYTES (64 MiB),
//   CACHE_BYPASS (false; true = workflows from Postgres every request, like the Rust switch:
//   the API-key lookup stays cached).

const cluster = require('node:cluster');
const os = require('node:os');

const env = process.env;

function int(name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a whole number`);
  return value;
}

function flag(name, fallback) {
  const raw = (env[name] || '').toLowerCase();
  if (raw === '') return fallback;
  if (['true', '1', 'yes', 'on'].includes(raw)) return true;
  if (['false', '0', 'no', 'off'].includes(raw)) return false;
  throw new Error(`${name} must be true or false`);
}

const WORKERS = Math.max(1, int('WORKERS', os.availableParallelism()));

if (cluster.isPrimary && WORKERS > 1) {
  primary();
} else {
  serve();
}

// One process per core behind the cluster module's round-robin accept (the usual way to use
// every core with Express). The primary only supervises: any worker death stops the peer.
function primary() {
  let stopping = false;
  const stop = (code) => {
    if (stopping) return;
    stopping = true;
    process.exitCode = code;
    for (const worker of Object.values(cluster.workers)) worker.process.kill('SIGTERM');
    setTimeout(() => process.exit(code), 5000).unref();
  };
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      console.error(`peer: worker ${worker.process.pid} exited (${signal || code}), stopping`);
      stop(1);
    }
    if (Object.keys(cluster.workers).length === 0) process.exit(process.exitCode || 0);
  });
  process.on('SIGTERM', () => stop(0));
  process.on('SIGINT', () => stop(0));
  for (let i = 0; i < WORKERS; i++) cluster.fork();
}

function serve() {
  const crypto = require('node:crypto');
  const express = require('express');
  const { Pool } = require('pg');
  const Redis = require('ioredis');

  const PREFIX = `peer:${env.CACHE_PREFIX || 'gwd'}`;
  const BYPASS = flag('CACHE_BYPASS', false);
  const WORKFLOW_TTL_MS = 600_000;
  const API_KEY_TTL_MS = 900_000;
  const NEGATIVE_TTL_MS = 30_000;
  const L2_BUDGET_MS = 50;

  const pool = new Pool({
    connectionString: env.DATABASE_URL,
    max: Math.max(1, Math.ceil(int('DATABASE_MAX_CONNECTIONS', 16) / WORKERS)),
    connectionTimeoutMillis: 1000, // the Rust service's acquire timeout
    statement_timeout: 5000,
    idleTimeoutMillis: 300_000,
    application_name: 'gwd-bench-peer-node',
  });
  pool.on('error', (error) => console.error(`peer: idle Postgres client: ${error.message}`));

  let redis = null;
  if (env.REDIS_URL && env.REDIS_URL.trim() !== '') {
    redis = new Redis(env.REDIS_URL, {
      maxRetriesPerRequest: 1,
      commandTimeout: L2_BUDGET_MS, // like the Rust cache's per-operation budget
      enableOfflineQueue: false, // Redis down: a miss now, not a queued command
    });
    let reported = false;
    redis.on('error', (error) => {
      if (!reported) console.error(`peer: Redis: ${error.message}`);
      reported = true;
    });
    redis.on('ready', () => {
      reported = false;
    });
  }

  // In-process tier: an LRU over a Map (insertion order), bounded by entries and bytes.
  class L1 {
    constructor(capacity, maxBytes) {
      this.capacity = capacity;
      this.maxBytes = maxBytes;
      this.map = new Map();
      this.bytes = 0;
    }

    get(key, now) {
      const entry = this.map.get(key);
      if (entry === undefined) return undefined;
      this.map.delete(key);
      if (entry.expiresAt <= now) {
        this.bytes -= entry.weight;
        return undefined;
      }
      this.map.set(key, entry); // most recently used last
      return entry;
    }

    set(key, value, expiresAt) {
      if (this.capacity === 0) return;
      const old = this.map.get(key);
      if (old !== undefined) {
        this.map.delete(key);
        this.bytes -= old.weight;
      }
      const weight = 64 + key.length + (value === null ? 0 : value.length);
      this.map.set(key, { value, expiresAt, weight });
      this.bytes += weight;
      while (this.map.size > this.capacity || this.bytes > this.maxBytes) {
        const [oldestKey, oldest] = this.map.entries().next().value;
        this.map.delete(oldestKey);
        this.bytes -= oldest.weight;
      }
    }
  }

  const l1 = new L1(int('CACHE_L1_CAPACITY', 10_000), int('CACHE_L1_MAX_BYTES', 64 * 1024 * 1024));
  const inflight = new Map();

  const jitter = (ttlMs) => Math.max(1, Math.round(ttlMs * (0.9 + Math.random() * 0.2)));

  // Redis value: `{expiresAt unix ms}|{value}`; an empty value is a cached "not found".
  async function fromL2(key) {
    if (redis === null || redis.status !== 'ready') return undefined;
    let raw;
    try {
      raw = await redis.get(key);
    } catch {
      return undefined; // Redis can only make the peer faster, never fail a request
    }
    if (raw === null) return undefined;
    const bar = raw.indexOf('|');
    const expiresAt = Number(raw.slice(0, bar));
    if (bar < 0 || !(expiresAt > Date.now())) return undefined;
    const value = bar === raw.length - 1 ? null : raw.slice(bar + 1);
    l1.set(key, value, expiresAt);
    return value;
  }

  async function missThrough(key, ttlMs, load) {
    const cached = await fromL2(key);
    if (cached !== undefined) return { value: cached, status: 'HIT', tier: 'l2' };
    const value = await load();
    const ttl = value === null ? NEGATIVE_TTL_MS : jitter(ttlMs);
    const expiresAt = Date.now() + ttl;
    l1.set(key, value, expiresAt);
    if (redis !== null && redis.status === 'ready') {
      redis.set(key, `${expiresAt}|${value === null ? '' : value}`, 'PX', ttl).catch(() => {});
    }
    return { value, status: 'MISS', tier: null };
  }

  // L1 → (one load per key at a time) L2 → load; `load` answers a string or null (not found).
  function readThrough(key, ttlMs, load) {
    const hit = l1.get(key, Date.now());
    if (hit !== undefined) return { value: hit.value, status: 'HIT', tier: 'l1' };
    let pending = inflight.get(key);
    if (pending === undefined) {
      pending = missThrough(key, ttlMs, load);
      inflight.set(key, pending);
      const done = () => inflight.delete(key);
      pending.then(done, done);
    }
    return pending;
  }

  // Cache key components: ids may contain ':' (workflow ids), so each one is escaped.
  const part = (s) => encodeURIComponent(s);

  const API_KEY_SQL = `select k.id as key_id, k.location_id
    from api_keys k
    join locations l on l.id = k.location_id
    where k.key_hash = $1 and k.revoked_at is null and l.uninstalled_at is null`;

  const WORKFLOW_SQL = `select id, name, status, version, step_count, trigger_count, created_at,
      updated_at, definition
    from workflows
    where location_id = $1 and id = $2`;

  // The location id of a key (SHA-256, as stored), or null.
  function keyOwner(token) {
    const hash = crypto.createHash('sha256').update(token, 'utf8').digest();
    return readThrough(`${PREFIX}:api_key:${hash.toString('hex')}`, API_KEY_TTL_MS, async () => {
      const result = await pool.query({ name: 'api_key_owner', text: API_KEY_SQL, values: [hash] });
      return result.rows.length === 0 ? null : result.rows[0].location_id;
    });
  }

  async function loadWorkflow(locationId, id) {
    const result = await pool.query({ name: 'get_workflow', text: WORKFLOW_SQL, values: [locationId, id] });
    if (result.rows.length === 0) return null;
    const row = result.rows[0];
    return JSON.stringify({
      id: row.id,
      name: row.name,
      status: row.status,
      version: Number(row.version),
      stepCount: row.step_count,
      triggerCount: row.trigger_count,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      definition: row.definition,
    });
  }

  function workflow(locationId, id) {
    if (BYPASS) {
      return loadWorkflow(locationId, id).then((value) => ({ value, status: 'BYPASS', tier: null }));
    }
    return readThrough(`${PREFIX}:workflow:${part(locationId)}:${part(id)}`, WORKFLOW_TTL_MS, () =>
      loadWorkflow(locationId, id),
    );
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const meta = (res) => `{"timestamp":"${new Date().toISOString()}","requestId":"${res.locals.requestId}"}`;

  function sendError(res, error) {
    let status = 500;
    let code = 'INTERNAL_ERROR';
    let message = 'An unexpected error occurred';
    if (error instanceof ApiError) {
      ({ status, code, message } = error);
    } else if (isUnavailable(error)) {
      status = 503;
      code = 'SERVICE_UNAVAILABLE';
      message = 'The database is unavailable, try again shortly';
      console.error(`peer: ${message}: ${error.message}`);
    } else {
      console.error(`peer: internal error: ${error && error.stack}`);
    }
    res
      .status(status)
      .set('Cache-Control', 'no-store')
      .type('application/json')
      .send(`{"success":false,"error":${JSON.stringify({ code, message })},"meta":${meta(res)}}`);
  }

  // Connection errors, pool timeouts and SQLSTATE 08xxx/57xxx/53300: "not now", not "wrong".
  function isUnavailable(error) {
    const sqlstate = error && typeof error.code === 'string' && /^[0-9A-Z]{5}$/.test(error.code) ? error.code : null;
    if (sqlstate) return sqlstate.startsWith('08') || sqlstate.startsWith('57') || sqlstate === '53300';
    return true;
  }

  const USABLE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
  const WORKFLOW_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false); // the Rust service sends no ETag on reads; hashing every body is not free

  app.use((req, res, next) => {
    const given = req.get('x-request-id');
    const id = given !== undefined && USABLE_REQUEST_ID.test(given) ? given : crypto.randomUUID();
    res.locals.requestId = id;
    res.set('X-Request-ID', id);
    next();
  });

  app.get('/live', (req, res) => {
    res.type('application/json').send('{"alive":true}');
  });

  app.get('/ready', async (req, res) => {
    try {
      await pool.query('select 1');
      res.type('application/json').send('{"status":"ready"}');
    } catch {
      res.status(503).type('application/json').send('{"status":"unavailable"}');
    }
  });

  app.get('/api/workflows/:id', async (req, res) => {
    try {
      const header = req.get('authorization') || '';
      const space = header.indexOf(' ');
      const token = space < 0 ? '' : header.slice(space + 1).trim();
      if (space < 0 || header.slice(0, space).toLowerCase() !== 'bearer' || token === '') {
        throw new ApiError(401, 'UNAUTHORIZED', 'An API key is required (Authorization: Bearer <key>)');
      }
      const owner = await keyOwner(token);
      if (owner.value === null) throw new ApiError(401, 'UNAUTHORIZED', 'The API key is not valid');
      const locationId = owner.value;
      const named = req.query.locationId;
      if (typeof named === 'string' && named !== locationId) {
        throw new ApiError(403, 'FORBIDDEN', 'The API key does not belong to this locationId');
      }
      const id = req.params.id;
      if (!WORKFLOW_ID.test(id)) throw new ApiError(404, 'NOT_FOUND', 'Workflow not found');
      const read = await workflow(locationId, id);
      if (read.value === null) throw new ApiError(404, 'NOT_FOUND', 'Workflow not found');
      res.set('X-Cache-Status', read.status);
      if (read.tier !== null) res.set('X-Cache-Tier', read.tier);
      res.type('application/json').send(`{"success":true,"data":${read.value},"meta":${meta(res)}}`);
    } catch (error) {
      sendError(res, error);
    }
  });

  app.use((req, res) => sendError(res, new ApiError(404, 'NOT_FOUND', 'Route not found')));

  const server = app.listen(int('PORT', 3000), env.HOST || '127.0.0.1');
  server.keepAliveTimeout = 75_000; // keep-alive like actix (oha holds its connections)

  const shutdown = () => {
    server.close();
    server.closeAllConnections();
    Promise.allSettled([pool.end(), redis === null ? null : redis.quit()]).then(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}
