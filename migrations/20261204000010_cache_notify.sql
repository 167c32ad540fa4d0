-- Cache invalidation through Postgres (issue 20). A write that changes what a cached key
-- answers calls this inside its own transaction, so its message is delivered only if it
-- commits, in commit order. `notice` is the cache's JSON message (keys and an id); the stored
-- version is added to it as "v". A null channel or notice sends nothing (no listener
-- attached). Returns `version`, so it can stand in the select list of the writing statement.
create function cache_notify(channel text, notice text, version bigint) returns bigint
language plpgsql as $$
begin
    if channel is not null and notice is not null then
        perform pg_notify(
            channel,
            case when version is null then notice
                 else (notice::jsonb || jsonb_build_object('v', version))::text end
        );
    end if;
    return version;
end
$$;
