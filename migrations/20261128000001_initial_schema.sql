-- The first schema: tenants (locations), their API keys, workflows, subscriptions,
-- stored analyses and processed webhook events.

create table locations (
    id             text primary key
                   check (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name           text not null check (length(name) between 1 and 200),
    created_at     timestamptz not null default now(),
    uninstalled_at timestamptz
);

create table api_keys (
    id          uuid primary key default gen_random_uuid(),
    location_id text not null references locations (id) on delete cascade,
    -- SHA-256 of the key; the key itself is shown once and never stored.
    key_hash    bytea not null unique check (length(key_hash) = 32),
    label       text not null default '',
    created_at  timestamptz not null default now(),
    revoked_at  timestamptz
);

create index api_keys_location_idx on api_keys (location_id);

create table workflows (
    location_id   text not null references locations (id) on delete cascade,
    id            text not null check (id ~ '^[A-Za-z0-9_.:-]{1,128}$'),
    name          text not null check (length(name) between 1 and 500),
    status        text not null check (status in ('draft', 'published')),
    version       bigint not null check (version >= 1),
    definition    jsonb not null,
    step_count    integer not null default 0 check (step_count >= 0),
    trigger_count integer not null default 0 check (trigger_count >= 0),
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    primary key (location_id, id)
);

-- Listing a location's workflows, newest first, optionally by status.
create index workflows_location_updated_idx on workflows (location_id, updated_at desc, id);
create index workflows_location_status_updated_idx on workflows (location_id, status, updated_at desc, id);

create table subscriptions (
    location_id        text primary key references locations (id) on delete cascade,
    plan               text not null default 'free'
                       check (plan in ('free', 'starter', 'pro', 'agency')),
    status             text not null default 'active'
                       check (status in ('active', 'trialing', 'past_due', 'canceled')),
    current_period_end timestamptz,
    updated_at         timestamptz not null default now()
);

create table analyses (
    id               bigint generated always as identity primary key,
    location_id      text not null references locations (id) on delete cascade,
    -- No foreign key to workflows: history outlives a deleted workflow.
    workflow_id      text not null,
    workflow_version bigint not null check (workflow_version >= 0),
    rules_version    text not null,
    health_score     smallint not null check (health_score between 0 and 100),
    issues_found     integer not null check (issues_found >= 0),
    result           jsonb not null,
    created_at       timestamptz not null default now(),
    unique (location_id, workflow_id, workflow_version, rules_version)
);

-- History: a location's analyses, newest first.
create index analyses_location_created_idx on analyses (location_id, created_at desc, id desc);

create table webhook_events (
    id          text primary key,
    type        text not null,
    location_id text,
    received_at timestamptz not null default now()
);

create index webhook_events_received_idx on webhook_events (received_at);
