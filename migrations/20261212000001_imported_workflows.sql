-- GoHighLevel imports (issue 22). An imported workflow keeps the builder JSON it came from,
-- verbatim: `text`, not `jsonb`, because jsonb reorders keys and drops whitespace and
-- `GET /api/workflows/{id}?format=ghl` answers the original byte for byte. `source_version`
-- is the builder's own `version` (its edit counter): importing the same source version again
-- changes nothing. Both are null for a workflow written as a CONTRACT §7 document (PUT), and
-- a PUT over an imported workflow clears them (the original no longer describes it).
alter table workflows
    add column source_json text,
    add column source_version bigint,
    add constraint workflows_source_version_needs_source
        check (source_version is null or source_json is not null);
