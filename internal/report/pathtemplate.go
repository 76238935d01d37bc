package report

// idSegment matches an identifier inside a path: a UUID, a hex hash of 16
// or more digits, or a run of decimal digits, each preceded by a separator
// (/ _ : = -) and followed by one (or the end). "/items/42",
// "/products/item-7", "/o/3fa85f64-5717-4562-b3fc-2c963f66afa6.json" and
// "/blob/9f86d081884c7d659a2feaa0c55ad015" all become {id}; "/v1/" and
// "/api2" keep their digits. RE2 has no lookahead, so the trailing
// separator is consumed: the expression runs twice to catch ids that follow
// each other ("/1/2").
const idSegment = `([/_:=-])([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{16,}|[0-9]+)([/._:=-]|$)`

// PathTemplateSQL is the ClickHouse expression that turns the path column
// into its template. The report groups endpoints with it and the Grafana
// dashboard (deploy/grafana) uses the same text, which a test checks, so
// both show the same rows. It works on ClickHouse 18.16 and later.
const PathTemplateSQL = `replaceRegexpAll(replaceRegexpAll(path, '` + idSegment + `', '\\1{id}\\3'), '` +
	idSegment + `', '\\1{id}\\3')`
