package pathnorm

// AttackSpellings are spellings of "/api/generate/" that must all count as
// that route (issue 18): case, a ;param, repeated slashes, dot segments,
// encoded dots and an encoded slash. Tests of quota and behaviour reuse
// them.
var AttackSpellings = []string{
	"/api/generate",
	"/api/generate/",
	"/API/generate/",
	"/api/generate/;x=1",
	"/api/generate;x=1",
	"//api/generate/",
	"/api/./generate/",
	"/api/%2e/generate/",
	"/api/%2E/generate/",
	"/api%2Fgenerate/",
	"/api/generate//",
	"/x/../api/generate",
	"/api/x/..;/generate/",
	"/%61pi/%67enerate/",
}
