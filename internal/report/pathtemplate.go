package report

// idSegment matches an identifier inside a path: a UUID, a hex hash of 16
// or more digits, or a run of decimal digits, each preceded by a separator
// (/ _ : = -) and followed by one (or the end). "/items/42",
// "/products/item-7", "/o/3fa85f64-5717-4562-b3fc-2c963f66afa6.json" and
// "/blob/9f86d081884c7d659a2feaa0c55ad015" all become {id}; "/v1/" and
// "/api2" keep their digits. RE2 has no lookahead, so the trailing
// separator is consumed: the expression runs twice to catch ids that follow
// each other ("/1/2").
//
// The colon is written \x3A (RE2's escape, behind SQL's \\): the text holds
// no ':' at all. clickhouse-go sends a query whose text matches {.+:.+} with
// server-side parameters instead of binding @name itself, on every server
// new enough to have them (native protocol revision 54459, ClickHouse 22.8,
// and later; any over HTTP); the
// quantifiers {8}, the replacement {id} and a ':' on one line did match, so
// the routes query reached ClickHouse 26.x with @generic_routes unbound (a
// syntax error) and no report could be made there.
const idSegment = `([/_\\x3A=-])([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{16,}|[0-9]+)([/._\\x3A=-]|$)`

// PathTemplateSQL is the ClickHouse expression that turns the path column
// into its template. The report groups endpoints with it and the Grafana
// dashboard (deploy/grafana) uses the same text, which a test checks, so
// both show the same rows. It works on ClickHouse 18.16 and later.
const PathTemplateSQL = `replaceRegexpAll(replaceRegexpAll(path, '` + idSegment + `', '\\1{id}\\3'), '` +
	idSegment + `', '\\1{id}\\3')`
