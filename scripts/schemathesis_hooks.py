"""Schemathesis hooks for scripts/schemathesis.sh.

openapi.json states some rules of a workflow document in words, because a JSON Schema cannot
say them: trigger ids and step ids are unique (`uniqueItems` compares whole items, not one
field), and ids, step references and the keys of `config`, `filters` and a condition are at
most 256 *bytes* (`maxLength`, also under `propertyNames`, counts characters). The hook below keeps
generated documents to those rules; Schemathesis checks each request against the schema again
after the hook. The other hook works around a limit of Schemathesis itself (`X-Consistency-Token`
in positive cases, below), and nothing else is changed.
"""

import re

import schemathesis

MAX_ID_BYTES = 256  # domain::limits::MAX_ID_BYTES
TOKEN_HEADER = "X-Consistency-Token"
TOKEN = re.compile(r"v1-[0-9A-Fa-f]{1,16}")  # http::consistency::TOKEN_PATTERN
REFERENCES = ("id", "start", "next", "else")


def _cut(text):
    """`text` cut to at most MAX_ID_BYTES bytes of UTF-8, at a character boundary."""
    while len(text.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        text = text[:-1]
    return text


def _fit(text):
    """`_cut(text)`, not blank when `text` is not (a stored id must not be blank): leading
    white space goes first when the cut would keep nothing else."""
    fitted = _cut(text)
    if text.strip() and not fitted.strip():
        fitted = _cut(text.lstrip())
    return fitted


def _within_limits(value):
    """`value` with every object key and id/reference string cut to MAX_ID_BYTES bytes."""
    if isinstance(value, list):
        return [_within_limits(item) for item in value]
    if not isinstance(value, dict):
        return value
    fitted = {}
    for key, item in value.items():
        item = _within_limits(item)
        if key in REFERENCES and isinstance(item, str):
            item = _fit(item)
        fitted[_fit(key)] = item
    return fitted


def _unique_ids(items):
    """The items with every repeated string `id` renamed (the first keeps it)."""
    if not isinstance(items, list):
        return items
    ids = [item.get("id") for item in items if isinstance(item, dict)]
    seen = {i for i in ids if isinstance(i, str)}
    kept = set()
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        if item["id"] not in kept:
            kept.add(item["id"])
            continue
        renamed = f"dup{n}"
        while renamed in seen:
            renamed += "_"
        item["id"] = renamed
        seen.add(renamed)
        kept.add(renamed)
    return items


def _document(document, unique_ids):
    """A stored document (`unique_ids`) or one only analyzed, which may repeat ids."""
    if not isinstance(document, dict):
        return document
    document = _within_limits(document)
    if unique_ids:
        for key in ("triggers", "steps"):
            if key in document:
                document[key] = _unique_ids(document[key])
    return document


def _positive(case):
    meta = getattr(case, "meta", None)
    return meta is None or not meta.generation.mode.is_negative


def _drop_foreign_token(case, kwargs):
    """A positive case keeps no X-Consistency-Token that is not a token.

    The coverage phase generates header values only from patterns made of letters and digits
    (`HEADER_ALLOWED_CHARS` in schemathesis 4.32); for `^v1-…$` it finds no valid value and
    seeds the optional header with a negative one (`0`), which then rides along in the cases
    it labels positive: the server's 400 for it would be reported as a valid request refused.
    The header is optional, so leaving it out keeps such a case what it is labelled; cases
    labelled negative keep their value (a bad token must be a 400)."""
    headers = case.headers
    if not headers or TOKEN_HEADER not in headers or not _positive(case):
        return
    value = headers[TOKEN_HEADER]
    if not (isinstance(value, str) and TOKEN.fullmatch(value)):
        del headers[TOKEN_HEADER]
        sent = kwargs.get("headers")
        if isinstance(sent, dict):
            sent.pop(TOKEN_HEADER, None)


@schemathesis.hook
def before_call(context, case, kwargs):
    # `before_call` rather than `map_body`: it also sees the coverage phase's requests.
    _drop_foreign_token(case, kwargs)
    operation = context.operation
    if operation is None or not isinstance(case.body, dict):
        return
    method, path = operation.method.upper(), operation.path
    if (method, path) == ("PUT", "/api/workflows/{id}"):
        case.body = _document(case.body, unique_ids=True)
    elif (method, path) == ("POST", "/api/analyze") and "workflow" in case.body:
        case.body["workflow"] = _document(case.body["workflow"], unique_ids=False)
