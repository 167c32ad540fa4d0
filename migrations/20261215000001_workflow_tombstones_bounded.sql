-- Tombstones are bounded: each location keeps its newest ones (`TOMBSTONES_PER_LOCATION` in
-- src/repository/postgres/workflows.rs, pruned after each delete), so a tenant creating and
-- deleting fresh ids cannot grow this table without end. Which ones are newest needs when
-- each was written. A re-created workflow whose tombstone was pruned still starts after
-- every version of its predecessor that was analyzed (the creation also reads `analyses`),
-- so no cached analysis or history row of the deleted workflow is answered for it.

alter table workflow_tombstones add column deleted_at timestamptz not null default now();

create index workflow_tombstones_location_deleted_idx
    on workflow_tombstones (location_id, deleted_at desc, workflow_id desc);

create or replace function workflows_remember_last_version() returns trigger
language plpgsql as $$
begin
    insert into workflow_tombstones (location_id, workflow_id, last_version)
    values (old.location_id, old.id, old.version)
    on conflict (location_id, workflow_id) do update
    set last_version = greatest(workflow_tombstones.last_version, excluded.last_version),
        deleted_at = now();
    return old;
end;
$$;
