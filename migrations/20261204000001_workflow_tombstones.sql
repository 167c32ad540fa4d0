-- A workflow's version never goes back: deleting one remembers its last version, and creating
-- one under the same id again starts after it. Analyses are cached and recorded per
-- (workflow, version), and the ETag is the version, so a re-created workflow that restarted
-- at 1 would be answered with its deleted predecessor's analysis, history row and ETag.

create table workflow_tombstones (
    -- No foreign key to locations: a tombstone has to outlive anything that deletes the
    -- location's workflows (a cascade included), or versions could go back after all.
    location_id  text not null,
    workflow_id  text not null,
    last_version bigint not null check (last_version >= 1),
    primary key (location_id, workflow_id)
);

-- A trigger rather than a statement in each delete path: every way a workflow row goes (the
-- API, a webhook, an operator's SQL, a cascade) is covered, in the deleting transaction.
create function workflows_remember_last_version() returns trigger
language plpgsql as $$
begin
    insert into workflow_tombstones (location_id, workflow_id, last_version)
    values (old.location_id, old.id, old.version)
    on conflict (location_id, workflow_id) do update
    set last_version = greatest(workflow_tombstones.last_version, excluded.last_version);
    return old;
end;
$$;

create trigger workflows_remember_last_version
    after delete on workflows
    for each row execute function workflows_remember_last_version();

-- Workflows deleted before this migration left their last analysed version in the history:
-- their successors start after it too.
insert into workflow_tombstones (location_id, workflow_id, last_version)
select a.location_id, a.workflow_id, max(a.workflow_version)
from analyses a
where a.workflow_version >= 1
  and not exists (
      select 1 from workflows w where w.location_id = a.location_id and w.id = a.workflow_id
  )
group by a.location_id, a.workflow_id;
