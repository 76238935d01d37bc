package eval

import (
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"
)

var (
	ruleIDRe = regexp.MustCompile(`\bid:(\d+)`)
	plTagRe  = regexp.MustCompile(`tag:'paranoia-level/(\d)'`)
)

// ParanoiaLevels reads every *.conf under dir in fsys and maps each rule id
// to the paranoia level of its tag:'paranoia-level/N'. Rules without the
// tag are left out. It reads the rules only to label tests: nothing from
// them reaches the product.
func ParanoiaLevels(fsys fs.FS, dir string) (map[int]int, error) {
	files, err := fs.Glob(fsys, path.Join(dir, "*.conf"))
	if err != nil {
		return nil, err
	}
	out := map[int]int{}
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		parseLevels(string(b), out)
	}
	return out, nil
}

// parseLevels joins backslash-continued lines into directives and records
// id → level for each directive carrying both.
func parseLevels(conf string, out map[int]int) {
	var cur strings.Builder
	flush := func() {
		d := cur.String()
		cur.Reset()
		id := ruleIDRe.FindStringSubmatch(d)
		pl := plTagRe.FindStringSubmatch(d)
		if id == nil || pl == nil {
			return
		}
		n, _ := strconv.Atoi(id[1])
		l, _ := strconv.Atoi(pl[1])
		out[n] = l
	}
	for _, line := range strings.Split(conf, "\n") {
		t := strings.TrimRight(line, " \t\r")
		if strings.HasPrefix(strings.TrimSpace(t), "#") {
			continue
		}
		if strings.HasSuffix(t, "\\") {
			cur.WriteString(strings.TrimSuffix(t, "\\"))
			continue
		}
		cur.WriteString(t)
		flush()
	}
	flush()
}
